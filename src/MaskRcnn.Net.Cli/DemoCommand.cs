using System.CommandLine;
using System.Diagnostics;
using MaskRcnn.Net.Backbones;
using MaskRcnn.Net.Training;

namespace MaskRcnn.Net.Cli;

/// <summary>
/// <c>maskrcnn demo</c>: trains Mask R-CNN from scratch on the shipped brain-MRI tumour data (COCO JSON from
/// makesense.ai), evaluates it on the held-out patients with COCO AP, and writes the validation images with their
/// predicted masks, boxes and scores drawn on them, and a short colour-splash video of them (splash.mp4).
/// </summary>
internal static class DemoCommand
{
    /// <summary>
    /// The default length of training: 4 epochs (204 steps), about 3 minutes on 2 idle CPU cores. Epochs rather than a
    /// time budget by default, so every run gives the same model.
    /// </summary>
    public const int DefaultEpochs = 4;

    public static Command Create()
    {
        var output = new Option<string>("--out") { Description = "output folder", DefaultValueFactory = _ => Path.Combine("artifacts", "demo") };
        var data = new Option<string?>("--data") { Description = "folder with train/ and val/ (default: the shipped data/brain-tumor)" };
        var minutes = new Option<double?>("--minutes")
        {
            Description = "train for this many minutes instead of a number of epochs; the cosine schedule is planned to end in time",
        };
        var epochs = new Option<int?>("--epochs") { Description = $"epochs to train (default {DefaultEpochs}; deterministic)" };
        var imageSize = new Option<int?>("--image-size") { Description = "longer side after resizing (default: the recipe's choice)" };
        var pretrained = new Option<string>("--pretrained")
        {
            Description = "auto (the ImageNet ResNet-18 when its package is restored, else from scratch), imagenet-resnet18, none, or a path to ResNet18.onnx",
            DefaultValueFactory = _ => "auto",
        };
        var threads = new Option<int?>("--threads");
        var seed = new Option<int>("--seed")
        {
            Description = "seed of the initial weights, RoI sampling, data order and augmentation (default 0)",
            DefaultValueFactory = _ => 0,
        };
        var command = new Command("demo", "Train on the shipped brain-tumour MRI data, evaluate, and draw the predicted masks")
        {
            output, data, minutes, epochs, imageSize, pretrained, threads, seed,
        };
        command.SetAction((parse, ct) =>
        {
            ct = Program.Link(ct);
            Program.SetThreads(parse.GetValue(threads));
            var root = parse.GetValue(data) ?? FindShippedData();
            var outDir = parse.GetValue(output)!;
            Directory.CreateDirectory(outDir);
            var train = CocoDataset.Load(Path.Combine(root, "train", "annotations.json"), Path.Combine(root, "train", "images"));
            var val = CocoDataset.Load(Path.Combine(root, "val", "annotations.json"), Path.Combine(root, "val", "images"));
            var clock = Stopwatch.StartNew();
            var fixedEpochs = parse.GetValue(epochs);
            if (fixedEpochs is not null && parse.GetValue(minutes) is not null)
            {
                throw new ArgumentException("give --epochs or --minutes, not both");
            }

            var budget = parse.GetValue(minutes);
            fixedEpochs ??= budget is null ? DefaultEpochs : null;
            // The demo is the recipe `maskrcnn train` picks, on the shipped data.
            var request = TrainCommand.ParsePretrained(parse.GetValue(pretrained)!, new RecipeRequest
            {
                TimeBudget = budget is { } m ? TimeSpan.FromMinutes(m) : null,
                Epochs = fixedEpochs,
            });
            var recipe = TrainingRecipe.For(train, request);
            var overrides = new List<string>();
            if (parse.GetValue(imageSize) is { } size)
            {
                recipe = recipe with { ImageSize = size, MaxSize = size };
                overrides.Add("--image-size");
            }

            // Validation after every epoch draws the val AP curve in training.png (the full evaluation follows).
            var settings = new TrainSettings(train, val, outDir, recipe, parse.GetValue(seed)) { ValidateEvery = 1, Overrides = overrides };
            using var model = TrainCommand.Run(settings, ct);
            var trainMinutes = clock.Elapsed.TotalMinutes;
            var overlays = Path.Combine(outDir, "overlays");
            var result = EvalCommand.Run(model, val, overlays, ct);
            var report = $"""
                MaskRcnn.Net demo: Mask R-CNN (ResNet-18 + {recipe.FpnChannels}-channel FPN, {(recipe.PretrainedPath is null ? "GroupNorm, trained from scratch" : "ImageNet-pretrained, frozen batch norm")}, small heads) on brain-MRI tumours
                train: {train.Count} images, validation: {val.Count} images (held-out patients), at {recipe.MaxSize} px, {(budget is { } b ? $"budget {b:0.#} min" : $"{recipe.Epochs} epochs")}, seed {settings.Seed}
                training time: {trainMinutes:F1} min on {Core.Torch.NumThreads} threads
                validation box AP {result.Boxes.AP:F3}, AP50 {result.Boxes.AP50:F3}; mask AP {result.Masks?.AP ?? -1:F3}, AP50 {result.Masks?.AP50 ?? -1:F3}
                tumour pixels (union of masks scoring >= 0.5 per image): mean Dice {result.Binary?.MeanDice ?? -1:F3}, mean IoU {result.Binary?.MeanIou ?? -1:F3}

                Boxes (bbox):
                {result.Boxes.Summary}
                Masks (segm):
                {result.Masks?.Summary}
                """;
            File.WriteAllText(Path.Combine(outDir, "metrics.txt"), report);
            Console.WriteLine(report);
            Console.WriteLine($"pictures: {Path.GetFullPath(overlays)}");
            WriteSplashVideo(model, Path.Combine(root, "val", "images"), Path.Combine(outDir, "splash.mp4"), ct);
            return Task.FromResult(0);
        });
        return command;
    }

    /// <summary>
    /// The validation slices as a short colour-splash video beside the pictures (<see cref="DemoVideo"/>); skipped with
    /// a warning when ffmpeg is not installed or fails, and after Ctrl+C.
    /// </summary>
    private static void WriteSplashVideo(MaskRcnnModel model, string imagesDir, string output, CancellationToken ct)
    {
        if (ct.IsCancellationRequested)
        {
            return; // interrupted: the pictures and metrics are written, no video is started
        }

        var images = Directory.EnumerateFiles(imagesDir)
            .Where(f => Path.GetExtension(f).ToLowerInvariant() is ".jpg" or ".jpeg" or ".png")
            .Order(StringComparer.Ordinal).ToList();
        try
        {
            var frames = DemoVideo.WriteSplashAsync(model, images, output, ct).GetAwaiter().GetResult();
            Console.WriteLine($"splash video: {Path.GetFullPath(output)} ({frames} slices at {DemoVideo.Size}x{DemoVideo.Size}, {DemoVideo.FramesPerSecond} frames/s)");
        }
        catch (IOException e) when (e is Video.FfmpegNotFoundException or Video.FfmpegException)
        {
            // The model, metrics and pictures are already written: a missing or failing ffmpeg costs only the video.
            Console.Error.WriteLine($"maskrcnn demo: no splash video: {e.Message}");
        }
    }

    private static string FindShippedData()
    {
        foreach (var start in new[] { Environment.CurrentDirectory, AppContext.BaseDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                var candidate = Path.Combine(dir.FullName, "data", "brain-tumor");
                if (File.Exists(Path.Combine(candidate, "train", "annotations.json")))
                {
                    return candidate;
                }
            }
        }

        throw new DirectoryNotFoundException("the shipped data/brain-tumor folder was not found; pass --data DIR (a folder with train/ and val/)");
    }
}
