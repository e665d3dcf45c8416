namespace MaskRcnn.Net.Core.Detection;

/// <summary>Box coordinate formats.</summary>
public enum BoxFormat
{
    /// <summary>(x1, y1, x2, y2): top-left and bottom-right corners.</summary>
    Xyxy,

    /// <summary>(x1, y1, width, height) — COCO's bbox format.</summary>
    Xywh,

    /// <summary>(center x, center y, width, height).</summary>
    Cxcywh,
}

/// <summary>
/// Box operations with torchvision's conventions (<c>torchvision/ops/boxes.py</c>): boxes are [N, 4] floating
/// tensors in (x1, y1, x2, y2) pixels, areas have no "+1".
/// </summary>
public static class Boxes
{
    /// <summary>Throws an <see cref="ArgumentException"/> naming <paramref name="name"/> unless t is [N, 4] floating.</summary>
    public static void Check(Tensor boxes, string name)
    {
        ArgumentNullException.ThrowIfNull(boxes, name);
        var s = boxes.Shape;
        if (s.Length != 2 || s[1] != 4)
        {
            throw new ArgumentException($"{name} must be [N, 4] boxes, got shape [{string.Join(", ", s)}]", name);
        }

        if (!boxes.DType.IsFloatingPoint())
        {
            throw new ArgumentException($"{name} must be a floating-point tensor, got {boxes.DType}", name);
        }
    }

    /// <summary>Throws an <see cref="ArgumentException"/> naming <paramref name="name"/> if any coordinate is NaN or infinite.</summary>
    public static void CheckFinite(Tensor boxes, string name)
    {
        using var finite = boxes.IsFinite();
        using var all = finite.All();
        if (!all.ItemBool())
        {
            throw new ArgumentException($"{name} contains non-finite coordinates", name);
        }
    }

    /// <summary>Areas [N] of [N, 4] xyxy boxes.</summary>
    public static Tensor Area(Tensor boxes)
    {
        Check(boxes, nameof(boxes));
        using var scope = Torch.NewDisposeScope();
        var c = boxes.Unbind(1);
        return ((c[2] - c[0]) * (c[3] - c[1])).MoveToOuterDisposeScope();
    }

    /// <summary>Intersection areas [N, M] and union areas [N, M] of two box sets.</summary>
    public static (Tensor Intersection, Tensor Union) IntersectionAndUnion(Tensor boxes1, Tensor boxes2)
    {
        Check(boxes1, nameof(boxes1));
        Check(boxes2, nameof(boxes2));
        using var scope = Torch.NewDisposeScope();
        var a1 = Area(boxes1);
        var a2 = Area(boxes2);
        var lt = boxes1.Slice(1, 0, 2).Unsqueeze(1).Maximum(boxes2.Slice(1, 0, 2).Unsqueeze(0));
        var rb = boxes1.Slice(1, 2, 4).Unsqueeze(1).Minimum(boxes2.Slice(1, 2, 4).Unsqueeze(0));
        var wh = (rb - lt).Clamp(min: 0);
        var inter = wh.Select(2, 0) * wh.Select(2, 1);
        var union = a1.Unsqueeze(1) + a2.Unsqueeze(0) - inter;
        return (inter.MoveToOuterDisposeScope(), union.MoveToOuterDisposeScope());
    }

    /// <summary>Pairwise IoU matrix [N, M] (NaN where both boxes have zero area, as torchvision).</summary>
    public static Tensor Iou(Tensor boxes1, Tensor boxes2)
    {
        var (inter, union) = IntersectionAndUnion(boxes1, boxes2);
        using (inter)
        using (union)
        {
            return inter / union;
        }
    }

    /// <summary>Clamps x to [0, width] and y to [0, height].</summary>
    public static Tensor ClipToImage(Tensor boxes, long height, long width)
    {
        Check(boxes, nameof(boxes));
        ArgumentOutOfRangeException.ThrowIfNegative(height);
        ArgumentOutOfRangeException.ThrowIfNegative(width);
        using var scope = Torch.NewDisposeScope();
        var c = boxes.Unbind(1);
        var x1 = c[0].Clamp(0, width);
        var y1 = c[1].Clamp(0, height);
        var x2 = c[2].Clamp(0, width);
        var y2 = c[3].Clamp(0, height);
        return Tensor.Stack([x1, y1, x2, y2], 1).MoveToOuterDisposeScope();
    }

    /// <summary>Indices (int64) of boxes whose width and height are both ≥ <paramref name="minSize"/>.</summary>
    public static Tensor RemoveSmall(Tensor boxes, double minSize)
    {
        Check(boxes, nameof(boxes));
        using var scope = Torch.NewDisposeScope();
        var c = boxes.Unbind(1);
        var keep = (c[2] - c[0]).Ge(minSize) & (c[3] - c[1]).Ge(minSize);
        return keep.Nonzero().Select(1, 0).MoveToOuterDisposeScope();
    }

    /// <summary>Converts [N, 4] boxes between formats.</summary>
    public static Tensor Convert(Tensor boxes, BoxFormat from, BoxFormat to)
    {
        Check(boxes, nameof(boxes));
        if (from == to)
        {
            return boxes.Clone();
        }

        using var scope = Torch.NewDisposeScope();
        var c = boxes.Unbind(1);
        Tensor x1, y1, x2, y2;
        switch (from)
        {
            case BoxFormat.Xyxy:
                (x1, y1, x2, y2) = (c[0], c[1], c[2], c[3]);
                break;
            case BoxFormat.Xywh:
                (x1, y1, x2, y2) = (c[0], c[1], c[0] + c[2], c[1] + c[3]);
                break;
            default:
                (x1, y1, x2, y2) = (c[0] - 0.5 * c[2], c[1] - 0.5 * c[3], c[0] + 0.5 * c[2], c[1] + 0.5 * c[3]);
                break;
        }

        var result = to switch
        {
            BoxFormat.Xyxy => Tensor.Stack([x1, y1, x2, y2], 1),
            BoxFormat.Xywh => Tensor.Stack([x1, y1, x2 - x1, y2 - y1], 1),
            _ => Tensor.Stack([(x1 + x2) / 2.0, (y1 + y2) / 2.0, x2 - x1, y2 - y1], 1),
        };
        return result.MoveToOuterDisposeScope();
    }
}
