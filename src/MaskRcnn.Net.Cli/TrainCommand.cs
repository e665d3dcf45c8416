using System.CommandLine;
using System.Diagnostics;
using MaskRcnn.Net.Backbones;
using MaskRcnn.Net.Core.Checkpoints;
using MaskRcnn.Net.Heads;
using MaskRcnn.Net.Training;
using Microsoft.Extensions.Logging;

namespace MaskRcnn.Net.Cli;

/// <summary>Settings of one training run (shared by <c>train</c> and <c>demo</c>).</summary>
internal sealed record TrainSettings(
    IDetectionDataset Train,
    IDetectionDataset? Validation,
    string OutputDir,
    int Epochs,
    int BatchSize,
    double LearningRate,
    int ImageSize,
    int MaxSize,
    int Depth,
    NormKind Norm,
    int TrainableLayers,
    string? InitWeights,
    int Seed)
{
    /// <summary>Train for this many minutes instead of <see cref="Epochs"/> (which then only caps the run).</summary>
    public double? Minutes { get; init; }

    /// <summary>Continue from OutputDir/checkpoint.safetensors when it exists.</summary>
    public bool Resume { get; init; }

    /// <summary>Also checkpoint every this many optimizer steps (0: at epoch ends only).</summary>
    public int CheckpointEvery { get; init; }

    /// <summary>Batches per optimizer step.</summary>
    public int Accumulation { get; init; } = 1;

    /// <summary>Validate every this many epochs (and after the last).</summary>
    public int ValidateEvery { get; init; } = 4;

    /// <summary>FPN channels.</summary>
    public int FpnChannels { get; init; } = 256;

    /// <summary>Sampled RoIs per image for the box/mask heads.</summary>
    public int RoIsPerImage { get; init; } = 256;

    /// <summary>Box head representation size.</summary>
    public int BoxHeadSize { get; init; } = 1024;

    /// <summary>Mask head conv channels per layer (the predictor uses the last).</summary>
    public IReadOnlyList<int> MaskHead { get; init; } = [256, 256, 256, 256];

    /// <summary>Anchor sizes per FPN level (null: torchvision's 32…512).</summary>
    public IReadOnlyList<IReadOnlyList<double>>? AnchorSizes { get; init; }

    /// <summary>Extra shorter-side sizes for multi-scale training.</summary>
    public int[] MoreMinSizes { get; init; } = [];

    /// <summary>Colour jitter strength (0: off).</summary>
    public double ColorJitter { get; init; }

    /// <summary>Learning-rate decay.</summary>
    public LearningRateDecay Decay { get; init; } = LearningRateDecay.Step;

    /// <summary>Warm-up steps.</summary>
    public int WarmupSteps { get; init; } = 100;

    /// <summary>Initialisation of the box and mask predictors.</summary>
    public PredictorInit PredictorInit { get; init; } = PredictorInit.Torchvision;

    /// <summary>The saved model.</summary>
    public string ModelPath => Path.Combine(OutputDir, "model.safetensors");

    /// <summary>The resumable training checkpoint.</summary>
    public string CheckpointPath => Path.Combine(OutputDir, "checkpoint.safetensors");

    /// <summary>The training log.</summary>
    public string LogPath => Path.Combine(OutputDir, "train.log");
}

/// <summary><c>maskrcnn train</c>: trains on a COCO / VIA / LabelMe dataset and saves the model.</summary>
internal static class TrainCommand
{
    public static Command Create()
    {
        var format = new Option<DatasetFormat>("--format") { Description = "coco, via or labelme", DefaultValueFactory = _ => DatasetFormat.Coco };
        var trainJson = new Option<string>("--train") { Description = "training annotations (COCO/VIA JSON file, or a LabelMe folder)", Required = true };
        var trainImages = new Option<string?>("--images") { Description = "training images folder (default: COCO 'images' next to the JSON; VIA the JSON's folder)" };
        var valJson = new Option<string?>("--val") { Description = "validation annotations (evaluated every --validate-every epochs and at the end)" };
        var valImages = new Option<string?>("--val-images") { Description = "validation images folder" };
        var defaultClass = new Option<string?>("--default-class") { Description = "VIA: the class of every region (when --class-attribute is not given)" };
        var classAttribute = new Option<string?>("--class-attribute") { Description = "VIA: region attribute holding the class" };
        var output = new Option<string>("--out") { Description = "output folder: model.safetensors + model.json, checkpoint.safetensors, train.log", Required = true };
        var epochs = new Option<int?>("--epochs") { Description = "passes over the training data (default 12)" };
        var minutes = new Option<double?>("--minutes") { Description = "train for this many minutes instead of a number of epochs" };
        var batch = new Option<int>("--batch-size") { DefaultValueFactory = _ => 2 };
        var accumulate = new Option<int>("--accumulate") { Description = "batches per optimizer step (gradient accumulation)", DefaultValueFactory = _ => 1 };
        var lr = new Option<double>("--lr") { Description = "base learning rate", DefaultValueFactory = _ => 0.01 };
        var size = new Option<int>("--min-size") { Description = "shorter side after resizing", DefaultValueFactory = _ => 512 };
        var maxSize = new Option<int>("--max-size") { Description = "longer side limit", DefaultValueFactory = _ => 853 };
        var depth = new Option<string>("--backbone") { Description = "resnet18, resnet34, resnet50, resnet101 or resnet152", DefaultValueFactory = _ => "resnet50" };
        var norm = new Option<NormKind>("--norm") { Description = "BatchNorm, FrozenBatchNorm or GroupNorm", DefaultValueFactory = _ => NormKind.FrozenBatchNorm };
        var trainable = new Option<int?>("--trainable-layers") { Description = "backbone stages trained, 0-5 (default: 3 with --weights, 5 from scratch)" };
        var init = new Option<string?>("--weights") { Description = "initial weights, e.g. torchvision COCO maskrcnn_resnet50_fpn (class layers re-initialised)" };
        var resume = new Option<bool>("--resume") { Description = "continue from OUT/checkpoint.safetensors (weights, optimizer, position)" };
        var checkpointEvery = new Option<int>("--checkpoint-every") { Description = "also checkpoint every N optimizer steps (default: every epoch)" };
        var validateEvery = new Option<int>("--validate-every") { Description = "validate every N epochs", DefaultValueFactory = _ => 4 };
        var fpnChannels = new Option<int>("--fpn-channels") { Description = "FPN (and head) channels", DefaultValueFactory = _ => 256 };
        var rois = new Option<int>("--rois-per-image") { Description = "RoIs sampled per image for the box and mask heads", DefaultValueFactory = _ => 256 };
        var boxHead = new Option<int>("--box-head-size") { Description = "box head representation size", DefaultValueFactory = _ => 1024 };
        var maskHead = new Option<string>("--mask-head") { Description = "mask head conv channels per layer", DefaultValueFactory = _ => "256,256,256,256" };
        var anchors = new Option<string?>("--anchor-sizes") { Description = "anchor size per FPN level, e.g. 16,32,64,128,256 (default 32,64,128,256,512)" };
        var schedule = new Option<LearningRateDecay>("--schedule") { Description = "learning-rate decay: Step or Cosine", DefaultValueFactory = _ => LearningRateDecay.Step };
        var warmup = new Option<int>("--warmup") { Description = "warm-up steps", DefaultValueFactory = _ => 100 };
        var jitter = new Option<double>("--color-jitter") { Description = "brightness/contrast jitter strength (0: off)" };
        var scales = new Option<string?>("--multi-scale") { Description = "extra shorter-side sizes drawn at random in training, e.g. 224,288 (inference uses --min-size)" };
        var seed = new Option<int>("--seed") { DefaultValueFactory = _ => 0 };
        var predictorInit = new Option<PredictorInit>("--predictor-init")
        {
            Description = "box/mask predictor initialisation: Torchvision, or SmallNormal (detectron2's; starts from-scratch training faster)",
            DefaultValueFactory = _ => PredictorInit.Torchvision,
        };
        var threads = new Option<int?>("--threads") { Description = "libtorch threads (default: all cores)" };
        var command = new Command("train", "Train Mask R-CNN on your own labelled images")
        {
            format, trainJson, trainImages, valJson, valImages, defaultClass, classAttribute, output, epochs, minutes, batch, accumulate, lr,
            size, maxSize, depth, norm, trainable, init, resume, checkpointEvery, validateEvery, fpnChannels, rois, boxHead, maskHead, anchors, schedule, warmup, jitter, scales, seed, predictorInit, threads,
        };
        var badAnnotations = DatasetLoader.BadAnnotationsOption();
        command.Options.Add(badAnnotations);
        command.Validators.Add(r =>
        {
            if (r.GetValue(epochs) is not null && r.GetValue(minutes) is not null)
            {
                r.AddError("give --epochs or --minutes, not both");
            }
        });
        command.SetAction((parse, ct) =>
        {
            ct = Program.Link(ct);
            Program.SetThreads(parse.GetValue(threads));
            var f = parse.GetValue(format);
            var train = DatasetLoader.Load(f, parse.GetValue(trainJson)!, parse.GetValue(trainImages), parse.GetValue(defaultClass), parse.GetValue(classAttribute), parse.GetValue(badAnnotations));
            var valPath = parse.GetValue(valJson);
            var val = valPath is null ? null : DatasetLoader.Load(f, valPath, parse.GetValue(valImages), parse.GetValue(defaultClass), parse.GetValue(classAttribute), parse.GetValue(badAnnotations));
            var mins = parse.GetValue(minutes);
            var settings = new TrainSettings(train, val, parse.GetValue(output)!, parse.GetValue(epochs) ?? (mins is null ? 12 : 1000), parse.GetValue(batch), parse.GetValue(lr),
                parse.GetValue(size), parse.GetValue(maxSize), ParseBackbone(parse.GetValue(depth)!), parse.GetValue(norm), parse.GetValue(trainable) ?? (parse.GetValue(init) is null ? 5 : 3),
                parse.GetValue(init), parse.GetValue(seed))
            {
                Minutes = mins,
                Resume = parse.GetValue(resume),
                CheckpointEvery = parse.GetValue(checkpointEvery),
                Accumulation = parse.GetValue(accumulate),
                ValidateEvery = Math.Max(1, parse.GetValue(validateEvery)),
                FpnChannels = parse.GetValue(fpnChannels),
                RoIsPerImage = parse.GetValue(rois),
                BoxHeadSize = parse.GetValue(boxHead),
                MaskHead = ParseNumbers(parse.GetValue(maskHead)!, "--mask-head").Select(x => (int)x).ToArray(),
                AnchorSizes = parse.GetValue(anchors) is { } a ? ParseNumbers(a, "--anchor-sizes").Select(x => (IReadOnlyList<double>)[x]).ToArray() : null,
                Decay = parse.GetValue(schedule),
                WarmupSteps = parse.GetValue(warmup),
                ColorJitter = parse.GetValue(jitter),
                MoreMinSizes = parse.GetValue(scales) is { } m ? ParseNumbers(m, "--multi-scale").Select(x => (int)x).ToArray() : [],
                PredictorInit = parse.GetValue(predictorInit),
            };
            using var model = Run(settings, ct);
            return Task.FromResult(0);
        });
        return command;
    }

    /// <summary>Parses a comma-separated list of positive numbers.</summary>
    public static double[] ParseNumbers(string text, string option)
    {
        var parts = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var values = new double[parts.Length];
        for (var i = 0; i < parts.Length; i++)
        {
            if (!double.TryParse(parts[i], System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out values[i]) || !(values[i] > 0))
            {
                throw new ArgumentException($"{option} {text}: '{parts[i]}' is not a positive number");
            }
        }

        return values.Length > 0 ? values : throw new ArgumentException($"{option} needs at least one number");
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

        throw new ArgumentException($"--backbone {name} is not one of resnet18, resnet34, resnet50, resnet101, resnet152");
    }

    /// <summary>The model configuration a run trains.</summary>
    public static MaskRcnnBuilder Builder(TrainSettings s)
    {
        var classes = s.Train.ClassNames.Skip(1).ToArray();
        var builder = new MaskRcnnBuilder()
            .WithClasses(classes)
            .WithBackbone(s.Depth, s.Norm, s.TrainableLayers, outChannels: s.FpnChannels)
            // torchvision's transform resizes to the last of its min sizes at inference: put --min-size last.
            .WithImageSize(s.MoreMinSizes.Length > 0 ? s.MoreMinSizes[0] : s.ImageSize, s.MaxSize, [.. s.MoreMinSizes.Skip(1), .. s.MoreMinSizes.Length > 0 ? [s.ImageSize] : Array.Empty<int>()])
            .WithRpn(new RpnOptions(PreNmsTopNTrain: 1000, PostNmsTopNTrain: 1000, PreNmsTopNTest: 1000, PostNmsTopNTest: 500))
            .WithRoIHeads(new RoIHeadsOptions(BatchSizePerImage: s.RoIsPerImage))
            .WithHeadSizes(s.BoxHeadSize, s.MaskHead, s.MaskHead[^1])
            .WithPredictorInit(s.PredictorInit);
        if (s.AnchorSizes is not null)
        {
            builder.WithAnchors(s.AnchorSizes, Enumerable.Repeat<IReadOnlyList<double>>([0.5, 1.0, 2.0], s.AnchorSizes.Count).ToArray());
        }

        return builder;
    }

    /// <summary>Builds (or restores), trains, validates and saves; returns the trained model (evaluation mode).</summary>
    public static MaskRcnnModel Run(TrainSettings s, CancellationToken ct)
    {
        Directory.CreateDirectory(s.OutputDir);
        using var logger = new ConsoleLogger();
        logger.AddFile(s.LogPath);
        // One private random stream for initialisation and training (saved in checkpoints, restored on resume), so
        // the run does not depend on anything else in the process drawing from libtorch's default generator.
        using var generator = new Core.RandomGenerator((ulong)s.Seed);
        using var generatorScope = Core.RandomGenerator.Use(generator);
        var resuming = s.Resume && File.Exists(s.CheckpointPath);
        if (s.Resume && !resuming)
        {
            logger.LogWarning("--resume: {Path} does not exist, starting from scratch", s.CheckpointPath);
        }

        logger.LogInformation("training set: {Images} images ({Annotations} annotations), classes: {Classes}", s.Train.Count,
            Enumerable.Range(0, s.Train.Count).Sum(i => s.Train.GetSample(i).Annotations.Count), string.Join(", ", s.Train.ClassNames.Skip(1)));
        MaskRcnnBuilder builder;
        if (resuming)
        {
            // The architecture comes from the checkpoint, so a resumed run cannot silently change it.
            var metadata = TrainingCheckpoint.ReadMetadata(s.CheckpointPath);
            if (!metadata.TryGetValue(MaskRcnnModel.ConfigMetadataKey, out var json))
            {
                throw new CheckpointFormatException(s.CheckpointPath, "the checkpoint has no model configuration", MaskRcnnModel.ConfigMetadataKey);
            }

            builder = new MaskRcnnBuilder(MaskRcnnConfig.FromJson(json));
        }
        else
        {
            builder = Builder(s);
            if (s.InitWeights is not null)
            {
                builder.WithWeights(s.InitWeights, strict: true, skipShapeMismatches: true);
            }
        }

        var model = builder.Build();
        try
        {
            if (resuming)
            {
                EvalCommand.CheckClasses(model, s.Train);
            }

            if (s.Validation is not null)
            {
                EvalCommand.CheckClasses(model, s.Validation);
            }

            ITransform augmentation = s.ColorJitter > 0
                ? new Compose(new RandomHorizontalFlip(0.5), new ColorJitter(s.ColorJitter, s.ColorJitter))
                : new RandomHorizontalFlip(0.5);
            var loader = new DataLoader(s.Train, new DataLoaderOptions(s.BatchSize, Shuffle: true, Seed: s.Seed, Prefetch: 2, Augmentation: augmentation));
            var options = new TrainerOptions(Epochs: s.Epochs, LearningRate: s.LearningRate, WarmupIterations: Math.Min(s.WarmupSteps, loader.BatchCount * 2))
            {
                Decay = s.Decay,
                GradientAccumulation = s.Accumulation,
                TimeBudget = s.Minutes is { } m ? TimeSpan.FromMinutes(m) : null,
                CheckpointPath = s.CheckpointPath,
                CheckpointEvery = s.CheckpointEvery,
                CheckpointMetadata = new Dictionary<string, string> { [MaskRcnnModel.ConfigMetadataKey] = model.Config.ToJson() },
                ResumeFrom = resuming ? s.CheckpointPath : null,
            };
            var trainer = new Trainer(model, options, logger);
            var bar = ConsoleLogger.IsTerminal ? new ProgressBar(logger, s.Minutes is null ? s.Epochs : 0) : null;
            if (bar is not null)
            {
                logger.ConsoleMinimum = LogLevel.Warning; // iteration lines go to the log file; epoch lines are re-logged below
            }

            var clock = Stopwatch.StartNew();
            var result = trainer.Train(loader, bar, summary =>
            {
                logger.Always($"epoch {summary.Epoch + 1}: mean loss {summary.MeanTotalLoss:F4} ({summary.Duration.TotalSeconds:F0} s)");
                if (s.Validation is not null && (summary.Epoch == s.Epochs - 1 || (summary.Epoch + 1) % s.ValidateEvery == 0))
                {
                    var eval = ModelEvaluation.Evaluate(model, s.Validation, cancellationToken: ct);
                    logger.Always($"epoch {summary.Epoch + 1} validation: box AP {eval.Boxes.AP:F3} AP50 {eval.Boxes.AP50:F3}, mask AP {eval.Masks?.AP ?? -1:F3} AP50 {eval.Masks?.AP50 ?? -1:F3}");
                }
            }, ct);
            logger.ClearBar();
            logger.ConsoleMinimum = LogLevel.Information;
            logger.LogInformation("trained {Steps} steps in {Minutes:F1} min this session ({Total:F1} min in all, {Reason})", result.Steps, clock.Elapsed.TotalMinutes,
                result.Elapsed.TotalMinutes, result.StopReason == TrainingStopReason.TimeBudget ? "time budget reached" : "completed");
            if (s.Validation is not null && s.Minutes is not null)
            {
                var eval = ModelEvaluation.Evaluate(model, s.Validation, cancellationToken: ct);
                logger.LogInformation("validation: box AP {BoxAp:F3} AP50 {BoxAp50:F3}, mask AP {MaskAp:F3} AP50 {MaskAp50:F3}",
                    eval.Boxes.AP, eval.Boxes.AP50, eval.Masks?.AP ?? -1, eval.Masks?.AP50 ?? -1);
            }

            model.Save(s.ModelPath);
            logger.LogInformation("saved {Path} (+ {Json}); training log {Log}", s.ModelPath, Path.ChangeExtension(s.ModelPath, ".json"), s.LogPath);
            return model;
        }
        catch (OperationCanceledException)
        {
            logger.ClearBar();
            model.Dispose();
            Console.Error.WriteLine($"interrupted: continue with the same command plus --resume (checkpoint {s.CheckpointPath})");
            throw;
        }
        catch
        {
            logger.ClearBar();
            model.Dispose();
            throw;
        }
    }
}
