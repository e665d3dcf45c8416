using MaskRcnn.Net.Core;
using MaskRcnn.Net.Training;
using MaskRcnn.Net.Training.Evaluation;

namespace MaskRcnn.Net;

/// <summary>Progress of <see cref="ModelEvaluation.Evaluate"/>.</summary>
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
            var gts = new List<GroundTruthImage>();
            var dts = new List<DetectionImage>();
            var predictions = new List<ImageDetections>();
            var overlaps = new List<ImageOverlap>();
            for (var i = 0; i < dataset.Count; i++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var sample = dataset.GetSample(i);
                using var image = sample.LoadImage();
                var result = model.Predict(image);
                predictions.Add(result);
                gts.Add(new GroundTruthImage(sample.ImageId, sample.Width, sample.Height, sample.Annotations.Select(a =>
                    a.GetRle() is { } rle
                        ? new GroundTruthObject(a.Label, CocoBox.FromCorners(a.Box.X1, a.Box.Y1, a.Box.X2, a.Box.Y2), a.IsCrowd, null, rle)
                        : new GroundTruthObject(a.Label, CocoBox.FromCorners(a.Box.X1, a.Box.Y1, a.Box.X2, a.Box.Y2), a.IsCrowd)).ToArray()));
                dts.Add(new DetectionImage(sample.ImageId, result.Detections.Select(d =>
                    d.Mask is { } m
                        ? new DetectedObject(d.Label, d.Score, CocoBox.FromCorners(d.Box.X1, d.Box.Y1, d.Box.X2, d.Box.Y2), m.ToRle())
                        : new DetectedObject(d.Label, d.Score, CocoBox.FromCorners(d.Box.X1, d.Box.Y1, d.Box.X2, d.Box.Y2))).ToArray()));
                if (model.Config.Masks && sample.Annotations.All(a => a.IsCrowd || a.GetMask() is not null))
                {
                    overlaps.Add(BinarySegmentationMetrics.Compare(sample.ImageId, result.Height, result.Width,
                        result.Detections.Where(d => d.Score >= BinaryScoreThreshold && d.Mask is not null).Select(d => d.Mask!),
                        sample.Annotations.Where(a => !a.IsCrowd).Select(a => a.GetMask()!)));
                }

                progress?.Report(new EvaluationProgress(i + 1, dataset.Count));
            }

            var boxes = CocoEvaluator.Evaluate(gts, dts, CocoIouType.BoundingBox);
            var hasMasks = model.Config.Masks && gts.All(g => g.Objects.All(o => o.Mask is not null));
            var masks = hasMasks ? CocoEvaluator.Evaluate(gts, dts, CocoIouType.Segmentation) : null;
            return new ModelEvaluationResult(boxes, masks, predictions)
            {
                Binary = overlaps.Count == dataset.Count && dataset.Count > 0 ? new BinarySegmentationResult(overlaps) : null,
            };
        }
        finally
        {
            if (wasTraining)
            {
                model.Train();
            }
        }
    }
}
