using System.Diagnostics;
using MaskRcnn.Net.Core;
using MaskRcnn.Net.Core.NN;
using MaskRcnn.Net.Core.Optim;
using MaskRcnn.Net.Heads;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace MaskRcnn.Net.Training;

/// <summary>A detector the <see cref="Trainer"/> can train: a module that returns named losses for images and targets.</summary>
public interface ITrainableDetector
{
    /// <summary>The module whose parameters are trained (switched to training mode by the trainer).</summary>
    Module Module { get; }

    /// <summary>The device the model runs on (batches are moved there).</summary>
    Device Device { get; }

    /// <summary>The named losses (torchvision's keys) for float [3, H, W] images in [0, 1] and their targets.</summary>
    LossDictionary ComputeLosses(IReadOnlyList<Tensor> images, IReadOnlyList<DetectionTarget> targets);
}

/// <summary>
/// Options of <see cref="Trainer"/>; the defaults follow torchvision's detection reference (SGD, momentum 0.9,
/// weight decay 1e-4, linear warm-up over the first iterations of epoch 0, step decay at milestones).
/// </summary>
/// <param name="Epochs">Passes over the data.</param>
/// <param name="LearningRate">Base learning rate (torchvision: 0.02 for 16 images per batch; scale with batch size).</param>
/// <param name="Momentum">SGD momentum.</param>
/// <param name="WeightDecay">L2 weight decay (not applied to normalisation parameters).</param>
/// <param name="WarmupIterations">Iterations of linear warm-up (capped at the first epoch's length).</param>
/// <param name="WarmupFactor">Learning-rate factor at the first iteration.</param>
/// <param name="LrMilestones">Epochs at which the learning rate is multiplied by <paramref name="LrGamma"/>.</param>
/// <param name="LrGamma">Decay factor at milestones.</param>
/// <param name="GradientClipNorm">Clip the global gradient norm to this value (null: no clipping).</param>
/// <param name="LogEvery">Log and report progress every this many iterations.</param>
public sealed record TrainerOptions(
    int Epochs = 10,
    double LearningRate = 0.01,
    double Momentum = 0.9,
    double WeightDecay = 1e-4,
    int WarmupIterations = 100,
    double WarmupFactor = 0.001,
    IReadOnlyList<int>? LrMilestones = null,
    double LrGamma = 0.1,
    double? GradientClipNorm = 10.0,
    int LogEvery = 10);

/// <summary>Progress of training after an iteration.</summary>
/// <param name="Epoch">0-based epoch.</param>
/// <param name="Iteration">0-based iteration within the epoch.</param>
/// <param name="IterationsPerEpoch">Iterations per epoch (batches).</param>
/// <param name="LearningRate">Learning rate used for this iteration.</param>
/// <param name="Losses">Loss values of this iteration by name.</param>
/// <param name="TotalLoss">Sum of the losses.</param>
/// <param name="Elapsed">Time since training started.</param>
public sealed record TrainingProgress(int Epoch, int Iteration, int IterationsPerEpoch, double LearningRate,
    IReadOnlyDictionary<string, double> Losses, double TotalLoss, TimeSpan Elapsed);

/// <summary>Mean losses of one epoch.</summary>
/// <param name="Epoch">0-based epoch.</param>
/// <param name="MeanLosses">Mean of each loss over the epoch.</param>
/// <param name="MeanTotalLoss">Mean total loss.</param>
/// <param name="Duration">Wall time of the epoch.</param>
public sealed record EpochSummary(int Epoch, IReadOnlyDictionary<string, double> MeanLosses, double MeanTotalLoss, TimeSpan Duration);

/// <summary>
/// Trains a detector with SGD, warm-up and step decay, reporting through <see cref="IProgress{T}"/> and
/// <see cref="ILogger"/> and honouring cancellation between iterations.
/// </summary>
public sealed class Trainer
{
    private readonly ITrainableDetector model;
    private readonly ILogger logger;

    /// <summary>Creates the trainer.</summary>
    public Trainer(ITrainableDetector model, TrainerOptions? options = null, ILogger? logger = null)
    {
        this.model = model ?? throw new ArgumentNullException(nameof(model));
        Options = options ?? new TrainerOptions();
        if (Options.Epochs < 1 || !(Options.LearningRate > 0) || Options.LogEvery < 1)
        {
            throw new ArgumentException("Epochs and LogEvery must be >= 1 and LearningRate > 0", nameof(options));
        }

        this.logger = logger ?? NullLogger.Instance;
    }

    /// <summary>The options.</summary>
    public TrainerOptions Options { get; }

    /// <summary>
    /// Trains for <see cref="TrainerOptions.Epochs"/> epochs over batches from <paramref name="loader"/>
    /// (called once per epoch with the epoch number). Optionally runs <paramref name="afterEpoch"/> (e.g. an
    /// evaluation) after each epoch. Leaves the model in evaluation mode.
    /// </summary>
    public IReadOnlyList<EpochSummary> Train(Func<int, IEnumerable<TrainingBatch>> loader, int iterationsPerEpoch,
        IProgress<TrainingProgress>? progress = null, Action<EpochSummary>? afterEpoch = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(loader);
        ArgumentOutOfRangeException.ThrowIfLessThan(iterationsPerEpoch, 1);
        var module = model.Module;
        var decay = new List<Tensor>();
        var noDecay = new List<Tensor>();
        foreach (var (name, p) in module.NamedParameters().Where(p => p.Parameter.RequiresGrad))
        {
            // Normalisation weights and all biases get no weight decay.
            (p.Dim <= 1 ? noDecay : decay).Add(p);
            _ = name;
        }

        if (decay.Count + noDecay.Count == 0)
        {
            throw new InvalidOperationException("the model has no trainable parameters");
        }

        var groups = new List<ParameterGroup> { new(decay) };
        if (noDecay.Count > 0)
        {
            groups.Add(new ParameterGroup(noDecay, weightDecay: 0));
        }

        using var optimizer = new Sgd(groups, new SgdOptions(Options.LearningRate, Options.Momentum, 0, Options.WeightDecay));
        var warmup = new LinearWarmup(Math.Min(Options.WarmupIterations, iterationsPerEpoch), Options.WarmupFactor);
        var milestones = (Options.LrMilestones ?? []).Select(e => (long)e * iterationsPerEpoch).ToArray();
        var schedule = new ProductSchedule(warmup, new MultiStep(milestones, Options.LrGamma));
        var scheduler = new LearningRateScheduler(optimizer, schedule);
        var summaries = new List<EpochSummary>();
        var clock = Stopwatch.StartNew();
        logger.LogInformation("training {Params} parameters for {Epochs} epochs of {Iterations} iterations", decay.Concat(noDecay).Sum(p => p.NumEl), Options.Epochs, iterationsPerEpoch);
        try
        {
            for (var epoch = 0; epoch < Options.Epochs; epoch++)
            {
                module.Train();
                var epochClock = Stopwatch.StartNew();
                var sums = new Dictionary<string, double>();
                var totalSum = 0.0;
                var it = 0;
                foreach (var batch in loader(epoch))
                {
                    using (batch)
                    {
                        cancellationToken.ThrowIfCancellationRequested();
                        var lr = optimizer.Groups[0].LearningRate;
                        var (values, total) = Step(batch, optimizer);
                        foreach (var (k, v) in values)
                        {
                            sums[k] = sums.GetValueOrDefault(k) + v;
                        }

                        totalSum += total;
                        if (it % Options.LogEvery == 0 || it == iterationsPerEpoch - 1)
                        {
                            logger.LogInformation("epoch {Epoch} iter {Iter}/{Count} lr {Lr:G3} loss {Loss:F4} ({Parts})", epoch, it, iterationsPerEpoch, lr, total,
                                string.Join(", ", values.Select(kv => $"{kv.Key} {kv.Value:F4}")));
                        }

                        progress?.Report(new TrainingProgress(epoch, it, iterationsPerEpoch, lr, values, total, clock.Elapsed));
                        scheduler.Step();
                        it++;
                    }
                }

                if (it == 0)
                {
                    throw new InvalidOperationException($"epoch {epoch} produced no batches");
                }

                var summary = new EpochSummary(epoch, sums.ToDictionary(kv => kv.Key, kv => kv.Value / it), totalSum / it, epochClock.Elapsed);
                summaries.Add(summary);
                logger.LogInformation("epoch {Epoch} done in {Seconds:F1} s, mean loss {Loss:F4}", epoch, epochClock.Elapsed.TotalSeconds, summary.MeanTotalLoss);
                module.Eval();
                afterEpoch?.Invoke(summary);
            }
        }
        finally
        {
            module.Eval();
            module.ZeroGrad();
        }

        return summaries;
    }

    private (Dictionary<string, double> Values, double Total) Step(TrainingBatch batch, Optimizer optimizer)
    {
        using var scope = Torch.NewDisposeScope();
        var device = model.Device;
        var images = batch.Images.Select(i => i.To(device)).ToArray();
        var targets = batch.Targets.Select(t => new DetectionTarget(t.Boxes.To(device), t.Labels.To(device), t.Masks?.To(device))).ToArray();
        var losses = model.ComputeLosses(images, targets);
        var values = losses.ToDictionary(kv => kv.Key, kv => kv.Value.ItemDouble());
        var total = losses.Total();
        var totalValue = total.ItemDouble();
        if (!double.IsFinite(totalValue))
        {
            throw new InvalidOperationException($"loss is {totalValue} ({string.Join(", ", values.Select(kv => $"{kv.Key}={kv.Value}"))}); stopping training");
        }

        optimizer.ZeroGrad();
        total.Backward();
        if (Options.GradientClipNorm is { } maxNorm)
        {
            ClipGradNorm(optimizer.Groups.SelectMany(g => g.Parameters), maxNorm);
        }

        optimizer.Step();
        return (values, totalValue);
    }

    /// <summary>Scales all gradients so that their global L2 norm is at most <paramref name="maxNorm"/>; returns the norm before clipping.</summary>
    public static double ClipGradNorm(IEnumerable<Tensor> parameters, double maxNorm)
    {
        using var scope = Torch.NewDisposeScope();
        using var noGrad = Torch.NoGrad();
        var grads = parameters.Select(p => p.Grad).Where(g => g is not null).Select(g => g!).ToList();
        if (grads.Count == 0)
        {
            return 0;
        }

        var norm = Math.Sqrt(grads.Sum(g => g.Square().Sum().ItemDouble()));
        var coef = maxNorm / (norm + 1e-6);
        if (coef < 1)
        {
            foreach (var g in grads)
            {
                g.MulInPlace(coef);
            }
        }

        return norm;
    }
}
