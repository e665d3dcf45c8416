using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace MaskRcnn.Net.Cli.Tests;

/// <summary>
/// <c>maskrcnn serve</c> as a child process of the built CLI on 127.0.0.1 with a port it picks (the URL it prints on
/// standard output); its standard error is collected. Disposing kills it if it still runs, so no test leaves a server.
/// </summary>
internal sealed class ServeProcess : IAsyncDisposable
{
    /// <summary>Hang guard of every wait on the server (it starts and answers within seconds).</summary>
    public static readonly TimeSpan HangGuard = TimeSpan.FromMinutes(3);

    private readonly Process process;
    private readonly StringBuilder errors;
    private readonly Task stderr;
    private readonly Task<string> stdout;

    private ServeProcess(Process process, Task stderr, Task<string> stdout, StringBuilder errors, string url)
    {
        this.process = process;
        this.stderr = stderr;
        this.stdout = stdout;
        this.errors = errors;
        Url = url;
        Client = new HttpClient { BaseAddress = new Uri(url), Timeout = HangGuard };
    }

    /// <summary>The server's base URL (http://127.0.0.1:PORT).</summary>
    public string Url { get; }

    /// <summary>A client for <see cref="Url"/>.</summary>
    public HttpClient Client { get; }

    /// <summary>The process id (for signals).</summary>
    public int Id => process.Id;

    /// <summary>What the server wrote to standard error so far.</summary>
    public string Log
    {
        get
        {
            lock (errors)
            {
                return errors.ToString();
            }
        }
    }

    /// <summary>Starts <c>maskrcnn serve --weights W --host 127.0.0.1 --port 0 EXTRA...</c> and waits until it listens.</summary>
    public static async Task<ServeProcess> StartAsync(string weights, params string[] extra)
    {
        var cli = Path.Combine(AppContext.BaseDirectory, "maskrcnn.dll");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in (string[])[cli, "serve", "--weights", weights, "--host", "127.0.0.1", "--port", "0", "--threads", "1", .. extra])
        {
            start.ArgumentList.Add(a);
        }

        var process = Process.Start(start)!;
        var errors = new StringBuilder();
        var stderr = Task.Run(async () =>
        {
            while (await process.StandardError.ReadLineAsync() is { } line)
            {
                lock (errors)
                {
                    errors.AppendLine(line);
                }
            }
        });

        const string Marker = "maskrcnn serve: listening on ";
        using var guard = new CancellationTokenSource(HangGuard);
        string? url = null;
        try
        {
            while (await process.StandardOutput.ReadLineAsync(guard.Token) is { } line)
            {
                if (line.StartsWith(Marker, StringComparison.Ordinal))
                {
                    url = line[Marker.Length..].Trim();
                    break;
                }
            }
        }
        catch (OperationCanceledException)
        {
        }

        if (url is null)
        {
            Kill(process);
            await stderr;
            string log;
            lock (errors)
            {
                log = errors.ToString();
            }

            throw new InvalidOperationException($"maskrcnn serve did not print its URL (exit code {(process.HasExited ? process.ExitCode : -1)}); stderr:\n{log}");
        }

        var stdout = process.StandardOutput.ReadToEndAsync();
        return new ServeProcess(process, stderr, stdout, errors, url);
    }

    /// <summary>Waits until standard error holds <paramref name="text"/> (or the process ends, or the hang guard).</summary>
    public async Task<bool> WaitForLogAsync(string text)
    {
        using var guard = new CancellationTokenSource(HangGuard);
        while (!Log.Contains(text, StringComparison.Ordinal) && !process.HasExited && !guard.IsCancellationRequested)
        {
            await Task.Delay(20, CancellationToken.None);
        }

        return Log.Contains(text, StringComparison.Ordinal);
    }

    /// <summary>Sends a signal (e.g. "TERM", "INT") with kill(1).</summary>
    public void Signal(string name)
    {
        using var kill = Process.Start("kill", [$"-{name}", process.Id.ToString(CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
        if (kill.ExitCode != 0)
        {
            throw new InvalidOperationException($"kill -{name} {process.Id} failed");
        }
    }

    /// <summary>Waits for the process to end (null when it did not within the hang guard) and for its output.</summary>
    public async Task<int?> WaitForExitAsync()
    {
        using var guard = new CancellationTokenSource(HangGuard);
        try
        {
            await process.WaitForExitAsync(guard.Token);
        }
        catch (OperationCanceledException)
        {
            return null;
        }

        await stderr;
        await stdout;
        return process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        if (!process.HasExited)
        {
            Kill(process);
        }

        await stderr;
        await stdout;
        process.Dispose();
    }

    private static void Kill(Process process)
    {
        try
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
        }
        catch (InvalidOperationException)
        {
            // already exited
        }
    }
}
