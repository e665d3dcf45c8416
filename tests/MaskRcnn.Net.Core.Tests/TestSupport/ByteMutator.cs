using System.Buffers.Binary;
using System.Text;

namespace MaskRcnn.Net.Core.Tests.TestSupport;

/// <summary>
/// A small seeded mutator for fuzz tests: every case is a pure function of its seed, so a failing case is
/// reproduced by its seed alone. Byte-level operations (bit flips, byte sets, inserts, deletes, truncation,
/// splicing with another seed input, chunk duplication, overwriting with boundary integers) apply to any input;
/// <see cref="MutateJson"/> adds token-level edits (a number, string, array or object replaced by a value of
/// another type or a boundary number) so that mutated JSON still parses often enough to reach the readers.
/// </summary>
public static class ByteMutator
{
    private static readonly long[] InterestingIntegers =
    [
        0, 1, -1, 2, 7, 8, 255, 256, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF,
        65500, 65535, 100_000, 1L << 32, 1L << 40, long.MaxValue, long.MinValue,
    ];

    private static readonly string[] JsonReplacements =
    [
        "0", "-1", "1", "0.5", "-0.0", "1e9", "-1e9", "1e308", "1e999", "2147483647", "2147483648", "9223372036854775808",
        "1.5", "null", "true", "false", "\"\"", "\"x\"", "[]", "{}", "[1,2]", "[[]]", "[[1,2,3]]", "{\"a\":1}", "\"\\u0000\"",
        "[0,0,0,0]", "NaN", "\"NaN\"",
    ];

    /// <summary>The seed of case <paramref name="index"/> of a fuzz target (distinct targets get distinct seeds).</summary>
    public static int CaseSeed(string target, int index)
    {
        var h = 17;
        foreach (var c in target)
        {
            h = unchecked(h * 31 + c);
        }

        return unchecked((h & 0x7FFF) * 1_000_003 + index) & int.MaxValue;
    }

    /// <summary>Applies 1–4 random byte-level operations to a copy of <paramref name="input"/>.</summary>
    /// <param name="input">The seed input (not modified).</param>
    /// <param name="rng">The case's random source.</param>
    /// <param name="splicePool">Other seed inputs to splice with (may be empty).</param>
    /// <param name="protectedPrefix">Bytes at the start that bit-level edits leave alone (e.g. a signature), to
    /// reach deeper code more often; structural edits (truncation, splicing) still may cut into them.</param>
    public static byte[] Mutate(byte[] input, Random rng, IReadOnlyList<byte[]> splicePool, int protectedPrefix = 0)
    {
        var data = new List<byte>(input);
        var operations = rng.Next(1, 5);
        for (var op = 0; op < operations; op++)
        {
            var lo = Math.Min(protectedPrefix, data.Count);
            switch (rng.Next(9))
            {
                case 0 when data.Count > lo: // bit flip
                {
                    var i = rng.Next(lo, data.Count);
                    data[i] ^= (byte)(1 << rng.Next(8));
                    break;
                }

                case 1 when data.Count > lo: // byte set to a random or boundary value
                {
                    var i = rng.Next(lo, data.Count);
                    data[i] = rng.Next(2) == 0 ? (byte)rng.Next(256) : new byte[] { 0, 0xFF, 0x7F, 0x80, 0x01 }[rng.Next(5)];
                    break;
                }

                case 2: // insert random bytes
                {
                    var at = rng.Next(lo, data.Count + 1);
                    var bytes = new byte[rng.Next(1, 17)];
                    rng.NextBytes(bytes);
                    data.InsertRange(at, bytes);
                    break;
                }

                case 3 when data.Count > lo: // delete a range
                {
                    var at = rng.Next(lo, data.Count);
                    data.RemoveRange(at, Math.Min(rng.Next(1, 17), data.Count - at));
                    break;
                }

                case 4 when data.Count > 0: // truncate
                {
                    var keep = rng.Next(data.Count);
                    data.RemoveRange(keep, data.Count - keep);
                    break;
                }

                case 5 when splicePool.Count > 0: // splice: our prefix + another seed's suffix
                {
                    var other = splicePool[rng.Next(splicePool.Count)];
                    var cut = rng.Next(data.Count + 1);
                    var from = rng.Next(other.Length + 1);
                    data.RemoveRange(cut, data.Count - cut);
                    data.AddRange(other.AsSpan(from).ToArray());
                    break;
                }

                case 6 when data.Count > lo: // duplicate a chunk in place
                {
                    var at = rng.Next(lo, data.Count);
                    var chunk = data.GetRange(at, Math.Min(rng.Next(1, 65), data.Count - at));
                    data.InsertRange(at, chunk);
                    break;
                }

                case 7 when data.Count >= lo + 8: // overwrite 2/4/8 bytes with a boundary integer
                {
                    var width = new[] { 2, 4, 8 }[rng.Next(3)];
                    var at = rng.Next(lo, data.Count - width + 1);
                    Span<byte> buffer = stackalloc byte[8];
                    var value = InterestingIntegers[rng.Next(InterestingIntegers.Length)];
                    if (rng.Next(2) == 0)
                    {
                        BinaryPrimitives.WriteInt64LittleEndian(buffer, value);
                    }
                    else
                    {
                        BinaryPrimitives.WriteInt64BigEndian(buffer, value);
                        buffer[(8 - width)..].CopyTo(buffer);
                    }

                    for (var k = 0; k < width; k++)
                    {
                        data[at + k] = buffer[k];
                    }

                    break;
                }

                default: // small arithmetic change of one byte
                    if (data.Count > lo)
                    {
                        var i = rng.Next(lo, data.Count);
                        data[i] = unchecked((byte)(data[i] + rng.Next(-4, 5)));
                    }

                    break;
            }
        }

        return [.. data];
    }

    /// <summary>
    /// Mutates JSON text: mostly 1–3 token replacements (a number changed, a value swapped for one of another type
    /// or a boundary number, a value deleted, a value duplicated), sometimes the byte-level <see cref="Mutate"/>.
    /// </summary>
    public static byte[] MutateJson(byte[] json, Random rng, IReadOnlyList<byte[]> splicePool)
    {
        if (rng.Next(4) == 0)
        {
            return Mutate(json, rng, splicePool);
        }

        var text = Encoding.UTF8.GetString(json);
        var edits = rng.Next(10) switch { < 6 => 1, < 9 => 2, _ => 3 };
        for (var e = 0; e < edits && text.Length > 0; e++)
        {
            var (start, end) = RandomValueSpan(text, rng);
            if (start < 0)
            {
                break;
            }

            var isNumber = text[start] is '-' || char.IsAsciiDigit(text[start]);
            var replacement = rng.Next(10) switch
            {
                0 => "",
                1 => text[start..end] + "," + text[start..end],
                < 6 when isNumber => RandomNumber(rng), // keeps the file well-typed, changes the geometry
                _ => JsonReplacements[rng.Next(JsonReplacements.Length)],
            };
            text = string.Concat(text.AsSpan(0, start), replacement, text.AsSpan(end));
        }

        return Encoding.UTF8.GetBytes(text);
    }

    private static string RandomNumber(Random rng) => rng.Next(4) switch
    {
        0 => rng.Next(-3, 4).ToString(System.Globalization.CultureInfo.InvariantCulture),
        1 => rng.Next(0, 1000).ToString(System.Globalization.CultureInfo.InvariantCulture),
        2 => (rng.NextDouble() * 600 - 50).ToString("R", System.Globalization.CultureInfo.InvariantCulture),
        _ => rng.Next(-100_000, 100_000).ToString(System.Globalization.CultureInfo.InvariantCulture),
    };

    /// <summary>The span of a random JSON value (number, string, array or object) in <paramref name="text"/>, or (-1, -1).</summary>
    private static (int Start, int End) RandomValueSpan(string text, Random rng)
    {
        for (var attempt = 0; attempt < 32; attempt++)
        {
            var i = rng.Next(text.Length);
            var c = text[i];
            if (char.IsAsciiDigit(c) || c == '-')
            {
                var start = i;
                while (start > 0 && IsNumberChar(text[start - 1]))
                {
                    start--;
                }

                var end = i;
                while (end < text.Length && IsNumberChar(text[end]))
                {
                    end++;
                }

                return (start, end);
            }

            if (c is '"' or '[' or '{')
            {
                var end = MatchingEnd(text, i);
                if (end > i)
                {
                    return (i, end);
                }
            }
        }

        return (-1, -1);
    }

    private static bool IsNumberChar(char c) => char.IsAsciiDigit(c) || c is '-' or '+' or '.' or 'e' or 'E';

    /// <summary>The index just past the string/array/object starting at <paramref name="start"/>, or -1.</summary>
    private static int MatchingEnd(string text, int start)
    {
        if (text[start] == '"')
        {
            for (var i = start + 1; i < text.Length; i++)
            {
                if (text[i] == '\\')
                {
                    i++;
                }
                else if (text[i] == '"')
                {
                    return i + 1;
                }
            }

            return -1;
        }

        var depth = 0;
        var inString = false;
        for (var i = start; i < text.Length; i++)
        {
            var c = text[i];
            if (inString)
            {
                if (c == '\\')
                {
                    i++;
                }
                else if (c == '"')
                {
                    inString = false;
                }
            }
            else if (c == '"')
            {
                inString = true;
            }
            else if (c is '[' or '{')
            {
                depth++;
            }
            else if (c is ']' or '}' && --depth == 0)
            {
                return i + 1;
            }
        }

        return -1;
    }
}
