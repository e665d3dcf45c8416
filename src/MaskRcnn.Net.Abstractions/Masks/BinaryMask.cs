using System.Numerics;
using System.Runtime.InteropServices;

namespace MaskRcnn.Net.Core.Masks;

/// <summary>
/// An immutable full-image binary mask stored as a packed bitmap: one bit per pixel, row-major (pixel (y, x) is
/// bit <c>y * Width + x</c>), 64 pixels per word. Convert it to COCO's column-major run-length encoding with
/// <see cref="ToRle"/> / <see cref="Rle.Encode"/>. Plain .NET, no native code: the libtorch side converts to and from
/// [H, W] tensors with <c>BinaryMaskTensors</c> in MaskRcnn.Net.Core.
/// </summary>
public sealed class BinaryMask : IEquatable<BinaryMask>
{
    private readonly ulong[] words;

    /// <summary>Wraps <paramref name="words"/> (owned from now on; bits past Height×Width must be clear).</summary>
    private BinaryMask(int height, int width, ulong[] words)
    {
        Height = height;
        Width = width;
        this.words = words;
        long area = 0;
        foreach (var word in words)
        {
            area += BitOperations.PopCount(word);
        }

        Area = area;
    }

    /// <summary>Number of rows.</summary>
    public int Height { get; }

    /// <summary>Number of columns.</summary>
    public int Width { get; }

    /// <summary>Number of set pixels (pycocotools' <c>area</c> of the mask).</summary>
    public long Area { get; }

    /// <summary>Number of pixels, set or not (Height × Width).</summary>
    public int PixelCount => Height * Width;

    /// <summary>True when the pixel at row <paramref name="y"/>, column <paramref name="x"/> is set.</summary>
    public bool this[int y, int x]
    {
        get
        {
            if ((uint)y >= (uint)Height)
            {
                throw new ArgumentOutOfRangeException(nameof(y), y, $"row must be in [0, {Height})");
            }

            if ((uint)x >= (uint)Width)
            {
                throw new ArgumentOutOfRangeException(nameof(x), x, $"column must be in [0, {Width})");
            }

            return GetBit(y * Width + x);
        }
    }

    // ---- creation ------------------------------------------------------------------------------------------

    /// <summary>A mask of the given size with no pixel set.</summary>
    public static BinaryMask Empty(int height, int width)
    {
        CheckSize(height, width);
        return new BinaryMask(height, width, new ulong[WordCount(height, width)]);
    }

    /// <summary>
    /// A mask from row-major pixel values: a pixel is set when its byte is non-zero. <paramref name="values"/>
    /// must hold exactly <paramref name="height"/> × <paramref name="width"/> bytes.
    /// </summary>
    public static BinaryMask FromBytes(ReadOnlySpan<byte> values, int height, int width)
    {
        CheckSize(height, width);
        CheckLength(values.Length, height, width, nameof(values));
        var bits = new ulong[WordCount(height, width)];
        for (var i = 0; i < values.Length; i++)
        {
            if (values[i] != 0)
            {
                bits[i >> 6] |= 1UL << (i & 63);
            }
        }

        return new BinaryMask(height, width, bits);
    }

    /// <summary>
    /// A mask from row-major pixel flags. <paramref name="values"/> must hold exactly <paramref name="height"/> ×
    /// <paramref name="width"/> values.
    /// </summary>
    public static BinaryMask FromBools(ReadOnlySpan<bool> values, int height, int width)
    {
        CheckSize(height, width);
        CheckLength(values.Length, height, width, nameof(values));
        var bits = new ulong[WordCount(height, width)];
        for (var i = 0; i < values.Length; i++)
        {
            if (values[i])
            {
                bits[i >> 6] |= 1UL << (i & 63);
            }
        }

        return new BinaryMask(height, width, bits);
    }

    /// <summary>Wraps a finished bitmap built by <see cref="Rle.Decode"/> (no copy).</summary>
    internal static BinaryMask FromWords(int height, int width, ulong[] words) => new(height, width, words);

    // ---- data out ------------------------------------------------------------------------------------------

    /// <summary>The pixels as row-major bytes, 1 for set and 0 for clear.</summary>
    public byte[] ToBytes()
    {
        var result = new byte[PixelCount];
        for (var i = 0; i < result.Length; i++)
        {
            result[i] = (byte)((words[i >> 6] >> (i & 63)) & 1);
        }

        return result;
    }

    /// <summary>The pixels as row-major flags.</summary>
    public bool[] ToBools()
    {
        var result = new bool[PixelCount];
        for (var i = 0; i < result.Length; i++)
        {
            result[i] = ((words[i >> 6] >> (i & 63)) & 1) != 0;
        }

        return result;
    }

    /// <summary>
    /// The exact pixel extent of the set pixels; the all-zero box when the mask is empty (as pycocotools'
    /// <c>toBbox</c>).
    /// </summary>
    public MaskBoundingBox GetBoundingBox()
    {
        if (Area == 0)
        {
            return default;
        }

        int xMin = Width, xMax = -1, yMin = -1, yMax = -1;
        for (var w = 0; w < words.Length; w++)
        {
            var word = words[w];
            while (word != 0)
            {
                var index = (w << 6) + BitOperations.TrailingZeroCount(word);
                word &= word - 1;
                var y = index / Width;
                var x = index - y * Width;
                if (yMin < 0)
                {
                    yMin = y;
                }

                yMax = y;
                xMin = Math.Min(xMin, x);
                xMax = Math.Max(xMax, x);
            }
        }

        return new MaskBoundingBox(xMin, yMin, xMax - xMin + 1, yMax - yMin + 1);
    }

    /// <summary>COCO's run-length encoding of this mask (same as <see cref="Rle.Encode"/>).</summary>
    public Rle ToRle() => Rle.Encode(this);

    // ---- equality ------------------------------------------------------------------------------------------

    /// <summary>True when both masks have the same size and the same set pixels.</summary>
    public bool Equals(BinaryMask? other) =>
        other is not null && (ReferenceEquals(this, other) ||
            (Height == other.Height && Width == other.Width && words.AsSpan().SequenceEqual(other.words)));

    /// <inheritdoc />
    public override bool Equals(object? obj) => Equals(obj as BinaryMask);

    /// <inheritdoc />
    public override int GetHashCode()
    {
        var hash = new HashCode();
        hash.Add(Height);
        hash.Add(Width);
        hash.AddBytes(MemoryMarshal.AsBytes(words.AsSpan()));
        return hash.ToHashCode();
    }

    /// <summary>A short description: size and number of set pixels.</summary>
    public override string ToString() => $"BinaryMask({Height}x{Width}, area {Area})";

    // ---- internals -----------------------------------------------------------------------------------------

    internal bool GetBit(int index) => ((words[index >> 6] >> (index & 63)) & 1) != 0;

    internal static int WordCount(int height, int width) => (int)(((long)height * width + 63) >> 6);

    /// <summary>Throws unless the size is non-negative and has at most <see cref="int.MaxValue"/> pixels.</summary>
    internal static void CheckSize(int height, int width, string heightName = "height", string widthName = "width")
    {
        if (height < 0)
        {
            throw new ArgumentOutOfRangeException(heightName, height, "height must not be negative");
        }

        if (width < 0)
        {
            throw new ArgumentOutOfRangeException(widthName, width, "width must not be negative");
        }

        if ((long)height * width > int.MaxValue)
        {
            throw new ArgumentException($"a {height}x{width} mask has more than {int.MaxValue} pixels", heightName);
        }
    }

    private static void CheckLength(int length, int height, int width, string name)
    {
        if (length != height * width)
        {
            throw new ArgumentException($"{name} holds {length} values but a {height}x{width} mask needs {height * width}", name);
        }
    }
}
