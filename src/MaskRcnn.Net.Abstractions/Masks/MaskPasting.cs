using MaskRcnn.Net.Core.Detection;

namespace MaskRcnn.Net.Core.Masks;

/// <summary>
/// Pastes one instance's M×M mask probabilities into a full-image mask at its box, on plain arrays, computing what
/// torchvision's <c>paste_masks_in_image</c> computes (and MaskRcnn.Net.Core's tensor <c>MaskPaster</c>): the mask is
/// padded by <c>padding</c> zero pixels and the box expanded about its centre by the same ratio (float arithmetic),
/// the box truncated to integers, the padded mask resized bilinearly (half-pixel centres, as
/// <c>interpolate(..., align_corners=False)</c>) to the box plus one pixel, and copied into the image clipped at its
/// borders. For runtimes that get mask probabilities out of a network as arrays (ONNX Runtime).
/// </summary>
public static class MaskPasting
{
    /// <summary>
    /// The probabilities of <paramref name="mask"/> (M×M row-major, M = √length) pasted into a new
    /// <paramref name="width"/> × <paramref name="height"/> plane (row-major; zero outside the box).
    /// </summary>
    /// <exception cref="ArgumentException">The mask is not square and non-empty, the image has no pixel, the plane would
    /// not fit in one array, or the box is not finite.</exception>
    public static float[] Paste(ReadOnlySpan<float> mask, BoundingBox box, int width, int height, int padding = 1)
    {
        var plane = NewPlane<float>(width, height);
        PasteInto(mask, box, width, height, padding, (index, value) => plane[index] = value);
        return plane;
    }

    /// <summary>
    /// The pixels of the pasted mask whose probability is above <paramref name="threshold"/> (strictly, as the
    /// libtorch model's <c>MaskThreshold</c>), as a <see cref="BinaryMask"/>.
    /// </summary>
    /// <exception cref="ArgumentException">As <see cref="Paste"/>.</exception>
    public static BinaryMask PasteBinary(ReadOnlySpan<float> mask, BoundingBox box, int width, int height, float threshold = 0.5f, int padding = 1)
    {
        var bytes = NewPlane<byte>(width, height);
        PasteInto(mask, box, width, height, padding, (index, value) => bytes[index] = value > threshold ? (byte)1 : (byte)0);
        return BinaryMask.FromBytes(bytes, height, width);
    }

    private static T[] NewPlane<T>(int width, int height)
    {
        if (width < 1 || height < 1)
        {
            throw new ArgumentException($"the image must have at least one pixel, got {width}x{height} (width x height)", nameof(width));
        }

        if ((long)width * height > Array.MaxLength)
        {
            throw new ArgumentException($"a {width}x{height} mask is more than one array holds", nameof(width));
        }

        return new T[(long)width * height];
    }

    private static void PasteInto(ReadOnlySpan<float> mask, BoundingBox box, int width, int height, int padding, Action<int, float> store)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(padding);
        var m = (int)Math.Sqrt(mask.Length);
        if (m == 0 || m * m != mask.Length)
        {
            throw new ArgumentException($"a mask must be M×M probabilities with M > 0, got {mask.Length} values", nameof(mask));
        }

        if (!float.IsFinite(box.X1) || !float.IsFinite(box.Y1) || !float.IsFinite(box.X2) || !float.IsFinite(box.Y2))
        {
            throw new ArgumentException($"the box ({box.X1}, {box.Y1}, {box.X2}, {box.Y2}) is not finite", nameof(box));
        }

        // The padded mask: S×S with the M×M values in its centre.
        var s = m + 2 * padding;
        var padded = new float[s * s];
        for (var y = 0; y < m; y++)
        {
            mask.Slice(y * m, m).CopyTo(padded.AsSpan((y + padding) * s + padding, m));
        }

        // expand_boxes, in float as torchvision's tensors compute it, then truncated toward zero as .to(int64).
        var scale = (float)((double)s / m);
        var wHalf = (box.X2 - box.X1) * 0.5f * scale;
        var hHalf = (box.Y2 - box.Y1) * 0.5f * scale;
        var xc = (box.X2 + box.X1) * 0.5f;
        var yc = (box.Y2 + box.Y1) * 0.5f;
        long x1 = Truncate(xc - wHalf), y1 = Truncate(yc - hHalf), x2 = Truncate(xc + wHalf), y2 = Truncate(yc + hHalf);
        var w = Math.Max(x2 - x1 + 1, 1);
        var h = Math.Max(y2 - y1 + 1, 1);
        long x0 = Math.Max(x1, 0), xe = Math.Min(x2 + 1, width), y0 = Math.Max(y1, 0), ye = Math.Min(y2 + 1, height);
        if (x0 >= xe || y0 >= ye)
        {
            return;
        }

        // Bilinear, align_corners=False: source = (destination + 0.5) · S / size − 0.5, clamped at 0 (PyTorch's
        // area_pixel_compute_source_index), the next sample clamped at the last row/column.
        var sx = (float)s / w;
        var sy = (float)s / h;
        var columns = new (int Left, int Right, float WeightRight)[xe - x0];
        for (var x = x0; x < xe; x++)
        {
            columns[x - x0] = Source(x - x1, sx, s);
        }

        for (var y = y0; y < ye; y++)
        {
            var (top, bottom, wb) = Source(y - y1, sy, s);
            var wt = 1f - wb;
            for (var x = x0; x < xe; x++)
            {
                var (left, right, wr) = columns[x - x0];
                var wl = 1f - wr;
                var value = wt * (wl * padded[top * s + left] + wr * padded[top * s + right]) +
                            wb * (wl * padded[bottom * s + left] + wr * padded[bottom * s + right]);
                store((int)(y * width + x), value);
            }
        }
    }

    private static (int Low, int High, float WeightHigh) Source(long destination, float scale, int size)
    {
        var src = scale * (destination + 0.5f) - 0.5f;
        if (src < 0)
        {
            src = 0;
        }

        var low = Math.Min((int)src, size - 1);
        var high = low < size - 1 ? low + 1 : low;
        return (low, high, src - low);
    }

    private static long Truncate(float v) => v >= long.MaxValue ? long.MaxValue : v <= long.MinValue ? long.MinValue : (long)v;
}
