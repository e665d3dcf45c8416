using Microsoft.Extensions.Logging;

namespace MaskRcnn.Net.Cli;

/// <summary>A minimal single-line logger to standard error ("HH:mm:ss message").</summary>
internal sealed class ConsoleLogger(LogLevel minimum = LogLevel.Information) : ILogger
{
    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => logLevel >= minimum;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        if (!IsEnabled(logLevel))
        {
            return;
        }

        var prefix = logLevel >= LogLevel.Warning ? $"{logLevel.ToString().ToLowerInvariant()}: " : "";
        Console.Error.WriteLine($"{DateTime.Now:HH:mm:ss} {prefix}{formatter(state, exception)}");
    }
}
