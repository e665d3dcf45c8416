namespace MaskRcnn.Net.Video;

/// <summary>
/// A file is not a readable video: not a media file at all, truncated, without a video stream, or its frames cannot be
/// decoded. The message names the file and quotes what ffprobe/ffmpeg said.
/// </summary>
public sealed class VideoFormatException : IOException
{
    /// <summary>An exception about <paramref name="path"/>.</summary>
    public VideoFormatException(string path, string message, Exception? inner = null)
        : base(message, inner) => Path = path;

    /// <summary>The file.</summary>
    public string Path { get; }
}

/// <summary>The ffmpeg or ffprobe executable could not be started. The message names it and how to install it.</summary>
public sealed class FfmpegNotFoundException : IOException
{
    /// <summary>An exception about <paramref name="executable"/>.</summary>
    public FfmpegNotFoundException(string executable, Exception? inner = null)
        : base($"cannot start '{executable}': ffmpeg/ffprobe not found. Install ffmpeg (Debian/Ubuntu: sudo apt-get install ffmpeg; " +
            "macOS: brew install ffmpeg; Windows: winget install ffmpeg) or set FfmpegOptions.FfmpegPath/FfprobePath to the executables" +
            (inner is null ? "" : $" ({inner.Message})"), inner) => Executable = executable;

    /// <summary>The executable that could not be started.</summary>
    public string Executable { get; }
}

/// <summary>
/// ffmpeg failed for a reason that is not the input file (an unknown codec or option, an unwritable output, a crash).
/// The message names the command, the exit code and the last lines ffmpeg wrote to stderr.
/// </summary>
public sealed class FfmpegException : IOException
{
    /// <summary>An exception about one ffmpeg run.</summary>
    public FfmpegException(string command, int? exitCode, string stderrTail, string? context = null, Exception? inner = null)
        : base($"{context ?? "ffmpeg failed"}: `{command}` {(exitCode is { } c ? $"exited with code {c}" : "did not finish")}" +
            (string.IsNullOrWhiteSpace(stderrTail) ? "" : $"; its stderr ends with:\n{stderrTail.TrimEnd()}"), inner)
    {
        Command = command;
        ExitCode = exitCode;
        StderrTail = stderrTail;
    }

    /// <summary>The command line (for the message; the process is started without a shell).</summary>
    public string Command { get; }

    /// <summary>The exit code, or null when the process was killed or did not exit.</summary>
    public int? ExitCode { get; }

    /// <summary>The last lines of the process's stderr.</summary>
    public string StderrTail { get; }
}
