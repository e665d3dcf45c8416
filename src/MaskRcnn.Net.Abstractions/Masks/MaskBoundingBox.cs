namespace MaskRcnn.Net.Core.Masks;

/// <summary>
/// The pixel extent of a mask in COCO's (x, y, width, height) form: the smallest axis-aligned rectangle of whole
/// pixels holding every set pixel, as pycocotools' <c>toBbox</c> reports it. An empty mask has the all-zero box.
/// </summary>
public readonly record struct MaskBoundingBox
{
    /// <summary>Creates a box from its left column, top row and size in pixels.</summary>
    public MaskBoundingBox(int x, int y, int width, int height)
    {
        X = x;
        Y = y;
        Width = width;
        Height = height;
    }

    /// <summary>Leftmost set column.</summary>
    public int X { get; }

    /// <summary>Topmost set row.</summary>
    public int Y { get; }

    /// <summary>Number of columns from the leftmost to the rightmost set column (0 for an empty mask).</summary>
    public int Width { get; }

    /// <summary>Number of rows from the topmost to the bottommost set row (0 for an empty mask).</summary>
    public int Height { get; }

    /// <summary>True for the box of an empty mask.</summary>
    public bool IsEmpty => Width == 0 || Height == 0;

    /// <summary>The box as COCO's <c>[x, y, width, height]</c> doubles.</summary>
    public double[] ToXywh() => [X, Y, Width, Height];
}
