using System.Globalization;
using System.Net;
using Microsoft.Extensions.Logging;

namespace MaskRcnn.Net.Cli;

/// <summary>The settings of <c>maskrcnn serve</c>; <see cref="Validate"/> names the first bad option.</summary>
/// <param name="Weights">A model saved by MaskRcnn.Net, or a torchvision state dict (with <paramref name="NumClasses"/>).</param>
/// <param name="Host">The IP address to bind (127.0.0.1 by default; "localhost" is 127.0.0.1).</param>
/// <param name="Port">The TCP port; 0 picks a free one (the URL is printed on standard output).</param>
/// <param name="MaxRequestBytes">The largest request body accepted; larger uploads get 413.</param>
/// <param name="MaxConcurrency">Predictions run at once; more requests wait in the queue.</param>
/// <param name="MaxQueue">Requests allowed to wait for a prediction slot; beyond that, 503 at once.</param>
/// <param name="QueueTimeout">How long a request waits for a slot before it gets 503.</param>
/// <param name="MaxImagePixels">The largest decoded image (width × height) accepted; larger ones get 400 before decoding.</param>
/// <param name="ShutdownTimeout">How long a graceful shutdown waits for requests in flight.</param>
/// <param name="ScoreThreshold">Minimum detection score (null: the model's).</param>
/// <param name="NumClasses">Classes including background, for a torchvision state dict.</param>
/// <param name="NormEps">Frozen batch-norm eps for a torchvision state dict.</param>
/// <param name="SuppressContained">The --suppress-contained value (null: the model's setting).</param>
/// <param name="LogLevel">The minimum level of the console log (standard error).</param>
internal sealed record ServeOptions(
    string Weights,
    string Host = "127.0.0.1",
    int Port = 8080,
    long MaxRequestBytes = ServeOptions.DefaultMaxRequestBytes,
    int MaxConcurrency = 2,
    int MaxQueue = 32,
    TimeSpan? QueueTimeout = null,
    long MaxImagePixels = ServeOptions.DefaultMaxImagePixels,
    TimeSpan? ShutdownTimeout = null,
    double? ScoreThreshold = null,
    int? NumClasses = null,
    double NormEps = 1e-5,
    string? SuppressContained = null,
    LogLevel LogLevel = LogLevel.Information)
{
    /// <summary>Default of <see cref="MaxRequestBytes"/>: 16 MiB.</summary>
    public const long DefaultMaxRequestBytes = 16L << 20;

    /// <summary>Default of <see cref="MaxImagePixels"/>: 64 megapixels (8192 × 8192).</summary>
    public const long DefaultMaxImagePixels = 1L << 26;

    /// <summary>The queue timeout in force (default 30 s).</summary>
    public TimeSpan EffectiveQueueTimeout => QueueTimeout ?? TimeSpan.FromSeconds(30);

    /// <summary>The shutdown timeout in force (default 30 s).</summary>
    public TimeSpan EffectiveShutdownTimeout => ShutdownTimeout ?? TimeSpan.FromSeconds(30);

    /// <summary>The address <see cref="Host"/> names.</summary>
    public IPAddress Address => Host.Equals("localhost", StringComparison.OrdinalIgnoreCase) ? IPAddress.Loopback : IPAddress.Parse(Host);

    /// <summary>Throws <see cref="ArgumentException"/> naming the first option out of range.</summary>
    public ServeOptions Validate()
    {
        if (string.IsNullOrWhiteSpace(Weights))
        {
            throw new ArgumentException("--weights is empty", nameof(Weights));
        }

        if (!Host.Equals("localhost", StringComparison.OrdinalIgnoreCase) && !IPAddress.TryParse(Host, out _))
        {
            throw new ArgumentException($"--host {Host}: expected an IP address (e.g. 127.0.0.1, 0.0.0.0) or localhost", nameof(Host));
        }

        Check(Port is >= 0 and <= 65535, "--port", Port, "in [0, 65535]");
        Check(MaxRequestBytes >= 1024, "--max-request-bytes", MaxRequestBytes, "at least 1024");
        Check(MaxConcurrency >= 1, "--max-concurrency", MaxConcurrency, "at least 1");
        Check(MaxQueue >= 0, "--max-queue", MaxQueue, "0 or more");
        Check(EffectiveQueueTimeout > TimeSpan.Zero, "--queue-timeout", EffectiveQueueTimeout.TotalSeconds, "above 0 seconds");
        Check(MaxImagePixels is >= 1 and <= Core.Imaging.ImageCodec.MaxPixelsLimit, "--max-image-pixels", MaxImagePixels, $"in [1, {Core.Imaging.ImageCodec.MaxPixelsLimit}]");
        Check(EffectiveShutdownTimeout >= TimeSpan.Zero, "--shutdown-timeout", EffectiveShutdownTimeout.TotalSeconds, "0 seconds or more");
        Check(ScoreThreshold is null or (>= 0 and <= 1), "--score-threshold", ScoreThreshold ?? 0, "in [0, 1]");
        Check(NumClasses is null or >= 2, "--num-classes", NumClasses ?? 0, "at least 2 (background and one class)");
        if (SuppressContained is not null)
        {
            PredictCommand.ParseSuppress(SuppressContained);
        }

        return this;
    }

    private static void Check(bool ok, string option, IFormattable value, string expected)
    {
        if (!ok)
        {
            throw new ArgumentException($"{option} {value.ToString(null, CultureInfo.InvariantCulture)}: expected {expected}", option.TrimStart('-'));
        }
    }
}
