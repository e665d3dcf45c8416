using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace MaskRcnn.Net.DependencyInjection;

/// <summary>
/// The <see cref="IInstanceSegmenter"/> that <see cref="MaskRcnnServiceCollectionExtensions.AddMaskRcnn"/> registers:
/// loads the model once, on first use (thread-safe: concurrent first calls wait for the one load), logs the load,
/// then serves every call from that one model. Disposed with the container, which disposes the model: stop sending
/// predictions first (a host's graceful shutdown does).
/// </summary>
public sealed class LazyInstanceSegmenter : IInstanceSegmenter, IDisposable
{
    private readonly MaskRcnnServiceOptions options;
    private readonly ILogger<LazyInstanceSegmenter> logger;
    private readonly Lock gate = new();
    private MaskRcnnModel? model;
    private bool disposed;

    /// <summary>Created by the container (logging when the container has it).</summary>
    public LazyInstanceSegmenter(IOptions<MaskRcnnServiceOptions> options, ILogger<LazyInstanceSegmenter>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        var o = options.Value;
        o.Validate();
        this.logger = logger ?? Microsoft.Extensions.Logging.Abstractions.NullLogger<LazyInstanceSegmenter>.Instance;
        this.options = o;
        if (o.LoadOnResolve)
        {
            _ = Model;
        }
    }

    /// <summary>True once the model is loaded.</summary>
    public bool IsLoaded => Volatile.Read(ref model) is not null;

    /// <summary>
    /// The model, loaded now if it was not yet. A failed load is not cached: the next call tries again (the file may
    /// have been copied in meanwhile).
    /// </summary>
    /// <exception cref="ObjectDisposedException">The container was disposed.</exception>
    /// <exception cref="FileNotFoundException">The model file does not exist.</exception>
    public MaskRcnnModel Model
    {
        get
        {
            if (Volatile.Read(ref model) is { } ready)
            {
                ObjectDisposedException.ThrowIf(disposed, this);
                return ready;
            }

            lock (gate)
            {
                ObjectDisposedException.ThrowIf(disposed, this);
                if (model is null)
                {
                    Volatile.Write(ref model, Load(options));
                }

                return model!;
            }
        }
    }

    /// <inheritdoc />
    public IReadOnlyList<string> ClassNames => Model.ClassNames;

    /// <inheritdoc />
    public ImageDetections Predict(ImageSource image) => Model.Predict(image);

    /// <inheritdoc />
    public IReadOnlyList<ImageDetections> Predict(IReadOnlyList<ImageSource> images) => Model.Predict(images);

    /// <inheritdoc />
    public Task<ImageDetections> PredictAsync(ImageSource image, CancellationToken cancellationToken = default) =>
        Task.Run(() => Model.PredictAsync(image, cancellationToken), cancellationToken);

    /// <inheritdoc />
    public Task<IReadOnlyList<ImageDetections>> PredictAsync(IReadOnlyList<ImageSource> images, CancellationToken cancellationToken = default) =>
        Task.Run(() => Model.PredictAsync(images, cancellationToken), cancellationToken);

    /// <summary>Disposes the model if it was loaded.</summary>
    public void Dispose()
    {
        lock (gate)
        {
            if (!disposed)
            {
                disposed = true;
                model?.Dispose();
            }
        }
    }

    private MaskRcnnModel Load(MaskRcnnServiceOptions o)
    {
        var clock = Stopwatch.StartNew();
        MaskRcnnModel loaded;
        if (o.ModelPath is { } path)
        {
            if (!File.Exists(path))
            {
                throw new FileNotFoundException($"AddMaskRcnn: the model {path} does not exist", path);
            }

            logger.LogInformation("loading the Mask R-CNN model {Path}", path);
            loaded = MaskRcnnModel.Load(path, configure: o.Configure);
        }
        else
        {
            logger.LogInformation("building the Mask R-CNN model");
            var builder = o.Builder!() ?? throw new InvalidOperationException("AddMaskRcnn: the Builder factory returned null");
            loaded = builder.Build();
        }

        var c = loaded.Config;
        logger.LogInformation("Mask R-CNN ready in {Seconds:0.0} s: {Classes} classes ({Names}), ResNet-{Depth} {Norm}, images {MinSize}/{MaxSize} px, score threshold {Score}",
            clock.Elapsed.TotalSeconds, c.NumClasses - 1, string.Join(", ", loaded.ClassNames.Skip(1).Take(10)), c.Backbone.Depth, c.Backbone.Norm,
            c.Transform.MinSizes[^1], c.Transform.MaxSize, c.RoIHeads.ScoreThreshold);
        if (loaded.WeightsLoadResult is { } result)
        {
            if (result.MissingKeys.Count > 0)
            {
                logger.LogWarning("{Count} weights kept their initialisation (not in the file, or another shape): {Keys}",
                    result.MissingKeys.Count, string.Join(", ", result.MissingKeys.Take(20)));
            }

            if (result.UnexpectedKeys.Count > 0)
            {
                logger.LogWarning("{Count} weights of the file were not used: {Keys}", result.UnexpectedKeys.Count, string.Join(", ", result.UnexpectedKeys.Take(20)));
            }

            if (result.MissingKeys.Count == 0 && result.UnexpectedKeys.Count == 0)
            {
                logger.LogInformation("every weight came from the file");
            }
        }

        return loaded;
    }
}
