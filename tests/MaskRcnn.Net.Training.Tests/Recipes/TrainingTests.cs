using MaskRcnn.Net.Backbones;
using MaskRcnn.Net.Core.Detection;
using MaskRcnn.Net.Core.Masks;

namespace MaskRcnn.Net.Training.Tests;

/// <summary>
/// Without a <see cref="RandomGenerator"/>, weight initialisation and the RoI samplers draw from libtorch's
/// process-wide generator, so tests that compare two runs seeded with <see cref="Torch.ManualSeed"/> bit for bit must
/// not share the process with tests that build models in parallel (<see cref="SeededTrainingTests"/> need not).
/// </summary>
[CollectionDefinition("global-rng", DisableParallelization = true)]
public sealed class GlobalRngCollection
{
}

/// <summary>The trainer really fits data: a small model overfits one annotated image.</summary>
[Collection("global-rng")]
public class TrainingTests
{
    internal static DetectionDataset OneImageDataset(string dir)
    {
        // A bright 40x30 rectangle on a dark 128x128 image, annotated with its box and mask.
        using var image = Tensor.Zeros([3, 128, 128], DType.UInt8);
        image.Narrow(1, 40, 30).Narrow(2, 50, 40).FillInPlace(220L);
        var path = Path.Combine(dir, "rect.png");
        Core.Imaging.ImageCodec.SavePng(image, path);
        var bits = new bool[128 * 128];
        for (var y = 40; y < 70; y++)
        {
            for (var x = 50; x < 90; x++)
            {
                bits[y * 128 + x] = true;
            }
        }

        var annotation = new Annotation(new BoundingBox(50, 40, 90, 70), 1, BinaryMask.FromBools(bits, 128, 128));
        var sample = new DatasetSample(1, "rect.png", 128, 128, [annotation]) { ImagePath = path };
        return new DetectionDataset(["__background__", "rect"], [sample]);
    }

    [Fact]
    public void Trainer_overfits_one_image_and_the_model_then_finds_the_object()
    {
        var dir = Directory.CreateTempSubdirectory("mr_train_").FullName;
        try
        {
            Torch.ManualSeed(1);
            var dataset = OneImageDataset(dir);
            using var model = new MaskRcnnBuilder().WithClasses("rect").WithBackbone(18, NormKind.GroupNorm, 5, outChannels: 64)
                .WithImageSize(128, 128).WithRoIHeads(new Heads.RoIHeadsOptions(BatchSizePerImage: 64)).Build();
            var loader = new DataLoader(dataset, new DataLoaderOptions(BatchSize: 1, Shuffle: false, Prefetch: 0));
            var losses = new List<double>();
            var trainer = new Trainer(model, new TrainerOptions(Epochs: 60, LearningRate: 0.01, WarmupIterations: 5));
            var summaries = trainer.Train(loader, new SyncProgress<TrainingProgress>(p => losses.Add(p.TotalLoss))).Epochs;
            summaries.Should().HaveCount(60);
            var first = summaries.Take(3).Average(s => s.MeanTotalLoss);
            var last = summaries.TakeLast(3).Average(s => s.MeanTotalLoss);
            last.Should().BeLessThan(first * 0.3, $"training must reduce the loss (first {first:F3}, last {last:F3})");
            model.IsTraining.Should().BeFalse("the trainer leaves the model in evaluation mode");

            var result = model.Predict(Path.Combine(dir, "rect.png"));
            result.Detections.Should().NotBeEmpty();
            var best = result.Detections[0];
            best.Label.Should().Be(1);
            var iou = best.Box.Iou(new BoundingBox(50, 40, 90, 70));
            iou.Should().BeGreaterThan(0.5, $"the top detection {best.Box} should cover the rectangle");
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void Training_stops_on_cancellation()
    {
        var dir = Directory.CreateTempSubdirectory("mr_train_").FullName;
        try
        {
            var dataset = OneImageDataset(dir);
            using var model = new MaskRcnnBuilder().WithClasses("rect").WithBackbone(18, NormKind.GroupNorm, 5, outChannels: 64).WithImageSize(128, 128).Build();
            var loader = new DataLoader(dataset, new DataLoaderOptions(BatchSize: 1, Shuffle: false));
            using var cts = new CancellationTokenSource();
            var trainer = new Trainer(model, new TrainerOptions(Epochs: 1000));
            var act = () => trainer.Train(loader, new SyncProgress<TrainingProgress>(p => { if (p.Epoch >= 1) cts.Cancel(); }), cancellationToken: cts.Token);
            act.Should().Throw<OperationCanceledException>();
            model.IsTraining.Should().BeFalse();
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void Mask_rcnn_training_resumed_after_cancellation_matches_an_uninterrupted_run()
    {
        var dir = Directory.CreateTempSubdirectory("mr_train_").FullName;
        try
        {
            var dataset = OneImageDataset(dir);
            MaskRcnnModel Build()
            {
                Torch.ManualSeed(7);
                return new MaskRcnnBuilder().WithClasses("rect").WithBackbone(18, NormKind.GroupNorm, 5, outChannels: 32)
                    .WithImageSize(96, 96).WithRoIHeads(new Heads.RoIHeadsOptions(BatchSizePerImage: 32)).Build();
            }

            var loader = new DataLoader(dataset, new DataLoaderOptions(BatchSize: 1, Shuffle: false, Prefetch: 0, Augmentation: new RandomHorizontalFlip(0.5)));
            var options = new TrainerOptions(Epochs: 4, LearningRate: 0.01, WarmupIterations: 2);
            var straightPath = Path.Combine(dir, "straight.safetensors");
            var resumedPath = Path.Combine(dir, "resumed.safetensors");
            using var straight = Build();
            new Trainer(straight, options with { CheckpointPath = straightPath }).Train(loader);

            using (var first = Build())
            {
                using var cts = new CancellationTokenSource();
                var act = () => new Trainer(first, options with { CheckpointPath = resumedPath })
                    .Train(loader, new SyncProgress<TrainingProgress>(p => { if (p.Epoch == 1) cts.Cancel(); }), cancellationToken: cts.Token);
                act.Should().Throw<OperationCanceledException>();
            }

            TrainingCheckpoint.ReadState(resumedPath).Step.Should().Be(2);
            Torch.ManualSeed(12345); // the checkpoint's generator state must win over whatever the process did since
            using var resumed = Build();
            Torch.ManualSeed(999);
            new Trainer(resumed, options with { CheckpointPath = resumedPath, ResumeFrom = resumedPath }).Train(loader);

            var expected = straight.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value);
            foreach (var (key, value) in resumed.StateDict())
            {
                value.ToArray<float>().Should().Equal(expected[key].ToArray<float>(), $"{key} after resume");
            }
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}

/// <summary>
/// Models built with <see cref="MaskRcnnBuilder.WithSeed"/> and runs with <see cref="TrainerOptions.Seed"/> draw from
/// private generators: these tests run in parallel with everything else while another thread keeps drawing from and
/// reseeding libtorch's default generator, and still reproduce bit for bit.
/// </summary>
public sealed class SeededTrainingTests : IDisposable
{
    private readonly CancellationTokenSource stop = new();
    private readonly Task<long> noise;

    public SeededTrainingTests()
    {
        using var started = new ManualResetEventSlim();
        noise = Task.Factory.StartNew(() =>
        {
            var n = 0L;
            while (!stop.IsCancellationRequested)
            {
                using var t = Tensor.Randn([256]);
                if (++n % 5 == 0)
                {
                    Torch.ManualSeed((ulong)n);
                }

                if (n == 1)
                {
                    started.Set(); // once, before the constructor stops waiting and disposes the event
                }
            }

            return n;
        }, TaskCreationOptions.LongRunning);
        started.Wait(TimeSpan.FromSeconds(60)).Should().BeTrue("the noise thread must start drawing");
    }

    public void Dispose()
    {
        stop.Cancel();
        noise.Wait();
        stop.Dispose();
    }

    private static MaskRcnnModel Build(ulong seed) =>
        new MaskRcnnBuilder().WithClasses("rect").WithBackbone(18, NormKind.GroupNorm, 5, outChannels: 32)
            .WithImageSize(96, 96).WithRoIHeads(new Heads.RoIHeadsOptions(BatchSizePerImage: 32)).WithSeed(seed).Build();

    private static void ShouldHaveEqualWeights(MaskRcnnModel actual, MaskRcnnModel expected, string when)
    {
        var reference = expected.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value);
        foreach (var (key, value) in actual.StateDict())
        {
            value.ToArray<float>().Should().Equal(reference[key].ToArray<float>(), $"{key} {when}");
        }
    }

    [Fact]
    public void The_same_seed_builds_the_same_weights_and_another_seed_other_weights()
    {
        using var a = Build(3);
        using var b = Build(3);
        using var c = Build(4);
        ShouldHaveEqualWeights(b, a, "with the same seed");
        const string Key = "roi_heads.box_head.fc6.weight";
        float[] Weights(MaskRcnnModel m) => m.StateDict().Single(kv => kv.Key == Key).Value.ToArray<float>();
        Weights(c).Should().NotEqual(Weights(a));
    }

    [Fact]
    public void A_seeded_run_resumed_after_cancellation_matches_an_uninterrupted_one()
    {
        var dir = Directory.CreateTempSubdirectory("mr_seeded_").FullName;
        try
        {
            var dataset = TrainingTests.OneImageDataset(dir);
            var loader = new DataLoader(dataset, new DataLoaderOptions(BatchSize: 1, Shuffle: false, Prefetch: 0, Augmentation: new RandomHorizontalFlip(0.5)));
            var options = new TrainerOptions(Epochs: 4, LearningRate: 0.01, WarmupIterations: 2) { Seed = 11 };
            var straightPath = Path.Combine(dir, "straight.safetensors");
            var resumedPath = Path.Combine(dir, "resumed.safetensors");
            using var straight = Build(7);
            new Trainer(straight, options with { CheckpointPath = straightPath }).Train(loader);
            using var again = Build(7);
            new Trainer(again, options).Train(loader);
            ShouldHaveEqualWeights(again, straight, "after a second uninterrupted run");

            using (var first = Build(7))
            {
                using var cts = new CancellationTokenSource();
                var act = () => new Trainer(first, options with { CheckpointPath = resumedPath })
                    .Train(loader, new SyncProgress<TrainingProgress>(p => { if (p.Epoch == 1) cts.Cancel(); }), cancellationToken: cts.Token);
                act.Should().Throw<OperationCanceledException>();
            }

            TrainingCheckpoint.ReadState(resumedPath).Step.Should().Be(2);
            using var resumed = Build(7);
            new Trainer(resumed, options with { CheckpointPath = resumedPath, ResumeFrom = resumedPath }).Train(loader);
            ShouldHaveEqualWeights(resumed, straight, "after resume");
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
