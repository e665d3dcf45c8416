using MaskRcnn.Net.Training;
using Microsoft.Extensions.Logging;

namespace MaskRcnn.Net.Cli;

/// <summary>
/// A minimal single-line logger ("HH:mm:ss message") to standard error and, optionally, a log file. On a terminal it
/// shares the last line with a <see cref="ProgressBar"/>: log lines are written above the bar.
/// </summary>
internal sealed class ConsoleLogger : ILogger, IDisposable
{
    private readonly LogLevel minimum;

    private static readonly Lock Gate = new();
    private StreamWriter? file;
    private string? bar;

    /// <summary>True when standard error is a terminal (progress bars are drawn).</summary>
    public static bool IsTerminal => !Console.IsErrorRedirected;

    /// <summary>Log lines below this level go to the file only (e.g. per-iteration lines while a bar is shown).</summary>
    public LogLevel ConsoleMinimum { get; set; }

    public ConsoleLogger(LogLevel minimum = LogLevel.Information) => this.minimum = ConsoleMinimum = minimum;

    /// <summary>Also appends every line to <paramref name="path"/>.</summary>
    public void AddFile(string path)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(dir))
        {
            Directory.CreateDirectory(dir);
        }

        file = new StreamWriter(path, append: true) { AutoFlush = true };
    }

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => logLevel >= minimum;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        if (!IsEnabled(logLevel))
        {
            return;
        }

        var prefix = logLevel >= LogLevel.Warning ? $"{logLevel.ToString().ToLowerInvariant()}: " : "";
        var line = $"{DateTime.Now:HH:mm:ss} {prefix}{formatter(state, exception)}";
        lock (Gate)
        {
            file?.WriteLine(line);
            if (logLevel >= ConsoleMinimum || logLevel >= LogLevel.Warning)
            {
                if (bar is not null)
                {
                    Console.Error.Write("\r\u001b[K");
                }

                Console.Error.WriteLine(line);
                if (bar is not null)
                {
                    Console.Error.Write(bar);
                }
            }
        }
    }

    /// <summary>Draws (or, with null, removes) the progress line at the bottom of the terminal.</summary>
    public void SetBar(string? text)
    {
        lock (Gate)
        {
            Console.Error.Write("\r\u001b[K");
            bar = text;
            if (text is not null)
            {
                Console.Error.Write(text);
            }
        }
    }

    public void Dispose()
    {
        ClearBar();
        file?.Dispose();
        file = null;
    }

    /// <summary>Writes a line to the console (whatever <see cref="ConsoleMinimum"/> is) and the log file.</summary>
    public void Always(string message)
    {
        var saved = ConsoleMinimum;
        ConsoleMinimum = LogLevel.Trace;
        try
        {
            this.LogInformation("{Message}", message);
        }
        finally
        {
            ConsoleMinimum = saved;
        }
    }

    /// <summary>Removes the progress line if one is shown.</summary>
    public void ClearBar()
    {
        if (bar is not null)
        {
            SetBar(null);
        }
    }
}

/// <summary>A one-line training progress bar on a terminal: epoch, iteration, loss, learning rate, speed, ETA.</summary>
internal sealed class ProgressBar(ConsoleLogger logger, int epochs) : IProgress<TrainingProgress>
{
    private const int Width = 24;

    public void Report(TrainingProgress p)
    {
        var fraction = p.TotalSteps > 0 ? Math.Clamp((double)p.Step / p.TotalSteps, 0, 1) : 0;
        var filled = (int)Math.Round(fraction * Width);
        var eta = p.Eta.TotalHours >= 1 ? $"{(int)p.Eta.TotalHours}h{p.Eta.Minutes:D2}m" : $"{p.Eta.Minutes}m{p.Eta.Seconds:D2}s";
        logger.SetBar(string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"[{new string('#', filled)}{new string('-', Width - filled)}] {fraction * 100,3:F0}% epoch {p.Epoch + 1}/{epochs} it {p.Iteration + 1}/{p.IterationsPerEpoch} loss {p.TotalLoss:F3} lr {p.LearningRate:G3} {p.IterationTime.TotalSeconds:F2}s/it eta {eta}"));
    }
}
