namespace MaskRcnn.Net.Video;

/// <summary>How <see cref="VideoWriter"/> encodes: size and rate of the frames it is given, codec, quality, audio.</summary>
/// <param name="Width">Width of every frame written.</param>
/// <param name="Height">Height of every frame written.</param>
/// <param name="FrameRate">Frames per second of the output.</param>
/// <remarks>
/// Odd sizes: a pixel format with chroma subsampling (yuv420p and the other 4:2:0 formats, nv12/nv21: both sides;
/// 4:2:2 formats: the width) cannot hold an odd side, so the frames are padded with black on the right and/or bottom
/// to the next even size (ffmpeg's <c>pad</c> filter): the output file is <see cref="EncodedWidth"/> ×
/// <see cref="EncodedHeight"/> and the original pixels sit at its top-left corner. Formats without subsampling
/// (yuv444p, rgb24, gbrp, ffv1's) keep the size as it is.
/// </remarks>
public sealed record VideoWriterOptions(int Width, int Height, FrameRate FrameRate)
{
    /// <summary>ffmpeg's encoder name (<c>-c:v</c>): libx264 by default (H.264, plays everywhere).</summary>
    public string Codec { get; init; } = "libx264";

    /// <summary>
    /// Constant rate factor (<c>-crf</c>) for the encoders that take one (libx264, libx264rgb, libx265, libvpx-vp9,
    /// libaom-av1, libsvtav1): lower is better, 0 lossless for libx264rgb; 18 (visually lossless for H.264) by default.
    /// Null: the encoder's default. Ignored by other encoders.
    /// </summary>
    public int? Quality { get; init; } = 18;

    /// <summary>The output pixel format (<c>-pix_fmt</c>): yuv420p by default (what players expect of H.264).</summary>
    public string PixelFormat { get; init; } = "yuv420p";

    /// <summary>
    /// A media file whose audio streams are copied into the output (<c>-map 1:a? -c:a copy</c>; re-encoded to AAC when
    /// the output is MP4/MOV and the audio codec is not one it holds); null for a silent video. A file without audio
    /// is fine. The output ends with the video (<c>-shortest</c>).
    /// </summary>
    public string? AudioFrom { get; init; }

    /// <summary>Moves the MP4/MOV index to the front when finishing (<c>-movflags +faststart</c>) so players can start streaming at once.</summary>
    public bool FastStart { get; init; } = true;

    /// <summary>More ffmpeg output options, inserted before the output path (for example <c>["-preset", "veryfast"]</c>).</summary>
    public IReadOnlyList<string> ExtraArguments { get; init; } = [];

    /// <summary>Width of the encoded video: <see cref="Width"/>, made even when <see cref="PixelFormat"/> subsamples chroma horizontally.</summary>
    public int EncodedWidth => PadsWidth(PixelFormat) ? (Width + 1) & ~1 : Width;

    /// <summary>Height of the encoded video: <see cref="Height"/>, made even when <see cref="PixelFormat"/> subsamples chroma vertically.</summary>
    public int EncodedHeight => PadsHeight(PixelFormat) ? (Height + 1) & ~1 : Height;

    /// <summary>Checks the fields; throws <see cref="ArgumentException"/> naming the field and its value.</summary>
    public void Validate()
    {
        if (Width < 1 || Height < 1)
        {
            throw new ArgumentException($"VideoWriterOptions.Width and Height must be positive, got {Width}x{Height}", Width < 1 ? nameof(Width) : nameof(Height));
        }

        if (!FrameRate.IsValid)
        {
            throw new ArgumentException("VideoWriterOptions.FrameRate must be a positive rate, got the default (0/0)", nameof(FrameRate));
        }

        if (string.IsNullOrWhiteSpace(Codec))
        {
            throw new ArgumentException("VideoWriterOptions.Codec must name an ffmpeg encoder (e.g. libx264), got an empty string", nameof(Codec));
        }

        if (Quality is < 0 or > 63)
        {
            throw new ArgumentException($"VideoWriterOptions.Quality (CRF) must be in [0, 63] or null, got {Quality}", nameof(Quality));
        }

        if (string.IsNullOrWhiteSpace(PixelFormat))
        {
            throw new ArgumentException("VideoWriterOptions.PixelFormat must name an ffmpeg pixel format (e.g. yuv420p), got an empty string", nameof(PixelFormat));
        }

        if (AudioFrom is { } audio && string.IsNullOrWhiteSpace(audio))
        {
            throw new ArgumentException("VideoWriterOptions.AudioFrom must be a file path or null, got an empty string", nameof(AudioFrom));
        }

        if (ExtraArguments is null || ExtraArguments.Any(a => a is null))
        {
            throw new ArgumentException("VideoWriterOptions.ExtraArguments must be a list of non-null strings", nameof(ExtraArguments));
        }
    }

    /// <summary>4:2:0 (and 4:1:0) formats halve the chroma rows: the height must be even.</summary>
    internal static bool PadsHeight(string pixelFormat) =>
        pixelFormat.Contains("420", StringComparison.Ordinal) || pixelFormat.Contains("410", StringComparison.Ordinal) || pixelFormat is "nv12" or "nv21";

    /// <summary>4:2:0, 4:2:2, 4:1:1 (and 4:1:0) formats halve (or quarter) the chroma columns: the width must be even.</summary>
    internal static bool PadsWidth(string pixelFormat) =>
        PadsHeight(pixelFormat) || pixelFormat.Contains("422", StringComparison.Ordinal) || pixelFormat.Contains("411", StringComparison.Ordinal)
        || pixelFormat is "nv16";
}
