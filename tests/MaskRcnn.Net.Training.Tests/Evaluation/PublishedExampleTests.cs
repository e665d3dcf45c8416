using MaskRcnn.Net.Training.Evaluation;

namespace MaskRcnn.Net.Training.Tests.Evaluation;

/// <summary>
/// A fixed example with published pycocotools output: TorchMetrics' mean-average-precision test
/// (github.com/Lightning-AI/torchmetrics, tests/detection/test_map.py at commit
/// 02fe7f5fcdbfd2942b8d781f41e6f7bfcaabd4a6, <c>_inputs</c> and the docstring of <c>_compare_fn</c>, "Official
/// pycocotools results calculated from a subset of https://github.com/cocodataset/cocoapi/tree/master/results").
/// Four COCO images (ids 42, 73, 74, 133), boxes given there as (x1, y1, x2, y2), box areas, categories 0–5.
/// </summary>
public sealed class PublishedExampleTests
{
    private static GroundTruthObject G(int category, double x1, double y1, double x2, double y2) =>
        new(category, CocoBox.FromCorners(x1, y1, x2, y2));

    private static DetectedObject D(int category, double score, double x1, double y1, double x2, double y2) =>
        new(category, score, CocoBox.FromCorners(x1, y1, x2, y2));

    private static readonly GroundTruthImage[] GroundTruth =
    [
        new(42, 640, 480, [G(4, 214.15, 41.29, 562.41, 285.07)]),
        new(73, 640, 640, [G(2, 13.00, 22.75, 548.98, 632.42), G(2, 1.66, 3.32, 270.26, 275.23)]),
        new(74, 640, 480,
        [
            G(4, 61.87, 276.25, 358.29, 379.43), G(1, 2.75, 3.66, 162.15, 316.06), G(0, 295.55, 93.96, 313.97, 152.79),
            G(0, 326.94, 97.05, 340.49, 122.98), G(0, 356.62, 95.47, 372.33, 147.55), G(0, 462.08, 105.09, 493.74, 146.99),
            G(0, 277.11, 103.84, 292.44, 150.72),
        ]),
        new(133, 640, 480, [G(5, 13.99, 2.87, 640.00, 421.52)]),
    ];

    private static readonly DetectionImage[] Detections =
    [
        new(42, [D(4, 0.236, 258.15, 41.29, 606.41, 285.07)]),
        new(73, [D(3, 0.318, 61.00, 22.75, 565.00, 632.42), D(2, 0.726, 12.66, 3.32, 281.26, 275.23)]),
        new(74,
        [
            D(4, 0.546, 87.87, 276.25, 384.29, 379.43), D(1, 0.3, 0.00, 3.66, 142.15, 316.06),
            D(0, 0.407, 296.55, 93.96, 314.97, 152.79), D(0, 0.611, 328.94, 97.05, 342.49, 122.98),
            D(0, 0.335, 356.62, 95.47, 372.33, 147.55), D(0, 0.805, 464.08, 105.09, 495.74, 146.99),
            D(0, 0.953, 276.11, 103.84, 291.44, 150.72),
        ]),
        new(133, [D(5, 0.699, 0.00, 2.87, 601.00, 421.52)]),
    ];

    [Fact]
    public void SummaryMatchesThePublishedPycocotoolsPrintout()
    {
        var result = CocoEvaluator.Evaluate(GroundTruth, Detections, CocoIouType.BoundingBox);

        // The "All classes" lines of the published printout, verbatim.
        const string published =
            " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.706\n" +
            " Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=100 ] = 0.901\n" +
            " Average Precision  (AP) @[ IoU=0.75      | area=   all | maxDets=100 ] = 0.846\n" +
            " Average Precision  (AP) @[ IoU=0.50:0.95 | area= small | maxDets=100 ] = 0.689\n" +
            " Average Precision  (AP) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ] = 0.800\n" +
            " Average Precision  (AP) @[ IoU=0.50:0.95 | area= large | maxDets=100 ] = 0.701\n" +
            " Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=  1 ] = 0.592\n" +
            " Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets= 10 ] = 0.716\n" +
            " Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.716\n" +
            " Average Recall     (AR) @[ IoU=0.50:0.95 | area= small | maxDets=100 ] = 0.767\n" +
            " Average Recall     (AR) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ] = 0.800\n" +
            " Average Recall     (AR) @[ IoU=0.50:0.95 | area= large | maxDets=100 ] = 0.700\n";
        result.Summary.Should().Be(published);

        double[] stats = [0.706, 0.901, 0.846, 0.689, 0.800, 0.701, 0.592, 0.716, 0.716, 0.767, 0.800, 0.700];
        for (var i = 0; i < stats.Length; i++)
        {
            result.Stats[i].Should().BeApproximately(stats[i], 0.0005, CocoEvaluationResult.StatNames[i]);
        }
    }

    [Fact]
    public void PerClassResultsMatchThePublishedValues()
    {
        // Published per class (AP, AR@100): 0 (.725, .780), 1 (.800, .800), 2 (.454, .450), 3 (−1, −1),
        // 4 (.650, .650), 5 (.900, .900). Category 3 only has a detection, so it is requested explicitly.
        var options = new CocoEvaluationOptions { CategoryIds = [0, 1, 2, 3, 4, 5] };
        var result = CocoEvaluator.Evaluate(GroundTruth, Detections, CocoIouType.BoundingBox, options);

        double[] ap = [0.725, 0.800, 0.454, -1, 0.650, 0.900];
        double[] ar = [0.780, 0.800, 0.450, -1, 0.650, 0.900];
        result.Categories.Select(c => c.CategoryId).Should().Equal(0, 1, 2, 3, 4, 5);
        for (var c = 0; c < 6; c++)
        {
            result.Categories[c].AveragePrecision.Should().BeApproximately(ap[c], 0.0005, $"AP of category {c}");
            result.Categories[c].AverageRecall.Should().BeApproximately(ar[c], 0.0005, $"AR of category {c}");
        }

        // Adding a category without ground truth leaves the means unchanged.
        result.Stats.Should().Equal(CocoEvaluator.Evaluate(GroundTruth, Detections, CocoIouType.BoundingBox).Stats);
    }
}
