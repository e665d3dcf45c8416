using MaskRcnn.Net.Core;
using MaskRcnn.Net.Core.Distributed;
using MaskRcnn.Net.Core.NN;
using MaskRcnn.Net.Core.Optim;
using MaskRcnn.Net.Core.Structures;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace MaskRcnn.Net.Training;

/// <summary>
/// Trains a detector with SGD (momentum, weight decay) or AdamW, linear warm-up and step or cosine decay (the
/// optimizers and schedules of <c>MaskRcnn.Net.Core.Optim</c>, chosen by <see cref="TrainerOptions"/>), gradient
/// clipping and accumulation, for a number of epochs or a time budget; writes resumable checkpoints; reports through
/// <see cref="IProgress{T}"/> and <see cref="ILogger"/>; honours cancellation between iterations (writing a
/// checkpoint first).
/// </summary>
/// <remarks>
/// <para>Data-parallel across processes (and machines) when <see cref="TrainerOptions.Distributed"/> is set, with torch
/// DistributedDataParallel's semantics: rank 0's weights and buffers are broadcast at the start, gradients are
/// averaged across ranks before every optimizer step (not after intermediate micro-batches of
/// <see cref="TrainerOptions.GradientAccumulation"/>), stop decisions and the time budget's plan are agreed on, and
/// only rank 0 writes checkpoints, logs, reports progress and runs <c>afterEpoch</c> (validation). Each rank loads
/// its own shard (a <see cref="DataLoader"/> with a <see cref="DistributedSampler"/>) and draws its RoI sampling from
/// its own random stream. BatchNorm in training mode is refused (no synchronised BatchNorm).</para>
/// <para>Deterministic on CPU for a given seed: batches come from an <see cref="ITrainingBatchSource"/> that is
/// reproducible per epoch, and a checkpoint carries the random generator's state, so a run interrupted and resumed
/// produces the same weights as one that was not interrupted.</para>
/// </remarks>
public sealed class Trainer
{
    private const int CalibrationSkip = 2;
    private const int CalibrationSteps = 8;

    private readonly ITrainableDetector model;
    private readonly ILogger logger;
    private readonly TimeProvider time;

    /// <summary>Creates the trainer.</summary>
    /// <param name="model">The detector to train.</param>
    /// <param name="options">Options, or null for the defaults.</param>
    /// <param name="logger">Receives progress lines, or null.</param>
    /// <param name="timeProvider">
    /// The clock behind <see cref="TrainerOptions.TimeBudget"/>, iteration times and ETAs (null: the system clock);
    /// tests pass a fake clock to check the budget's bookkeeping without waiting.
    /// </param>
    /// <exception cref="ArgumentException">An option is invalid.</exception>
    public Trainer(ITrainableDetector model, TrainerOptions? options = null, ILogger? logger = null, TimeProvider? timeProvider = null)
    {
        this.model = model ?? throw new ArgumentNullException(nameof(model));
        Options = options ?? new TrainerOptions();
        Options.Validate();
        this.logger = logger ?? NullLogger.Instance;
        time = timeProvider ?? TimeProvider.System;
    }

    /// <summary>The options.</summary>
    public TrainerOptions Options { get; }

    /// <summary>
    /// Trains over batches from <paramref name="source"/>. Runs <paramref name="afterEpoch"/> (e.g. a validation)
    /// after each epoch with the model in evaluation mode. Leaves the model in evaluation mode.
    /// </summary>
    /// <exception cref="OperationCanceledException">Cancelled (after writing the checkpoint, when one is configured).</exception>
    /// <exception cref="TrainingDivergedException">A loss or gradient became NaN/infinite; the checkpoint keeps the last good state.</exception>
    public TrainingResult Train(ITrainingBatchSource source, IProgress<TrainingProgress>? progress = null,
        Action<EpochSummary>? afterEpoch = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(source);
        var batches = source.BatchCount;
        if (batches < 1)
        {
            throw new ArgumentException("the batch source has no batches", nameof(source));
        }

        var module = model.Module;
        using var dp = Options.Distributed is { } distributed ? Join(distributed, module) : null;
        var rank0 = dp is null || dp.Rank == 0;
        var log = rank0 ? logger : NullLogger.Instance;
        var (groups, parameterCount) = ParameterGroups(module);
        using var optimizer = CreateOptimizer(groups);
        var k = Options.GradientAccumulation;
        var stepsPerEpoch = (batches + k - 1) / k;
        var cap = (long)Options.Epochs * stepsPerEpoch; // re-planned by a resume with another world size
        using var allocator = NativeAllocator.ForTraining(); // large activations reuse heap memory between steps
        using var ownGenerator = dp is not null ? new RandomGenerator(RankSeed(Options.Seed, dp.Rank, Options.ResumeFrom))
            : Options.Seed is { } seed ? new RandomGenerator(seed) : null;
        var generator = ownGenerator ?? RandomGenerator.Current;
        using var generatorScope = RandomGenerator.Use(generator);
        var run = new RunState { TotalSteps = cap, BatchesPerEpoch = batches, Accumulation = k, Generator = generator, WorldSize = dp?.WorldSize ?? 1 };
        if (Options.ResumeFrom is { } resume)
        {
            cap = Resume(resume, module, optimizer, batches, run, dp, log) ?? cap;
        }

        dp?.CheckAgreement([("batches per epoch", batches), ("gradient accumulation", k), ("epoch", run.Epoch), ("next batch", run.NextBatch),
            ("step", run.Step), ("planned steps", run.TotalSteps), ("trainable parameters", parameterCount)]);
        dp?.BroadcastState(module);
        var trainable = optimizer.Groups.SelectMany(g => g.Parameters).ToList();
        if (dp is not null && Options.Distributed!.GradientSync == GradientSynchronization.DuringBackward)
        {
            dp.ReduceDuringBackward(trainable);
        }

        // The learning rate of every step comes from Core.Optim's schedule over the planned steps (rebuilt when a time
        // budget re-plans them), starting at the step a resumed run continues from.
        var scheduler = new LearningRateScheduler(optimizer, Options.CreateSchedule(run.TotalSteps), run.Step);
        log.LogInformation("training {Params} parameters with {Optimizer}: {Batches} batches per epoch{PerRank}, {Accumulation} per step, up to {Epochs} epochs{Budget}",
            parameterCount, DescribeOptimizer(), batches, dp is null ? "" : $" on each of {dp.WorldSize} ranks", k, Options.Epochs,
            Options.TimeBudget is { } budgetSpan ? $", time budget {budgetSpan.TotalMinutes:F1} min" : "");
        var summaries = new List<EpochSummary>();
        var session = new Clock(time);
        var reason = TrainingStopReason.Completed;
        var sessionSteps = 0L;
        var calibrationStart = TimeSpan.Zero;
        try
        {
            while (run.Epoch < Options.Epochs && run.Step < run.TotalSteps && reason == TrainingStopReason.Completed)
            {
                var epoch = run.Epoch;
                module.Train();
                var epochClock = new Clock(time);
                var sums = new Dictionary<string, double>();
                var totalSum = 0.0;
                var seen = 0;
                var b = run.NextBatch;
                var iterationClock = new Clock(time);
                // Ranks stop together at the agreed point below, so their loaders are not cancelled on their own.
                foreach (var batch in source.GetBatches(epoch, b, dp is null ? cancellationToken : CancellationToken.None))
                {
                    using (batch)
                    {
                        var groupStart = b - (b % k);
                        var groupSize = Math.Min(k, batches - groupStart);
                        if (b == groupStart)
                        {
                            var cancelled = cancellationToken.IsCancellationRequested;
                            var outOfTime = Options.TimeBudget is { } budget && run.Elapsed(session) >= budget;
                            if (dp is not null)
                            {
                                var agreed = dp.Any(cancelled, outOfTime);
                                if (agreed[0] && !cancelled)
                                {
                                    throw new OperationCanceledException("training was cancelled on another rank");
                                }

                                outOfTime = agreed[1];
                            }

                            cancellationToken.ThrowIfCancellationRequested();
                            if (outOfTime)
                            {
                                reason = TrainingStopReason.TimeBudget;
                                break;
                            }

                            optimizer.ZeroGrad();
                        }

                        var lr = optimizer.Groups[0].LearningRate;
                        var (values, total) = ForwardBackward(batch, 1.0 / groupSize, run, dp, sync: b == groupStart + groupSize - 1);
                        foreach (var (name, v) in values)
                        {
                            sums[name] = sums.GetValueOrDefault(name) + v;
                        }

                        totalSum += total;
                        seen++;
                        if (b == groupStart + groupSize - 1)
                        {
                            if (dp is { ReducesDuringBackward: false })
                            {
                                dp.AverageGradients(trainable);
                            }

                            ClipAndStep(optimizer, run);
                            run.Step++;
                            scheduler.Step();
                            sessionSteps++;
                            run.Epoch = b + 1 == batches ? epoch + 1 : epoch;
                            run.NextBatch = b + 1 == batches ? 0 : b + 1;
                            if (sessionSteps == CalibrationSkip)
                            {
                                calibrationStart = session.Elapsed;
                            }
                            else if (sessionSteps == CalibrationSkip + CalibrationSteps && Options.TimeBudget is { } budget)
                            {
                                Plan(run, scheduler, budget, session, (session.Elapsed - calibrationStart) / CalibrationSteps, cap, dp, log);
                            }

                            if (Options.CheckpointEvery > 0 && run.Step % Options.CheckpointEvery == 0 && rank0)
                            {
                                WriteCheckpoint(module, optimizer, run, session);
                            }
                        }

                        var iterationTime = iterationClock.Elapsed;
                        iterationClock.Restart();
                        var elapsed = run.Elapsed(session);
                        var eta = sessionSteps > 0 ? session.Elapsed / sessionSteps * Math.Max(0, run.TotalSteps - run.Step) : TimeSpan.Zero;
                        if (b % Options.LogEvery == 0 || b == batches - 1)
                        {
                            log.LogInformation("epoch {Epoch} iter {Iter}/{Count} step {Step}/{Total} lr {Lr:G3} loss {Loss:F4} ({Parts}) {Seconds:F2} s/it, eta {Eta}",
                                epoch + 1, b + 1, batches, run.Step, run.TotalSteps, lr, total, LossText.Format(values),
                                iterationTime.TotalSeconds, LossText.Format(eta));
                        }

                        if (rank0)
                        {
                            progress?.Report(new TrainingProgress(epoch, b, batches, run.Step, run.TotalSteps, lr, values, total, iterationTime, elapsed, eta));
                        }

                        b++;
                        if (run.Step >= run.TotalSteps && b < batches && b % k == 0)
                        {
                            break; // the plan (time budget) ends inside this epoch
                        }
                    }
                }

                if (seen == 0)
                {
                    if (reason != TrainingStopReason.Completed)
                    {
                        break;
                    }

                    throw new InvalidOperationException($"epoch {epoch} produced no batches from batch {run.NextBatch} on (expected {batches})");
                }

                var summary = new EpochSummary(epoch, sums.ToDictionary(kv => kv.Key, kv => kv.Value / seen), totalSum / seen, epochClock.Elapsed);
                summaries.Add(summary);
                log.LogInformation("epoch {Epoch} done in {Seconds:F1} s, mean loss {Loss:F4}{Communication}", epoch + 1, epochClock.Elapsed.TotalSeconds, summary.MeanTotalLoss,
                    dp is null ? "" : string.Create(System.Globalization.CultureInfo.InvariantCulture,
                        $", communication {100 * dp.TakeCommunicationTime() / epochClock.Elapsed:F1} % of it"));
                if (Options.TimeBudget is { } tb && run.Epoch > epoch && sessionSteps > 0)
                {
                    // Re-plan with the measured rate including data loading and per-epoch work.
                    Plan(run, scheduler, tb, session, session.Elapsed / sessionSteps, cap, dp, log);
                }

                if (rank0)
                {
                    WriteCheckpoint(module, optimizer, run, session);
                }

                module.Eval();
                if (rank0)
                {
                    afterEpoch?.Invoke(summary);
                }

                dp?.Barrier(); // the other ranks wait here while rank 0 validates
                var budgetSpent = Options.TimeBudget is { } tb2 && run.Elapsed(session) >= tb2;
                if (dp is not null)
                {
                    budgetSpent = dp.Any(budgetSpent)[0];
                }

                if (budgetSpent)
                {
                    reason = TrainingStopReason.TimeBudget;
                }
            }

            if (reason == TrainingStopReason.TimeBudget)
            {
                log.LogInformation("time budget reached after {Steps} steps", run.Step);
            }

            if (rank0)
            {
                WriteCheckpoint(module, optimizer, run, session);
            }

            return new TrainingResult(summaries, run.Step, run.Elapsed(session), reason, Options.CheckpointPath);
        }
        catch (OperationCanceledException)
        {
            if (rank0)
            {
                WriteCheckpoint(module, optimizer, run, session);
            }

            log.LogWarning("training cancelled at {Position}{Where}", TrainingCheckpoint.Describe(run.ToState(session)),
                Options.CheckpointPath is null ? "" : $"; resume from {Options.CheckpointPath}");
            throw;
        }
        finally
        {
            module.Eval();
            module.ZeroGrad();
        }
    }

    private static (List<ParameterGroup> Groups, long Count) ParameterGroups(Module module)
    {
        var decay = new List<Tensor>();
        var noDecay = new List<Tensor>();
        foreach (var (_, p) in module.NamedParameters().Where(p => p.Parameter.RequiresGrad))
        {
            // Normalisation weights and all biases get no weight decay.
            (p.Dim <= 1 ? noDecay : decay).Add(p);
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

        return (groups, decay.Concat(noDecay).Sum(p => p.NumEl));
    }

    private Optimizer CreateOptimizer(IEnumerable<ParameterGroup> groups) => Options.Optimizer switch
    {
        OptimizerKind.Sgd => new Sgd(groups, new SgdOptions(Options.LearningRate, Options.Momentum, 0, Options.WeightDecay)),
        OptimizerKind.AdamW => new AdamW(groups, new AdamWOptions(Options.LearningRate, Options.AdamBeta1, Options.AdamBeta2, Options.AdamEps, Options.WeightDecay)),
        _ => throw new ArgumentException($"unknown optimizer {Options.Optimizer}", nameof(Options.Optimizer)),
    };

    private string DescribeOptimizer() => Options.Optimizer switch
    {
        OptimizerKind.AdamW => string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"AdamW (lr {Options.LearningRate:G4}, betas {Options.AdamBeta1:G4}/{Options.AdamBeta2:G4}, eps {Options.AdamEps:G3}, decoupled weight decay {Options.WeightDecay:G4})"),
        _ => string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"SGD (lr {Options.LearningRate:G4}, momentum {Options.Momentum:G4}, weight decay {Options.WeightDecay:G4})"),
    };

    private DataParallel Join(DistributedOptions distributed, Module module)
    {
        DataParallel.RefuseUnsynchronisedBatchNorm(module); // before connecting: a configuration error, not a network one
        var group = ProcessGroup.Create(distributed);
        logger.LogInformation("rank {Rank} of {World} joined the job at {Store} ({Backend})", group.Rank, group.WorldSize, distributed.StoreAddress, distributed.Backend);
        return new DataParallel(group, time, model.Device);
    }

    /// <summary>
    /// The seed of a rank's random stream: rank 0 uses the run's seed (so one process and rank 0 draw alike), every
    /// other rank a different stream derived from it, its rank and the step a resumed run starts from.
    /// </summary>
    private static ulong RankSeed(ulong? seed, int rank, string? resumeFrom)
    {
        const ulong libtorchDefaultSeed = 67280421310721UL;
        var s = seed ?? libtorchDefaultSeed;
        if (rank == 0)
        {
            return s;
        }

        var step = resumeFrom is null ? 0UL : (ulong)TrainingCheckpoint.ReadState(resumeFrom).Step;
        var z = s ^ (0x9E3779B97F4A7C15UL * (ulong)rank) ^ (0xD1B54A32D192ED03UL * (step + 1));
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Restores the run; returns the new step cap when the checkpoint was written by another world size.</summary>
    private long? Resume(string path, Module module, Optimizer optimizer, int batches, RunState run, DataParallel? dp, ILogger log)
    {
        var state = TrainingCheckpoint.ReadState(path);
        var world = dp?.WorldSize ?? 1;
        var sameWorld = state.WorldSize == world;
        if (!sameWorld && state.NextBatch != 0)
        {
            throw new InvalidOperationException(
                $"{path} was written by {state.WorldSize} rank(s) in the middle of epoch {state.Epoch + 1} (batch {state.NextBatch}); this run has {world}: " +
                $"resume with {state.WorldSize} rank(s), or from a checkpoint written at the end of an epoch");
        }

        if (sameWorld && (state.BatchesPerEpoch != batches || state.GradientAccumulation != Options.GradientAccumulation))
        {
            throw new InvalidOperationException(
                $"{path} was written with {state.BatchesPerEpoch} batches per epoch and gradient accumulation {state.GradientAccumulation}; " +
                $"this run has {batches} and {Options.GradientAccumulation}: resume with the same data, batch size and accumulation");
        }

        // Rank 0 continues the saved random stream; the other ranks keep their own (see RankSeed), so the saved state
        // goes to a scratch generator there.
        using var scratch = dp is null || dp.Rank == 0 ? null : new RandomGenerator(0);
        TrainingCheckpoint.Restore(path, module, optimizer, scratch ?? run.Generator);
        run.Epoch = state.Epoch;
        run.NextBatch = state.NextBatch;
        run.Step = state.Step;
        // With another world size the remaining epochs run at this run's steps per epoch.
        long? cap = sameWorld ? null : state.Step + (long)Math.Max(0, Options.Epochs - state.Epoch) * ((batches + run.Accumulation - 1) / run.Accumulation);
        run.TotalSteps = cap ?? state.TotalSteps;
        run.ElapsedBefore = TimeSpan.FromSeconds(state.ElapsedSeconds);
        log.LogInformation("resumed from {Path}: {State}{World}", path, TrainingCheckpoint.Describe(state),
            sameWorld ? "" : $"; written by {state.WorldSize} rank(s), continuing with {world} from the epoch boundary ({run.TotalSteps} steps planned)");
        return cap;
    }

    private void Plan(RunState run, LearningRateScheduler scheduler, TimeSpan budget, Clock session, TimeSpan stepTime, long cap, DataParallel? dp, ILogger log)
    {
        var remaining = budget - run.Elapsed(session);
        var planned = stepTime <= TimeSpan.Zero ? run.TotalSteps : Math.Clamp(run.Step + (long)Math.Floor(remaining / stepTime), run.Step, cap);
        if (dp is not null)
        {
            planned = dp.FromRankZero(planned); // every rank runs rank 0's plan
        }

        if (planned != run.TotalSteps)
        {
            log.LogInformation("time budget: {Seconds:F2} s per step, planning {Steps} steps", stepTime.TotalSeconds, planned);
            run.TotalSteps = planned;
            scheduler.Schedule = Options.CreateSchedule(planned);
        }
    }

    private (Dictionary<string, double> Values, double Total) ForwardBackward(TrainingBatch batch, double scale, RunState run, DataParallel? dp, bool sync)
    {
        using var scope = Torch.NewDisposeScope();
        var device = model.Device;
        var images = batch.Images.Select(i => i.To(device)).ToArray();
        var targets = batch.Targets.Select(t => new DetectionTarget(t.Boxes.To(device), t.Labels.To(device), t.Masks?.To(device))).ToArray();
        var losses = model.ComputeLosses(images, targets);
        var values = losses.ToDictionary(kv => kv.Key, kv => kv.Value.ItemDouble());
        var total = losses.Total();
        var totalValue = total.ItemDouble();
        if (dp is not null)
        {
            // Every rank sees the mean over ranks, so a non-finite loss on any rank stops all of them alike.
            var keys = values.Keys.Order(StringComparer.Ordinal).ToArray();
            var mean = dp.Mean([.. keys.Select(key => values[key]), totalValue]);
            values = keys.Select((key, i) => (key, mean[i])).ToDictionary(x => x.key, x => x.Item2);
            totalValue = mean[^1];
        }

        if (!double.IsFinite(totalValue))
        {
            throw Diverged($"loss is {totalValue} ({string.Join(", ", values.Select(kv => $"{kv.Key}={kv.Value}"))}) at step {run.Step}, epoch {batch.Epoch}, batch {batch.BatchIndex} (images {string.Join(", ", batch.ImageIds)})");
        }

        var scaled = scale == 1 ? total : total * scale;
        if (dp is null)
        {
            scaled.Backward();
        }
        else
        {
            if (sync)
            {
                dp.PrepareBackward(scaled);
            }

            try
            {
                scaled.Backward();
            }
            catch (TorchException e) when (sync && dp.ReducesDuringBackward)
            {
                throw dp.BackwardFailed(e);
            }
        }

        return (values, totalValue);
    }

    private void ClipAndStep(Optimizer optimizer, RunState run)
    {
        if (Options.GradientClipNorm is { } maxNorm)
        {
            var norm = ClipGradNorm(optimizer.Groups.SelectMany(g => g.Parameters), maxNorm);
            if (!double.IsFinite(norm))
            {
                throw Diverged($"the gradient norm is {norm} at step {run.Step}");
            }
        }

        optimizer.Step();
    }

    private TrainingDivergedException Diverged(string what)
    {
        var keep = Options.CheckpointPath is { } p && File.Exists(p) ? p : null;
        var message = $"training diverged: {what}. Lower the learning rate or check the data." +
            (keep is null ? "" : $" The last good checkpoint is {keep} (not overwritten).");
        logger.LogError("{Message}", message);
        return new TrainingDivergedException(message, keep);
    }

    private void WriteCheckpoint(Module module, Optimizer optimizer, RunState run, Clock session)
    {
        if (Options.CheckpointPath is not { } path)
        {
            return;
        }

        var state = run.ToState(session);
        TrainingCheckpoint.Save(path, module, optimizer, state, Options.CheckpointMetadata, run.Generator);
        logger.LogDebug("checkpoint {Path}: {State}", path, TrainingCheckpoint.Describe(state));
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

    /// <summary>Elapsed time on the trainer's <see cref="TimeProvider"/>.</summary>
    private sealed class Clock(TimeProvider time)
    {
        private long start = time.GetTimestamp();

        public TimeSpan Elapsed => time.GetElapsedTime(start);

        public void Restart() => start = time.GetTimestamp();
    }

    /// <summary>The mutable position of a run: always a consistent point between optimizer steps.</summary>
    private sealed class RunState
    {
        public int Epoch { get; set; }

        public int NextBatch { get; set; }

        public long Step { get; set; }

        public long TotalSteps { get; set; }

        public TimeSpan ElapsedBefore { get; set; }

        public TimeSpan Elapsed(Clock session) => ElapsedBefore + session.Elapsed;

        public required int BatchesPerEpoch { get; init; }

        public required int Accumulation { get; init; }

        /// <summary>The random stream of the run (null: libtorch's default generator).</summary>
        public RandomGenerator? Generator { get; init; }

        /// <summary>The number of data-parallel ranks (1 without distribution).</summary>
        public int WorldSize { get; init; } = 1;

        public TrainingState ToState(Clock session) =>
            new(Epoch, NextBatch, Step, TotalSteps, Elapsed(session).TotalSeconds, BatchesPerEpoch, Accumulation) { WorldSize = WorldSize };
    }
}
