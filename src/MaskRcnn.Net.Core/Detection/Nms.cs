namespace MaskRcnn.Net.Core.Detection;

/// <summary>
/// Non-maximum suppression with torchvision's semantics (<c>torchvision.ops.nms</c> / <c>batched_nms</c>): boxes are
/// visited in order of decreasing score (equal scores keep their input order), and a box is dropped when its IoU
/// with an already kept box is strictly greater than the threshold. Areas are (x2 - x1)·(y2 - y1), without "+1".
/// CPU tensors run a native kernel; tensors on other devices are suppressed on a host copy and the indices returned
/// on the original device.
/// </summary>
public static class Nms
{
    /// <summary>Suppresses overlapping boxes regardless of class.</summary>
    /// <param name="boxes">[N, 4] float32 or float64 boxes (x1, y1, x2, y2); every coordinate must be finite.</param>
    /// <param name="scores">[N] scores of the same dtype and device as <paramref name="boxes"/>; NaN is rejected.</param>
    /// <param name="iouThreshold">Boxes whose IoU with a kept box exceeds this value are discarded.</param>
    /// <returns>int64 indices of the kept boxes, sorted by decreasing score.</returns>
    /// <exception cref="ArgumentException">An argument has the wrong shape, dtype or device, or invalid values.</exception>
    public static Tensor Apply(Tensor boxes, Tensor scores, double iouThreshold)
    {
        Validate(boxes, scores, iouThreshold);
        return new Tensor(NativeMethods.mr_nms(boxes.Handle, scores.Handle, iouThreshold));
    }

    /// <summary>
    /// Suppresses overlapping boxes within each class only: the result equals
    /// <c>torchvision.ops.batched_nms</c> (same strategy choice, hence the same indices in the same order).
    /// </summary>
    /// <param name="boxes">[N, 4] float32 or float64 boxes (x1, y1, x2, y2); every coordinate must be finite.</param>
    /// <param name="scores">[N] scores of the same dtype and device as <paramref name="boxes"/>; NaN is rejected.</param>
    /// <param name="classIds">[N] integer class of each box, on the same device.</param>
    /// <param name="iouThreshold">Boxes whose IoU with a kept box of the same class exceeds this value are discarded.</param>
    /// <returns>int64 indices of the kept boxes, sorted by decreasing score.</returns>
    /// <exception cref="ArgumentException">An argument has the wrong shape, dtype or device, or invalid values.</exception>
    public static Tensor Batched(Tensor boxes, Tensor scores, Tensor classIds, double iouThreshold)
    {
        Validate(boxes, scores, iouThreshold);
        ArgumentNullException.ThrowIfNull(classIds);
        var n = boxes.Size(0);
        var s = classIds.Shape;
        if (s.Length != 1 || s[0] != n)
        {
            throw new ArgumentException($"classIds must have shape [{n}], got [{string.Join(", ", s)}]", nameof(classIds));
        }

        if (classIds.DType.IsFloatingPoint() || classIds.DType == DType.Bool)
        {
            throw new ArgumentException($"classIds must be an integer tensor, got {classIds.DType}", nameof(classIds));
        }

        if (classIds.Device != boxes.Device)
        {
            throw new ArgumentException($"classIds is on {classIds.Device}, boxes on {boxes.Device}", nameof(classIds));
        }

        return new Tensor(NativeMethods.mr_batched_nms(boxes.Handle, scores.Handle, classIds.Handle, iouThreshold));
    }

    private static void Validate(Tensor boxes, Tensor scores, double iouThreshold)
    {
        ArgumentNullException.ThrowIfNull(boxes);
        ArgumentNullException.ThrowIfNull(scores);
        var b = boxes.Shape;
        if (b.Length != 2 || b[1] != 4)
        {
            throw new ArgumentException($"boxes must have shape [N, 4], got [{string.Join(", ", b)}]", nameof(boxes));
        }

        if (boxes.DType is not (DType.Float32 or DType.Float64))
        {
            throw new ArgumentException($"boxes must be float32 or float64, got {boxes.DType}", nameof(boxes));
        }

        var s = scores.Shape;
        if (s.Length != 1 || s[0] != b[0])
        {
            throw new ArgumentException($"scores must have shape [{b[0]}], got [{string.Join(", ", s)}]", nameof(scores));
        }

        if (scores.DType != boxes.DType)
        {
            throw new ArgumentException($"scores are {scores.DType} but boxes are {boxes.DType}", nameof(scores));
        }

        if (scores.Device != boxes.Device)
        {
            throw new ArgumentException($"scores are on {scores.Device}, boxes on {boxes.Device}", nameof(scores));
        }

        if (double.IsNaN(iouThreshold))
        {
            throw new ArgumentOutOfRangeException(nameof(iouThreshold), iouThreshold, "the IoU threshold must be a number");
        }

        if (Native.Check(NativeMethods.mr_all_finite(boxes.Handle)) == 0)
        {
            throw new ArgumentException("boxes contain NaN or infinite coordinates", nameof(boxes));
        }

        if (Native.Check(NativeMethods.mr_any_nan(scores.Handle)) == 1)
        {
            throw new ArgumentException("scores contain NaN", nameof(scores));
        }
    }
}
