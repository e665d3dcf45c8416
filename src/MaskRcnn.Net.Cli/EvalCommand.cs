using System.CommandLine;

namespace MaskRcnn.Net.Cli;

/// <summary>
/// <c>maskrcnn eval</c>: COCO box and mask AP of a model on an annotated dataset, or of detections computed elsewhere
/// and written in COCO's results format (<c>--detections</c>).
/// </summary>
internal static class EvalCommand
{
    public static Command Create()
    {
        var weights = new Option<string?>("--weights") { Description = "a model saved by maskrcnn train (or a torchvision state dict with --num-classes)" };
        var detections = new Option<string?>("--detections")
        {
            Description = "score detections from this COCO results file ([{\"image_id\",\"category_id\",\"score\",\"bbox\",\"segmentation\"}]) instead of running a model",
        };
        var numClasses = new Option<int?>("--num-classes") { Description = "classes including background, for a torchvision state dict" };
        var format = new Option<DatasetFormat>("--format") { DefaultValueFactory = _ => DatasetFormat.Coco };
        var data = new Option<string>("--dataset") { Description = "annotations (COCO/VIA JSON, or a LabelMe folder)", Required = true };
        var images = new Option<string?>("--images") { Description = "images folder (default: 'images' next to the JSON)" };
        var defaultClass = new Option<string?>("--default-class");
        var classAttribute = new Option<string?>("--class-attribute");
        var overlayDir = new Option<string?>("--overlay-dir") { Description = "write each image with its predictions drawn here" };
        var jsonOut = new Option<string?>("--json") { Description = "write {\"bbox\":{\"AP\":..},\"segm\":{..}} here" };
        var scoreThreshold = new Option<double?>("--score-threshold") { Description = "minimum detection score (default: the model's)" };
        var nmsThreshold = new Option<double?>("--nms-threshold") { Description = "per-class NMS IoU threshold of the detections (default: the model's)" };
        var suppress = PredictCommand.SuppressOption();
        var maskScoring = PredictCommand.MaskScoringOption();
        var threads = new Option<int?>("--threads");
        var normEps = PredictCommand.NormEpsOption();
        var precision = PredictCommand.PrecisionOption();
        var command = new Command("eval", "Evaluate a model with COCO's box and mask AP")
        {
            weights, detections, numClasses, format, data, images, defaultClass, classAttribute, overlayDir, jsonOut, scoreThreshold, nmsThreshold, suppress, maskScoring, threads, normEps, precision,
        };
        var badAnnotations = DatasetLoader.BadAnnotationsOption();
        command.Options.Add(badAnnotations);
        command.SetAction((parse, ct) =>
        {
            ct = Program.Link(ct);
            Program.SetThreads(parse.GetValue(threads));
            var (weightsPath, detectionsPath) = (parse.GetValue(weights), parse.GetValue(detections));
            if ((weightsPath is null) == (detectionsPath is null))
            {
                throw new ArgumentException("give either --weights (a model to run) or --detections (a COCO results file to score)");
            }

            var dataset = DatasetLoader.Load(parse.GetValue(format), parse.GetValue(data)!, parse.GetValue(images), parse.GetValue(defaultClass), parse.GetValue(classAttribute), parse.GetValue(badAnnotations));
            ModelEvaluationResult result;
            if (detectionsPath is not null)
            {
                var loaded = dataset as Training.DetectionDataset
                    ?? throw new ArgumentException("--detections needs a dataset read from a file");
                var results = Training.CocoResults.Load(detectionsPath, loaded, ct);
                Console.Error.WriteLine($"read {results.Count} detections from {detectionsPath}");
                result = ModelEvaluation.Evaluate(dataset, ModelEvaluation.FromCocoResults(dataset, results));
                Report(result, dataset, parse.GetValue(overlayDir));
            }
            else
            {
                using var model = PredictCommand.LoadModel(weightsPath!, parse.GetValue(numClasses), parse.GetValue(scoreThreshold), parse.GetValue(normEps), parse.GetValue(nmsThreshold), parse.GetValue(suppress), parse.GetValue(maskScoring));
                model.Precision = PredictCommand.ParsePrecision(parse.GetValue(precision));
                CheckClasses(model, dataset);
                result = Run(model, dataset, parse.GetValue(overlayDir), ct);
            }

            if (parse.GetValue(jsonOut) is { } path)
            {
                WriteMetrics(result, path);
            }

            return Task.FromResult(0);
        });
        return command;
    }

    /// <summary>
    /// Refuses to score a model against data whose classes are numbered differently (the labels would be compared
    /// as numbers, silently wrong).
    /// </summary>
    public static void CheckClasses(MaskRcnnModel model, Training.IDetectionDataset dataset)
    {
        var modelNames = model.Config.ClassNames;
        if (modelNames is not null && !modelNames.Skip(1).SequenceEqual(dataset.ClassNames.Skip(1)))
        {
            throw new ArgumentException($"the model's classes ({string.Join(", ", modelNames.Skip(1))}) differ from the dataset's ({string.Join(", ", dataset.ClassNames.Skip(1))}); labels would not correspond");
        }

        if (dataset.ClassNames.Count > model.Config.NumClasses)
        {
            throw new ArgumentException($"the dataset has {dataset.ClassNames.Count - 1} classes but the model predicts {model.Config.NumClasses - 1}");
        }
    }

    /// <summary>Writes <c>{"bbox": {"AP": …, "AP50": …, …}, "segm": {…}}</c>.</summary>
    public static void WriteMetrics(ModelEvaluationResult result, string path)
    {
        static Dictionary<string, double> Stats(Training.Evaluation.CocoEvaluationResult r) =>
            Training.Evaluation.CocoEvaluationResult.StatNames.Select((n, i) => (n, r.Stats[i])).ToDictionary(x => x.n, x => x.Item2);
        var metrics = new Dictionary<string, Dictionary<string, double>> { ["bbox"] = Stats(result.Boxes) };
        if (result.Masks is not null)
        {
            metrics["segm"] = Stats(result.Masks);
        }

        if (result.Binary is { } b)
        {
            metrics["binary"] = new Dictionary<string, double> { ["mean_iou"] = b.MeanIou, ["mean_dice"] = b.MeanDice, ["pooled_iou"] = b.PooledIou, ["pooled_dice"] = b.PooledDice };
        }

        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(dir))
        {
            Directory.CreateDirectory(dir);
        }

        File.WriteAllText(path, System.Text.Json.JsonSerializer.Serialize(metrics, new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
    }

    public static ModelEvaluationResult Run(MaskRcnnModel model, Training.IDetectionDataset dataset, string? overlayDir, CancellationToken ct)
    {
        var result = ModelEvaluation.Evaluate(model, dataset, new Progress<EvaluationProgress>(p =>
        {
            if (p.Done % 10 == 0 || p.Done == p.Total)
            {
                Console.Error.WriteLine($"evaluated {p.Done}/{p.Total} images");
            }
        }), ct);
        Report(result, dataset, overlayDir);
        return result;
    }

    /// <summary>Prints the metrics and writes the overlays (ground truth left, predictions right).</summary>
    private static void Report(ModelEvaluationResult result, Training.IDetectionDataset dataset, string? overlayDir)
    {
        Console.WriteLine("Boxes (bbox):");
        Console.WriteLine(result.Boxes.Summary);
        if (result.Masks is not null)
        {
            Console.WriteLine("Masks (segm):");
            Console.WriteLine(result.Masks.Summary);
        }

        if (result.Binary is { } binary)
        {
            Console.WriteLine($"Binary segmentation (union of masks scoring >= {ModelEvaluation.BinaryScoreThreshold}): mean IoU {binary.MeanIou:F3}, mean Dice {binary.MeanDice:F3} over {binary.Images.Count} images (pooled IoU {binary.PooledIou:F3}, Dice {binary.PooledDice:F3})");
        }

        if (overlayDir is not null)
        {
            Directory.CreateDirectory(overlayDir);
            for (var i = 0; i < dataset.Count; i++)
            {
                var sample = dataset.GetSample(i);
                using var image = sample.LoadImage();
                var truth = new ImageDetections(sample.Width, sample.Height, sample.Annotations.Select(a =>
                    new Detection(a.Box, a.Label, dataset.ClassNames[a.Label], 1f, a.GetMask())).ToArray());
                using var drawn = Visualizer.DrawComparison(image, truth, result.Predictions[i], new VisualizerOptions(MinScore: 0.5));
                Visualizer.SaveImage(drawn, Path.Combine(overlayDir, Path.GetFileNameWithoutExtension(sample.FileName) + ".png"));
            }

            Console.Error.WriteLine($"wrote {dataset.Count} overlays (ground truth left, predictions scoring >= 0.5 right) to {overlayDir}");
        }
    }
}
