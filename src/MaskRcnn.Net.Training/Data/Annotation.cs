using MaskRcnn.Net.Core.Masks;

namespace MaskRcnn.Net.Training;

/// <summary>
/// One object instance of an image: its box, class label, optional full-image mask and COCO's crowd flag.
/// Immutable. The mask is kept in whichever form it was given (a compact <see cref="Rle"/> for masks read from
/// annotation files, a <see cref="BinaryMask"/> for masks produced by augmentation).
/// </summary>
public sealed class Annotation
{
    private readonly Rle? rle;
    private readonly BinaryMask? mask;

    /// <summary>Creates an annotation with an optional bitmap mask.</summary>
    /// <param name="box">Box (x1, y1, x2, y2) in image pixels.</param>
    /// <param name="label">Class label, 1..K (0 is the background).</param>
    /// <param name="mask">The instance mask at full image size, or null for box-only annotations.</param>
    /// <param name="isCrowd">COCO's <c>iscrowd</c>: the region covers a crowd of objects.</param>
    public Annotation(BoundingBox box, int label, BinaryMask? mask = null, bool isCrowd = false)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(label, 1);
        Box = box;
        Label = label;
        this.mask = mask;
        IsCrowd = isCrowd;
    }

    private Annotation(BoundingBox box, int label, Rle rle, bool isCrowd)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(label, 1);
        Box = box;
        Label = label;
        this.rle = rle;
        IsCrowd = isCrowd;
    }

    /// <summary>Creates an annotation whose mask is kept run-length encoded until it is asked for.</summary>
    /// <param name="box">Box (x1, y1, x2, y2) in image pixels.</param>
    /// <param name="label">Class label, 1..K.</param>
    /// <param name="segmentation">The instance mask at full image size.</param>
    /// <param name="isCrowd">COCO's <c>iscrowd</c>.</param>
    public static Annotation FromRle(BoundingBox box, int label, Rle segmentation, bool isCrowd = false)
    {
        ArgumentNullException.ThrowIfNull(segmentation);
        return new Annotation(box, label, segmentation, isCrowd);
    }

    /// <summary>Box (x1, y1, x2, y2) in image pixels.</summary>
    public BoundingBox Box { get; }

    /// <summary>Class label, 1..K; the class name is <c>ClassNames[Label]</c> of the dataset.</summary>
    public int Label { get; }

    /// <summary>COCO's <c>iscrowd</c> flag. Crowd regions are left out of training targets by default.</summary>
    public bool IsCrowd { get; }

    /// <summary>True when the annotation has an instance mask.</summary>
    public bool HasMask => rle is not null || mask is not null;

    /// <summary>Height of the mask in pixels, or 0 without one.</summary>
    public int MaskHeight => mask?.Height ?? rle?.Height ?? 0;

    /// <summary>Width of the mask in pixels, or 0 without one.</summary>
    public int MaskWidth => mask?.Width ?? rle?.Width ?? 0;

    /// <summary>
    /// The instance mask as a bitmap, or null. For run-length encoded annotations every call decodes anew (the
    /// bitmap is not cached, so a dataset costs only its RLE in memory).
    /// </summary>
    public BinaryMask? GetMask() => mask ?? rle?.Decode();

    /// <summary>The instance mask run-length encoded, or null (encodes a bitmap mask on each call).</summary>
    public Rle? GetRle() => rle ?? mask?.ToRle();

    /// <summary>A copy with another box and mask (the label and crowd flag are kept).</summary>
    /// <param name="box">The new box.</param>
    /// <param name="newMask">The new mask, or null for none.</param>
    public Annotation With(BoundingBox box, BinaryMask? newMask) => new(box, Label, newMask, IsCrowd);

    /// <inheritdoc />
    public override string ToString() =>
        $"Annotation(label {Label}, box {Box}{(HasMask ? $", mask {MaskHeight}x{MaskWidth}" : "")}{(IsCrowd ? ", crowd" : "")})";
}
