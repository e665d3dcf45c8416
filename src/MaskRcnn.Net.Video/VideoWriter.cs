using System.Globalization;
using System.Text.Json;
using MaskRcnn.Net.Imaging;

namespace MaskRcnn.Net.Video;

/// <summary>
/// Encodes <see cref="RgbImage"/> frames into a video file through one ffmpeg process (raw rgb24 on its stdin).
/// <see cref="CompleteAsync"/> closes stdin and waits for ffmpeg to finish the file; disposing without it does the
/// same (a playable file of the frames written so far, e.g. after Ctrl+C), or kills ffmpeg when a write failed.
/// </summary>
/// <remarks>
/// Odd sizes in a chroma-subsampled pixel format (yuv420p) are padded with black on the right/bottom to the next even
/// size (<see cref="VideoWriterOptions.EncodedWidth"/> × <see cref="VideoWriterOptions.EncodedHeight"/>); the frames
/// given keep their size and sit at the top-left corner of the encoded picture.
/// </remarks>
public sealed class VideoWriter : IAsyncDisposable
{
    private readonly FfmpegProcess process;
    private int state; // 0 open, 1 completing/completed, 2 failed
    private int disposed;

    private VideoWriter(string outputPath, VideoWriterOptions options, FfmpegProcess process) =>
        (OutputPath, Options, this.process) = (outputPath, options, process);

    /// <summary>The file being written.</summary>
    public string OutputPath { get; }

    /// <summary>The options it was created with.</summary>
    public VideoWriterOptions Options { get; }

    /// <summary>Frames written so far.</summary>
    public long FramesWritten { get; private set; }

    /// <summary>The ffmpeg command line (for messages and logs).</summary>
    public string Command => process.Command;

    /// <summary>
    /// Starts ffmpeg writing <paramref name="outputPath"/> (overwritten if it exists; the container follows the
    /// extension: .mp4, .mkv, .mov, .webm, …).
    /// </summary>
    /// <exception cref="ArgumentException">The options are invalid (the message names the field).</exception>
    /// <exception cref="FileNotFoundException"><see cref="VideoWriterOptions.AudioFrom"/> does not exist.</exception>
    /// <exception cref="VideoFormatException"><see cref="VideoWriterOptions.AudioFrom"/> is not a media file.</exception>
    /// <exception cref="FfmpegNotFoundException">ffmpeg (or ffprobe, to look at the audio) cannot be started.</exception>
    /// <exception cref="FfmpegException">ffmpeg refused the options at once (e.g. an unknown encoder).</exception>
    public static async Task<VideoWriter> CreateAsync(string outputPath, VideoWriterOptions options, FfmpegOptions? ffmpeg = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(outputPath);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var tools = ffmpeg ?? FfmpegOptions.Default;
        tools.Validate();
        string? audioCodec = null;
        if (options.AudioFrom is { } audioFrom)
        {
            audioCodec = await ProbeAudioCodecAsync(audioFrom, tools, cancellationToken).ConfigureAwait(false);
        }

        cancellationToken.ThrowIfCancellationRequested();
        var process = FfmpegProcess.Start(tools.FfmpegPath, EncodeArguments(outputPath, options, audioCodec), keepStdin: true);
        return new VideoWriter(outputPath, options, process);
    }

    /// <summary>
    /// Writes one frame of <see cref="VideoWriterOptions.Width"/> × <see cref="VideoWriterOptions.Height"/> pixels. The
    /// token is checked before the frame is written; a frame is never written in part.
    /// </summary>
    /// <exception cref="ArgumentException">The frame has another size (the message gives both).</exception>
    /// <exception cref="FfmpegException">ffmpeg has exited (the message quotes its stderr).</exception>
    /// <exception cref="InvalidOperationException">After <see cref="CompleteAsync"/>.</exception>
    public async ValueTask WriteFrameAsync(RgbImage frame, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(frame);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref disposed) != 0, this);
        if (frame.Width != Options.Width || frame.Height != Options.Height)
        {
            throw new ArgumentException($"{OutputPath} takes frames of {Options.Width}x{Options.Height} pixels, got {frame.Width}x{frame.Height}", nameof(frame));
        }

        switch (Volatile.Read(ref state))
        {
            case 1:
                throw new InvalidOperationException($"{OutputPath} is complete: no frame can be written after CompleteAsync");
            case 2:
                throw await FailureAsync("ffmpeg failed earlier while writing", null).ConfigureAwait(false);
        }

        cancellationToken.ThrowIfCancellationRequested();
        try
        {
            // Not cancellable once started: half a frame would shift every later frame.
            await process.Input.WriteAsync(frame.Pixels, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException)
        {
            Volatile.Write(ref state, 2);
            throw await FailureAsync($"ffmpeg stopped taking frames for {OutputPath} after {FramesWritten}", e).ConfigureAwait(false);
        }

        FramesWritten++;
    }

    /// <summary>
    /// Closes ffmpeg's stdin and waits for it to finish the file. Cancelling kills ffmpeg (the file is then not
    /// usable) and throws <see cref="OperationCanceledException"/>. A second call does nothing.
    /// </summary>
    /// <exception cref="FfmpegException">ffmpeg failed (the message quotes its stderr).</exception>
    public async Task CompleteAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref disposed) != 0, this);
        var previous = Interlocked.CompareExchange(ref state, 1, 0);
        if (previous == 1)
        {
            return;
        }

        if (previous == 2)
        {
            throw await FailureAsync("ffmpeg failed earlier while writing", null).ConfigureAwait(false);
        }

        try
        {
            await process.Input.FlushAsync(CancellationToken.None).ConfigureAwait(false);
            process.Input.Close();
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException)
        {
            // ffmpeg has exited: its exit code says whether the file is complete
        }

        int exitCode;
        try
        {
            exitCode = await process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            Volatile.Write(ref state, 2);
            await process.KillAsync().ConfigureAwait(false);
            throw;
        }

        if (exitCode != 0)
        {
            Volatile.Write(ref state, 2);
            throw new FfmpegException(process.Command, exitCode, process.StderrTail, $"ffmpeg failed to finish {OutputPath} ({FramesWritten} frames written)");
        }
    }

    /// <summary>
    /// Finishes the file like <see cref="CompleteAsync"/> if that has not run (errors are swallowed: dispose does not
    /// throw), or kills ffmpeg if a write failed; always waits for the process to exit.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref disposed, 1) != 0)
        {
            return;
        }

        if (Volatile.Read(ref state) == 0)
        {
            Volatile.Write(ref disposed, 0);
            try
            {
                await CompleteAsync(CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception e) when (e is FfmpegException or IOException or ObjectDisposedException)
            {
                // disposing does not throw; CompleteAsync reports failures to callers who want them
            }
            finally
            {
                Volatile.Write(ref disposed, 1);
            }
        }

        await process.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>The ffmpeg arguments: raw rgb24 on stdin (and the audio source) to the output file.</summary>
    internal static List<string> EncodeArguments(string outputPath, VideoWriterOptions o, string? audioCodec)
    {
        var extension = Path.GetExtension(outputPath).ToLowerInvariant();
        var mp4Like = extension is ".mp4" or ".m4v" or ".mov";
        var args = new List<string>
        {
            "-hide_banner", "-v", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", $"{o.Width}x{o.Height}", "-framerate", o.FrameRate.ToString(), "-i", "pipe:0",
        };
        var audio = o.AudioFrom is not null && audioCodec is not null;
        if (audio)
        {
            args.AddRange(["-i", FfmpegPaths.FileUrl(o.AudioFrom!)]);
        }

        args.AddRange(["-map", "0:v:0"]);
        if (audio)
        {
            args.AddRange(["-map", "1:a?"]);
        }

        if (o.EncodedWidth != o.Width || o.EncodedHeight != o.Height)
        {
            args.AddRange(["-vf", $"pad={o.EncodedWidth}:{o.EncodedHeight}:0:0:color=black"]);
        }

        args.AddRange(["-c:v", o.Codec]);
        if (o.Quality is { } crf && CrfEncoders.Contains(o.Codec))
        {
            args.AddRange(["-crf", crf.ToString(CultureInfo.InvariantCulture)]);
        }

        args.AddRange(["-pix_fmt", o.PixelFormat]);
        if (audio)
        {
            args.AddRange(["-c:a", AudioEncoder(extension, audioCodec!), "-shortest"]);
        }

        if (o.FastStart && mp4Like)
        {
            args.AddRange(["-movflags", "+faststart"]);
        }

        args.AddRange(o.ExtraArguments);
        args.Add(FfmpegPaths.FileUrl(outputPath));
        return args;
    }

    private static readonly HashSet<string> CrfEncoders = ["libx264", "libx264rgb", "libx265", "libvpx-vp9", "libvpx", "libaom-av1", "libsvtav1"];

    /// <summary>"copy" when the output container holds the source's audio codec, else an encoder it takes.</summary>
    private static string AudioEncoder(string extension, string sourceCodec) => extension switch
    {
        ".mp4" or ".m4v" or ".mov" => sourceCodec is "aac" or "mp3" or "alac" or "ac3" or "eac3" ? "copy" : "aac",
        ".webm" => sourceCodec is "opus" or "vorbis" ? "copy" : "libopus",
        _ => "copy",
    };

    /// <summary>The first audio stream's codec of <paramref name="path"/>, or null when it has none.</summary>
    private static async Task<string?> ProbeAudioCodecAsync(string path, FfmpegOptions tools, CancellationToken cancellationToken)
    {
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"audio source not found: {path} (VideoWriterOptions.AudioFrom)", path);
        }

        string[] args = ["-v", "error", "-of", "json", "-show_streams", "-select_streams", "a", FfmpegPaths.FileUrl(path)];
        var (exitCode, json, stderr) = await FfmpegTools.RunToEndAsync(tools.FfprobePath, args, tools.ProbeTimeout, path, cancellationToken).ConfigureAwait(false);
        if (exitCode != 0)
        {
            throw new VideoFormatException(path, $"{path} (VideoWriterOptions.AudioFrom) is not a readable media file: ffprobe exited with code {exitCode}" +
                (string.IsNullOrWhiteSpace(stderr) ? "" : $" and said: {stderr.Trim()}"));
        }

        using var doc = JsonDocument.Parse(json);
        return doc.RootElement.TryGetProperty("streams", out var streams) && streams.ValueKind == JsonValueKind.Array
            ? streams.EnumerateArray().Select(s => s.TryGetProperty("codec_name", out var c) ? c.GetString() ?? "unknown" : "unknown").FirstOrDefault()
            : null;
    }

    private async Task<FfmpegException> FailureAsync(string context, Exception? inner)
    {
        int? exitCode = null;
        using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        try
        {
            exitCode = await process.WaitForExitAsync(grace.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            await process.KillAsync().ConfigureAwait(false); // closed its input but still runs: not ours to wait for
        }

        return new FfmpegException(process.Command, exitCode, process.StderrTail, context, inner);
    }
}
