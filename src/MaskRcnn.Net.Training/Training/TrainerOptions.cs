using System.Globalization;
using MaskRcnn.Net.Core.Optim;

namespace MaskRcnn.Net.Training;

/// <summary>The optimizer the <see cref="Trainer"/> builds (both from <c>MaskRcnn.Net.Core.Optim</c>).</summary>
public enum OptimizerKind
{
    /// <summary><see cref="Sgd"/> with <see cref="TrainerOptions.Momentum"/> and L2 weight decay (torchvision's detection reference).</summary>
    Sgd,

    /// <summary>
    /// <see cref="AdamW"/> with <see cref="TrainerOptions.AdamBeta1"/>, <see cref="TrainerOptions.AdamBeta2"/>,
    /// <see cref="TrainerOptions.AdamEps"/> and decoupled weight decay.
    /// </summary>
    AdamW,
}

/// <summary>How the learning rate falls after warm-up.</summary>
public enum LearningRateDecay
{
    /// <summary>Multiplied by <see cref="TrainerOptions.DecayGamma"/> at each fraction in <see cref="TrainerOptions.DecayAt"/> (torchvision's MultiStepLR).</summary>
    Step,

    /// <summary>Half a cosine from the base rate to 0 over the whole run.</summary>
    Cosine,
}

/// <summary>
/// Options of <see cref="Trainer"/>; the defaults follow torchvision's detection reference (SGD, momentum 0.9,
/// weight decay 1e-4, linear warm-up, step decay late in training). The optimizer (<see cref="Optimizer"/>) and the
/// learning-rate schedule (<see cref="WarmupIterations"/>, <see cref="WarmupFactor"/>, <see cref="Decay"/>,
/// <see cref="DecayAt"/>, <see cref="DecayGamma"/>) are data: the trainer builds them from <c>MaskRcnn.Net.Core.Optim</c>
/// (<see cref="CreateSchedule"/>).
/// </summary>
/// <param name="Epochs">Passes over the data (with <see cref="TimeBudget"/>: an upper bound).</param>
/// <param name="LearningRate">Base learning rate (torchvision: 0.02 for 16 images per step; scale with batch size × accumulation).</param>
/// <param name="Momentum">SGD momentum (unused by AdamW).</param>
/// <param name="WeightDecay">
/// Weight decay (not applied to normalisation parameters and biases): an L2 penalty added to the gradient with SGD,
/// decoupled (the weights shrink by learning rate × this each step) with AdamW.
/// </param>
/// <param name="WarmupIterations">Optimizer steps of linear warm-up.</param>
/// <param name="WarmupFactor">Learning-rate factor at the first step.</param>
/// <param name="GradientClipNorm">Clip the global gradient norm to this value (null: no clipping).</param>
/// <param name="LogEvery">Log every this many iterations.</param>
public sealed record TrainerOptions(
    int Epochs = 10,
    double LearningRate = 0.01,
    double Momentum = 0.9,
    double WeightDecay = 1e-4,
    int WarmupIterations = 100,
    double WarmupFactor = 0.001,
    double? GradientClipNorm = 10.0,
    int LogEvery = 10)
{
    /// <summary>The optimizer (default SGD, as torchvision's detection reference).</summary>
    public OptimizerKind Optimizer { get; init; } = OptimizerKind.Sgd;

    /// <summary>For <see cref="OptimizerKind.AdamW"/>: decay of the first-moment estimate (PyTorch's betas[0]).</summary>
    public double AdamBeta1 { get; init; } = 0.9;

    /// <summary>For <see cref="OptimizerKind.AdamW"/>: decay of the second-moment estimate (PyTorch's betas[1]).</summary>
    public double AdamBeta2 { get; init; } = 0.999;

    /// <summary>For <see cref="OptimizerKind.AdamW"/>: the epsilon added to the update's denominator.</summary>
    public double AdamEps { get; init; } = 1e-8;

    /// <summary>Decay after warm-up.</summary>
    public LearningRateDecay Decay { get; init; } = LearningRateDecay.Step;

    /// <summary>For <see cref="LearningRateDecay.Step"/>: fractions of the planned optimizer steps at which the rate is decayed.</summary>
    public IReadOnlyList<double> DecayAt { get; init; } = [0.67, 0.89];

    /// <summary>For <see cref="LearningRateDecay.Step"/>: factor applied at each decay point.</summary>
    public double DecayGamma { get; init; } = 0.1;

    /// <summary>
    /// Batches whose gradients are summed before one optimizer step (an effective batch of batch size × this). The
    /// losses are averaged over the batches of a step, so the update equals that of one big batch.
    /// </summary>
    public int GradientAccumulation { get; init; } = 1;

    /// <summary>
    /// Train for this long instead of a fixed number of epochs: the trainer measures its step time, plans the number
    /// of steps that fit (the schedule decays over that plan), and stops when the time is up. Time already spent
    /// before a resumed checkpoint counts.
    /// </summary>
    public TimeSpan? TimeBudget { get; init; }

    /// <summary>
    /// Where to write the training checkpoint (model, optimizer state, random-generator state and position as one
    /// safetensors file). Written every <see cref="CheckpointEvery"/> steps, after every epoch, at the end and when
    /// training is cancelled; never after a non-finite loss, so the file always holds the last good state.
    /// </summary>
    public string? CheckpointPath { get; init; }

    /// <summary>Also write the checkpoint every this many optimizer steps (0: only at epoch ends, the end and on cancellation).</summary>
    public int CheckpointEvery { get; init; }

    /// <summary>Extra string metadata stored in every checkpoint (e.g. the model configuration).</summary>
    public IReadOnlyDictionary<string, string>? CheckpointMetadata { get; init; }

    /// <summary>
    /// Seed of a private random stream (a <see cref="Core.RandomGenerator"/>) for the run's random decisions — RoI and
    /// anchor sampling, the multi-scale size choice — so the run is reproducible whatever else in the process draws
    /// random numbers. Null: the run draws from <see cref="Core.RandomGenerator.Current"/>, or libtorch's default
    /// generator. Either way the stream's state is saved in checkpoints and restored on resume.
    /// </summary>
    public ulong? Seed { get; init; }

    /// <summary>
    /// Train data-parallel as one rank of a job (see <see cref="Trainer"/>), or null for one process. Give each rank a
    /// <see cref="DataLoader"/> with a <see cref="DistributedSampler"/> of the same rank and world size, and the same
    /// options otherwise. The batch size is per rank: the effective batch is <c>WorldSize</c> times it, as in torch.
    /// </summary>
    public Core.Distributed.DistributedOptions? Distributed { get; init; }

    /// <summary>
    /// Resume from this checkpoint (written by a previous run with the same model, data and options): weights,
    /// optimizer state, random-generator state, epoch and batch position are restored, so the run continues as if it
    /// had not been interrupted.
    /// </summary>
    public string? ResumeFrom { get; init; }

    /// <summary>
    /// The learning-rate schedule of a run of <paramref name="totalSteps"/> optimizer steps, from
    /// <c>MaskRcnn.Net.Core.Optim</c>: <see cref="LinearWarmup"/> over <see cref="WarmupIterations"/> from
    /// <see cref="WarmupFactor"/>, times <see cref="Cosine"/> over the run or <see cref="MultiStep"/> at the
    /// <see cref="DecayAt"/> fractions of it. Under a <see cref="TimeBudget"/> the trainer rebuilds it when it
    /// re-plans the number of steps.
    /// </summary>
    /// <exception cref="ArgumentException">An option is invalid.</exception>
    public ILearningRateSchedule CreateSchedule(long totalSteps)
    {
        Validate();
        ArgumentOutOfRangeException.ThrowIfNegative(totalSteps);
        ILearningRateSchedule decay = Decay == LearningRateDecay.Cosine
            ? new Cosine(totalSteps)
            : MultiStep.AtFractions(DecayAt, totalSteps, DecayGamma);
        return new ProductSchedule(new LinearWarmup(WarmupIterations, WarmupFactor), decay);
    }

    /// <summary>Throws <see cref="ArgumentException"/> (its <see cref="ArgumentException.ParamName"/> the option) naming the first invalid option and its value.</summary>
    public void Validate()
    {
        static void Check(bool ok, string name, object? value, string rule)
        {
            if (!ok)
            {
                throw new ArgumentException(string.Create(CultureInfo.InvariantCulture, $"TrainerOptions.{name} must be {rule}, got {value}"), name);
            }
        }

        static bool Finite(double v) => double.IsFinite(v);
        Check(Epochs >= 1, nameof(Epochs), Epochs, ">= 1");
        Check(LearningRate > 0 && Finite(LearningRate), nameof(LearningRate), LearningRate, "a finite number > 0");
        Check(Enum.IsDefined(Optimizer), nameof(Optimizer), Optimizer, "Sgd or AdamW");
        Check(Momentum >= 0 && Finite(Momentum), nameof(Momentum), Momentum, "a finite number >= 0");
        Check(WeightDecay >= 0 && Finite(WeightDecay), nameof(WeightDecay), WeightDecay, "a finite number >= 0");
        Check(AdamBeta1 is >= 0 and < 1, nameof(AdamBeta1), AdamBeta1, "in [0, 1)");
        Check(AdamBeta2 is >= 0 and < 1, nameof(AdamBeta2), AdamBeta2, "in [0, 1)");
        Check(AdamEps > 0 && Finite(AdamEps), nameof(AdamEps), AdamEps, "a finite number > 0");
        Check(WarmupIterations >= 0, nameof(WarmupIterations), WarmupIterations, ">= 0");
        Check(WarmupFactor is > 0 and <= 1, nameof(WarmupFactor), WarmupFactor, "in (0, 1]");
        Check(Enum.IsDefined(Decay), nameof(Decay), Decay, "Step or Cosine");
        Check(DecayAt is not null && DecayAt.All(f => f is > 0 and < 1), nameof(DecayAt), DecayAt is null ? "null" : $"[{string.Join(", ", DecayAt)}]", "fractions in (0, 1)");
        Check(DecayGamma is > 0 and <= 1, nameof(DecayGamma), DecayGamma, "in (0, 1]");
        Check(GradientClipNorm is null or > 0, nameof(GradientClipNorm), GradientClipNorm, "null or > 0");
        Check(LogEvery >= 1, nameof(LogEvery), LogEvery, ">= 1");
        Check(GradientAccumulation >= 1, nameof(GradientAccumulation), GradientAccumulation, ">= 1");
        Check(CheckpointEvery >= 0, nameof(CheckpointEvery), CheckpointEvery, ">= 0");
        Check(TimeBudget is null || TimeBudget > TimeSpan.Zero, nameof(TimeBudget), TimeBudget, "null or positive");
        Distributed?.Validate();
    }
}

/// <summary>Progress of training after an iteration (one batch).</summary>
/// <param name="Epoch">0-based epoch.</param>
/// <param name="Iteration">0-based batch index within the epoch.</param>
/// <param name="IterationsPerEpoch">Batches per epoch.</param>
/// <param name="Step">Optimizer steps done so far (over the whole run, including before a resume).</param>
/// <param name="TotalSteps">Optimizer steps planned for the run (re-estimated under a time budget).</param>
/// <param name="LearningRate">Learning rate of the current step.</param>
/// <param name="Losses">Loss values of this batch by name (torchvision's keys).</param>
/// <param name="TotalLoss">Sum of the losses.</param>
/// <param name="IterationTime">Wall time of this iteration.</param>
/// <param name="Elapsed">Training time so far (including before a resume).</param>
/// <param name="Eta">Estimated time to the end of the run.</param>
public sealed record TrainingProgress(int Epoch, int Iteration, int IterationsPerEpoch, long Step, long TotalSteps, double LearningRate,
    IReadOnlyDictionary<string, double> Losses, double TotalLoss, TimeSpan IterationTime, TimeSpan Elapsed, TimeSpan Eta)
{
    /// <summary>One readable line (epoch and iteration counted from 1, as in the CLI): position, learning rate, each loss, speed and times.</summary>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"epoch {Epoch + 1} iter {Iteration + 1}/{IterationsPerEpoch} step {Step}/{TotalSteps} lr {LearningRate:G3} loss {TotalLoss:F4} ({LossText.Format(Losses)}) " +
        $"{IterationTime.TotalSeconds:F2} s/it, elapsed {LossText.Format(Elapsed)}, eta {LossText.Format(Eta)}");
}

/// <summary>Mean losses of one epoch (of the batches run in this session when the epoch was resumed).</summary>
/// <param name="Epoch">0-based epoch.</param>
/// <param name="MeanLosses">Mean of each loss over the epoch.</param>
/// <param name="MeanTotalLoss">Mean total loss.</param>
/// <param name="Duration">Wall time of the epoch.</param>
public sealed record EpochSummary(int Epoch, IReadOnlyDictionary<string, double> MeanLosses, double MeanTotalLoss, TimeSpan Duration)
{
    /// <summary>One readable line (the epoch counted from 1): the epoch, its mean losses and its duration.</summary>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"epoch {Epoch + 1}: mean loss {MeanTotalLoss:F4} ({LossText.Format(MeanLosses)}) in {Duration.TotalSeconds:F1} s");
}

/// <summary>Why a training run ended.</summary>
public enum TrainingStopReason
{
    /// <summary>All planned epochs / steps ran.</summary>
    Completed,

    /// <summary>The <see cref="TrainerOptions.TimeBudget"/> ran out.</summary>
    TimeBudget,
}

/// <summary>What a training run did.</summary>
/// <param name="Epochs">Summaries of the epochs run in this session.</param>
/// <param name="Steps">Optimizer steps done over the whole run.</param>
/// <param name="Elapsed">Training time over the whole run.</param>
/// <param name="StopReason">Why it ended.</param>
/// <param name="CheckpointPath">The checkpoint written at the end, if any.</param>
public sealed record TrainingResult(IReadOnlyList<EpochSummary> Epochs, long Steps, TimeSpan Elapsed, TrainingStopReason StopReason, string? CheckpointPath)
{
    /// <summary>One readable line: steps, time, why it ended, the last epoch's mean loss and the checkpoint.</summary>
    public override string ToString()
    {
        var last = Epochs.Count > 0 ? string.Create(CultureInfo.InvariantCulture, $", last mean loss {Epochs[^1].MeanTotalLoss:F4}") : "";
        var checkpoint = CheckpointPath is null ? "" : $", checkpoint {CheckpointPath}";
        return string.Create(CultureInfo.InvariantCulture, $"{Steps} steps in {LossText.Format(Elapsed)} ({StopReason}), {Epochs.Count} epochs this session{last}{checkpoint}");
    }
}

/// <summary>Text forms shared by the progress records.</summary>
internal static class LossText
{
    /// <summary><c>loss_classifier 0.1234, loss_box_reg 0.0567</c> (invariant culture, in the dictionary's order).</summary>
    public static string Format(IReadOnlyDictionary<string, double> losses) =>
        string.Join(", ", losses.Select(kv => string.Create(CultureInfo.InvariantCulture, $"{kv.Key} {kv.Value:F4}")));

    /// <summary><c>2m41s</c>, or <c>1h02m</c> from an hour on.</summary>
    public static string Format(TimeSpan t) =>
        t.TotalHours >= 1 ? $"{(int)t.TotalHours}h{t.Minutes:D2}m" : $"{(int)t.TotalMinutes}m{t.Seconds:D2}s";
}

/// <summary>Training stopped because a loss or the gradient norm was NaN or infinite.</summary>
public sealed class TrainingDivergedException : Exception
{
    /// <summary>Creates the exception.</summary>
    public TrainingDivergedException(string message, string? lastGoodCheckpoint) : base(message) => LastGoodCheckpoint = lastGoodCheckpoint;

    /// <summary>The checkpoint holding the last state with finite losses (null when none was written).</summary>
    public string? LastGoodCheckpoint { get; }
}
