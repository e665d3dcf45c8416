using MaskRcnn.Net.Core.Masks;
using MaskRcnn.Net.Training.Evaluation;

namespace MaskRcnn.Net.Training.Tests.Evaluation;

/// <summary>Builders and hand-derived constants shared by the evaluation tests.</summary>
internal static class CocoTestData
{
    /// <summary>
    /// Precision of one true positive and no false positive in pycocotools: tp / (fp + tp + np.spacing(1)) =
    /// 1 / (1 + 2⁻⁵²) = 0.9999999999999998 (not 1). Two true positives give 2 / (2 + 2⁻⁵²), which rounds to 1.0.
    /// </summary>
    public static readonly double OneOverOnePlusEps = 1.0 / (1.0 + Math.Pow(2, -52));

    /// <summary>Tolerance for means of many equal values (pairwise summation of 1010 terms).</summary>
    public const double Tight = 1e-12;

    public static GroundTruthImage Image(long id, params GroundTruthObject[] objects) => new(id, 640, 480, objects);

    public static GroundTruthObject Gt(double x, double y, double w, double h, int category = 1, bool crowd = false, double? area = null) =>
        new(category, new CocoBox(x, y, w, h), crowd, area);

    public static DetectedObject Dt(double x, double y, double w, double h, double score, int category = 1) =>
        new(category, score, new CocoBox(x, y, w, h));

    public static DetectionImage Dets(long id, params DetectedObject[] detections) => new(id, detections);

    /// <summary>A mask of the given size with the rectangle [x, x + w) × [y, y + h) set.</summary>
    public static BinaryMask Rect(int height, int width, int x, int y, int w, int h)
    {
        var bytes = new byte[height * width];
        for (var row = y; row < y + h; row++)
        {
            for (var col = x; col < x + w; col++)
            {
                bytes[row * width + col] = 1;
            }
        }

        return BinaryMask.FromBytes(bytes, height, width);
    }

    public static CocoEvaluationResult EvaluateBoxes(IReadOnlyList<GroundTruthImage> gt, IReadOnlyList<DetectionImage> dt, CocoEvaluationOptions? options = null) =>
        CocoEvaluator.Evaluate(gt, dt, CocoIouType.BoundingBox, options);

    /// <summary>Asserts the 12 stats; NaN in <paramref name="expected"/> means "not checked".</summary>
    public static void StatsShouldBe(CocoEvaluationResult result, double tolerance, params double[] expected)
    {
        expected.Length.Should().Be(12);
        for (var i = 0; i < 12; i++)
        {
            if (!double.IsNaN(expected[i]))
            {
                result.Stats[i].Should().BeApproximately(expected[i], tolerance, $"stat {CocoEvaluationResult.StatNames[i]}\n{result.Summary}");
            }
        }
    }
}
