using MaskRcnn.Net.Core.Masks;

namespace MaskRcnn.Net.Training.Evaluation;

/// <summary>
/// An axis-aligned box in COCO's <c>[x, y, width, height]</c> form (top-left corner and size, in pixels), the format
/// of the <c>bbox</c> field of COCO annotations and results. Use <see cref="FromCorners"/> for
/// <c>(x1, y1, x2, y2)</c> boxes.
/// </summary>
/// <param name="X">Left edge.</param>
/// <param name="Y">Top edge.</param>
/// <param name="Width">Width (x2 − x1).</param>
/// <param name="Height">Height (y2 − y1).</param>
public readonly record struct CocoBox(double X, double Y, double Width, double Height)
{
    /// <summary>Width × height, the <c>area</c> pycocotools' <c>loadRes</c> gives a box detection.</summary>
    public double Area => Width * Height;

    /// <summary>A box from its top-left (<paramref name="x1"/>, <paramref name="y1"/>) and bottom-right
    /// (<paramref name="x2"/>, <paramref name="y2"/>) corners.</summary>
    public static CocoBox FromCorners(double x1, double y1, double x2, double y2) => new(x1, y1, x2 - x1, y2 - y1);

    /// <summary>The pixel extent of a mask (as pycocotools' <c>toBbox</c> reports it) as a box.</summary>
    public static CocoBox FromMaskBoundingBox(MaskBoundingBox box) => new(box.X, box.Y, box.Width, box.Height);

    /// <summary>
    /// Intersection over union of a detection and a ground-truth box with pycocotools' <c>iou</c> semantics for
    /// boxes (<c>bbIou</c> in <c>maskApi.c</c>): 0 when the boxes do not overlap with a positive width and height;
    /// when <paramref name="isCrowd"/> (the ground truth is a crowd region) the intersection is divided by the
    /// detection's area instead of the union.
    /// </summary>
    public static double Iou(CocoBox detection, CocoBox groundTruth, bool isCrowd)
    {
        var w = Math.Min(detection.X + detection.Width, groundTruth.X + groundTruth.Width) - Math.Max(detection.X, groundTruth.X);
        if (!(w > 0))
        {
            return 0;
        }

        var h = Math.Min(detection.Y + detection.Height, groundTruth.Y + groundTruth.Height) - Math.Max(detection.Y, groundTruth.Y);
        if (!(h > 0))
        {
            return 0;
        }

        var intersection = w * h;
        var detectionArea = detection.Width * detection.Height;
        var union = isCrowd ? detectionArea : detectionArea + groundTruth.Width * groundTruth.Height - intersection;
        return intersection / union;
    }

    internal bool IsFinite =>
        double.IsFinite(X) && double.IsFinite(Y) && double.IsFinite(Width) && double.IsFinite(Height);
}
