using System.Text;

namespace MaskRcnn.Net.Core.Masks;

public sealed partial class Rle
{
    private const int CharOffset = 48; // '0': the 64 code points '0'..'o' carry 6 bits each

    /// <summary>
    /// COCO's compressed <c>counts</c> string (pycocotools' <c>rleToString</c>): every count from the fourth on is
    /// replaced by its difference from the count two places before it, and each value is written as a
    /// little-endian, sign-extended sequence of 5-bit groups, one character (<c>'0'</c> + group, plus 32 when
    /// another group follows) per group.
    /// </summary>
    public string ToCompressedString()
    {
        var text = new StringBuilder(counts.Length * 2);
        for (var i = 0; i < counts.Length; i++)
        {
            long value = counts[i];
            if (i > 2)
            {
                value -= counts[i - 2];
            }

            bool more;
            do
            {
                var group = (int)(value & 0x1f);
                value >>= 5;
                // Stop once the remaining bits are just the sign extension of this group's top bit.
                more = (group & 0x10) != 0 ? value != -1 : value != 0;
                text.Append((char)(CharOffset + (more ? group | 0x20 : group)));
            }
            while (more);
        }

        return text.ToString();
    }

    /// <summary>
    /// Parses COCO's compressed <c>counts</c> string (pycocotools' <c>rleFrString</c>) of a mask of the given
    /// size.
    /// </summary>
    /// <exception cref="FormatException">
    /// A character outside <c>'0'</c>..<c>'o'</c>, a value cut off at the end of the string, a value too large, a
    /// negative run length, or counts that do not add up to <paramref name="height"/> × <paramref name="width"/>.
    /// </exception>
    public static Rle FromCompressedString(string compressed, int height, int width)
    {
        ArgumentNullException.ThrowIfNull(compressed);
        BinaryMask.CheckSize(height, width);
        var result = new List<int>(compressed.Length);
        long sum = 0;
        var p = 0;
        while (p < compressed.Length)
        {
            var start = p;
            long value = 0;
            var shift = 0;
            bool more;
            do
            {
                if (p >= compressed.Length)
                {
                    throw new FormatException(
                        $"compressed RLE ends inside count #{result.Count} (the last character at {p - 1} announces another one)");
                }

                var code = compressed[p] - CharOffset;
                if (code is < 0 or > 63)
                {
                    throw new FormatException(
                        $"compressed RLE has '{compressed[p]}' at {p}; only the characters '0'..'o' are allowed");
                }

                if (shift > 35)
                {
                    throw new FormatException($"compressed RLE count #{result.Count} at {start} has too many characters");
                }

                value |= (long)(code & 0x1f) << shift;
                shift += 5;
                more = (code & 0x20) != 0;
                if (!more && (code & 0x10) != 0)
                {
                    value |= -1L << shift; // sign-extend
                }

                p++;
            }
            while (more);

            if (result.Count > 2)
            {
                value += result[^2];
            }

            if (value is < 0 or > int.MaxValue)
            {
                throw new FormatException($"compressed RLE decodes count #{result.Count} (at {start}) to {value}");
            }

            result.Add((int)value);
            sum += value;
        }

        if (sum != (long)height * width)
        {
            throw new FormatException(
                $"compressed RLE counts sum to {sum} but a {height}x{width} mask has {(long)height * width} pixels");
        }

        return new Rle(height, width, result.ToArray());
    }
}
