namespace MaskRcnn.Net.Video;

/// <summary>Where the ffmpeg and ffprobe executables are, and how long a probe may take.</summary>
/// <remarks>
/// The defaults find both on the PATH (Debian/Ubuntu: <c>apt-get install ffmpeg</c>; macOS: <c>brew install ffmpeg</c>;
/// Windows: <c>winget install ffmpeg</c>). Tested with ffmpeg 5.1.
/// </remarks>
public sealed record FfmpegOptions
{
    /// <summary>The defaults.</summary>
    public static FfmpegOptions Default { get; } = new();

    /// <summary>The ffmpeg executable: a file name looked up on the PATH, or a path.</summary>
    public string FfmpegPath { get; init; } = "ffmpeg";

    /// <summary>The ffprobe executable: a file name looked up on the PATH, or a path.</summary>
    public string FfprobePath { get; init; } = "ffprobe";

    /// <summary>
    /// How long one ffprobe run may take before it is killed and <see cref="TimeoutException"/> is thrown (30 s).
    /// </summary>
    public TimeSpan ProbeTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Checks the fields; throws <see cref="ArgumentException"/> naming the field and its value.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(FfmpegPath))
        {
            throw new ArgumentException("FfmpegOptions.FfmpegPath must name the ffmpeg executable, got an empty string", nameof(FfmpegPath));
        }

        if (string.IsNullOrWhiteSpace(FfprobePath))
        {
            throw new ArgumentException("FfmpegOptions.FfprobePath must name the ffprobe executable, got an empty string", nameof(FfprobePath));
        }

        if (ProbeTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentException($"FfmpegOptions.ProbeTimeout must be positive, got {ProbeTimeout}", nameof(ProbeTimeout));
        }
    }
}
