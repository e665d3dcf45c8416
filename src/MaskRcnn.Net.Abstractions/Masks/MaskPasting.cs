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

    /// <summary>
    /// The probabilities of <paramref name="mask"/> (M×M row-major) pasted into a new <paramref name="width"/> ×
    /// <paramref name="height"/> plane with exact, half-pixel-aligned geometry (detectron2's <c>paste_masks_in_image</c>,
    /// <c>grid_sample(..., align_corners=False)</c> with zero padding): cell (i, j) of the mask is the value at
    /// (<c>x1 + (j + 0.5)·w/M</c>, <c>y1 + (i + 0.5)·h/M</c>) in continuous image coordinates (pixel k's centre at
    /// k + 0.5), which is what a mask head trained on aligned targets (<c>RoIHeadsOptions.AlignedMaskTargets</c>)
    /// predicts; each pixel takes the bilinear interpolation at its centre, zero beyond the mask's outer cells. No
    /// integer rounding of the box, so the mask keeps its sub-pixel place and size.
    /// </summary>
    /// <exception cref="ArgumentException">As <see cref="Paste"/>.</exception>
    public static float[] PasteAligned(ReadOnlySpan<float> mask, BoundingBox box, int width, int height)
    {
        var plane = NewPlane<float>(width, height);
        PasteAlignedInto(mask, box, width, height, (index, value) => plane[index] = value);
        return plane;
    }

    /// <summary>
    /// The pixels of <see cref="PasteAligned"/>'s plane whose probability is strictly above <paramref name="threshold"/>.
    /// </summary>
    /// <exception cref="ArgumentException">As <see cref="Paste"/>.</exception>
    public static BinaryMask PasteAlignedBinary(ReadOnlySpan<float> mask, BoundingBox box, int width, int height, float threshold = 0.5f)
    {
        var bytes = NewPlane<byte>(width, height);
        PasteAlignedInto(mask, box, width, height, (index, value) => bytes[index] = value > threshold ? (byte)1 : (byte)0);
        return BinaryMask.FromBytes(bytes, height, width);
    }

    /// <summary>
    /// One axis of <see cref="PasteAligned"/>: for the pixels <c>first … first + count − 1</c> of an image side of
    /// <paramref name="size"/> pixels that the span [<paramref name="start"/>, <paramref name="end"/>) divided into
    /// <paramref name="cells"/> cells reaches, the bilinear weight of every cell (row-major [count, cells]; at most two
    /// non-zero per pixel). Pasting is then <c>Wy · mask · Wxᵀ</c>. An empty or inverted span reaches no pixel.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="cells"/> or <paramref name="size"/> is not positive, or a bound is not finite.</exception>
    public static (int First, int Count, float[] Weights) AlignedWeights(float start, float end, int cells, int size)
    {
        var (first, taps) = AlignedTaps(start, end, cells, size);
        var weights = new float[taps.Length * cells];
        for (var k = 0; k < taps.Length; k++)
        {
            var (low, wLow, high, wHigh) = taps[k];
            weights[k * cells + low] += wLow;
            weights[k * cells + high] += wHigh;
        }

        return (first, taps.Length, weights);
    }

    /// <summary>
    /// The pixels <c>first … first + taps.Length − 1</c> that the span reaches (see <see cref="AlignedWeights"/>) and,
    /// for each, its two cells and their bilinear weights (a tap beyond the outer cells has weight 0 and a cell index
    /// clamped into the mask, so it reads a real cell and adds nothing).
    /// </summary>
    private static (int First, (int Low, float LowWeight, int High, float HighWeight)[] Taps) AlignedTaps(float start, float end, int cells, int size)
    {
        if (cells < 1 || size < 1)
        {
            throw new ArgumentException($"cells ({cells}) and size ({size}) must be positive", nameof(cells));
        }

        if (!float.IsFinite(start) || !float.IsFinite(end))
        {
            throw new ArgumentException($"the span [{start}, {end}) is not finite", nameof(start));
        }

        var length = (double)end - start;
        if (!(length > 0))
        {
            return (0, []);
        }

        // Pixel p's centre p + 0.5 is at cell coordinate u = (p + 0.5 − start) / cell − 0.5 (cell centres at integers);
        // it has a non-zero weight while −1 < u < cells.
        var cell = length / cells;
        var first = (int)Math.Clamp(Math.Floor(start - cell / 2 - 0.5) + 1, 0, size);
        var last = (int)Math.Clamp(Math.Ceiling(end + cell / 2 - 0.5) - 1, -1, size - 1);
        var taps = new (int, float, int, float)[Math.Max(0, last - first + 1)];
        for (var k = 0; k < taps.Length; k++)
        {
            var u = (first + k + 0.5 - start) / cell - 0.5;
            var low = (int)Math.Floor(u);
            var high = (float)(u - low);
            var inLow = low >= 0 && low < cells;
            var inHigh = low + 1 >= 0 && low + 1 < cells;
            taps[k] = (inLow ? low : Math.Clamp(low, 0, cells - 1), inLow ? 1f - high : 0f,
                       inHigh ? low + 1 : Math.Clamp(low + 1, 0, cells - 1), inHigh ? high : 0f);
        }

        return (first, taps);
    }

    private static void PasteAlignedInto(ReadOnlySpan<float> mask, BoundingBox box, int width, int height, Action<int, float> store)
    {
        var m = CheckMaskAndBox(mask, box);
        var (x0, xTaps) = AlignedTaps(box.X1, box.X2, m, width);
        var (y0, yTaps) = AlignedTaps(box.Y1, box.Y2, m, height);
        var cx = xTaps.Length;
        var cy = yTaps.Length;
        if (cx == 0 || cy == 0)
        {
            return;
        }

        // value[y, x] = Σ_i Σ_j wy[y, i] · mask[i, j] · wx[x, j], with at most two non-zero weights per pixel and axis:
        // rows[i, x] = Σ_j mask[i, j] · wx[x, j] first (M × width taps), then the two rows each pixel row reads.
        var rows = new float[m * cx];
        for (var i = 0; i < m; i++)
        {
            var row = mask.Slice(i * m, m);
            for (var x = 0; x < cx; x++)
            {
                var (j0, w0, j1, w1) = xTaps[x];
                rows[i * cx + x] = row[j0] * w0 + row[j1] * w1;
            }
        }

        for (var y = 0; y < cy; y++)
        {
            var (i0, v0, i1, v1) = yTaps[y];
            for (var x = 0; x < cx; x++)
            {
                store((y0 + y) * width + x0 + x, v0 * rows[i0 * cx + x] + v1 * rows[i1 * cx + x]);
            }
        }
    }

    /// <summary>The side M of an M×M mask, after checking the mask is square and non-empty and the box finite (both pastes).</summary>
    private static int CheckMaskAndBox(ReadOnlySpan<float> mask, BoundingBox box)
    {
        var m = (int)Math.Sqrt(mask.Length);
        if (m == 0 || m * m != mask.Length)
        {
            throw new ArgumentException($"a mask must be M×M probabilities with M > 0, got {mask.Length} values", nameof(mask));
        }

        if (!float.IsFinite(box.X1) || !float.IsFinite(box.Y1) || !float.IsFinite(box.X2) || !float.IsFinite(box.Y2))
        {
            throw new ArgumentException($"the box ({box.X1}, {box.Y1}, {box.X2}, {box.Y2}) is not finite", nameof(box));
        }

        return m;
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
        var m = CheckMaskAndBox(mask, box);

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
