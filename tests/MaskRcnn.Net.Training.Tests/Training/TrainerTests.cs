using MaskRcnn.Net.Core.NN;
using MaskRcnn.Net.Core.Structures;

namespace MaskRcnn.Net.Training.Tests;

/// <summary>
/// A tiny detector with a closed-form loss: a linear model predicts each image's object count from its per-channel
/// mean intensity; the loss is the mean squared error over the batch. Its updates are easy to reason about, so the
/// trainer's bookkeeping (accumulation, checkpoints, resume, schedules, divergence) can be checked exactly and fast.
/// </summary>
internal sealed class CountRegressor : Module, ITrainableDetector
{
    private readonly Tensor weight;

    public CountRegressor() => weight = RegisterParameter("weight", Tensor.Zeros([3]));

    public int Calls { get; private set; }

    /// <summary>Returns NaN on this call (1-based), if set.</summary>
    public int? NanAtCall { get; set; }

    /// <summary>Runs at the start of every call with its 1-based number (time-budget tests advance a fake clock here).</summary>
    public Action<int>? OnCall { get; set; }

    public Module Module => this;

    public Device Device => Device.Cpu;

    public float[] Weights => weight.ToArray<float>();

    public LossDictionary ComputeLosses(IReadOnlyList<Tensor> images, IReadOnlyList<DetectionTarget> targets)
    {
        Calls++;
        OnCall?.Invoke(Calls);

        Tensor? sum = null;
        for (var i = 0; i < images.Count; i++)
        {
            var features = images[i].Mean([1, 2]);
            var error = (features * weight).Sum() - targets[i].Boxes.Shape[0];
            var sq = error.Square();
            sum = sum is null ? sq : sum + sq;
        }

        var loss = sum! * (1.0 / images.Count);
        if (NanAtCall == Calls)
        {
            loss = loss * double.NaN;
        }

        return new LossDictionary { ["loss_count"] = loss };
    }
}

public class TrainerTests
{
    private static DataLoader Loader(int batchSize) =>
        new(CocoDataset.Load(TestFiles.BrainTumorJson, TestFiles.BrainTumorImages), new DataLoaderOptions(batchSize, Shuffle: true, Seed: 3, Prefetch: 0));

    private static TrainerOptions Options(int epochs) => new(Epochs: epochs, LearningRate: 0.05, WarmupIterations: 2, GradientClipNorm: null);

    private static string TempFile() => Path.Combine(Directory.CreateTempSubdirectory("mr_trainer_").FullName, "checkpoint.safetensors");

    [Fact]
    public void Accumulating_two_batches_of_one_equals_one_batch_of_two()
    {
        using var big = new CountRegressor();
        new Trainer(big, Options(3)).Train(Loader(2));
        using var accumulated = new CountRegressor();
        var result = new Trainer(accumulated, Options(3) with { GradientAccumulation = 2 }).Train(Loader(1));

        result.Steps.Should().Be(9, "6 images, 2 per step, 3 epochs");
        accumulated.Calls.Should().Be(18);
        big.Weights.Should().NotEqual(new float[3], "training must move the weights");
        accumulated.Weights.Should().BeEquivalentTo(big.Weights, o => o.Using<float>(c => c.Subject.Should().BeApproximately(c.Expectation, 1e-6f)).WhenTypeIs<float>());
    }

    [Fact]
    public void Learning_rate_follows_warmup_then_step_decay()
    {
        using var model = new CountRegressor();
        var lrs = new List<double>();
        var options = new TrainerOptions(Epochs: 10, LearningRate: 0.1, WarmupIterations: 4, WarmupFactor: 0.2, GradientClipNorm: null) { DecayAt = [0.5, 0.8], DecayGamma = 0.1 };
        new Trainer(model, options).Train(Loader(3), new SyncProgress<TrainingProgress>(p => lrs.Add(p.LearningRate)));

        // 2 steps per epoch, 20 steps: warm-up factor 0.2 + 0.8 s/4 for s < 4, ×0.1 from step 10, ×0.01 from step 16.
        lrs.Should().HaveCount(20);
        var expected = Enumerable.Range(0, 20).Select(s => 0.1 * (s < 4 ? 0.2 + 0.8 * s / 4 : 1) * (s >= 16 ? 0.01 : s >= 10 ? 0.1 : 1)).ToArray();
        lrs.Should().BeEquivalentTo(expected, o => o.WithStrictOrdering().Using<double>(c => c.Subject.Should().BeApproximately(c.Expectation, 1e-12)).WhenTypeIs<double>());
    }

    [Fact]
    public void Cosine_decay_reaches_zero_at_the_end()
    {
        using var model = new CountRegressor();
        var lrs = new List<double>();
        var options = new TrainerOptions(Epochs: 4, LearningRate: 0.1, WarmupIterations: 0, GradientClipNorm: null) { Decay = LearningRateDecay.Cosine };
        new Trainer(model, options).Train(Loader(2), new SyncProgress<TrainingProgress>(p => lrs.Add(p.LearningRate)));
        lrs.Should().HaveCount(12);
        for (var s = 0; s < 12; s++)
        {
            lrs[s].Should().BeApproximately(0.05 * (1 + Math.Cos(Math.PI * s / 12)), 1e-12);
        }
    }

    [Theory]
    [InlineData(1, 0)]
    [InlineData(2, 3)]
    public void An_interrupted_run_resumed_from_its_checkpoint_ends_with_the_same_weights(int accumulation, int checkpointEvery)
    {
        var straightPath = TempFile();
        var resumedPath = TempFile();
        using var straight = new CountRegressor();
        var options = Options(4) with { GradientAccumulation = accumulation, CheckpointEvery = checkpointEvery };
        new Trainer(straight, options with { CheckpointPath = straightPath }).Train(Loader(1));

        // Cancel in the middle of epoch 1 (at a batch that is not a step boundary when accumulating).
        using var first = new CountRegressor();
        using var cts = new CancellationTokenSource();
        var act = () => new Trainer(first, options with { CheckpointPath = resumedPath })
            .Train(Loader(1), new SyncProgress<TrainingProgress>(p => { if (p.Epoch == 1 && p.Iteration == 2) cts.Cancel(); }), cancellationToken: cts.Token);
        act.Should().Throw<OperationCanceledException>();
        var state = TrainingCheckpoint.ReadState(resumedPath);
        state.Epoch.Should().Be(1);
        state.NextBatch.Should().Be(accumulation == 1 ? 3 : 2, "the checkpoint is written at the last step boundary");
        state.Step.Should().Be(accumulation == 1 ? 9 : 4);

        using var resumed = new CountRegressor();
        var result = new Trainer(resumed, options with { CheckpointPath = resumedPath, ResumeFrom = resumedPath }).Train(Loader(1));
        result.Steps.Should().Be(24 / accumulation);
        resumed.Weights.Should().Equal(straight.Weights, "resuming restores weights, momentum and position exactly");
        TrainingCheckpoint.ReadState(resumedPath).Should().Be(TrainingCheckpoint.ReadState(straightPath) with { ElapsedSeconds = TrainingCheckpoint.ReadState(resumedPath).ElapsedSeconds });
    }

    [Fact]
    public void Resuming_with_a_different_batch_layout_is_refused()
    {
        var path = TempFile();
        using var model = new CountRegressor();
        new Trainer(model, Options(1) with { CheckpointPath = path }).Train(Loader(2));
        using var other = new CountRegressor();
        var act = () => new Trainer(other, Options(2) with { ResumeFrom = path }).Train(Loader(3));
        act.Should().Throw<InvalidOperationException>().WithMessage("*3 batches per epoch*2*");
    }

    [Fact]
    public void A_nan_loss_stops_training_and_keeps_the_last_good_checkpoint()
    {
        var path = TempFile();
        using var model = new CountRegressor { NanAtCall = 10 };
        var act = () => new Trainer(model, Options(5) with { CheckpointPath = path, CheckpointEvery = 2 }).Train(Loader(2));
        var e = act.Should().Throw<TrainingDivergedException>().Which;
        e.Message.Should().Contain("loss_count=NaN").And.Contain("step 9");
        e.LastGoodCheckpoint.Should().Be(path);
        var state = TrainingCheckpoint.ReadState(path);
        state.Step.Should().Be(9, "the last checkpoint (epoch end after step 9) is kept, not overwritten with the diverged state");
        model.IsTraining.Should().BeFalse();

        using var restored = new CountRegressor();
        TrainingCheckpoint.Restore(path, restored, null);
        restored.Weights.Should().OnlyContain(w => float.IsFinite(w)).And.NotEqual(new float[3]);
    }

    /// <summary>A clock that only moves when told to: the time budget's bookkeeping without waiting for it.</summary>
    private sealed class ManualClock : TimeProvider
    {
        private long ticks;

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => Interlocked.Read(ref ticks);

        public void Advance(TimeSpan by) => Interlocked.Add(ref ticks, by.Ticks);
    }

    [Fact]
    public void A_time_budget_plans_the_schedule_and_stops_in_time()
    {
        // Every step takes 1 s on the fake clock; 60 s allow 60 steps: steps 2-10 calibrate 1 s per step, the plan is
        // 10 + (60 - 10) / 1 = 60 steps instead of the 1000-epoch cap, and the cosine schedule runs over those 60.
        var clock = new ManualClock();
        using var model = new CountRegressor { OnCall = _ => clock.Advance(TimeSpan.FromSeconds(1)) };
        var last = default(TrainingProgress);
        var plans = new List<long>();
        var options = Options(1000) with { TimeBudget = TimeSpan.FromSeconds(60), Decay = LearningRateDecay.Cosine };
        var result = new Trainer(model, options, null, clock).Train(Loader(2), new SyncProgress<TrainingProgress>(p =>
        {
            last = p;
            plans.Add(p.TotalSteps);
        }));

        result.Steps.Should().Be(60);
        result.Elapsed.Should().Be(TimeSpan.FromSeconds(60));
        result.StopReason.Should().Be(TrainingStopReason.TimeBudget);
        plans[0].Should().Be(3000, "before any step is measured the plan is the cap: 1000 epochs of 3 steps");
        plans[^1].Should().Be(60, "the plan comes from the measured step time, not the 1000-epoch cap");
        last!.Step.Should().Be(60);
        last.IterationTime.Should().Be(TimeSpan.FromSeconds(1));
        last.Elapsed.Should().Be(TimeSpan.FromSeconds(60));
        last.LearningRate.Should().BeApproximately(0.05 * 0.5 * (1 + Math.Cos(Math.PI * 59 / 60)), 1e-12, "step 60 runs at the cosine's last point");
    }

    [Fact]
    public void Progress_records_print_their_losses_readably()
    {
        var losses = new Dictionary<string, double> { ["loss_classifier"] = 0.12345, ["loss_mask"] = 0.5 };
        var progress = new TrainingProgress(1, 2, 51, 54, 204, 0.0123, losses, 0.62346, TimeSpan.FromSeconds(0.8),
            TimeSpan.FromSeconds(75), TimeSpan.FromMinutes(61));
        progress.ToString().Should().Be(
            "epoch 2 iter 3/51 step 54/204 lr 0.0123 loss 0.6235 (loss_classifier 0.1235, loss_mask 0.5000) 0.80 s/it, elapsed 1m15s, eta 1h01m");
        new EpochSummary(0, losses, 0.62346, TimeSpan.FromSeconds(41.25)).ToString()
            .Should().Be("epoch 1: mean loss 0.6235 (loss_classifier 0.1235, loss_mask 0.5000) in 41.2 s");
        new TrainingResult([new EpochSummary(0, losses, 0.62346, TimeSpan.FromSeconds(41))], 51, TimeSpan.FromSeconds(41), TrainingStopReason.Completed, null)
            .ToString().Should().Be("51 steps in 0m41s (Completed), 1 epochs this session, last mean loss 0.6235");

        // What a logger or Console.WriteLine prints, culture or not.
        var previous = System.Globalization.CultureInfo.CurrentCulture;
        try
        {
            System.Globalization.CultureInfo.CurrentCulture = new System.Globalization.CultureInfo("de-DE");
            $"{progress}".Should().Contain("loss_classifier 0.1235").And.NotContain("Dictionary");
        }
        finally
        {
            System.Globalization.CultureInfo.CurrentCulture = previous;
        }
    }

    [Fact]
    public void A_time_budget_stops_at_the_first_step_boundary_past_it_when_steps_slow_down()
    {
        // 1 s per step for 10 steps (the calibration plans 60), then 5 s per step: the plan is too optimistic, and the
        // budget check before each step stops the run at t = 10 + 10 · 5 = 60 s, after step 20.
        var clock = new ManualClock();
        using var model = new CountRegressor { OnCall = call => clock.Advance(TimeSpan.FromSeconds(call <= 10 ? 1 : 5)) };
        var options = Options(1000) with { TimeBudget = TimeSpan.FromSeconds(60) };
        var result = new Trainer(model, options, null, clock).Train(Loader(2));

        result.StopReason.Should().Be(TrainingStopReason.TimeBudget);
        result.Steps.Should().Be(20);
        result.Elapsed.Should().Be(TimeSpan.FromSeconds(60));
        model.Calls.Should().Be(20, "no step starts once the budget is spent");
    }

    [Fact]
    public void The_loader_resumes_an_epoch_with_the_same_batches()
    {
        var loader = new DataLoader(CocoDataset.Load(TestFiles.BrainTumorJson, TestFiles.BrainTumorImages),
            new DataLoaderOptions(2, Shuffle: true, Seed: 5, Prefetch: 2, Augmentation: new RandomHorizontalFlip(0.5)));
        var all = loader.GetBatches(1).ToList();
        var tail = loader.GetBatches(1, 1).ToList();
        try
        {
            tail.Should().HaveCount(2);
            for (var b = 0; b < 2; b++)
            {
                tail[b].BatchIndex.Should().Be(b + 1);
                tail[b].Indices.Should().Equal(all[b + 1].Indices);
                for (var k = 0; k < tail[b].Count; k++)
                {
                    tail[b].Images[k].ToArray<float>().Should().Equal(all[b + 1].Images[k].ToArray<float>(), "augmentation depends on the position, not on what was loaded before");
                }
            }
        }
        finally
        {
            all.Concat(tail).ToList().ForEach(b => b.Dispose());
        }
    }
}

/// <summary>Reports synchronously on the calling thread (Progress&lt;T&gt; posts to the thread pool).</summary>
internal sealed class SyncProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}
