using System.CommandLine;
using System.Diagnostics;
using MaskRcnn.Net.Backbones;
using MaskRcnn.Net.Core.Checkpoints;
using MaskRcnn.Net.Heads;
using MaskRcnn.Net.Training;
using Microsoft.Extensions.Logging;

namespace MaskRcnn.Net.Cli;

/// <summary>Settings of one training run (shared by <c>train</c> and <c>demo</c>): the recipe plus what only the CLI does.</summary>
internal sealed record TrainSettings(IDetectionDataset Train, IDetectionDataset? Validation, string OutputDir, TrainingRecipe Recipe, int Seed)
{
    /// <summary>Continue from OutputDir/checkpoint.safetensors when it exists.</summary>
    public bool Resume { get; init; }

    /// <summary>Also checkpoint every this many optimizer steps (0: at epoch ends only).</summary>
    public int CheckpointEvery { get; init; }

    /// <summary>Batches per optimizer step.</summary>
    public int Accumulation { get; init; } = 1;

    /// <summary>Validate every this many epochs (and after the last).</summary>
    public int ValidateEvery { get; init; } = 4;

    /// <summary>Extra shorter-side sizes for multi-scale training.</summary>
    public int[] MoreMinSizes { get; init; } = [];

    /// <summary>The options given on the command line that replaced the recipe's choice.</summary>
    public IReadOnlyList<string> Overrides { get; init; } = [];

    /// <summary>This process's place in a data-parallel job (null: one process).</summary>
    public Core.Distributed.DistributedOptions? Distributed { get; init; }

    /// <summary>Whether this process logs, validates and saves (rank 0, or the only process).</summary>
    public bool IsRankZero => Distributed is null || Distributed.Rank == 0;

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
        const string Recipe = " (default: chosen from the data, see the log)";
        var epochs = new Option<int?>("--epochs") { Description = "passes over the training data" + Recipe };
        var minutes = new Option<double?>("--minutes") { Description = "train for this many minutes instead of a number of epochs" };
        var batch = new Option<int?>("--batch-size") { Description = "images per batch" + Recipe };
        var accumulate = new Option<int>("--accumulate") { Description = "batches per optimizer step (gradient accumulation)", DefaultValueFactory = _ => 1 };
        var lr = new Option<double?>("--lr") { Description = "base learning rate" + Recipe };
        var optimizer = new Option<string?>("--optimizer")
        {
            Description = "sgd (momentum 0.9, weight decay 1e-4; the default) or adamw (the recipe then picks lr 1e-4, decoupled weight decay 0.05, as MMDetection's AdamW Mask R-CNN; --lr still overrides)",
        };
        var size = new Option<int?>("--min-size") { Description = "shorter side after resizing" + Recipe };
        var maxSize = new Option<int?>("--max-size") { Description = "longer side limit" + Recipe };
        var depth = new Option<string?>("--backbone") { Description = "resnet18, resnet34, resnet50, resnet101 or resnet152" + Recipe };
        var norm = new Option<NormKind?>("--norm") { Description = "BatchNorm, FrozenBatchNorm or GroupNorm" + Recipe };
        var trainable = new Option<int?>("--trainable-layers") { Description = "backbone stages trained, 0-5" + Recipe };
        var init = new Option<string?>("--weights") { Description = "initial weights to fine-tune, e.g. torchvision COCO maskrcnn_resnet50_fpn (class layers re-initialised)" };
        var pretrained = new Option<string>("--pretrained")
        {
            Description = "backbone start without --weights: auto (the ImageNet ResNet-18 when its package is restored, else none), imagenet-resnet18, none, or a path to ResNet18.onnx",
            DefaultValueFactory = _ => "auto",
        };
        var resume = new Option<bool>("--resume") { Description = "continue from OUT/checkpoint.safetensors (weights, optimizer, position)" };
        var checkpointEvery = new Option<int>("--checkpoint-every") { Description = "also checkpoint every N optimizer steps (default: every epoch)" };
        var validateEvery = new Option<int>("--validate-every") { Description = "validate every N epochs", DefaultValueFactory = _ => 4 };
        var fpnChannels = new Option<int?>("--fpn-channels") { Description = "FPN (and head) channels" + Recipe };
        var rois = new Option<int?>("--rois-per-image") { Description = "RoIs sampled per image for the box and mask heads" + Recipe };
        var boxHead = new Option<int?>("--box-head-size") { Description = "box head representation size" + Recipe };
        var maskHead = new Option<string?>("--mask-head") { Description = "mask head conv channels per layer, e.g. 128,128,128,128" + Recipe };
        var anchors = new Option<string?>("--anchor-sizes") { Description = "anchor size per FPN level, e.g. 16,32,64,128,256" + Recipe };
        var schedule = new Option<LearningRateDecay?>("--schedule") { Description = "learning-rate decay: Step or Cosine" + Recipe };
        var warmup = new Option<int?>("--warmup") { Description = "warm-up steps" + Recipe };
        var jitter = new Option<double?>("--color-jitter") { Description = "brightness/contrast jitter strength, 0 for none (horizontal flips are always on)" + Recipe };
        var scales = new Option<string?>("--multi-scale") { Description = "extra shorter-side sizes drawn at random in training, e.g. 224,288 (inference uses --min-size)" };
        var seed = new Option<int>("--seed") { DefaultValueFactory = _ => 0 };
        var predictorInit = new Option<PredictorInit?>("--predictor-init")
        {
            Description = "box/mask predictor initialisation: Torchvision, or SmallNormal (detectron2's)" + Recipe,
        };
        var threads = new Option<int?>("--threads") { Description = "libtorch threads (default: all cores)" };
        var suppress = new Option<string?>("--suppress-contained")
        {
            Description = "the saved model drops detections lying at least this fraction (0-1] inside a higher-scoring one of the same class, or 'off'" + Recipe,
        };
        var maskScoring = new Option<string?>("--mask-scoring")
        {
            Description = "the saved model multiplies each score by its mask's confidence and sorts by the result: on or off" + Recipe,
        };
        var alignedRoIAlign = new Option<string?>("--aligned-roi-align")
        {
            Description = "RoIAlign's half-pixel correction (detectron2's ROIAlignV2) in the box and mask poolers and the mask targets: on or off; saved with the model" + Recipe,
        };
        var nproc = new Option<int>("--nproc-per-node")
        {
            Description = "data-parallel training: start this many worker processes on this machine, the cores split between them (torchrun-style; each has --batch-size images, default the recipe's batch split over all ranks)",
            DefaultValueFactory = _ => 1,
        };
        var nnodes = new Option<int>("--nnodes") { Description = "machines in the job (run the same command on each, with its --node-rank)", DefaultValueFactory = _ => 1 };
        var nodeRank = new Option<int>("--node-rank") { Description = "this machine's index, 0 … nnodes-1 (node 0 serves the store)", DefaultValueFactory = _ => 0 };
        var masterAddr = new Option<string>("--master-addr") { Description = "node 0's address (with --nnodes > 1)", DefaultValueFactory = _ => "127.0.0.1" };
        var masterPort = new Option<int>("--master-port") { Description = "node 0's store port (with --nnodes > 1)", DefaultValueFactory = _ => Core.Distributed.DistributedOptions.DefaultPort };
        var distTimeout = new Option<double?>("--dist-timeout") { Description = "seconds a rank waits for the others (rendezvous, each collective, rank 0's validation) before failing; default 600" };
        var command = new Command("train", "Train Mask R-CNN on your own labelled images")
        {
            format, trainJson, trainImages, valJson, valImages, defaultClass, classAttribute, output, epochs, minutes, batch, accumulate, lr, optimizer,
            size, maxSize, depth, norm, trainable, init, pretrained, resume, checkpointEvery, validateEvery, fpnChannels, rois, boxHead, maskHead, anchors, schedule, warmup, jitter, scales, seed, predictorInit, threads, suppress, maskScoring, alignedRoIAlign,
        };
        var badAnnotations = DatasetLoader.BadAnnotationsOption();
        command.Options.Add(badAnnotations);
        foreach (var option in new Option[] { nproc, nnodes, nodeRank, masterAddr, masterPort, distTimeout })
        {
            command.Options.Add(option);
        }

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
            var timeout = parse.GetValue(distTimeout) is { } seconds ? TimeSpan.FromSeconds(seconds) : (TimeSpan?)null;
            // A worker (of our launcher, torchrun, Slurm, …) finds its rank in the environment; otherwise
            // --nproc-per-node / --nnodes make this process the launcher.
            var distributed = Core.Distributed.DistributedOptions.FromEnvironment();
            if (distributed is { WorldSize: 1 })
            {
                distributed = null; // a job of one: train as one process, no store, no port
            }

            if (distributed is not null && timeout is { } t1 && Environment.GetEnvironmentVariable("MASKRCNN_DIST_TIMEOUT") is null)
            {
                distributed = distributed with { Timeout = t1 };
            }

            if (distributed is null && (parse.GetValue(nproc) > 1 || parse.GetValue(nnodes) > 1))
            {
                var plan = new DistributedLauncher.Plan(parse.GetValue(nproc), parse.GetValue(nnodes), parse.GetValue(nodeRank),
                    parse.GetValue(masterAddr)!, parse.GetValue(masterPort), timeout ?? TimeSpan.FromMinutes(10));
                return Task.FromResult(DistributedLauncher.Run(plan, parse.GetValue(threads), parse.GetValue(output)!, ct));
            }

            Program.SetThreads(parse.GetValue(threads));
            var f = parse.GetValue(format);
            var train = DatasetLoader.Load(f, parse.GetValue(trainJson)!, parse.GetValue(trainImages), parse.GetValue(defaultClass), parse.GetValue(classAttribute), parse.GetValue(badAnnotations));
            var valPath = parse.GetValue(valJson);
            var val = valPath is null ? null : DatasetLoader.Load(f, valPath, parse.GetValue(valImages), parse.GetValue(defaultClass), parse.GetValue(classAttribute), parse.GetValue(badAnnotations));
            var mins = parse.GetValue(minutes);
            var request = new RecipeRequest
            {
                Weights = parse.GetValue(init),
                TimeBudget = mins is { } m ? TimeSpan.FromMinutes(m) : null,
                Epochs = parse.GetValue(epochs),
                Optimizer = ParseOptimizer(parse.GetValue(optimizer)),
            };
            request = ParsePretrained(parse.GetValue(pretrained)!, request);
            var recipe = TrainingRecipe.For(train, request);
            var overrides = new List<string>();

            T? Given<T>(Option<T?> option) where T : struct
            {
                var v = parse.GetValue(option);
                if (v is not null)
                {
                    overrides.Add(option.Name);
                }

                return v;
            }

            string? GivenText(Option<string?> option)
            {
                var v = parse.GetValue(option);
                if (v is not null)
                {
                    overrides.Add(option.Name);
                }

                return v;
            }

            recipe = recipe with
            {
                BatchSize = Given(batch) ?? recipe.BatchSize,
                LearningRate = Given(lr) ?? recipe.LearningRate,
                ImageSize = Given(size) ?? recipe.ImageSize,
                MaxSize = Given(maxSize) ?? recipe.MaxSize,
                Depth = GivenText(depth) is { } d ? ParseBackbone(d) : recipe.Depth,
                Norm = Given(norm) ?? recipe.Norm,
                TrainableLayers = Given(trainable) ?? recipe.TrainableLayers,
                FpnChannels = Given(fpnChannels) ?? recipe.FpnChannels,
                RoIsPerImage = Given(rois) ?? recipe.RoIsPerImage,
                BoxHeadSize = Given(boxHead) ?? recipe.BoxHeadSize,
                MaskHead = GivenText(maskHead) is { } mh ? ParseNumbers(mh, "--mask-head").Select(x => (int)x).ToArray() : recipe.MaskHead,
                AnchorSizes = GivenText(anchors) is { } a ? ParseNumbers(a, "--anchor-sizes") : recipe.AnchorSizes,
                Decay = Given(schedule) ?? recipe.Decay,
                WarmupSteps = Given(warmup) ?? recipe.WarmupSteps,
                PredictorInit = Given(predictorInit) ?? recipe.PredictorInit,
                ColorJitter = Given(jitter) ?? recipe.ColorJitter,
            };
            if (recipe.PretrainedPath is not null && (recipe.Depth != 18 || recipe.Norm != NormKind.FrozenBatchNorm) && request.Pretrained == PretrainedChoice.Auto)
            {
                recipe = recipe with
                {
                    PretrainedPath = null,
                    Choices = [.. recipe.Choices, new RecipeChoice("--pretrained", "none",
                        $"--backbone resnet{recipe.Depth} / --norm {recipe.Norm} given: the ImageNet ResNet-18 (frozen batch norm) does not fit, training from scratch")],
                };
            }

            if (GivenText(suppress) is { } sc)
            {
                recipe = recipe with { SuppressContained = PredictCommand.ParseSuppress(sc) };
            }

            if (GivenText(maskScoring) is { } scoring)
            {
                recipe = recipe with { MaskScoring = PredictCommand.ParseMaskScoring(scoring) };
            }

            if (GivenText(alignedRoIAlign) is { } aligned)
            {
                recipe = recipe with { AlignedRoIAlign = PredictCommand.ParseOnOff("--aligned-roi-align", aligned) };
            }

            if (recipe.PretrainedPath is not null && (recipe.Depth != 18 || recipe.Norm != NormKind.FrozenBatchNorm))
            {
                throw new ArgumentException(
                    $"the pretrained backbone is a ResNet-18 with frozen batch norm; --backbone resnet{recipe.Depth} / --norm {recipe.Norm} need --pretrained none");
            }

            if (distributed is { WorldSize: > 1 } && !overrides.Contains(batch.Name))
            {
                var perRank = Math.Max(1, recipe.BatchSize / distributed.WorldSize);
                recipe = recipe with
                {
                    Choices = [.. recipe.Choices, new RecipeChoice("--batch-size", $"{perRank} per rank",
                        $"the recipe's batch of {recipe.BatchSize} split over {distributed.WorldSize} ranks (effective batch {perRank * distributed.WorldSize})")],
                    BatchSize = perRank,
                };
            }

            var settings = new TrainSettings(train, val, parse.GetValue(output)!, recipe, parse.GetValue(seed))
            {
                Distributed = distributed,
                Resume = parse.GetValue(resume),
                CheckpointEvery = parse.GetValue(checkpointEvery),
                Accumulation = parse.GetValue(accumulate),
                ValidateEvery = Math.Max(1, parse.GetValue(validateEvery)),
                MoreMinSizes = parse.GetValue(scales) is { } ms ? ParseNumbers(ms, "--multi-scale").Select(x => (int)x).ToArray() : [],
                Overrides = overrides,
            };
            using var model = Run(settings, ct);
            return Task.FromResult(0);
        });
        return command;
    }

    /// <summary>Parses --optimizer: sgd (also when not given) or adamw, in any case.</summary>
    /// <exception cref="ArgumentException">Anything else; the message names --optimizer and the choices.</exception>
    public static OptimizerKind ParseOptimizer(string? value) => value?.Trim().ToLowerInvariant() switch
    {
        null or "sgd" => OptimizerKind.Sgd,
        "adamw" => OptimizerKind.AdamW,
        _ => throw new ArgumentException($"--optimizer {value}: expected sgd or adamw"),
    };

    /// <summary>Parses --pretrained: auto, imagenet-resnet18, none, or a path to ResNet18.onnx.</summary>
    public static RecipeRequest ParsePretrained(string value, RecipeRequest request) => value.ToLowerInvariant() switch
    {
        "auto" => request with { Pretrained = PretrainedChoice.Auto },
        "imagenet-resnet18" => request with { Pretrained = PretrainedChoice.ImageNetResNet18 },
        "none" => request with { Pretrained = PretrainedChoice.None },
        _ when value.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase) =>
            File.Exists(value) ? request with { Pretrained = PretrainedChoice.ImageNetResNet18, PretrainedPath = value }
                : throw new FileNotFoundException($"--pretrained {value}: file not found", value),
        _ => throw new ArgumentException($"--pretrained {value}: expected auto, imagenet-resnet18, none or a path to ResNet18.onnx"),
    };

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
        var builder = s.Recipe.CreateBuilder(s.Train.ClassNames);
        if (s.MoreMinSizes.Length > 0)
        {
            // torchvision's transform resizes to the last of its min sizes at inference: put --min-size last.
            builder.WithImageSize(s.MoreMinSizes[0], s.Recipe.MaxSize, [.. s.MoreMinSizes.Skip(1), s.Recipe.ImageSize]);
        }

        return builder;
    }

    /// <summary>Draws DIR/training.png; a drawing failure is logged, never fails the run.</summary>
    private static void SaveChart(TrainingChart? chart, ILogger logger)
    {
        if (chart is null)
        {
            return;
        }

        try
        {
            chart.Save();
            logger.LogInformation("training chart {Path}", chart.PngPath);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            logger.LogWarning("could not draw {Path}: {Message}", chart.PngPath, e.Message);
        }
    }

    /// <summary>Builds (or restores), trains, validates and saves; returns the trained model (evaluation mode).</summary>
    public static MaskRcnnModel Run(TrainSettings s, CancellationToken ct)
    {
        Directory.CreateDirectory(s.OutputDir);
        // Rank 0 logs (console and train.log); the other ranks print only warnings and errors.
        using var logger = new ConsoleLogger(s.IsRankZero ? LogLevel.Information : LogLevel.Warning);
        if (s.IsRankZero)
        {
            logger.AddFile(s.LogPath);
        }

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
        foreach (var choice in s.Recipe.Choices)
        {
            var overridden = choice.Setting.Split('/').Any(s.Overrides.Contains);
            logger.LogInformation("recipe: {Choice}{Override}", choice, overridden ? " (overridden on the command line)" : "");
        }

        if (s.Overrides.Count > 0)
        {
            logger.LogInformation("given on the command line: {Options}", string.Join(", ", s.Overrides));
        }
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
        }

        var model = builder.Build();
        TrainingChart? chart = null;
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

            var r = s.Recipe;
            var augmentation = r.CreateAugmentation(); // refuses a bad --color-jitter before anything is logged or trained
            logger.LogInformation("augmentation: horizontal flips (p = 0.5){Jitter}",
                r.ColorJitter > 0 ? string.Create(System.Globalization.CultureInfo.InvariantCulture, $", brightness/contrast jitter {r.ColorJitter:G4}") : "");
            var loader = new DataLoader(s.Train, new DataLoaderOptions(r.BatchSize, Shuffle: true, Seed: s.Seed, Prefetch: 2, Augmentation: augmentation)
            {
                Sampler = s.Distributed is { } d ? new DistributedSampler(d.Rank, d.WorldSize) : null,
            });
            var options = r.CreateTrainerOptions() with
            {
                WarmupIterations = Math.Min(r.WarmupSteps, loader.BatchCount * 2),
                GradientAccumulation = s.Accumulation,
                CheckpointPath = s.CheckpointPath,
                CheckpointEvery = s.CheckpointEvery,
                CheckpointMetadata = new Dictionary<string, string> { [MaskRcnnModel.ConfigMetadataKey] = model.Config.ToJson() },
                ResumeFrom = resuming ? s.CheckpointPath : null,
                Distributed = s.Distributed,
            };
            var trainer = new Trainer(model, options, logger);
            var bar = ConsoleLogger.IsTerminal && s.IsRankZero ? new ProgressBar(logger, r.TimeBudget is null ? r.Epochs : 0) : null;
            if (bar is not null)
            {
                logger.ConsoleMinimum = LogLevel.Warning; // iteration lines go to the log file; epoch lines are re-logged below
            }

            var clock = Stopwatch.StartNew();
            chart = s.IsRankZero ? new TrainingChart(s.OutputDir, bar, resuming) : null;
            var result = trainer.Train(loader, chart, summary =>
            {
                // Only rank 0 runs this (the trainer's rule), so the chart exists.
                logger.Always($"epoch {summary.Epoch + 1}: mean loss {summary.MeanTotalLoss:F4} ({summary.Duration.TotalSeconds:F0} s)");
                if (s.Validation is not null && (summary.Epoch == r.Epochs - 1 || (summary.Epoch + 1) % s.ValidateEvery == 0))
                {
                    ModelEvaluationResult eval;
                    try
                    {
                        eval = ModelEvaluation.Evaluate(model, s.Validation, cancellationToken: ct);
                    }
                    catch (OperationCanceledException) when (s.Distributed is not null)
                    {
                        // The other ranks wait for this one: the trainer stops them all together at its next step.
                        logger.LogWarning("validation cancelled");
                        return;
                    }

                    chart!.ReportValidation(chart.LastStep, summary.Epoch, eval.Boxes.AP, eval.Masks?.AP);
                    logger.Always($"epoch {summary.Epoch + 1} validation: box AP {eval.Boxes.AP:F3} AP50 {eval.Boxes.AP50:F3}, mask AP {eval.Masks?.AP ?? -1:F3} AP50 {eval.Masks?.AP50 ?? -1:F3}");
                }
            }, ct);
            logger.ClearBar();
            if (!s.IsRankZero)
            {
                return model; // rank 0 validates and saves
            }

            logger.ConsoleMinimum = LogLevel.Information;
            logger.LogInformation("trained {Steps} steps in {Minutes:F1} min this session ({Total:F1} min in all, {Reason})", result.Steps, clock.Elapsed.TotalMinutes,
                result.Elapsed.TotalMinutes, result.StopReason == TrainingStopReason.TimeBudget ? "time budget reached" : "completed");
            if (s.Validation is not null && r.TimeBudget is not null)
            {
                var eval = ModelEvaluation.Evaluate(model, s.Validation, cancellationToken: ct);
                chart!.ReportValidation(chart.LastStep, (int)(chart.LastStep / Math.Max(1, loader.BatchCount)), eval.Boxes.AP, eval.Masks?.AP);
                logger.LogInformation("validation: box AP {BoxAp:F3} AP50 {BoxAp50:F3}, mask AP {MaskAp:F3} AP50 {MaskAp50:F3}",
                    eval.Boxes.AP, eval.Boxes.AP50, eval.Masks?.AP ?? -1, eval.Masks?.AP50 ?? -1);
            }

            SaveChart(chart, logger);
            model.Save(s.ModelPath);
            logger.LogInformation("saved {Path} (+ {Json}); training log {Log}", s.ModelPath, Path.ChangeExtension(s.ModelPath, ".json"), s.LogPath);
            return model;
        }
        catch (OperationCanceledException)
        {
            logger.ClearBar();
            SaveChart(chart, logger);
            model.Dispose();
            if (s.IsRankZero)
            {
                Console.Error.WriteLine($"interrupted: continue with the same command plus --resume (checkpoint {s.CheckpointPath})");
            }

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
