using System.CommandLine;
using System.Diagnostics;
using MaskRcnn.Net.Backbones;
using MaskRcnn.Net.Heads;
using MaskRcnn.Net.Training;
using Microsoft.Extensions.Logging;

namespace MaskRcnn.Net.Cli;

/// <summary>Settings of one training run (shared by <c>train</c> and <c>demo</c>).</summary>
internal sealed record TrainSettings(
    IDetectionDataset Train,
    IDetectionDataset? Validation,
    string Output,
    int Epochs,
    int BatchSize,
    double LearningRate,
    int ImageSize,
    int MaxSize,
    int Depth,
    NormKind Norm,
    int TrainableLayers,
    string? InitWeights,
    int Seed,
    string? OverlayDir,
    int FpnChannels = 256,
    int RoIsPerImage = 256);

/// <summary><c>maskrcnn train</c>: trains on a COCO / VIA / LabelMe dataset and saves the model.</summary>
internal static class TrainCommand
{
    public static Command Create()
    {
        var format = new Option<DatasetFormat>("--format") { Description = "coco, via or labelme", DefaultValueFactory = _ => DatasetFormat.Coco };
        var trainJson = new Option<string>("--train") { Description = "training annotations (COCO/VIA JSON file, or a LabelMe folder)", Required = true };
        var trainImages = new Option<string?>("--images") { Description = "training images folder (default: 'images' next to the JSON)" };
        var valJson = new Option<string?>("--val") { Description = "validation annotations (evaluated after each epoch)" };
        var valImages = new Option<string?>("--val-images") { Description = "validation images folder" };
        var defaultClass = new Option<string?>("--default-class") { Description = "VIA: class of regions without a class attribute" };
        var classAttribute = new Option<string?>("--class-attribute") { Description = "VIA: region attribute holding the class" };
        var output = new Option<string>("--out") { Description = "output folder: model.safetensors + model.json", Required = true };
        var epochs = new Option<int>("--epochs") { DefaultValueFactory = _ => 12 };
        var batch = new Option<int>("--batch-size") { DefaultValueFactory = _ => 2 };
        var lr = new Option<double>("--lr") { Description = "base learning rate", DefaultValueFactory = _ => 0.01 };
        var size = new Option<int>("--min-size") { Description = "shorter side after resizing", DefaultValueFactory = _ => 512 };
        var maxSize = new Option<int>("--max-size") { Description = "longer side limit", DefaultValueFactory = _ => 853 };
        var depth = new Option<string>("--backbone") { Description = "resnet18, resnet34, resnet50 or resnet101", DefaultValueFactory = _ => "resnet50" };
        var norm = new Option<NormKind>("--norm") { Description = "BatchNorm, FrozenBatchNorm or GroupNorm", DefaultValueFactory = _ => NormKind.FrozenBatchNorm };
        var trainable = new Option<int>("--trainable-layers") { DefaultValueFactory = _ => 3 };
        var init = new Option<string?>("--weights") { Description = "initial weights, e.g. torchvision COCO maskrcnn_resnet50_fpn (class layers re-initialised)" };
        var seed = new Option<int>("--seed") { DefaultValueFactory = _ => 0 };
        var threads = new Option<int?>("--threads") { Description = "libtorch threads (default: all cores)" };
        var command = new Command("train", "Train Mask R-CNN on your own labelled images")
        {
            format, trainJson, trainImages, valJson, valImages, defaultClass, classAttribute, output, epochs, batch, lr, size,
            maxSize, depth, norm, trainable, init, seed, threads,
        };
        command.SetAction((parse, ct) =>
        {
            Program.SetThreads(parse.GetValue(threads));
            var f = parse.GetValue(format);
            var train = DatasetLoader.Load(f, parse.GetValue(trainJson)!, parse.GetValue(trainImages), parse.GetValue(defaultClass), parse.GetValue(classAttribute));
            var valPath = parse.GetValue(valJson);
            var val = valPath is null ? null : DatasetLoader.Load(f, valPath, parse.GetValue(valImages), parse.GetValue(defaultClass), parse.GetValue(classAttribute));
            var settings = new TrainSettings(train, val, Path.Combine(parse.GetValue(output)!, "model.safetensors"), parse.GetValue(epochs), parse.GetValue(batch), parse.GetValue(lr),
                parse.GetValue(size), parse.GetValue(maxSize), ParseBackbone(parse.GetValue(depth)!), parse.GetValue(norm), parse.GetValue(trainable),
                parse.GetValue(init), parse.GetValue(seed), null);
            Run(settings, ct);
            return Task.FromResult(0);
        });
        return command;
    }

    /// <summary>Parses "resnet50" (or "50") into a ResNet depth.</summary>
    public static int ParseBackbone(string name)
    {
        var digits = name.StartsWith("resnet", StringComparison.OrdinalIgnoreCase) ? name[6..] : name;
        if (int.TryParse(digits, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var depth) &&
            ResNetOptions.SupportedDepths.Contains(depth))
        {
            return depth;
        }

        throw new ArgumentException($"--backbone {name} is not one of resnet18, resnet34, resnet50, resnet101");
    }

    /// <summary>Builds, trains, evaluates and saves; returns the trained model (evaluation mode).</summary>
    public static MaskRcnnModel Run(TrainSettings s, CancellationToken ct)
    {
        var logger = new ConsoleLogger();
        Core.Torch.ManualSeed((ulong)s.Seed);
        var classes = s.Train.ClassNames.Skip(1).ToArray();
        logger.LogInformation("training set: {Images} images, classes: {Classes}", s.Train.Count, string.Join(", ", classes));
        var builder = new MaskRcnnBuilder()
            .WithClasses(classes)
            .WithBackbone(s.Depth, s.Norm, s.TrainableLayers, outChannels: s.FpnChannels)
            .WithImageSize(s.ImageSize, s.MaxSize)
            .WithRpn(new RpnOptions(PreNmsTopNTrain: 1000, PostNmsTopNTrain: 1000, PreNmsTopNTest: 1000, PostNmsTopNTest: 500))
            .WithRoIHeads(new RoIHeadsOptions(BatchSizePerImage: s.RoIsPerImage));
        if (s.InitWeights is not null)
        {
            builder.WithWeights(s.InitWeights, strict: true, skipShapeMismatches: true);
        }

        var model = builder.Build();
        try
        {
            var loader = new DataLoader(s.Train, new DataLoaderOptions(s.BatchSize, Shuffle: true, Seed: s.Seed, Prefetch: 2,
                Augmentation: new RandomHorizontalFlip(0.5)));
            var trainer = new Trainer(model, new TrainerOptions(Epochs: s.Epochs, LearningRate: s.LearningRate,
                WarmupIterations: Math.Min(100, loader.BatchCount), LrMilestones: [(int)(s.Epochs * 0.67), (int)(s.Epochs * 0.89)]), logger);
            var clock = Stopwatch.StartNew();
            trainer.Train(epoch => loader.GetBatches(epoch, ct), loader.BatchCount, null, summary =>
            {
                if (s.Validation is not null && (summary.Epoch == s.Epochs - 1 || summary.Epoch % 4 == 3))
                {
                    var eval = ModelEvaluation.Evaluate(model, s.Validation, cancellationToken: ct);
                    logger.LogInformation("epoch {Epoch} validation: box AP {BoxAp:F3} AP50 {BoxAp50:F3}, mask AP {MaskAp:F3} AP50 {MaskAp50:F3}",
                        summary.Epoch, eval.Boxes.AP, eval.Boxes.AP50, eval.Masks?.AP ?? -1, eval.Masks?.AP50 ?? -1);
                }
            }, ct);
            logger.LogInformation("trained in {Minutes:F1} min", clock.Elapsed.TotalMinutes);
            var dir = Path.GetDirectoryName(Path.GetFullPath(s.Output));
            if (!string.IsNullOrEmpty(dir))
            {
                Directory.CreateDirectory(dir);
            }

            model.Save(s.Output);
            logger.LogInformation("saved {Path}", s.Output);
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }
}
