using System.Diagnostics;
using System.Globalization;
using MaskRcnn.Net.Backbones;
using MaskRcnn.Net.Core;
using MaskRcnn.Net.Core.Checkpoints;
using MaskRcnn.Net.Core.Optim;
using MaskRcnn.Net.Core.Structures;
using MaskRcnn.Net.Heads;
using MaskRcnn.Net.Training;

namespace MaskRcnn.Net.Benchmarks;

/// <summary>
/// Times one Mask R-CNN training iteration (losses, backward, SGD step) of MaskRcnn.Net on the weights and inputs
/// that <c>benchmarks/compare_training.sh</c> saved from torchvision, and prints the median seconds.
/// Usage: <c>train-step WEIGHTS.pth INPUTS.pth [runs]</c>.
/// </summary>
public static class TrainingStepComparison
{
    /// <summary>Runs the measurement; returns the process exit code.</summary>
    public static int Run(string[] args)
    {
        if (args.Length < 2)
        {
            Console.Error.WriteLine("usage: train-step WEIGHTS.pth INPUTS.pth [runs]");
            return 2;
        }

        var runs = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 5;
        Torch.NumThreads = 2;
        Torch.ManualSeed(0);
        using var model = new MaskRcnnBuilder()
            .WithNumClasses(91)
            .WithBackbone(50, NormKind.FrozenBatchNorm, trainableLayers: 3)
            .WithImageSize(512, 512)
            .WithWeights(args[0])
            .Build();
        using var inputs = TorchCheckpoint.Load(args[1]);
        var count = inputs.Keys.Count(k => k.StartsWith("image", StringComparison.Ordinal));
        var images = Enumerable.Range(0, count).Select(i => inputs[$"image{i}"]).ToArray();
        var targets = Enumerable.Range(0, count).Select(i => new DetectionTarget(inputs[$"boxes{i}"], inputs[$"labels{i}"], inputs[$"masks{i}"])).ToArray();
        using var optimizer = new Sgd(model.TrainableParameters(), new SgdOptions(0.01, Momentum: 0.9, WeightDecay: 1e-4));
        model.Train();
        using var allocator = NativeAllocator.ForTraining(); // the allocator setting Trainer.Train uses
        var times = new List<double>();
        for (var r = 0; r <= runs; r++)
        {
            var clock = Stopwatch.StartNew();
            using (Torch.NewDisposeScope())
            {
                var losses = model.ComputeLosses(images, targets);
                optimizer.ZeroGrad();
                losses.Total().Backward();
                optimizer.Step();
            }

            if (r > 0)
            {
                times.Add(clock.Elapsed.TotalSeconds);
            }
        }

        times.Sort();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{{\"median\": {times[times.Count / 2]:F4}, \"runs\": [{string.Join(", ", times.Select(t => t.ToString("F4", CultureInfo.InvariantCulture)))}]}}"));
        return 0;
    }
}
