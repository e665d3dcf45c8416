using MaskRcnn.Net.Core;
using MaskRcnn.Net.Training;
using MaskRcnn.Net.Training.Evaluation;

namespace MaskRcnn.Net;

/// <summary>Progress of <see cref="ModelEvaluation.Evaluate(MaskRcnnModel, IDetectionDataset, IProgress{EvaluationProgress}?, CancellationToken)"/>.</summary>
/// <param name="Done">Images processed.</param>
/// <param name="Total">Images in the dataset.</param>
public sealed record EvaluationProgress(int Done, int Total);

/// <summary>COCO box and mask metrics of a model on a dataset.</summary>
/// <param name="Boxes">Box AP/AR (pycocotools semantics).</param>
/// <param name="Masks">Mask AP/AR, or null for a model without masks.</param>
/// <param name="Predictions">The predictions per image, in dataset order.</param>
public sealed record ModelEvaluationResult(CocoEvaluationResult Boxes, CocoEvaluationResult? Masks, IReadOnlyList<ImageDetections> Predictions)
{
    /// <summary>
    /// Per-image IoU / Dice of the union of the predicted masks scoring at least
    /// <see cref="ModelEvaluation.BinaryScoreThreshold"/> against the union of the true (non-crowd) masks, or null for
    /// a model without masks.
    /// </summary>
    public BinarySegmentationResult? Binary { get; init; }
}

/// <summary>Runs a model over a dataset and scores it with COCO's metrics.</summary>
public static class ModelEvaluation
{
    /// <summary>Detections scoring below this are left out of <see cref="ModelEvaluationResult.Binary"/> (as in the overlays).</summary>
    public const double BinaryScoreThreshold = 0.5;

    /// <summary>
    /// Predicts every image of <paramref name="dataset"/> (in evaluation mode) and computes COCO bbox and segm
    /// metrics against its annotations. Ground-truth areas are the mask areas (or box areas without masks).
    /// </summary>
    public static ModelEvaluationResult Evaluate(MaskRcnnModel model, IDetectionDataset dataset,
        IProgress<EvaluationProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(dataset);
        var wasTraining = model.IsTraining;
        model.Eval();
        try
        {
            var predictions = new List<ImageDetections>();
            for (var i = 0; i < dataset.Count; i++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                using var image = dataset.GetSample(i).LoadImage();
                predictions.Add(model.Predict(image));
                progress?.Report(new EvaluationProgress(i + 1, dataset.Count));
            }

            return Evaluate(dataset, predictions, model.Config.Masks);
        }
        finally
        {
            if (wasTraining)
            {
                model.Train();
            }
        }
    }

    /// <summary>
    /// Scores detections computed elsewhere (for example read with <see cref="FromCocoResults"/>) against the
    /// annotations of <paramref name="dataset"/>: COCO bbox metrics, and segm metrics and per-image IoU/Dice when
    /// <paramref name="masks"/> is set and every detection and ground-truth object has a mask.
    /// </summary>
    /// <param name="dataset">The ground truth.</param>
    /// <param name="predictions">The detections of each image, in dataset order.</param>
    /// <param name="masks">Whether to score masks.</param>
    /// <exception cref="ArgumentException">The number of predictions differs from the number of images, or a mask does
    /// not have its image's size.</exception>
    public static ModelEvaluationResult Evaluate(IDetectionDataset dataset, IReadOnlyList<ImageDetections> predictions, bool masks = true)
    {
        ArgumentNullException.ThrowIfNull(dataset);
        ArgumentNullException.ThrowIfNull(predictions);
        if (predictions.Count != dataset.Count)
        {
            throw new ArgumentException($"{predictions.Count} predictions for {dataset.Count} images", nameof(predictions));
        }

        var gts = new List<GroundTruthImage>();
        var dts = new List<DetectionImage>();
        var overlaps = new List<ImageOverlap>();
        masks &= predictions.All(p => p.Detections.All(d => d.Mask is not null));
        for (var i = 0; i < dataset.Count; i++)
        {
            var sample = dataset.GetSample(i);
            var result = predictions[i];
            gts.Add(new GroundTruthImage(sample.ImageId, sample.Width, sample.Height, sample.Annotations.Select(a =>
                a.GetRle() is { } rle
                    ? new GroundTruthObject(a.Label, CocoBox.FromCorners(a.Box.X1, a.Box.Y1, a.Box.X2, a.Box.Y2), a.IsCrowd, null, rle)
                    : new GroundTruthObject(a.Label, CocoBox.FromCorners(a.Box.X1, a.Box.Y1, a.Box.X2, a.Box.Y2), a.IsCrowd)).ToArray()));
            dts.Add(new DetectionImage(sample.ImageId, result.Detections.Select(d =>
                d.Mask is { } m
                    ? new DetectedObject(d.Label, d.Score, CocoBox.FromCorners(d.Box.X1, d.Box.Y1, d.Box.X2, d.Box.Y2), m.ToRle())
                    : new DetectedObject(d.Label, d.Score, CocoBox.FromCorners(d.Box.X1, d.Box.Y1, d.Box.X2, d.Box.Y2))).ToArray()));
            if (masks && sample.Annotations.All(a => a.IsCrowd || a.GetMask() is not null))
            {
                overlaps.Add(BinarySegmentationMetrics.Compare(sample.ImageId, sample.Height, sample.Width,
                    result.Detections.Where(d => d.Score >= BinaryScoreThreshold && d.Mask is not null).Select(d => d.Mask!),
                    sample.Annotations.Where(a => !a.IsCrowd).Select(a => a.GetMask()!)));
            }
        }

        var boxes = CocoEvaluator.Evaluate(gts, dts, CocoIouType.BoundingBox);
        var hasMasks = masks && gts.All(g => g.Objects.All(o => o.Mask is not null));
        var segm = hasMasks ? CocoEvaluator.Evaluate(gts, dts, CocoIouType.Segmentation) : null;
        return new ModelEvaluationResult(boxes, segm, predictions)
        {
            Binary = overlaps.Count == dataset.Count && dataset.Count > 0 ? new BinarySegmentationResult(overlaps) : null,
        };
    }

    /// <summary>
    /// Groups results read from a COCO results file (<see cref="CocoResults.Load"/>) into detections per image of
    /// <paramref name="dataset"/>, in dataset order, ready for <see cref="Evaluate(IDetectionDataset, IReadOnlyList{ImageDetections}, bool)"/>.
    /// </summary>
    /// <param name="dataset">The dataset the results refer to.</param>
    /// <param name="results">The results; their image ids must be the dataset's.</param>
    /// <exception cref="ArgumentException">A result names an image that is not in the dataset.</exception>
    public static IReadOnlyList<ImageDetections> FromCocoResults(IDetectionDataset dataset, IReadOnlyList<CocoResult> results)
    {
        ArgumentNullException.ThrowIfNull(dataset);
        ArgumentNullException.ThrowIfNull(results);
        var index = new Dictionary<long, int>();
        var perImage = new List<Detection>[dataset.Count];
        for (var i = 0; i < dataset.Count; i++)
        {
            index.TryAdd(dataset.GetSample(i).ImageId, i);
            perImage[i] = [];
        }

        foreach (var r in results)
        {
            if (!index.TryGetValue(r.ImageId, out var i))
            {
                throw new ArgumentException($"result for image id {r.ImageId}, which is not in the dataset", nameof(results));
            }

            var name = r.Label < dataset.ClassNames.Count ? dataset.ClassNames[r.Label] : r.Label.ToString(System.Globalization.CultureInfo.InvariantCulture);
            perImage[i].Add(new Detection(r.Box, r.Label, name, (float)r.Score, r.Mask?.Decode()));
        }

        return perImage.Select((d, i) => new ImageDetections(dataset.GetSample(i).Width, dataset.GetSample(i).Height, d)).ToArray();
    }
}
