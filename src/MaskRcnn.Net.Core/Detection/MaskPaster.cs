namespace MaskRcnn.Net.Core.Detection;

/// <summary>
/// Pastes per-instance M×M mask probabilities into full-image masks at their boxes, exactly as torchvision's
/// <c>paste_masks_in_image</c>: the mask is padded by <c>padding</c> pixels and the box expanded by the same
/// ratio, the box is truncated to integers, the mask resized bilinearly to the box (+1 pixel) and copied into the
/// image, clipped at its borders. Device-agnostic (tensor ops only).
/// </summary>
public static class MaskPaster
{
    /// <summary>
    /// Pastes <paramref name="masks"/> [N, 1, M, M] (or [N, M, M]) into [N, 1, height, width] images at
    /// <paramref name="boxes"/> [N, 4] (xyxy, image pixels). Values keep the masks' dtype (probabilities).
    /// </summary>
    public static Tensor Paste(Tensor masks, Tensor boxes, long height, long width, int padding = 1)
    {
        ArgumentNullException.ThrowIfNull(masks);
        Boxes.Check(boxes, nameof(boxes));
        ArgumentOutOfRangeException.ThrowIfNegative(padding);
        using var scope = Torch.NewDisposeScope();
        var m = MasksToPaste(masks, boxes, height, width);
        var ms = m.Shape;
        var n = ms[0];
        if (n == 0)
        {
            return Tensor.Empty([0, 1, height, width], m.DType, m.Device).MoveToOuterDisposeScope();
        }

        Boxes.CheckFinite(boxes, nameof(boxes));
        var size = ms[2];
        var scale = (double)(size + 2 * padding) / size;
        var padded = Tensor.Zeros([n, 1, size + 2 * padding, size + 2 * padding], m.DType, m.Device);
        padded.Slice(2, padding, padding + size).Slice(3, padding, padding + size).CopyFrom(m);
        var intBoxes = Expand(boxes, scale).To(DType.Int64).ToArray<long>();
        var result = Tensor.Zeros([n, 1, height, width], m.DType, m.Device);
        for (var i = 0; i < n; i++)
        {
            long x1 = intBoxes[4 * i], y1 = intBoxes[4 * i + 1], x2 = intBoxes[4 * i + 2], y2 = intBoxes[4 * i + 3];
            var w = Math.Max(x2 - x1 + 1, 1);
            var h = Math.Max(y2 - y1 + 1, 1);
            long x0 = Math.Max(x1, 0), xe = Math.Min(x2 + 1, width), y0 = Math.Max(y1, 0), ye = Math.Min(y2 + 1, height);
            if (x0 >= xe || y0 >= ye)
            {
                continue;
            }

            using var inner = Torch.NewDisposeScope();
            var resized = NN.Functional.Interpolate(padded.Narrow(0, i, 1), h, w, NN.InterpolationMode.Bilinear);
            var src = resized.Select(0, 0).Select(0, 0).Slice(0, y0 - y1, ye - y1).Slice(1, x0 - x1, xe - x1);
            result.Select(0, i).Select(0, 0).Slice(0, y0, ye).Slice(1, x0, xe).CopyFrom(src);
        }

        return result.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Pastes <paramref name="masks"/> [N, 1, M, M] (or [N, M, M]) into [N, 1, height, width] images at
    /// <paramref name="boxes"/> with exact, half-pixel-aligned geometry (detectron2's paste; what
    /// <see cref="Masks.MaskPasting.PasteAligned"/> computes on arrays): each mask is <c>Wy · mask · Wxᵀ</c> with the
    /// bilinear weights of <see cref="Masks.MaskPasting.AlignedWeights"/>, so a box is never rounded to whole pixels.
    /// </summary>
    public static Tensor PasteAligned(Tensor masks, Tensor boxes, long height, long width)
    {
        ArgumentNullException.ThrowIfNull(masks);
        Boxes.Check(boxes, nameof(boxes));
        using var scope = Torch.NewDisposeScope();
        var m = MasksToPaste(masks, boxes, height, width);
        var ms = m.Shape;
        var n = ms[0];
        var result = Tensor.Zeros([n, 1, height, width], m.DType, m.Device);
        if (n == 0)
        {
            return result.MoveToOuterDisposeScope();
        }

        Boxes.CheckFinite(boxes, nameof(boxes));
        var cells = (int)ms[2];
        var b = boxes.To(DType.Float32).ToArray<float>();
        for (var i = 0; i < n; i++)
        {
            var (x0, cx, wx) = Masks.MaskPasting.AlignedWeights(b[4 * i], b[4 * i + 2], cells, (int)width);
            var (y0, cy, wy) = Masks.MaskPasting.AlignedWeights(b[4 * i + 1], b[4 * i + 3], cells, (int)height);
            if (cx == 0 || cy == 0)
            {
                continue;
            }

            using var inner = Torch.NewDisposeScope();
            var plane = m.Select(0, i).Select(0, 0);
            var rowsWeights = Tensor.FromArray(wy, cy, cells).To(m.Device, m.DType);
            var columnWeights = Tensor.FromArray(wx, cx, cells).To(m.Device, m.DType);
            var pasted = rowsWeights.MatMul(plane).MatMul(columnWeights.T());
            result.Select(0, i).Select(0, 0).Slice(0, y0, y0 + cy).Slice(1, x0, x0 + cx).CopyFrom(pasted);
        }

        return result.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The checks both pastes share (image size, mask shape, one box per mask); returns the masks as [N, 1, M, M], a
    /// view made in the caller's dispose scope.
    /// </summary>
    private static Tensor MasksToPaste(Tensor masks, Tensor boxes, long height, long width)
    {
        if (height <= 0 || width <= 0 || height > int.MaxValue || width > int.MaxValue)
        {
            throw new ArgumentOutOfRangeException(nameof(height), $"image size {height}x{width} must be positive");
        }

        var m = masks.Dim == 3 ? masks.Unsqueeze(1) : masks;
        var ms = m.Shape;
        if (ms.Length != 4 || ms[1] != 1 || ms[2] != ms[3] || ms[2] == 0)
        {
            throw new ArgumentException($"masks must be [N, 1, M, M] or [N, M, M], got [{string.Join(", ", masks.Shape)}]", nameof(masks));
        }

        if (boxes.Size(0) != ms[0])
        {
            throw new ArgumentException($"{ms[0]} masks but {boxes.Size(0)} boxes", nameof(boxes));
        }

        return m;
    }

    /// <summary>Scales boxes about their centres by <paramref name="scale"/> (torchvision's expand_boxes).</summary>
    public static Tensor Expand(Tensor boxes, double scale)
    {
        Boxes.Check(boxes, nameof(boxes));
        using var scope = Torch.NewDisposeScope();
        var c = boxes.Unbind(1);
        var wHalf = (c[2] - c[0]) * 0.5 * scale;
        var hHalf = (c[3] - c[1]) * 0.5 * scale;
        var xc = (c[2] + c[0]) * 0.5;
        var yc = (c[3] + c[1]) * 0.5;
        return Tensor.Stack([xc - wHalf, yc - hHalf, xc + wHalf, yc + hHalf], 1).MoveToOuterDisposeScope();
    }
}
