using MaskRcnn.Net.Core.Masks;

namespace MaskRcnn.Net;

/// <summary>
/// Removes nested duplicates: a detection nested with a higher-scoring detection of the same class — lying mostly
/// inside it, or holding it mostly inside itself. Box NMS keeps them, because a small box inside a large one has a
/// small box IoU (a 40-px box inside a 100-px box: IoU 0.16). Measured by containment, |A ∩ B| / min(|A|, |B|) (the
/// overlap over the smaller area), on the full-size masks (on the boxes for detections without masks).
/// </summary>
public static class DuplicateSuppression
{
    /// <summary>
    /// The detections (sorted by decreasing score) without those nested with a kept detection of the same class: the
    /// overlap is at least <paramref name="containment"/> of the smaller of the two areas. Order is kept.
    /// </summary>
    /// <param name="detections">Detections sorted by decreasing score.</param>
    /// <param name="containment">Fraction in (0, 1] of the smaller area inside the other that makes a duplicate.</param>
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

    /// <summary>|A ∩ B| / min(|A|, |B|): how far the smaller of the two lies inside the other.</summary>
    private static double Contained(Detection a, Rle? aRle, Detection b, Rle? bRle)
    {
        if (aRle is not null && bRle is not null)
        {
            var smaller = Math.Min(aRle.Area, bRle.Area);
            // pycocotools' crowd IoU of a against b is |a ∩ b| / |a|.
            return smaller == 0 ? 1 : aRle.Area == 0 ? 1 : Rle.Iou(aRle, bRle, isCrowd: true) * aRle.Area / smaller;
        }

        var (p, q) = (a.Box, b.Box);
        var w = Math.Min(p.X2, q.X2) - Math.Max(p.X1, q.X1);
        var h = Math.Min(p.Y2, q.Y2) - Math.Max(p.Y1, q.Y1);
        var area = Math.Min((double)p.Width * p.Height, (double)q.Width * q.Height);
        return area <= 0 ? 1 : Math.Max(0, w) * Math.Max(0, h) / area;
    }
}
