namespace MaskRcnn.Net.Core.Masks;

public sealed partial class Rle
{
    /// <summary>
    /// Largest magnitude, in pixels, accepted for a polygon or box coordinate (±1,000,000). Larger values are
    /// rejected rather than clamped; see <see cref="FromPolygon"/>.
    /// </summary>
    public const double MaxCoordinate = 1_000_000;

    /// <summary>
    /// Largest number of boundary crossings (an edge passing a column of pixel centres) one polygon may produce:
    /// 2^24. A real outline crosses each column a few times; a polygon zig-zagging thousands of times across a
    /// million-pixel-wide image would otherwise need gigabytes and minutes before producing its mask.
    /// </summary>
    public const int MaxCrossings = 1 << 24;

    private const int Scale = 5; // rleFrPoly's upsampling factor

    /// <summary>
    /// Rasterises one polygon <c>[x0, y0, x1, y1, …]</c> (pixel coordinates, the polygon closes by itself) into
    /// a <paramref name="height"/> × <paramref name="width"/> mask exactly like pycocotools' <c>rleFrPoly</c>
    /// (what <c>frPyObjects</c> applies to each polygon).
    /// </summary>
    /// <remarks>
    /// <para>
    /// pycocotools upsamples the vertices by 5 (rounding with C's <c>(int)(5·c + .5)</c>), walks every discrete
    /// point of every edge, keeps the points where the boundary crosses a column of pixel centres
    /// (<c>x = 5·col + 2.5</c>), turns each crossing into the first row below it, and toggles the mask at the
    /// sorted crossings. This implementation produces the same crossings without walking the points: for each
    /// column spanned by an edge it evaluates the two bracketing points directly (shallow edges) or binary-searches
    /// the monotone x of the walk (steep edges), so the cost grows with the columns an edge spans inside the
    /// image, not with its length.
    /// </para>
    /// <para>
    /// Coordinates must be finite and within ±<see cref="MaxCoordinate"/>. They are not clamped to the image:
    /// moving a far vertex changes the slope of its edges and therefore which pixels inside the image the
    /// rounded walk reaches, so no clamp provably preserves pycocotools' mask. The bound keeps every quantity of
    /// the algorithm exact: pycocotools itself overflows 32-bit integers beyond about ±2.1·10^8 pixels and needs one
    /// point per 0.2 pixel of outline.
    /// </para>
    /// <para>
    /// Unlike pycocotools, which truncates an odd coordinate count and treats a first polygon of 4 numbers as a
    /// box, at least 3 points (6 numbers) and an even count are required.
    /// </para>
    /// </remarks>
    /// <exception cref="ArgumentException">
    /// Fewer than 6 or an odd number of coordinates, a non-finite coordinate, one beyond
    /// ±<see cref="MaxCoordinate"/>, a negative or too large image size, or an outline crossing the image's pixel
    /// columns more than <see cref="MaxCrossings"/> times.
    /// </exception>
    public static Rle FromPolygon(IReadOnlyList<double> xy, int height, int width)
    {
        ArgumentNullException.ThrowIfNull(xy);
        BinaryMask.CheckSize(height, width);
        return Rasterise(xy, height, width, nameof(xy));
    }

    /// <summary>
    /// Rasterises an object made of several polygons as the union of their masks, like pycocotools'
    /// <c>COCO.annToRLE</c> (<c>merge(frPyObjects(segmentation, h, w))</c>) for a polygon segmentation.
    /// </summary>
    /// <exception cref="ArgumentException">No polygons, or a polygon rejected by <see cref="FromPolygon"/>.</exception>
    public static Rle FromPolygons(IEnumerable<IReadOnlyList<double>> polygons, int height, int width)
    {
        ArgumentNullException.ThrowIfNull(polygons);
        BinaryMask.CheckSize(height, width);
        var parts = new List<Rle>();
        foreach (var polygon in polygons)
        {
            var name = $"{nameof(polygons)}[{parts.Count}]";
            if (polygon is null)
            {
                throw new ArgumentException($"{name} is null", nameof(polygons));
            }

            parts.Add(Rasterise(polygon, height, width, name));
        }

        if (parts.Count == 0)
        {
            throw new ArgumentException("an object needs at least one polygon", nameof(polygons));
        }

        return Merge(parts);
    }

    /// <summary>
    /// Rasterises a COCO box (x, y, width, height in pixels) like pycocotools' <c>frBbox</c> (<c>rleFrBbox</c>):
    /// the polygon of its four corners through <see cref="FromPolygon"/>.
    /// </summary>
    /// <exception cref="ArgumentException">
    /// A non-finite or negative box size, a corner beyond ±<see cref="MaxCoordinate"/>, or a bad image size.
    /// </exception>
    public static Rle FromBoundingBox(double x, double y, double boxWidth, double boxHeight, int height, int width)
    {
        BinaryMask.CheckSize(height, width);
        CheckBoxValue(x, nameof(x));
        CheckBoxValue(y, nameof(y));
        CheckBoxValue(boxWidth, nameof(boxWidth));
        CheckBoxValue(boxHeight, nameof(boxHeight));
        if (boxWidth < 0 || boxHeight < 0)
        {
            throw new ArgumentException($"box size {boxWidth}x{boxHeight} must not be negative",
                boxWidth < 0 ? nameof(boxWidth) : nameof(boxHeight));
        }

        double xe = x + boxWidth, ye = y + boxHeight;
        CheckBoxValue(xe, nameof(boxWidth));
        CheckBoxValue(ye, nameof(boxHeight));
        return Rasterise([x, y, x, ye, xe, ye, xe, y], height, width, "box");
    }

    private static void CheckBoxValue(double value, string name)
    {
        if (!double.IsFinite(value) || Math.Abs(value) > MaxCoordinate)
        {
            throw new ArgumentException($"{name} is {value}; box values must be finite and within ±{MaxCoordinate}", name);
        }
    }

    private static Rle Rasterise(IReadOnlyList<double> xy, int h, int w, string name)
    {
        var n = xy.Count;
        if (n % 2 != 0)
        {
            throw new ArgumentException($"{name} has an odd number ({n}) of coordinates; expected x, y pairs", name);
        }

        if (n < 6)
        {
            throw new ArgumentException($"{name} has {n / 2} points; a polygon needs at least 3 (6 coordinates)", name);
        }

        // Upsampled integer vertices, closed: vertex k repeats vertex 0. C's (int) truncates toward zero.
        var k = n / 2;
        var ux = new int[k + 1];
        var uy = new int[k + 1];
        for (var j = 0; j < k; j++)
        {
            ux[j] = Upsample(xy[2 * j], name, 2 * j);
            uy[j] = Upsample(xy[2 * j + 1], name, 2 * j + 1);
        }

        ux[k] = ux[0];
        uy[k] = uy[0];

        var crossings = new List<int>();
        for (var j = 0; j < k; j++)
        {
            AddEdgeCrossings(ux[j], uy[j], ux[j + 1], uy[j + 1], h, w, crossings);
            if (crossings.Count > MaxCrossings)
            {
                throw new ArgumentException(
                    $"{name}: the outline crosses the pixel columns of the {w}x{h} image more than {MaxCrossings} times " +
                    $"(after {j + 1} of {k} edges); such a polygon is too complex to rasterise", name);
            }
        }

        return FromCrossings(crossings, h, w);
    }

    private static int Upsample(double value, string name, int index)
    {
        if (!double.IsFinite(value))
        {
            throw new ArgumentException($"{name}[{index}] is {value}; polygon coordinates must be finite", name);
        }

        if (Math.Abs(value) > MaxCoordinate)
        {
            throw new ArgumentException(
                $"{name}[{index}] is {value}; polygon coordinates must be within ±{MaxCoordinate} pixels", name);
        }

        return (int)(Scale * value + .5);
    }

    /// <summary>
    /// Adds, for one edge of the upsampled polygon, the positions <c>col·h + row</c> at which rleFrPoly toggles
    /// the mask. rleFrPoly walks the edge's discrete points (u, v); wherever consecutive points step between
    /// u = 5·col + 2 and 5·col + 3 with 0 ≤ col &lt; w, it records (col, ceil(clamp((min v + .5)/5 − .5, 0, h))).
    /// </summary>
    private static void AddEdgeCrossings(int xs, int ys, int xe, int ye, int h, int w, List<int> crossings)
    {
        int dx = Math.Abs(xe - xs), dy = Math.Abs(ys - ye);
        if (dx == 0 && dy == 0)
        {
            return; // a single point: u never changes
        }

        // rleFrPoly orients each edge canonically so that its rounding does not depend on the direction of travel;
        // the points are the same set either way, and so are the crossings between consecutive ones.
        var flip = (dx >= dy && xs > xe) || (dx < dy && ys > ye);
        if (flip)
        {
            (xs, xe) = (xe, xs);
            (ys, ye) = (ye, ys);
        }

        if (dx >= dy)
        {
            // Shallow: points (xs + t, V(t)) for t = 0..dx; u steps by exactly one each point.
            var s = (double)(ye - ys) / dx;
            var first = Math.Max(0, CeilDiv5(xs - 2));
            var last = Math.Min(w - 1, FloorDiv5(xs + dx - 3));
            for (var col = first; col <= last; col++)
            {
                var t = Scale * col + 2 - xs;
                var v0 = (int)(ys + s * t + .5);
                var v1 = (int)(ys + s * (t + 1) + .5);
                AddCrossing(col, Math.Min(v0, v1), h, crossings);
            }
        }
        else
        {
            // Steep: points (U(t), ys + t) for t = 0..dy; U is monotone and, as |s| < 1 and every value is exact to
            // far better than 1/dy within ±MaxCoordinate, steps by at most one between consecutive points.
            var s = (double)(xe - xs) / dy;
            int u0 = SteepU(xs, s, 0), u1 = SteepU(xs, s, dy);
            int lo = Math.Min(u0, u1), hi = Math.Max(u0, u1);
            var first = Math.Max(0, CeilDiv5(lo - 2));
            var last = Math.Min(w - 1, FloorDiv5(hi - 3));
            var increasing = u1 > u0;
            for (var col = first; col <= last; col++)
            {
                var boundary = Scale * col + 3;

                // First t whose point lies past the boundary between u = boundary - 1 and u = boundary.
                int low = 1, high = dy;
                while (low < high)
                {
                    var mid = low + (high - low) / 2;
                    var u = SteepU(xs, s, mid);
                    if (increasing ? u >= boundary : u < boundary)
                    {
                        high = mid;
                    }
                    else
                    {
                        low = mid + 1;
                    }
                }

                AddCrossing(col, ys + low - 1, h, crossings);
            }
        }
    }

    private static int SteepU(int xs, double s, int t) => (int)(xs + s * t + .5);

    private static void AddCrossing(int col, int vMin, int h, List<int> crossings)
    {
        var yd = (vMin + .5) / Scale - .5;
        if (yd < 0)
        {
            yd = 0;
        }
        else if (yd > h)
        {
            yd = h;
        }

        crossings.Add(col * h + (int)Math.Ceiling(yd));
    }

    /// <summary>Sorts the toggle positions and turns them into counts, cancelling positions that repeat.</summary>
    private static Rle FromCrossings(List<int> crossings, int h, int w)
    {
        crossings.Add(h * w);
        crossings.Sort();

        // Differences between consecutive sorted positions; a zero difference means the same position toggled
        // twice, so it is dropped together with the run after it being joined to the run before it (rleFrPoly).
        var runs = new List<int>(crossings.Count);
        var previous = 0;
        var pendingJoin = false;
        var first = true;
        foreach (var position in crossings)
        {
            var run = position - previous;
            previous = position;
            if (first)
            {
                runs.Add(run);
                first = false;
            }
            else if (pendingJoin)
            {
                runs[^1] += run;
                pendingJoin = false;
            }
            else if (run > 0)
            {
                runs.Add(run);
            }
            else
            {
                pendingJoin = true;
            }
        }

        return new Rle(h, w, runs.ToArray());
    }

    private static int FloorDiv5(int value) => value >= 0 ? value / Scale : -((-value + Scale - 1) / Scale);

    private static int CeilDiv5(int value) => -FloorDiv5(-value);
}
