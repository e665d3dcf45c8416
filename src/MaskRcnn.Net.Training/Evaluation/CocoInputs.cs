using MaskRcnn.Net.Core.Masks;

namespace MaskRcnn.Net.Training.Evaluation;

/// <summary>
/// One ground-truth object of an image: a COCO annotation reduced to what the evaluation reads.
/// </summary>
/// <param name="CategoryId">Category (COCO <c>category_id</c>).</param>
/// <param name="Box">Box in COCO <c>[x, y, width, height]</c> form (used by <see cref="CocoIouType.BoundingBox"/>).</param>
/// <param name="IsCrowd">
/// COCO's <c>iscrowd</c>: a crowd region is never counted as a missed object, and detections matched to it are
/// ignored (neither true nor false positives). Its IoU with a detection is intersection / detection area.
/// </param>
/// <param name="Area">
/// COCO's <c>area</c> field, which decides the small / medium / large range. When null, the area of
/// <paramref name="Mask"/> is used, or the box area when there is no mask.
/// </param>
/// <param name="Mask">The object's mask at the image size (required by <see cref="CocoIouType.Segmentation"/>).</param>
public sealed record GroundTruthObject(int CategoryId, CocoBox Box, bool IsCrowd = false, double? Area = null, Rle? Mask = null)
{
    /// <summary>A ground truth with a mask given as a bitmap (encoded to an <see cref="Rle"/> once).</summary>
    /// <param name="categoryId">Category (COCO <c>category_id</c>).</param>
    /// <param name="box">Box in COCO <c>[x, y, width, height]</c> form.</param>
    /// <param name="mask">The object's mask at the image size.</param>
    /// <param name="isCrowd">COCO's <c>iscrowd</c>.</param>
    /// <param name="area">COCO's <c>area</c>; null for the mask's area.</param>
    public GroundTruthObject(int categoryId, CocoBox box, BinaryMask mask, bool isCrowd = false, double? area = null)
        : this(categoryId, box, isCrowd, area, Rle.Encode(mask ?? throw new ArgumentNullException(nameof(mask))))
    {
    }

    /// <summary>
    /// The area the evaluation uses for the area ranges: <see cref="Area"/> when given, else the mask's area, else
    /// the box's area.
    /// </summary>
    public double EffectiveArea => Area ?? (Mask is not null ? Mask.Area : Box.Area);
}

/// <summary>The ground truth of one image: its id, size and objects (possibly none).</summary>
/// <param name="ImageId">Image id (COCO <c>image_id</c>); unique among the ground-truth images.</param>
/// <param name="Width">Image width in pixels; masks must have this width.</param>
/// <param name="Height">Image height in pixels; masks must have this height.</param>
/// <param name="Objects">The annotated objects, in annotation order (the order breaks matching ties).</param>
/// <remarks>
/// An image without objects still counts: detections on it are false positives.
/// </remarks>
public sealed record GroundTruthImage(long ImageId, int Width, int Height, IReadOnlyList<GroundTruthObject> Objects);

/// <summary>One detection of an image: a COCO result reduced to what the evaluation reads.</summary>
/// <param name="CategoryId">Predicted category.</param>
/// <param name="Score">Confidence; detections are ranked by decreasing score (ties keep their input order).</param>
/// <param name="Box">Box in COCO <c>[x, y, width, height]</c> form; its area is the detection's area for
/// <see cref="CocoIouType.BoundingBox"/>.</param>
/// <param name="Mask">Mask at the image size (required by <see cref="CocoIouType.Segmentation"/>, where its area is
/// the detection's area).</param>
public sealed record DetectedObject(int CategoryId, double Score, CocoBox Box, Rle? Mask = null)
{
    /// <summary>A detection with a mask given as a bitmap (encoded to an <see cref="Rle"/> once).</summary>
    /// <param name="categoryId">Predicted category.</param>
    /// <param name="score">Confidence.</param>
    /// <param name="box">Box in COCO <c>[x, y, width, height]</c> form.</param>
    /// <param name="mask">Mask at the image size.</param>
    public DetectedObject(int categoryId, double score, CocoBox box, BinaryMask mask)
        : this(categoryId, score, box, Rle.Encode(mask ?? throw new ArgumentNullException(nameof(mask))))
    {
    }
}

/// <summary>The detections of one image.</summary>
/// <param name="ImageId">Id of a <see cref="GroundTruthImage"/>. Several entries with the same id are concatenated in
/// order.</param>
/// <param name="Detections">The detections, in any order.</param>
public sealed record DetectionImage(long ImageId, IReadOnlyList<DetectedObject> Detections);
