using System.ComponentModel;
using System.Diagnostics;
using System.Text;

namespace MaskRcnn.Net.Video;

/// <summary>
/// One ffmpeg or ffprobe child process: started without a shell (arguments passed one by one), stderr drained
/// concurrently into a bounded tail for error messages, and killed (with its whole process tree) and waited for on
/// <see cref="DisposeAsync"/>, so no process outlives its owner.
/// </summary>
/// <remarks>
/// On Linux the child runs in its own session (through util-linux's <c>setsid</c>, which calls setsid(2) and execs the
/// program in the same process): a Ctrl+C in the terminal then interrupts only the .NET process, which stops feeding
/// or reading frames and finishes the file itself, instead of ffmpeg dying or finishing on its own halfway through
/// a frame.
/// </remarks>
internal sealed class FfmpegProcess : IAsyncDisposable
{
    private const int TailLines = 30;
    private const int MaxLineLength = 2000;

    private static readonly Lazy<string?> SetsidPath = new(() => OperatingSystem.IsLinux()
        ? new[] { "/usr/bin/setsid", "/bin/setsid" }.FirstOrDefault(File.Exists)
        : null);

    private readonly Process process;
    private readonly Queue<string> tail = new();
    private readonly Task stderrPump;
    private int disposed;

    private FfmpegProcess(Process process, string command)
    {
        this.process = process;
        Command = command;
        stderrPump = Task.Run(PumpStderrAsync);
    }

    /// <summary>The command line, for messages (quoted where needed; nothing is run through a shell).</summary>
    public string Command { get; }

    /// <summary>The process id.</summary>
    public int Id => process.Id;

    /// <summary>ffmpeg's stdin (raw frames for the writer).</summary>
    public Stream Input => process.StandardInput.BaseStream;

    /// <summary>ffmpeg's stdout (raw frames from the reader, JSON from ffprobe).</summary>
    public Stream Output => process.StandardOutput.BaseStream;

    /// <summary>True once the process has exited.</summary>
    public bool HasExited
    {
        get
        {
            try
            {
                return process.HasExited;
            }
            catch (InvalidOperationException)
            {
                return true;
            }
        }
    }

    /// <summary>The last lines the process wrote to stderr (at most 30, each cut at 2000 characters).</summary>
    public string StderrTail
    {
        get
        {
            lock (tail)
            {
                return string.Join('\n', tail);
            }
        }
    }

    /// <summary>
    /// Starts <paramref name="executable"/> with <paramref name="arguments"/>; stdin is a pipe (closed at once when
    /// <paramref name="keepStdin"/> is false), stdout a pipe, stderr drained into the tail.
    /// </summary>
    /// <exception cref="FfmpegNotFoundException">The executable is not found or cannot be started.</exception>
    public static FfmpegProcess Start(string executable, IReadOnlyList<string> arguments, bool keepStdin)
    {
        var resolved = Resolve(executable) ?? throw new FfmpegNotFoundException(executable);
        var info = new ProcessStartInfo
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            CreateNoWindow = true,
            StandardErrorEncoding = Encoding.UTF8,
        };
        if (SetsidPath.Value is { } setsid)
        {
            info.FileName = setsid;
            info.ArgumentList.Add(resolved);
        }
        else
        {
            info.FileName = resolved;
        }

        foreach (var a in arguments)
        {
            info.ArgumentList.Add(a);
        }

        var command = string.Join(' ', new[] { executable }.Concat(arguments).Select(Quote));
        Process process;
        try
        {
            process = Process.Start(info) ?? throw new FfmpegNotFoundException(executable);
        }
        catch (Win32Exception e)
        {
            throw new FfmpegNotFoundException(executable, e);
        }

        var started = new FfmpegProcess(process, command);
        if (!keepStdin)
        {
            try
            {
                process.StandardInput.Close();
            }
            catch (IOException)
            {
                // already exited: its exit code and stderr tell why
            }
        }

        return started;
    }

    /// <summary>Waits for the process to exit and for its stderr to be drained; returns the exit code.</summary>
    public async Task<int> WaitForExitAsync(CancellationToken cancellationToken)
    {
        await process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
        await stderrPump.ConfigureAwait(false);
        return process.ExitCode;
    }

    /// <summary>Kills the process tree if it still runs, and waits for the exit (idempotent, never throws).</summary>
    public async Task KillAsync()
    {
        try
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }
        catch (Exception e) when (e is InvalidOperationException or Win32Exception or NotSupportedException)
        {
            // exited meanwhile
        }

        try
        {
            await process.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
            await stderrPump.ConfigureAwait(false);
        }
        catch (InvalidOperationException)
        {
            // never started
        }
    }

    /// <summary>Kills the process if it still runs, waits for it and releases the handles.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref disposed, 1) != 0)
        {
            return;
        }

        await KillAsync().ConfigureAwait(false);
        process.Dispose();
    }

    /// <summary>The file to run: a name with a directory part as it is, a bare name searched on the PATH; null when absent.</summary>
    internal static string? Resolve(string executable)
    {
        if (executable.Contains(Path.DirectorySeparatorChar) || executable.Contains(Path.AltDirectorySeparatorChar))
        {
            return File.Exists(executable) ? Path.GetFullPath(executable) : null;
        }

        var extensions = OperatingSystem.IsWindows() && !Path.HasExtension(executable) ? new[] { ".exe", "" } : [""];
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            foreach (var ext in extensions)
            {
                var candidate = Path.Combine(dir, executable + ext);
                if (File.Exists(candidate))
                {
                    return candidate;
                }
            }
        }

        return null;
    }

    private static string Quote(string a) =>
        a.Length > 0 && a.All(c => char.IsLetterOrDigit(c) || c is '-' or '_' or '.' or '/' or ':' or '=' or '+' or ',') ? a : "'" + a.Replace("'", "'\\''", StringComparison.Ordinal) + "'";

    private async Task PumpStderrAsync()
    {
        try
        {
            while (await process.StandardError.ReadLineAsync().ConfigureAwait(false) is { } line)
            {
                if (line.Length == 0)
                {
                    continue;
                }

                lock (tail)
                {
                    tail.Enqueue(line.Length > MaxLineLength ? line[..MaxLineLength] + "…" : line);
                    while (tail.Count > TailLines)
                    {
                        tail.Dequeue();
                    }
                }
            }
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or InvalidOperationException)
        {
            // the process went away
        }
    }
}
