using MaskRcnn.Net.Core.Masks;

namespace MaskRcnn.Net.Core.Tests.Masks;

/// <summary>Helpers for the mask tests: random masks, pixel-level set operations and a literal rleFrPoly.</summary>
internal static class MaskTestSupport
{
    /// <summary>A random mask whose pixels are set with probability <paramref name="density"/> (blobs when clustered).</summary>
    public static BinaryMask RandomMask(Random random, int height, int width, double density, bool clustered = false)
    {
        var values = new bool[height * width];
        if (!clustered)
        {
            for (var i = 0; i < values.Length; i++)
            {
                values[i] = random.NextDouble() < density;
            }
        }
        else
        {
            // A few random rectangles: long runs that cross column boundaries, as real masks have.
            var rects = random.Next(0, 4);
            for (var r = 0; r < rects; r++)
            {
                int y0 = random.Next(height + 1), y1 = random.Next(height + 1), x0 = random.Next(width + 1), x1 = random.Next(width + 1);
                for (var y = Math.Min(y0, y1); y < Math.Max(y0, y1); y++)
                {
                    for (var x = Math.Min(x0, x1); x < Math.Max(x0, x1); x++)
                    {
                        values[y * width + x] = true;
                    }
                }
            }
        }

        return BinaryMask.FromBools(values, height, width);
    }

    /// <summary>Row-major pixels of a square [lo, hi) × [lo, hi) in a size × size image (numpy m[lo:hi, lo:hi] = 1).</summary>
    public static BinaryMask Square(int size, int lo, int hi)
    {
        var values = new byte[size * size];
        for (var y = lo; y < hi; y++)
        {
            for (var x = lo; x < hi; x++)
            {
                values[y * size + x] = 1;
            }
        }

        return BinaryMask.FromBytes(values, size, size);
    }

    /// <summary>Column-major runs of a row-major pixel array, computed the obvious way.</summary>
    public static List<int> NaiveCounts(bool[] pixels, int height, int width)
    {
        var counts = new List<int>();
        var value = false;
        var run = 0;
        for (var x = 0; x < width; x++)
        {
            for (var y = 0; y < height; y++)
            {
                if (pixels[y * width + x] != value)
                {
                    counts.Add(run);
                    run = 0;
                    value = !value;
                }

                run++;
            }
        }

        counts.Add(run);
        return counts;
    }

    /// <summary>Shoelace area of a closed polygon [x0, y0, x1, y1, …].</summary>
    public static double ShoelaceArea(IReadOnlyList<double> xy)
    {
        var n = xy.Count / 2;
        var twice = 0.0;
        for (var i = 0; i < n; i++)
        {
            var j = (i + 1) % n;
            twice += xy[2 * i] * xy[2 * j + 1] - xy[2 * j] * xy[2 * i + 1];
        }

        return Math.Abs(twice) / 2;
    }

    /// <summary>Perimeter of a closed polygon.</summary>
    public static double Perimeter(IReadOnlyList<double> xy)
    {
        var n = xy.Count / 2;
        var length = 0.0;
        for (var i = 0; i < n; i++)
        {
            var j = (i + 1) % n;
            length += Math.Sqrt(Math.Pow(xy[2 * j] - xy[2 * i], 2) + Math.Pow(xy[2 * j + 1] - xy[2 * i + 1], 2));
        }

        return length;
    }

    /// <summary>
    /// rleFrPoly written out step by step as maskApi.c describes it (walk every upsampled boundary point, keep
    /// the column crossings, sort, cancel repeats) — the slow literal form the production rasteriser must match.
    /// </summary>
    public static int[] LiteralFrPoly(IReadOnlyList<double> xy, int h, int w)
    {
        const double scale = 5;
        var k = xy.Count / 2;
        var x = new int[k + 1];
        var y = new int[k + 1];
        for (var j = 0; j < k; j++)
        {
            x[j] = (int)(scale * xy[2 * j] + .5);
            y[j] = (int)(scale * xy[2 * j + 1] + .5);
        }

        x[k] = x[0];
        y[k] = y[0];
        var u = new List<int>();
        var v = new List<int>();
        for (var j = 0; j < k; j++)
        {
            int xs = x[j], xe = x[j + 1], ys = y[j], ye = y[j + 1];
            int dx = Math.Abs(xe - xs), dy = Math.Abs(ys - ye);
            var flip = (dx >= dy && xs > xe) || (dx < dy && ys > ye);
            if (flip)
            {
                (xs, xe) = (xe, xs);
                (ys, ye) = (ye, ys);
            }

            if (dx >= dy)
            {
                var s = (double)(ye - ys) / dx;
                for (var d = 0; d <= dx; d++)
                {
                    var t = flip ? dx - d : d;
                    u.Add(t + xs);
                    // dx == dy == 0 gives s = NaN and C's (int)NaN (INT_MIN on x86); the point is never used.
                    v.Add(dx == 0 ? int.MinValue : (int)(ys + s * t + .5));
                }
            }
            else
            {
                var s = (double)(xe - xs) / dy;
                for (var d = 0; d <= dy; d++)
                {
                    var t = flip ? dy - d : d;
                    v.Add(t + ys);
                    u.Add((int)(xs + s * t + .5));
                }
            }
        }

        var a = new List<long>();
        for (var j = 1; j < u.Count; j++)
        {
            if (u[j] == u[j - 1])
            {
                continue;
            }

            double xd = u[j] < u[j - 1] ? u[j] : u[j] - 1;
            xd = (xd + .5) / scale - .5;
            if (Math.Floor(xd) != xd || xd < 0 || xd > w - 1)
            {
                continue;
            }

            double yd = v[j] < v[j - 1] ? v[j] : v[j - 1];
            yd = (yd + .5) / scale - .5;
            if (yd < 0)
            {
                yd = 0;
            }
            else if (yd > h)
            {
                yd = h;
            }

            yd = Math.Ceiling(yd);
            a.Add((long)xd * h + (long)yd);
        }

        a.Add((long)h * w);
        a.Sort();
        var diffs = new long[a.Count];
        long p = 0;
        for (var j = 0; j < a.Count; j++)
        {
            diffs[j] = a[j] - p;
            p = a[j];
        }

        var b = new List<int> { (int)diffs[0] };
        var i = 1;
        while (i < diffs.Length)
        {
            if (diffs[i] > 0)
            {
                b.Add((int)diffs[i++]);
            }
            else
            {
                i++;
                if (i < diffs.Length)
                {
                    b[^1] += (int)diffs[i++];
                }
            }
        }

        return b.ToArray();
    }
}
