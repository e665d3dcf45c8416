namespace MaskRcnn.Net.Core.Detection;

/// <summary>An axis-aligned box (x1, y1, x2, y2) in image pixels; x2 and y2 are exclusive edges (x2 = x1 + width).</summary>
/// <param name="X1">Left edge.</param>
/// <param name="Y1">Top edge.</param>
/// <param name="X2">Right edge.</param>
/// <param name="Y2">Bottom edge.</param>
public readonly record struct BoundingBox(float X1, float Y1, float X2, float Y2)
{
    /// <summary>X2 − X1.</summary>
    public float Width => X2 - X1;

    /// <summary>Width × height (0 for degenerate boxes).</summary>
    public double Area => IsDegenerate ? 0 : (double)(X2 - X1) * (Y2 - Y1);

    /// <summary>Intersection over union with another box (0 when both are empty).</summary>
    public double Iou(BoundingBox other)
    {
        var w = Math.Min(X2, other.X2) - Math.Max(X1, other.X1);
        var h = Math.Min(Y2, other.Y2) - Math.Max(Y1, other.Y1);
        var inter = w > 0 && h > 0 ? (double)w * h : 0;
        var union = Area + other.Area - inter;
        return union > 0 ? inter / union : 0;
    }

    /// <summary>Y2 − Y1.</summary>
    public float Height => Y2 - Y1;

    /// <summary>
    /// True when the box has no area (x2 ≤ x1 or y2 ≤ y1, or a NaN edge): torchvision's detection reference drops
    /// such boxes from the training targets.
    /// </summary>
    public bool IsDegenerate => !(X2 > X1 && Y2 > Y1);

    /// <summary>A box from COCO's (x, y, width, height) form.</summary>
    public static BoundingBox FromXywh(double x, double y, double width, double height) =>
        new((float)x, (float)y, (float)(x + width), (float)(y + height));

    /// <summary>The smallest box holding every point of an interleaved coordinate list [x0, y0, x1, y1, …].</summary>
    /// <exception cref="ArgumentException">The list is empty or has an odd length.</exception>
    public static BoundingBox Enclosing(IReadOnlyList<double> xy)
    {
        ArgumentNullException.ThrowIfNull(xy);
        if (xy.Count < 2 || xy.Count % 2 != 0)
        {
            throw new ArgumentException($"need a non-empty, even number of coordinates, got {xy.Count}", nameof(xy));
        }

        double x1 = double.PositiveInfinity, y1 = double.PositiveInfinity;
        double x2 = double.NegativeInfinity, y2 = double.NegativeInfinity;
        for (var i = 0; i < xy.Count; i += 2)
        {
            x1 = Math.Min(x1, xy[i]);
            x2 = Math.Max(x2, xy[i]);
            y1 = Math.Min(y1, xy[i + 1]);
            y2 = Math.Max(y2, xy[i + 1]);
        }

        return new BoundingBox((float)x1, (float)y1, (float)x2, (float)y2);
    }

    /// <summary>The box clamped to an image of the given size (edges in [0, width] and [0, height]), as torchvision's reference does.</summary>
    public BoundingBox ClampTo(int width, int height) => new(
        Math.Clamp(X1, 0, width), Math.Clamp(Y1, 0, height), Math.Clamp(X2, 0, width), Math.Clamp(Y2, 0, height));

    /// <summary>The box mirrored left-right in an image of <paramref name="imageWidth"/> columns: x1' = W − x2, x2' = W − x1.</summary>
    public BoundingBox FlipHorizontal(int imageWidth) => new(imageWidth - X2, Y1, imageWidth - X1, Y2);

    /// <summary>The box mirrored top-bottom in an image of <paramref name="imageHeight"/> rows: y1' = H − y2, y2' = H − y1.</summary>
    public BoundingBox FlipVertical(int imageHeight) => new(X1, imageHeight - Y2, X2, imageHeight - Y1);

    /// <summary>The box as [x1, y1, x2, y2].</summary>
    public float[] ToArray() => [X1, Y1, X2, Y2];

    /// <inheritdoc />
    public override string ToString() => $"({X1}, {Y1}, {X2}, {Y2})";
}
