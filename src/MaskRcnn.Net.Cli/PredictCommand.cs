using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using MaskRcnn.Net.Core;
using MaskRcnn.Net.Core.Imaging;
using MaskRcnn.Net.Onnx;

namespace MaskRcnn.Net.Cli;

/// <summary>
/// <c>maskrcnn predict --weights FILE [--num-classes 91] [--score-threshold 0.05] [--warmup] --json OUT.json
/// [--overlay-dir DIR] IMAGE...</c>, or <c>maskrcnn predict --onnx MODEL.onnx ...</c> with a model exported by
/// <c>maskrcnn export</c>, run on ONNX Runtime: the same JSON and overlays (images decoded by the same decoder, results
/// through the same post-processing code). With <c>--video IN --out OUT.mp4 [--json OUT.jsonl]</c> instead of IMAGE
/// arguments it segments every frame of a video (<see cref="VideoPredictCommand"/>).
/// </summary>
internal static class PredictCommand
{
    public static Command Create()
    {
        var weights = new Option<string>("--weights") { Description = "torchvision maskrcnn_resnet50_fpn state dict (.pth, .safetensors) or a model saved by MaskRcnn.Net (or give --onnx)" };
        var onnx = new Option<string?>("--onnx") { Description = "a model exported to ONNX by `maskrcnn export`, run with ONNX Runtime instead of libtorch (instead of --weights)" };
        var numClasses = new Option<int?>("--num-classes") { Description = "classes including background for a torchvision state dict (default 91)" };
        var scoreThreshold = new Option<double>("--score-threshold") { Description = "minimum detection score (with --onnx: only above the threshold baked into the export)", DefaultValueFactory = _ => 0.05 };
        var warmup = new Option<bool>("--warmup") { Description = "run each image once untimed before the timed run" };
        var precision = PrecisionOption();
        var profile = new Option<bool>("--profile") { Description = "time each stage of the model (transform, backbone, fpn, rpn, box and mask heads, paste): printed and written to the JSON as \"stages\"" };
        var json = new Option<string?>("--json") { Description = "output JSON file (required for images); with --video: JSON Lines, one line per frame" };
        var overlayDir = new Option<string?>("--overlay-dir") { Description = "write each image with its detections drawn here" };
        var threads = new Option<int?>("--threads") { Description = "libtorch intra-op threads (with --onnx: ONNX Runtime's)" };
        var normEps = NormEpsOption();
        var suppress = SuppressOption();
        var maskScoring = MaskScoringOption();
        var images = new Argument<string[]>("IMAGE") { Arity = ArgumentArity.ZeroOrMore, Description = "JPEG or PNG files (none with --video)" };
        var video = VideoPredictCommand.CreateOptions();
        var command = new Command("predict", "Detect and segment objects in images, or in every frame of a video (--video)")
        {
            weights, onnx, numClasses, scoreThreshold, warmup, profile, precision, json, overlayDir, threads, normEps, suppress, maskScoring, images,
        };
        video.AddTo(command);
        command.SetAction(parse =>
        {
            var onnxPath = parse.GetValue(onnx);
            var weightsPath = parse.GetValue(weights);
            if ((onnxPath is null) == (weightsPath is null))
            {
                throw new ArgumentException("predict needs exactly one model: --weights FILE (libtorch) or --onnx MODEL.onnx (ONNX Runtime)");
            }

            // Images or one video, refused before the model loads when the arguments mix the two.
            var videoRun = video.Parse(parse, parse.GetValue(images)!, parse.GetValue(json),
                [(warmup, parse.GetResult(warmup) is { Implicit: false }), (overlayDir, parse.GetValue(overlayDir) is not null),
                 (profile, parse.GetValue(profile))]);
            if (videoRun is null && parse.GetValue(json) is null)
            {
                throw new ArgumentException("predict needs --json OUT.json for images");
            }

            if (onnxPath is not null)
            {
                var libtorchOnly = new (Option Option, bool Given)[]
                {
                    (numClasses, parse.GetResult(numClasses) is { Implicit: false }), (normEps, parse.GetResult(normEps) is { Implicit: false }),
                    (suppress, parse.GetResult(suppress) is { Implicit: false }), (maskScoring, parse.GetResult(maskScoring) is { Implicit: false }),
                    (profile, parse.GetValue(profile)),
                    (precision, parse.GetResult(precision) is { Implicit: false }),
                };
                if (libtorchOnly.FirstOrDefault(o => o.Given).Option is { } given)
                {
                    throw new ArgumentException($"{given.Name} applies to --weights; an ONNX export carries its classes and post-processing settings in its metadata");
                }

                var explicitScore = parse.GetResult(scoreThreshold) is { Implicit: false };
                if (videoRun is not null)
                {
                    return RunOnnxVideo(onnxPath, explicitScore ? parse.GetValue(scoreThreshold) : null, parse.GetValue(threads), videoRun);
                }

                return RunOnnx(onnxPath, explicitScore ? parse.GetValue(scoreThreshold) : null, parse.GetValue(warmup), parse.GetValue(json)!,
                    parse.GetValue(overlayDir), parse.GetValue(threads), parse.GetValue(images)!, profile: false);
            }

            if (videoRun is not null)
            {
                Program.SetThreads(parse.GetValue(threads));
                using var model = LoadModel(weightsPath!, parse.GetValue(numClasses), parse.GetValue(scoreThreshold), parse.GetValue(normEps),
                    suppressContained: parse.GetValue(suppress), maskScoring: parse.GetValue(maskScoring));
                model.Precision = ParsePrecision(parse.GetValue(precision));
                return VideoPredictCommand.Run(model, videoRun);
            }

            return Run(weightsPath!, parse.GetValue(numClasses), parse.GetValue(scoreThreshold), parse.GetValue(warmup),
                parse.GetValue(json)!, parse.GetValue(overlayDir), parse.GetValue(threads), parse.GetValue(images)!, parse.GetValue(normEps), parse.GetValue(suppress),
                parse.GetValue(profile), ParsePrecision(parse.GetValue(precision)), parse.GetValue(maskScoring));
        });
        return command;
    }

    private static int Run(string weights, int? numClasses, double scoreThreshold, bool warmup, string jsonPath,
        string? overlayDir, int? threads, string[] images, double normEps, string? suppress, bool profile, Precision precision, string? maskScoring)
    {
        Program.SetThreads(threads);

        using var model = LoadModel(weights, numClasses, scoreThreshold, normEps, suppressContained: suppress, maskScoring: maskScoring);
        model.Precision = precision;
        return PredictAll(image => model.Predict(image), warmup, jsonPath, overlayDir, images, profile);
    }

    /// <summary>
    /// <c>predict --onnx</c>: the export on ONNX Runtime. Images are decoded as for <c>--weights</c> (the same pixels), the
    /// results come through the same post-processing; <c>--score-threshold</c>, when given, drops detections scoring
    /// at most it (the export already dropped those at most its own threshold, <c>maskrcnn.score_threshold</c>; a
    /// lower value cannot bring them back and is refused).
    /// </summary>
    private static int RunOnnx(string onnxPath, double? scoreThreshold, bool warmup, string jsonPath, string? overlayDir, int? threads, string[] images, bool profile)
    {
        // A file that is not an export throws OnnxModelFormatException, an IOException: reported by Program.Main.
        using (var model = OnnxMaskRcnn.Load(onnxPath, new OnnxMaskRcnnOptions(IntraOpThreads: threads ?? 0)))
        {
            if (scoreThreshold is { } s && model.Metadata.ScoreThreshold is { } baked && s < baked)
            {
                throw new ArgumentException($"--score-threshold {s} is below the threshold {baked} baked into {onnxPath} (maskrcnn.score_threshold): export again with a lower one");
            }

            ImageDetections Predict(Tensor image)
            {
                var result = model.Predict(image.ToRgbImage());
                return scoreThreshold is { } t ? result with { Detections = result.Detections.Where(d => d.Score > t).ToArray() } : result;
            }

            return PredictAll(Predict, warmup, jsonPath, overlayDir, images, profile);
        }
    }

    /// <summary><c>predict --onnx --video</c>: the export on ONNX Runtime, <c>--score-threshold</c> as for images.</summary>
    private static int RunOnnxVideo(string onnxPath, double? scoreThreshold, int? threads, VideoPredictCommand.Settings video)
    {
        using var model = OnnxMaskRcnn.Load(onnxPath, new OnnxMaskRcnnOptions(IntraOpThreads: threads ?? 0));
        if (scoreThreshold is { } s && model.Metadata.ScoreThreshold is { } baked && s < baked)
        {
            throw new ArgumentException($"--score-threshold {s} is below the threshold {baked} baked into {onnxPath} (maskrcnn.score_threshold): export again with a lower one");
        }

        return VideoPredictCommand.Run(model, video, scoreThreshold);
    }

    private static int PredictAll(Func<Tensor, ImageDetections> predict, bool warmup, string jsonPath, string? overlayDir, string[] images, bool profile)
    {
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
                predict(image);
            }

            var sw = Stopwatch.StartNew();
            using var stages = profile ? StageProfile.Start() : null;   // started inside the timed span
            var result = predict(image);
            var seconds = sw.Elapsed.TotalSeconds;
            Console.Error.WriteLine($"{path}: {result.Detections.Count} detections in {seconds:0.000} s");
            if (stages is null)
            {
                results.Add(PredictionJson.Result(path, result, seconds));
            }
            else
            {
                Console.Error.WriteLine("  " + string.Join(", ", stages.Stages.Select(s => $"{s.Key} {s.Value.TotalSeconds:0.000}")));
                results.Add(PredictionJson.Result(path, result, seconds, stages.Stages.ToDictionary(s => s.Key, s => s.Value.TotalSeconds)));
            }

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

    /// <summary>The --precision option: fp32 (default) or bf16 (<see cref="Precision"/>).</summary>
    internal static Option<string> PrecisionOption() => new("--precision")
    {
        Description = "fp32 (default) or bf16: bfloat16 backbone, FPN and heads, several times faster on CPUs with AVX512_BF16 or AMX (slightly different detections)",
        DefaultValueFactory = _ => "fp32",
    };

    /// <summary>Parses a --precision value.</summary>
    internal static Precision ParsePrecision(string? value) => value switch
    {
        null or "fp32" or "float32" => Precision.Float32,
        "bf16" or "bfloat16" => Precision.BFloat16,
        _ => throw new ArgumentException($"--precision {value}: expected fp32 or bf16"),
    };

    /// <summary>The --suppress-contained option: a containment fraction in (0, 1], or off; unset keeps the model's setting.</summary>
    internal static Option<string?> SuppressOption() => new("--suppress-contained")
    {
        Description = "drop detections lying at least this fraction (0-1] inside a higher-scoring one of the same class, or 'off' (default: the model's setting)",
    };

    /// <summary>The --mask-scoring option: on or off; unset keeps the model's setting.</summary>
    internal static Option<string?> MaskScoringOption() => new("--mask-scoring")
    {
        Description = "multiply each score by its mask's confidence and sort by the result: on or off (default: the model's setting; on for models the recipe trained)",
    };

    /// <summary>Parses a --mask-scoring value: on or off.</summary>
    internal static bool ParseMaskScoring(string value) => ParseOnOff("--mask-scoring", value);

    /// <summary>Parses an on/off option's value; anything else is an <see cref="ArgumentException"/> naming the option.</summary>
    internal static bool ParseOnOff(string option, string value) => value switch
    {
        "on" => true,
        "off" => false,
        _ => throw new ArgumentException($"{option} {value}: expected 'on' or 'off'"),
    };

    /// <summary>Applies --suppress-contained and --mask-scoring values (null: keep) to a configuration.</summary>
    internal static MaskRcnnConfig ApplyPostprocessing(MaskRcnnConfig c, string? suppress, string? maskScoring) =>
        ApplySuppress(maskScoring is null ? c : c with { MaskScoring = ParseMaskScoring(maskScoring) }, suppress);

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
        string? suppressContained = null, string? maskScoring = null) =>
        IsSavedModel(weights, numClasses)
            ? MaskRcnnModel.Load(weights, configure: SavedModelChanges(scoreThreshold, nmsThreshold, suppressContained, maskScoring))
            : TorchvisionBuilder(weights, numClasses, scoreThreshold, normEps, nmsThreshold, suppressContained, maskScoring).Build();

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
    internal static Func<MaskRcnnConfig, MaskRcnnConfig> SavedModelChanges(double? scoreThreshold, double? nmsThreshold, string? suppressContained,
        string? maskScoring = null) =>
        c => ApplyPostprocessing(c with
        {
            RoIHeads = c.RoIHeads with
            {
                ScoreThreshold = scoreThreshold ?? c.RoIHeads.ScoreThreshold,
                NmsThreshold = nmsThreshold ?? c.RoIHeads.NmsThreshold,
            },
        }, suppressContained, maskScoring);

    /// <summary>The builder of a model from a torchvision state dict with the command-line settings.</summary>
    internal static MaskRcnnBuilder TorchvisionBuilder(string weights, int? numClasses, double? scoreThreshold, double normEps = 1e-5,
        double? nmsThreshold = null, string? suppressContained = null, string? maskScoring = null)
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

        builder.Configure(c => ApplyPostprocessing(c, suppressContained, maskScoring));
        return builder;
    }
}
