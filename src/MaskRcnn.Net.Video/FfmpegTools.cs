namespace MaskRcnn.Net.Video;

/// <summary>Short ffprobe runs: the whole stdout, with a timeout.</summary>
internal static class FfmpegTools
{
    /// <summary>
    /// Runs <paramref name="executable"/> to the end and returns its exit code, stdout and stderr tail. Past
    /// <paramref name="timeout"/> it is killed and <see cref="TimeoutException"/> names <paramref name="subject"/>.
    /// </summary>
    public static async Task<(int ExitCode, string Stdout, string Stderr)> RunToEndAsync(string executable, IReadOnlyList<string> arguments, TimeSpan timeout,
        string subject, CancellationToken cancellationToken)
    {
        await using var run = FfmpegProcess.Start(executable, arguments, keepStdin: false);
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(timeout);
        try
        {
            using var reader = new StreamReader(run.Output);
            var stdout = await reader.ReadToEndAsync(limit.Token).ConfigureAwait(false);
            var exitCode = await run.WaitForExitAsync(limit.Token).ConfigureAwait(false);
            return (exitCode, stdout, run.StderrTail);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            await run.KillAsync().ConfigureAwait(false);
            throw new TimeoutException($"{Path.GetFileName(executable)} did not finish reading {subject} within {timeout.TotalSeconds:0.###} s " +
                $"(FfmpegOptions.ProbeTimeout): `{run.Command}` was killed");
        }
    }
}
