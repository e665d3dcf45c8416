using MaskRcnn.Net.Core.Masks;

namespace MaskRcnn.Net.Training;

/// <summary>Turns annotation shapes into polygons and masks, with errors that name the JSON field at fault.</summary>
internal static class Shapes
{
    /// <summary>
    /// Checks a polygon [x0, y0, x1, y1, …]: an even count of at least 6 coordinates, each finite and within
    /// ±<see cref="Rle.MaxCoordinate"/>. <paramref name="at"/> locates the polygon; a bad coordinate is named by index.
    /// </summary>
    public static void CheckPolygon(JsonCursor at, IReadOnlyList<double> xy, Func<int, string>? coordinatePath = null)
    {
        if (xy.Count % 2 != 0)
        {
            throw at.Error($"a polygon needs an even number of coordinates (x, y pairs), found {xy.Count}");
        }

        if (xy.Count < 6)
        {
            throw at.Error($"a polygon needs at least 3 points, found {xy.Count / 2}");
        }

        for (var i = 0; i < xy.Count; i++)
        {
            if (!double.IsFinite(xy[i]) || Math.Abs(xy[i]) > Rle.MaxCoordinate)
            {
                var where = coordinatePath?.Invoke(i) ?? $"{at.Path}[{i}]";
                throw new DatasetFormatException(at.File, where,
                    $"coordinate {xy[i]} is not finite or lies beyond ±{Rle.MaxCoordinate} pixels");
            }
        }
    }

    /// <summary>
    /// Checks that a <paramref name="width"/> × <paramref name="height"/> image can have masks (at most
    /// <see cref="int.MaxValue"/> pixels, the limit of <see cref="BinaryMask"/> and <see cref="Rle"/>);
    /// <paramref name="at"/> locates the size in the file.
    /// </summary>
    public static void CheckImageSize(JsonCursor at, int width, int height)
    {
        if ((long)width * height > int.MaxValue)
        {
            throw at.Error($"the image is {width}x{height} (width x height) pixels, more than the {int.MaxValue} pixels a mask can hold");
        }
    }

    /// <summary>Rasterises polygons (already checked) into one mask; rasteriser errors name <paramref name="at"/>.</summary>
    public static Rle Rasterise(JsonCursor at, IReadOnlyList<IReadOnlyList<double>> polygons, int height, int width)
    {
        try
        {
            return polygons.Count == 1 ? Rle.FromPolygon(polygons[0], height, width) : Rle.FromPolygons(polygons, height, width);
        }
        catch (ArgumentException e)
        {
            throw at.Error($"cannot rasterise the polygon: {e.Message}", e);
        }
    }

    /// <summary>
    /// The polygon of an ellipse centred at (cx, cy) with radii rx, ry, rotated by <paramref name="theta"/> radians
    /// (clockwise on screen, as VIA draws it), with about one vertex per pixel of outline (at least 32, at most 1024).
    /// </summary>
    public static double[] Ellipse(double cx, double cy, double rx, double ry, double theta = 0)
    {
        // Ramanujan's approximation of the perimeter.
        var h = Math.Pow(rx - ry, 2) / Math.Max(Math.Pow(rx + ry, 2), 1e-12);
        var perimeter = Math.PI * (rx + ry) * (1 + 3 * h / (10 + Math.Sqrt(4 - 3 * h)));
        var n = (int)Math.Clamp(Math.Ceiling(perimeter), 32, 1024);
        var (sin, cos) = Math.SinCos(theta);
        var xy = new double[2 * n];
        for (var k = 0; k < n; k++)
        {
            var (s, c) = Math.SinCos(2 * Math.PI * k / n);
            var ex = rx * c;
            var ey = ry * s;
            xy[2 * k] = cx + ex * cos - ey * sin;
            xy[2 * k + 1] = cy + ex * sin + ey * cos;
        }

        return xy;
    }

    /// <summary>
    /// An annotation from polygons (checked and rasterised) whose box is the extent of their vertices clamped to the
    /// image; null when that box is empty, after <paramref name="reporter"/> has reported it as a bad annotation.
    /// </summary>
    public static Annotation? FromPolygons(JsonCursor at, IReadOnlyList<double[]> polygons, int label, int height, int width,
        BadAnnotationReporter reporter)
    {
        foreach (var p in polygons)
        {
            CheckPolygon(at, p);
        }

        var all = polygons.SelectMany(p => p).ToArray();
        var box = BoundingBox.Enclosing(all).ClampTo(width, height);
        if (box.IsDegenerate)
        {
            reporter.BadAnnotation(at, $"degenerate shape: its box {box} inside the {width}x{height} image is empty");
            return null;
        }

        return Annotation.FromRle(box, label, Rasterise(at, polygons, height, width));
    }

    /// <summary>The four corners of a rectangle, in pycocotools' <c>frBbox</c> order.</summary>
    public static double[] Rectangle(double x1, double y1, double x2, double y2) => [x1, y1, x1, y2, x2, y2, x2, y1];
}

/// <summary>Reports progress about once per percent of a stage and checks for cancellation per item.</summary>
internal sealed class ProgressTracker
{
    private readonly IProgress<DatasetLoadProgress>? progress;
    private readonly CancellationToken cancellationToken;
    private readonly string stage;
    private readonly int total;
    private readonly int step;
    private int done;

    public ProgressTracker(IProgress<DatasetLoadProgress>? progress, CancellationToken cancellationToken, string stage, int total)
    {
        this.progress = progress;
        this.cancellationToken = cancellationToken;
        this.stage = stage;
        this.total = total;
        step = Math.Max(1, total / 100);
        cancellationToken.ThrowIfCancellationRequested();
        progress?.Report(new DatasetLoadProgress(stage, 0, total));
    }

    public void Advance()
    {
        cancellationToken.ThrowIfCancellationRequested();
        done++;
        if (progress is not null && (done % step == 0 || done == total))
        {
            progress.Report(new DatasetLoadProgress(stage, done, total));
        }
    }
}
