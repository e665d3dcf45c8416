using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using MaskRcnn.Net.Core.Imaging;

namespace MaskRcnn.Net.Cli;

/// <summary>
/// <c>maskrcnn predict --weights FILE [--num-classes 91] [--score-threshold 0.05] [--warmup] --json OUT.json
/// [--overlay-dir DIR] IMAGE...</c>
/// </summary>
internal static class PredictCommand
{
    public static Command Create()
    {
        var weights = new Option<string>("--weights") { Description = "torchvision maskrcnn_resnet50_fpn state dict (.pth, .safetensors) or a model saved by MaskRcnn.Net", Required = true };
        var numClasses = new Option<int?>("--num-classes") { Description = "classes including background for a torchvision state dict (default 91)" };
        var scoreThreshold = new Option<double>("--score-threshold") { Description = "minimum detection score", DefaultValueFactory = _ => 0.05 };
        var warmup = new Option<bool>("--warmup") { Description = "run each image once untimed before the timed run" };
        var json = new Option<string>("--json") { Description = "output JSON file", Required = true };
        var overlayDir = new Option<string?>("--overlay-dir") { Description = "write each image with its detections drawn here" };
        var threads = new Option<int?>("--threads") { Description = "libtorch intra-op threads" };
        var normEps = NormEpsOption();
        var suppress = SuppressOption();
        var images = new Argument<string[]>("IMAGE") { Arity = ArgumentArity.OneOrMore, Description = "JPEG or PNG files" };
        var command = new Command("predict", "Detect and segment objects in images")
        {
            weights, numClasses, scoreThreshold, warmup, json, overlayDir, threads, normEps, suppress, images,
        };
        command.SetAction(parse => Run(
            parse.GetValue(weights)!, parse.GetValue(numClasses), parse.GetValue(scoreThreshold), parse.GetValue(warmup),
            parse.GetValue(json)!, parse.GetValue(overlayDir), parse.GetValue(threads), parse.GetValue(images)!, parse.GetValue(normEps), parse.GetValue(suppress)));
        return command;
    }

    private static int Run(string weights, int? numClasses, double scoreThreshold, bool warmup, string jsonPath,
        string? overlayDir, int? threads, string[] images, double normEps, string? suppress)
    {
        Program.SetThreads(threads);

        using var model = LoadModel(weights, numClasses, scoreThreshold, normEps, suppressContained: suppress);
        if (overlayDir is not null)
        {
            Directory.CreateDirectory(overlayDir);
        }

        var results = new List<object>();
        foreach (var path in images)
        {
            using var image = ImageCodec.Decode(path, ImageReadMode.Rgb);
            if (warmup)
            {
                model.Predict(image);
            }

            var sw = Stopwatch.StartNew();
            var result = model.Predict(image);
            var seconds = sw.Elapsed.TotalSeconds;
            Console.Error.WriteLine($"{path}: {result.Detections.Count} detections in {seconds:0.000} s");
            results.Add(PredictionJson.Result(path, result, seconds));
            if (overlayDir is not null)
            {
                var name = Path.GetFileNameWithoutExtension(path) + ".png";
                Visualizer.Save(image, result, Path.Combine(overlayDir, name));
            }
        }

        var dir = Path.GetDirectoryName(Path.GetFullPath(jsonPath));
        if (!string.IsNullOrEmpty(dir))
        {
            Directory.CreateDirectory(dir);
        }

        File.WriteAllText(jsonPath, JsonSerializer.Serialize(new { results }, PredictionJson.Options));
        return 0;
    }

    /// <summary>The <c>--norm-eps</c> option of commands that load torchvision state dicts.</summary>
    internal static Option<double> NormEpsOption() => new("--norm-eps")
    {
        Description = "frozen batch-norm eps for a torchvision state dict (torchvision uses 0 for its COCO_V1 checkpoint, 1e-5 otherwise)",
        DefaultValueFactory = _ => 1e-5,
    };

    /// <summary>The --suppress-contained option: a containment fraction in (0, 1], or off; unset keeps the model's setting.</summary>
    internal static Option<string?> SuppressOption() => new("--suppress-contained")
    {
        Description = "drop detections lying at least this fraction (0-1] inside a higher-scoring one of the same class, or 'off' (default: the model's setting)",
    };

    /// <summary>Applies a --suppress-contained value (null: keep) to a configuration.</summary>
    internal static MaskRcnnConfig ApplySuppress(MaskRcnnConfig c, string? value) =>
        value is null ? c : c with { SuppressContained = ParseSuppress(value) };

    /// <summary>Parses a --suppress-contained value: a fraction in (0, 1], or 'off'/'none' (null).</summary>
    internal static double? ParseSuppress(string value) => value switch
    {
        "off" or "none" => null,
        _ when double.TryParse(value, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var f) && f > 0 && f <= 1 => f,
        _ => throw new ArgumentException($"--suppress-contained {value}: expected a fraction in (0, 1] or 'off'"),
    };

    internal static MaskRcnnModel LoadModel(string weights, int? numClasses, double? scoreThreshold, double normEps = 1e-5, double? nmsThreshold = null,
        string? suppressContained = null) =>
        IsSavedModel(weights, numClasses)
            ? MaskRcnnModel.Load(weights, configure: SavedModelChanges(scoreThreshold, nmsThreshold, suppressContained))
            : TorchvisionBuilder(weights, numClasses, scoreThreshold, normEps, nmsThreshold, suppressContained).Build();

    /// <summary>
    /// True for a model saved by MaskRcnn.Net (its --num-classes, when given, must match), false for a torchvision
    /// state dict.
    /// </summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="ArgumentException">--num-classes differs from the saved model's.</exception>
    internal static bool IsSavedModel(string weights, int? numClasses)
    {
        if (!File.Exists(weights))
        {
            throw new FileNotFoundException($"weights file {weights} does not exist", weights);
        }

        if (!MaskRcnnModel.IsSavedModel(weights))
        {
            return false;
        }

        var savedClasses = MaskRcnnModel.ReadConfig(weights).NumClasses;
        if (numClasses is not null && numClasses != savedClasses)
        {
            throw new ArgumentException($"--num-classes {numClasses} does not match the saved model's {savedClasses} classes");
        }

        return true;
    }

    /// <summary>The command-line changes to a saved model's configuration (null: keep the saved value).</summary>
    internal static Func<MaskRcnnConfig, MaskRcnnConfig> SavedModelChanges(double? scoreThreshold, double? nmsThreshold, string? suppressContained) =>
        c => ApplySuppress(c with
        {
            RoIHeads = c.RoIHeads with
            {
                ScoreThreshold = scoreThreshold ?? c.RoIHeads.ScoreThreshold,
                NmsThreshold = nmsThreshold ?? c.RoIHeads.NmsThreshold,
            },
        }, suppressContained);

    /// <summary>The builder of a model from a torchvision state dict with the command-line settings.</summary>
    internal static MaskRcnnBuilder TorchvisionBuilder(string weights, int? numClasses, double? scoreThreshold, double normEps = 1e-5,
        double? nmsThreshold = null, string? suppressContained = null)
    {
        var builder = new MaskRcnnBuilder().WithNumClasses(numClasses ?? 91)
            .Configure(c => c with { Backbone = c.Backbone with { NormEps = normEps } })
            .WithWeights(weights);
        if (scoreThreshold is { } s)
        {
            builder.WithScoreThreshold(s);
        }

        if (nmsThreshold is { } n)
        {
            builder.WithNmsThreshold(n);
        }

        builder.Configure(c => ApplySuppress(c, suppressContained));
        return builder;
    }
}
