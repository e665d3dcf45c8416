using FluentAssertions;
using MaskRcnn.Net.Core;
using MaskRcnn.Net.Core.Distributed;
using MaskRcnn.Net.Core.NN;
using MaskRcnn.Net.Core.Structures;

namespace MaskRcnn.Net.Training.Tests;

/// <summary>
/// The trainer's data-parallel machinery (issue 17) on a model whose loss is a per-sample mean and that draws no
/// random numbers (<see cref="AffineCountRegressor"/>): ranks are threads of this process meeting through a file
/// store and all-reducing over Gloo on the loopback interface. 2 ranks × batch 2 must end where 1 process × batch 4
/// ends on the same samples (float summation order only); so must 2 ranks × batch 1 × accumulation 2, and a run that
/// switches from 2 ranks to 1 at an epoch boundary.
/// </summary>
public sealed class DistributedTrainerTests : IDisposable
{
    private static readonly TimeSpan HangGuard = TimeSpan.FromSeconds(180);
    private readonly string dir = Directory.CreateTempSubdirectory("mrcnn-ddp-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    private static DataLoader Loader(int batchSize, DistributedSampler? sampler = null) =>
        new(CocoDataset.Load(TestFiles.BrainTumorJson, TestFiles.BrainTumorImages),
            new DataLoaderOptions(batchSize, Shuffle: true, Seed: 3, Prefetch: 0) { Sampler = sampler });

    private static TrainerOptions Base(int epochs) => new(Epochs: epochs, LearningRate: 0.05, WarmupIterations: 2, GradientClipNorm: 5.0);

    private DistributedOptions Rank(int rank, int world, string store, GradientSynchronization sync = GradientSynchronization.AfterBackward) =>
        new(world, rank) { StoreFile = Path.Combine(dir, store), Timeout = TimeSpan.FromSeconds(60), GradientSync = sync };

    private static double[] Weights(AffineCountRegressor m) => [.. m.Weight, m.Bias];

    /// <summary>Trains one model per rank on its own thread; returns each rank's final weights and result.</summary>
    private (double[] Weights, TrainingResult Result)[] TrainRanks(int world, int batchSize, Func<int, TrainerOptions> options, Action<AffineCountRegressor, int>? init = null)
    {
        var tasks = Enumerable.Range(0, world).Select(rank => Task.Factory.StartNew(() =>
        {
            using var model = new AffineCountRegressor();
            init?.Invoke(model, rank);
            var result = new Trainer(model, options(rank)).Train(Loader(batchSize, new DistributedSampler(rank, world)));
            return (Weights(model), result);
        }, TaskCreationOptions.LongRunning)).ToArray();
        WaitAll(tasks);
        return tasks.Select(t => t.Result).ToArray();
    }

    private static void WaitAll(Task[] tasks) => Task.WaitAll(tasks, HangGuard).Should().BeTrue("every rank stops (hang guard)");

    private static double[] OneProcess(int epochs, int batchSize = 4)
    {
        using var model = new AffineCountRegressor();
        new Trainer(model, Base(epochs)).Train(Loader(batchSize));
        return Weights(model);
    }

    private static void ShouldMatch(double[] actual, double[] expected, string what)
    {
        for (var i = 0; i < expected.Length; i++)
        {
            actual[i].Should().BeApproximately(expected[i], 1e-5 * Math.Max(1, Math.Abs(expected[i])), $"{what}[{i}]");
        }
    }

    [Theory]
    [InlineData(GradientSynchronization.AfterBackward)]
    [InlineData(GradientSynchronization.DuringBackward)]
    public void Two_ranks_of_batch_two_end_with_the_weights_of_one_process_of_batch_four(GradientSynchronization sync)
    {
        var expected = OneProcess(epochs: 4);
        expected.Should().NotEqual(new double[4], "the baseline trains");

        // Rank 1 starts from other weights: rank 0's broadcast must overwrite them.
        var ranks = TrainRanks(2, 2, r => Base(4) with { Distributed = Rank(r, 2, $"equal-{sync}", sync) },
            (m, r) => { if (r == 1) { using var _ = Torch.NoGrad(); foreach (var (_, p) in m.NamedParameters()) { p.FillInPlace(3.0); } } });
        foreach (var (weights, result) in ranks)
        {
            ShouldMatch(weights, expected, "rank weights");
            result.Steps.Should().Be(8, "6 images in batches of 4 make 2 steps per epoch; each rank's 3 in batches of 2 make 2");
        }

        ranks[0].Weights.Should().Equal(ranks[1].Weights, "the ranks apply the same averaged gradient");
    }

    [Theory]
    [InlineData(GradientSynchronization.AfterBackward)]
    [InlineData(GradientSynchronization.DuringBackward)]
    public void Accumulating_two_micro_batches_per_rank_is_the_same_step(GradientSynchronization sync)
    {
        var expected = OneProcess(epochs: 3);
        var ranks = TrainRanks(2, 1, r => Base(3) with { GradientAccumulation = 2, Distributed = Rank(r, 2, $"accumulate-{sync}", sync) });
        foreach (var (weights, _) in ranks)
        {
            ShouldMatch(weights, expected, "weights");
        }
    }

    [Fact]
    public void Three_ranks_of_batch_one_match_one_process_of_batch_three()
    {
        // 6 images on 3 ranks of batch 1: step s averages the 3 images at global positions 3s … 3s+2; one process
        // with batches of 3 sees the same triples.
        var expected = OneProcess(epochs: 2, batchSize: 3);
        var ranks = TrainRanks(3, 1, r => Base(2) with { Distributed = Rank(r, 3, "three") });
        foreach (var (weights, _) in ranks)
        {
            ShouldMatch(weights, expected, "weights");
        }
    }

    [Fact]
    public void Only_rank_zero_writes_the_checkpoint_and_a_different_world_size_resumes_at_an_epoch_boundary()
    {
        var expected = OneProcess(epochs: 4);
        var checkpoint = Path.Combine(dir, "rank0.safetensors");
        var elsewhere = Path.Combine(dir, "rank1.safetensors");
        // A 4-epoch run cancelled on rank 0 after epoch 2 (the learning-rate schedule stays the 4-epoch one): the
        // cancellation must stop rank 1 too.
        var errors = new Exception?[2];
        var tasks = Enumerable.Range(0, 2).Select(rank => Task.Factory.StartNew(() =>
        {
            using var model = new AffineCountRegressor();
            using var cancel = new CancellationTokenSource();
            var trainer = new Trainer(model, Base(4) with { Distributed = Rank(rank, 2, "first"), CheckpointPath = rank == 0 ? checkpoint : elsewhere });
            errors[rank] = Record.Exception(() => trainer.Train(Loader(2, new DistributedSampler(rank, 2)), null,
                summary => { if (summary.Epoch == 1) { cancel.Cancel(); } }, cancel.Token));
        }, TaskCreationOptions.LongRunning)).ToArray();
        WaitAll(tasks);
        errors[0].Should().BeAssignableTo<OperationCanceledException>();
        errors[1].Should().BeAssignableTo<OperationCanceledException>().Which.Message.Should().Contain("cancelled on another rank");
        File.Exists(checkpoint).Should().BeTrue();
        File.Exists(elsewhere).Should().BeFalse("only rank 0 writes checkpoints");
        TrainingCheckpoint.ReadState(checkpoint).Should().BeEquivalentTo(new { WorldSize = 2, Epoch = 2, NextBatch = 0, Step = 4L });

        // Continue alone, with the one-process batch of 4, for the remaining 2 epochs of the 4-epoch plan.
        using var model = new AffineCountRegressor();
        var result = new Trainer(model, Base(4) with { ResumeFrom = checkpoint }).Train(Loader(4));
        result.Steps.Should().Be(8);
        ShouldMatch(Weights(model), expected, "resumed weights");
    }

    [Fact]
    public void Resuming_on_more_ranks_at_an_epoch_boundary_plans_the_remaining_epochs_at_their_rate()
    {
        // One process with batch 2: 3 steps per epoch; cancelled after epoch 2 (step 6). Two ranks with batch 2 each
        // take 2 steps per epoch (3 images per rank), so epochs 3 and 4 make 4 more steps: 10 in all.
        var checkpoint = Path.Combine(dir, "grow.safetensors");
        using (var model = new AffineCountRegressor())
        using (var cancel = new CancellationTokenSource())
        {
            var act = () => new Trainer(model, Base(4) with { CheckpointPath = checkpoint }).Train(Loader(2), null,
                summary => { if (summary.Epoch == 1) { cancel.Cancel(); } }, cancel.Token);
            act.Should().Throw<OperationCanceledException>();
        }

        TrainingCheckpoint.ReadState(checkpoint).Should().BeEquivalentTo(new { WorldSize = 1, Epoch = 2, NextBatch = 0, Step = 6L });
        var ranks = TrainRanks(2, 2, r => Base(4) with { Distributed = Rank(r, 2, "grow"), ResumeFrom = checkpoint, CheckpointPath = r == 0 ? checkpoint : null });
        ranks.Select(x => x.Result.Steps).Should().Equal(10L, 10L);
        TrainingCheckpoint.ReadState(checkpoint).Should().BeEquivalentTo(new { WorldSize = 2, Epoch = 4, Step = 10L, TotalSteps = 10L });
        ranks[0].Weights.Should().Equal(ranks[1].Weights);
    }

    [Fact]
    public void Ranks_that_disagree_on_where_they_start_are_refused_naming_what_differs()
    {
        var errors = new Exception?[2];
        var tasks = Enumerable.Range(0, 2).Select(rank => Task.Factory.StartNew(() =>
        {
            using var model = new AffineCountRegressor();
            var options = Base(2) with { Distributed = Rank(rank, 2, "disagree"), GradientAccumulation = rank == 0 ? 1 : 2 };
            errors[rank] = Record.Exception(() => new Trainer(model, options).Train(Loader(1, new DistributedSampler(rank, 2))));
        }, TaskCreationOptions.LongRunning)).ToArray();
        WaitAll(tasks);
        errors[0].Should().BeOfType<InvalidOperationException>().Which.Message.Should()
            .Contain("rank 0 of 2: the ranks disagree on the gradient accumulation (this rank 1, the ranks 1 … 2)");
        errors[1].Should().BeOfType<InvalidOperationException>().Which.Message.Should().Contain("rank 1 of 2: the ranks disagree on the gradient accumulation");
    }

    [Fact]
    public void A_mid_epoch_checkpoint_of_another_world_size_is_refused()
    {
        var checkpoint = Path.Combine(dir, "mid.safetensors");
        TrainRanks(2, 1, r => Base(1) with { Distributed = Rank(r, 2, "mid"), CheckpointPath = checkpoint, CheckpointEvery = 1, TimeBudget = null },
            init: null);
        // Rewrite the state as if the run had stopped after step 1 of 3 (mid-epoch).
        using var model = new AffineCountRegressor();
        var state = TrainingCheckpoint.ReadState(checkpoint);
        state.WorldSize.Should().Be(2);
        using (var optimizer = new Core.Optim.Sgd([new Core.Optim.ParameterGroup(model.Parameters().ToList())], new Core.Optim.SgdOptions(0.1)))
        {
            TrainingCheckpoint.Save(checkpoint, model, optimizer, state with { Epoch = 0, NextBatch = 1, Step = 1 });
        }

        var act = () => new Trainer(model, Base(2) with { ResumeFrom = checkpoint }).Train(Loader(4));
        act.Should().Throw<InvalidOperationException>().WithMessage("*written by 2 rank(s) in the middle of epoch 1 (batch 1); this run has 1*");
    }

    [Fact]
    public void Training_mode_batch_norm_is_refused_before_connecting()
    {
        using var model = new BatchNormRegressor();
        // World size 2 with nobody else: the refusal must come before any rendezvous could wait.
        var act = () => new Trainer(model, Base(1) with { Distributed = Rank(0, 2, "bn") with { Timeout = TimeSpan.FromMinutes(5) } }).Train(Loader(2));
        act.Should().Throw<NotSupportedException>().WithMessage("*module 'bn' is a BatchNorm2d*GroupNorm*");
    }

    private sealed class BatchNormRegressor : Module, ITrainableDetector
    {
        private readonly BatchNorm2d bn;
        private readonly Tensor weight;

        public BatchNormRegressor()
        {
            bn = RegisterModule("bn", new BatchNorm2d(3));
            weight = RegisterParameter("weight", Tensor.Zeros([3]));
        }

        public Module Module => this;

        public Device Device => Device.Cpu;

        public LossDictionary ComputeLosses(IReadOnlyList<Tensor> images, IReadOnlyList<DetectionTarget> targets) =>
            new() { ["loss"] = (bn.Forward(Tensor.Stack(images)).Mean([0, 2, 3]) * weight).Sum().Square() };
    }
}
