using MaskRcnn.Net.Core.Masks;

namespace MaskRcnn.Net;

/// <summary>
/// Removes nested duplicates: a detection whose mask lies mostly inside the mask of a higher-scoring detection of the
/// same class. Box NMS keeps them, because a small box inside a large one has a small box IoU (a 40-px box inside a
/// 100-px box: IoU 0.16). Measured by containment — |A ∩ B| / |B| for the lower-scoring B, pycocotools' crowd IoU —
/// on the full-size masks (on the boxes for detections without masks).
/// </summary>
public static class DuplicateSuppression
{
    /// <summary>
    /// The detections (sorted by decreasing score) without those that lie at least <paramref name="containment"/>
    /// inside a kept detection of the same class, in the same order.
    /// </summary>
    /// <param name="detections">Detections sorted by decreasing score.</param>
    /// <param name="containment">Fraction in (0, 1] of a detection's area inside a better one that makes it a duplicate.</param>
    public static IReadOnlyList<Detection> Apply(IReadOnlyList<Detection> detections, double containment)
    {
        ArgumentNullException.ThrowIfNull(detections);
        if (!(containment > 0 && containment <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(containment), containment, "containment must be in (0, 1]");
        }

        var kept = new List<(Detection Detection, Rle? Rle)>(detections.Count);
        foreach (var d in detections)
        {
            var rle = d.Mask?.ToRle();
            var duplicate = kept.Any(k => k.Detection.Label == d.Label && Contained(d, rle, k.Detection, k.Rle) >= containment);
            if (!duplicate)
            {
                kept.Add((d, rle));
            }
        }

        return kept.Select(k => k.Detection).ToList();
    }

    /// <summary>The fraction of <paramref name="inner"/>'s area inside <paramref name="outer"/>.</summary>
    private static double Contained(Detection inner, Rle? innerRle, Detection outer, Rle? outerRle)
    {
        if (innerRle is not null && outerRle is not null)
        {
            return innerRle.Area == 0 ? 1 : Rle.Iou(innerRle, outerRle, isCrowd: true);
        }

        var (a, b) = (inner.Box, outer.Box);
        var w = Math.Min(a.X2, b.X2) - Math.Max(a.X1, b.X1);
        var h = Math.Min(a.Y2, b.Y2) - Math.Max(a.Y1, b.Y1);
        var area = (double)a.Width * a.Height;
        return area <= 0 ? 1 : Math.Max(0, w) * Math.Max(0, h) / area;
    }
}
