using System.Runtime.CompilerServices;
using MaskRcnn.Net.Imaging;

namespace MaskRcnn.Net.Video;

/// <summary>
/// Decodes a video's frames as <see cref="RgbImage"/>s, streamed from one ffmpeg process's stdout as raw rgb24 (one
/// frame in memory at a time, never the whole video). ffmpeg applies the rotation metadata, so frames come upright,
/// as displayed (<see cref="VideoInfo.Width"/> × <see cref="VideoInfo.Height"/>). Every decoded frame is yielded once,
/// none duplicated or dropped (<c>-fps_mode passthrough</c>); its timestamp is its index at the stream's average
/// frame rate. Disposing (or leaving the loop, or cancelling) kills ffmpeg if it still runs and waits for it.
/// </summary>
public sealed class VideoFrameReader : IAsyncDisposable
{
    private readonly FfmpegOptions ffmpeg;
    private FfmpegProcess? process;
    private int started;
    private int disposed;

    private VideoFrameReader(VideoInfo info, FfmpegOptions ffmpeg) => (Info, this.ffmpeg) = (info, ffmpeg);

    /// <summary>What ffprobe said about the file.</summary>
    public VideoInfo Info { get; }

    /// <summary>Probes <paramref name="path"/> (see <see cref="VideoProbe.ProbeAsync"/>) and prepares to decode it.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="VideoFormatException">Not a readable video (the message names the file).</exception>
    /// <exception cref="FfmpegNotFoundException">ffprobe cannot be started.</exception>
    /// <exception cref="TimeoutException">The probe ran past its timeout.</exception>
    public static async Task<VideoFrameReader> OpenAsync(string path, FfmpegOptions? ffmpeg = null, CancellationToken cancellationToken = default)
    {
        var options = ffmpeg ?? FfmpegOptions.Default;
        options.Validate();
        var info = await VideoProbe.ProbeAsync(path, options, cancellationToken).ConfigureAwait(false);
        return new VideoFrameReader(info, options);
    }

    /// <summary>
    /// Starts ffmpeg and yields the frames in order. Call it once per reader. Cancelling (or leaving the loop) kills
    /// ffmpeg.
    /// </summary>
    /// <remarks>
    /// A file that breaks off (truncated, corrupt) yields the frames ffmpeg could decode and then throws
    /// <see cref="VideoFormatException"/>: when ffmpeg exits with an error, stops inside a frame, decodes no frame,
    /// or reports errors and decodes fewer frames than the container declares (MP4's frame count; else its duration
    /// at its frame rate, as in a truncated Matroska file). Errors that ffmpeg conceals while still delivering every
    /// declared frame are not an exception.
    /// </remarks>
    /// <exception cref="VideoFormatException">ffmpeg could not decode the file (the frames before the failure have
    /// been yielded; the message names the file and quotes ffmpeg).</exception>
    /// <exception cref="FfmpegNotFoundException">ffmpeg cannot be started.</exception>
    /// <exception cref="InvalidOperationException">Called a second time.</exception>
    /// <exception cref="ObjectDisposedException">The reader is disposed.</exception>
    public IAsyncEnumerable<VideoFrame> ReadFramesAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref disposed) != 0, this);
        if (Interlocked.Exchange(ref started, 1) != 0)
        {
            throw new InvalidOperationException($"the frames of {Info.Path} can be read once per VideoFrameReader; open another reader to read them again");
        }

        return ReadCoreAsync(cancellationToken);
    }

    /// <summary>Kills ffmpeg if it still runs and waits for it to exit.</summary>
    public async ValueTask DisposeAsync()
    {
        Interlocked.Exchange(ref disposed, 1);
        if (Interlocked.Exchange(ref process, null) is { } p)
        {
            await p.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>The ffmpeg arguments that decode the first video stream to raw rgb24 frames of the displayed size on stdout.</summary>
    internal static string[] DecodeArguments(VideoInfo info) =>
    [
        "-nostdin", "-hide_banner", "-v", "error",
        "-i", FfmpegPaths.FileUrl(info.Path),
        "-map", "0:v:0", "-an", "-sn", "-dn",
        "-fps_mode", "passthrough",
        "-s", $"{info.Width}x{info.Height}",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1",
    ];

    private async IAsyncEnumerable<VideoFrame> ReadCoreAsync([EnumeratorCancellation] CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var info = Info;
        var frameBytes = checked((int)info.FrameBytes);
        var ffmpegProcess = FfmpegProcess.Start(ffmpeg.FfmpegPath, DecodeArguments(info), keepStdin: false);
        if (Interlocked.CompareExchange(ref process, ffmpegProcess, null) is not null || Volatile.Read(ref disposed) != 0)
        {
            await ffmpegProcess.DisposeAsync().ConfigureAwait(false);
            throw new ObjectDisposedException(nameof(VideoFrameReader));
        }

        try
        {
            var stdout = ffmpegProcess.Output;
            long index = 0;
            var partial = 0;
            while (true)
            {
                var buffer = new byte[frameBytes];
                var read = await stdout.ReadAtLeastAsync(buffer, frameBytes, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false);
                if (read < frameBytes)
                {
                    partial = read;
                    break;
                }

                yield return new VideoFrame(index, info.FrameRate.TimestampOf(index), new RgbImage(info.Width, info.Height, buffer));
                index++;
            }

            var exitCode = await ffmpegProcess.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
            var said = ffmpegProcess.StderrTail.Trim();
            var quote = said.Length == 0 ? "" : $"; ffmpeg said: {said}";
            if (exitCode != 0)
            {
                throw new VideoFormatException(info.Path, $"{info.Path}: ffmpeg could not decode it (exit code {exitCode}) after {index} frame(s){quote}");
            }

            if (partial > 0)
            {
                throw new VideoFormatException(info.Path, $"{info.Path}: ffmpeg's output ended inside frame {index} ({partial} of {frameBytes} bytes){quote}");
            }

            if (index == 0)
            {
                throw new VideoFormatException(info.Path, $"{info.Path}: no frame could be decoded{quote}");
            }

            if (said.Length > 0 && info.EstimatedFrameCount is { } expected && index < expected)
            {
                var declared = info.FrameCount is null ? $"about {expected} frames (its duration at its frame rate)" : $"{expected} frames";
                throw new VideoFormatException(info.Path, $"{info.Path} is truncated or corrupt: it declares {declared}, {index} could be decoded{quote}");
            }
        }
        finally
        {
            Interlocked.CompareExchange(ref process, null, ffmpegProcess);
            await ffmpegProcess.DisposeAsync().ConfigureAwait(false);
        }
    }
}
