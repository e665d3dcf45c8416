using MaskRcnn.Net.Core.Masks;

namespace MaskRcnn.Net.Training.Evaluation;

/// <summary>Overlap of the predicted and true foreground of one image.</summary>
/// <param name="ImageId">The image.</param>
/// <param name="Intersection">Pixels in both.</param>
/// <param name="PredictedArea">Predicted foreground pixels.</param>
/// <param name="TrueArea">True foreground pixels.</param>
public sealed record ImageOverlap(long ImageId, long Intersection, long PredictedArea, long TrueArea)
{
    /// <summary>Pixels in either.</summary>
    public long Union => PredictedArea + TrueArea - Intersection;

    /// <summary>Intersection over union; 1 when both are empty (a correct "nothing here").</summary>
    public double Iou => Union == 0 ? 1.0 : (double)Intersection / Union;

    /// <summary>Dice coefficient 2|A∩B| / (|A| + |B|); 1 when both are empty.</summary>
    public double Dice => PredictedArea + TrueArea == 0 ? 1.0 : 2.0 * Intersection / (PredictedArea + TrueArea);
}

/// <summary>Per-image and overall IoU / Dice of a binary segmentation.</summary>
/// <param name="Images">Per-image overlaps, in the order given.</param>
public sealed record BinarySegmentationResult(IReadOnlyList<ImageOverlap> Images)
{
    /// <summary>Mean of the per-image IoU.</summary>
    public double MeanIou => Images.Count == 0 ? double.NaN : Images.Average(i => i.Iou);

    /// <summary>Mean of the per-image Dice.</summary>
    public double MeanDice => Images.Count == 0 ? double.NaN : Images.Average(i => i.Dice);

    /// <summary>IoU of all pixels of all images pooled together.</summary>
    public double PooledIou
    {
        get
        {
            var union = Images.Sum(i => i.Union);
            return union == 0 ? 1.0 : (double)Images.Sum(i => i.Intersection) / union;
        }
    }

    /// <summary>Dice of all pixels of all images pooled together.</summary>
    public double PooledDice
    {
        get
        {
            var areas = Images.Sum(i => i.PredictedArea + i.TrueArea);
            return areas == 0 ? 1.0 : 2.0 * Images.Sum(i => i.Intersection) / areas;
        }
    }
}

/// <summary>
/// IoU and Dice for users who treat instance segmentation as binary segmentation ("which pixels are tumour"): the
/// union of an image's predicted masks against the union of its true masks.
/// </summary>
public static class BinarySegmentationMetrics
{
    /// <summary>The overlap of the union of <paramref name="predicted"/> with the union of <paramref name="truth"/> on an image of the given size.</summary>
    /// <exception cref="ArgumentException">A mask's size differs from the image's (naming the mask and both sizes).</exception>
    public static ImageOverlap Compare(long imageId, int height, int width, IEnumerable<BinaryMask> predicted, IEnumerable<BinaryMask> truth)
    {
        ArgumentNullException.ThrowIfNull(predicted);
        ArgumentNullException.ThrowIfNull(truth);
        ArgumentOutOfRangeException.ThrowIfNegative(height);
        ArgumentOutOfRangeException.ThrowIfNegative(width);
        var p = Union(predicted, height, width, "predicted");
        var t = Union(truth, height, width, "true");
        long inter = 0, pa = 0, ta = 0;
        for (var i = 0; i < p.Length; i++)
        {
            pa += p[i];
            ta += t[i];
            inter += p[i] & t[i];
        }

        return new ImageOverlap(imageId, inter, pa, ta);
    }

    private static byte[] Union(IEnumerable<BinaryMask> masks, int height, int width, string what)
    {
        var union = new byte[height * width];
        var k = 0;
        foreach (var m in masks)
        {
            if (m.Height != height || m.Width != width)
            {
                throw new ArgumentException($"{what} mask {k} is {m.Height}x{m.Width} but the image is {height}x{width}");
            }

            var bytes = m.ToBytes();
            for (var i = 0; i < union.Length; i++)
            {
                union[i] |= bytes[i];
            }

            k++;
        }

        return union;
    }
}
