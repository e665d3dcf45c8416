namespace MaskRcnn.Net.Core.Masks;

/// <summary>
/// COCO's run-length encoding of a binary mask, with pycocotools' semantics (<c>cocoapi/common/maskApi.c</c>):
/// the pixels are read in column-major (Fortran) order and <see cref="Counts"/> holds the lengths of the
/// alternating runs, starting with a run of clear pixels (0 when the first pixel is set). Instances are immutable.
/// </summary>
/// <remarks>
/// The counts are kept exactly as given or computed, so <see cref="ToCompressedString"/> reproduces pycocotools'
/// strings. Encodings made by this type (<see cref="Encode"/>, <see cref="Merge"/>, the polygon and box
/// rasterisers) are canonical: no empty run other than possibly the first.
/// </remarks>
public sealed partial class Rle : IEquatable<Rle>
{
    private readonly int[] counts;

    /// <summary>Wraps validated counts (owned from now on).</summary>
    private Rle(int height, int width, int[] counts)
    {
        Height = height;
        Width = width;
        this.counts = counts;
    }

    /// <summary>Number of rows of the encoded mask.</summary>
    public int Height { get; }

    /// <summary>Number of columns of the encoded mask.</summary>
    public int Width { get; }

    /// <summary>
    /// The run lengths in column-major order, alternating clear/set and starting with clear; they sum to
    /// Height × Width. This is COCO's "uncompressed RLE" <c>counts</c> list.
    /// </summary>
    public ReadOnlySpan<int> Counts => counts;

    /// <summary>Number of set pixels (pycocotools' <c>area</c>): the sum of the odd-indexed counts.</summary>
    public long Area
    {
        get
        {
            long area = 0;
            for (var j = 1; j < counts.Length; j += 2)
            {
                area += counts[j];
            }

            return area;
        }
    }

    // ---- creation ------------------------------------------------------------------------------------------

    /// <summary>
    /// An RLE from COCO's uncompressed <c>counts</c> list (pycocotools' <c>frUncompressedRLE</c>). The counts must
    /// be non-negative and sum to <paramref name="height"/> × <paramref name="width"/>.
    /// </summary>
    public static Rle FromCounts(IEnumerable<int> counts, int height, int width)
    {
        ArgumentNullException.ThrowIfNull(counts);
        BinaryMask.CheckSize(height, width);
        var array = counts.ToArray();
        long sum = 0;
        for (var j = 0; j < array.Length; j++)
        {
            if (array[j] < 0)
            {
                throw new ArgumentException($"counts[{j}] is {array[j]}; run lengths must not be negative", nameof(counts));
            }

            sum += array[j];
        }

        if (sum != (long)height * width)
        {
            throw new ArgumentException(
                $"counts sum to {sum} but a {height}x{width} mask has {(long)height * width} pixels", nameof(counts));
        }

        return new Rle(height, width, array);
    }

    /// <summary>Run-length encodes <paramref name="mask"/> in column-major order (pycocotools' <c>encode</c>).</summary>
    public static Rle Encode(BinaryMask mask)
    {
        ArgumentNullException.ThrowIfNull(mask);
        int h = mask.Height, w = mask.Width;
        var runs = new RunBuilder(Math.Min(64, h * w + 1));
        for (var x = 0; x < w; x++)
        {
            for (int y = 0, index = x; y < h; y++, index += w)
            {
                runs.Append(mask.GetBit(index), 1);
            }
        }

        return new Rle(h, w, runs.ToCounts());
    }

    /// <summary>The encoded mask (pycocotools' <c>decode</c>, as a row-major bitmap).</summary>
    public BinaryMask Decode()
    {
        int h = Height, w = Width;
        var words = new ulong[BinaryMask.WordCount(h, w)];
        var position = 0;
        for (var j = 0; j < counts.Length; j++)
        {
            var length = counts[j];
            if ((j & 1) == 1 && length > 0)
            {
                // A run of set pixels from column-major position `position`, possibly spanning several columns.
                var x = position / h;
                var y = position - x * h;
                var left = length;
                while (left > 0)
                {
                    var n = Math.Min(left, h - y);
                    for (int r = y, index = y * w + x; r < y + n; r++, index += w)
                    {
                        words[index >> 6] |= 1UL << (index & 63);
                    }

                    left -= n;
                    x++;
                    y = 0;
                }
            }

            position += length;
        }

        return BinaryMask.FromWords(h, w, words);
    }

    // ---- geometry ------------------------------------------------------------------------------------------

    /// <summary>
    /// The pixel extent of the set pixels as (x, y, width, height), like pycocotools' <c>toBbox</c>
    /// (<c>rleToBbox</c>); the all-zero box for an empty mask.
    /// </summary>
    /// <remarks>
    /// Identical to <c>rleToBbox</c> for canonical counts. <c>rleToBbox</c> would count a phantom pixel for an
    /// empty run of set pixels in a non-canonical encoding; such runs are skipped here, so the box is always the
    /// true extent of <see cref="Decode"/>.
    /// </remarks>
    public MaskBoundingBox ToBoundingBox()
    {
        int h = Height;
        int xMin = int.MaxValue, xMax = -1, yMin = int.MaxValue, yMax = -1;
        var position = 0;
        for (var j = 0; j < counts.Length; j++)
        {
            var length = counts[j];
            if ((j & 1) == 1 && length > 0)
            {
                int first = position, last = position + length - 1;
                int xFirst = first / h, xLast = last / h;
                int yFirst = first - xFirst * h, yLast = last - xLast * h;
                xMin = Math.Min(xMin, xFirst);
                xMax = Math.Max(xMax, xLast);
                if (xFirst != xLast)
                {
                    // The run leaves column xFirst at its bottom row and enters the next at its top row.
                    yMin = 0;
                    yMax = h - 1;
                }
                else
                {
                    yMin = Math.Min(yMin, yFirst);
                    yMax = Math.Max(yMax, yLast);
                }
            }

            position += length;
        }

        return xMax < 0 ? default : new MaskBoundingBox(xMin, yMin, xMax - xMin + 1, yMax - yMin + 1);
    }

    // ---- set operations ------------------------------------------------------------------------------------

    /// <summary>
    /// The union (or, with <paramref name="intersect"/>, the intersection) of masks of one size, like
    /// pycocotools' <c>merge</c>. A single mask is returned unchanged; the result of two or more is canonical.
    /// </summary>
    /// <exception cref="ArgumentException">No masks, a null mask, or masks of different sizes.</exception>
    public static Rle Merge(IEnumerable<Rle> rles, bool intersect = false)
    {
        ArgumentNullException.ThrowIfNull(rles);
        Rle? result = null;
        var index = 0;
        foreach (var rle in rles)
        {
            if (rle is null)
            {
                throw new ArgumentException($"rles[{index}] is null", nameof(rles));
            }

            if (result is null)
            {
                result = rle;
            }
            else
            {
                CheckSameSize(result, rle, $"rles[{index}]", nameof(rles));
                result = Combine(result, rle, intersect);
            }

            index++;
        }

        return result ?? throw new ArgumentException("at least one mask is needed to merge", nameof(rles));
    }

    /// <summary>
    /// Intersection over union of a detection and a ground-truth mask with pycocotools' <c>iou</c> (<c>rleIou</c>)
    /// semantics: 0 when they do not intersect; when <paramref name="isCrowd"/> (the ground truth is a crowd
    /// region) the intersection is divided by the detection's area instead of the union.
    /// </summary>
    /// <exception cref="ArgumentException">The masks have different sizes (pycocotools would report -1).</exception>
    public static double Iou(Rle detection, Rle groundTruth, bool isCrowd)
    {
        ArgumentNullException.ThrowIfNull(detection);
        ArgumentNullException.ThrowIfNull(groundTruth);
        CheckSameSize(detection, groundTruth, nameof(groundTruth), nameof(groundTruth));
        var a = new RunCursor(detection.counts);
        var b = new RunCursor(groundTruth.counts);
        long intersection = 0, union = 0;
        long total = (long)detection.Height * detection.Width;
        for (long position = 0; position < total;)
        {
            var n = Math.Min(a.Remaining, b.Remaining);
            if (a.Value || b.Value)
            {
                union += n;
                if (a.Value && b.Value)
                {
                    intersection += n;
                }
            }

            position += n;
            a.Advance(n);
            b.Advance(n);
        }

        if (intersection == 0)
        {
            return 0;
        }

        return (double)intersection / (isCrowd ? detection.Area : union);
    }

    /// <summary>
    /// The IoU matrix [detections, groundTruths] of pycocotools' <c>iou(dt, gt, iscrowd)</c>;
    /// <paramref name="isCrowd"/> has one flag per ground truth (null: none is a crowd).
    /// </summary>
    public static double[,] Iou(IReadOnlyList<Rle> detections, IReadOnlyList<Rle> groundTruths, IReadOnlyList<bool>? isCrowd = null)
    {
        ArgumentNullException.ThrowIfNull(detections);
        ArgumentNullException.ThrowIfNull(groundTruths);
        if (isCrowd is not null && isCrowd.Count != groundTruths.Count)
        {
            throw new ArgumentException(
                $"isCrowd has {isCrowd.Count} flags but there are {groundTruths.Count} ground truths", nameof(isCrowd));
        }

        var result = new double[detections.Count, groundTruths.Count];
        for (var d = 0; d < detections.Count; d++)
        {
            for (var g = 0; g < groundTruths.Count; g++)
            {
                result[d, g] = Iou(detections[d], groundTruths[g], isCrowd is not null && isCrowd[g]);
            }
        }

        return result;
    }

    private static Rle Combine(Rle first, Rle second, bool intersect)
    {
        var a = new RunCursor(first.counts);
        var b = new RunCursor(second.counts);
        var runs = new RunBuilder(first.counts.Length + second.counts.Length);
        long total = (long)first.Height * first.Width;
        for (long position = 0; position < total;)
        {
            var n = Math.Min(a.Remaining, b.Remaining);
            runs.Append(intersect ? a.Value && b.Value : a.Value || b.Value, n);
            position += n;
            a.Advance(n);
            b.Advance(n);
        }

        return new Rle(first.Height, first.Width, runs.ToCounts());
    }

    private static void CheckSameSize(Rle expected, Rle actual, string what, string paramName)
    {
        if (expected.Height != actual.Height || expected.Width != actual.Width)
        {
            throw new ArgumentException(
                $"{what} is {actual.Height}x{actual.Width} but the other mask is {expected.Height}x{expected.Width}", paramName);
        }
    }

    // ---- equality ------------------------------------------------------------------------------------------

    /// <summary>Copies the counts into a new array.</summary>
    public int[] ToCounts() => (int[])counts.Clone();

    /// <summary>True when both encodings have the same size and identical counts.</summary>
    public bool Equals(Rle? other) =>
        other is not null && (ReferenceEquals(this, other) ||
            (Height == other.Height && Width == other.Width && counts.AsSpan().SequenceEqual(other.counts)));

    /// <inheritdoc />
    public override bool Equals(object? obj) => Equals(obj as Rle);

    /// <inheritdoc />
    public override int GetHashCode()
    {
        var hash = new HashCode();
        hash.Add(Height);
        hash.Add(Width);
        foreach (var c in counts)
        {
            hash.Add(c);
        }

        return hash.ToHashCode();
    }

    /// <summary>A short description: size, number of runs and area.</summary>
    public override string ToString() => $"Rle({Height}x{Width}, {counts.Length} runs, area {Area})";

    // ---- helpers -------------------------------------------------------------------------------------------

    /// <summary>Walks the runs of a count list, skipping empty runs.</summary>
    private struct RunCursor
    {
        private readonly int[] counts;
        private int index;

        public RunCursor(int[] counts)
        {
            this.counts = counts;
            index = 0;
            Value = false;
            Remaining = counts.Length > 0 ? counts[0] : 0;
            SkipEmpty();
        }

        /// <summary>Value of the current run.</summary>
        public bool Value { get; private set; }

        /// <summary>Pixels left in the current run (0 only at the end).</summary>
        public int Remaining { get; private set; }

        public void Advance(int n)
        {
            Remaining -= n;
            SkipEmpty();
        }

        private void SkipEmpty()
        {
            while (Remaining == 0 && index + 1 < counts.Length)
            {
                index++;
                Remaining = counts[index];
                Value = !Value;
            }
        }
    }

    /// <summary>Accumulates canonical counts from (value, length) pieces, starting with a clear run.</summary>
    private struct RunBuilder
    {
        private int[] buffer;
        private int count;
        private bool value;
        private int current;

        public RunBuilder(int capacity)
        {
            buffer = new int[Math.Max(capacity, 4)];
            count = 0;
            value = false;
            current = 0;
        }

        public void Append(bool pieceValue, int length)
        {
            if (pieceValue != value)
            {
                Push(current);
                value = pieceValue;
                current = 0;
            }

            current += length;
        }

        public int[] ToCounts()
        {
            Push(current);
            return buffer.AsSpan(0, count).ToArray();
        }

        private void Push(int run)
        {
            if (count == buffer.Length)
            {
                Array.Resize(ref buffer, buffer.Length * 2);
            }

            buffer[count++] = run;
        }
    }
}
