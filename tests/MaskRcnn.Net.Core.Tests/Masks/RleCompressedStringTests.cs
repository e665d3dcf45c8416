using MaskRcnn.Net.Core.Masks;

namespace MaskRcnn.Net.Core.Tests.Masks;

/// <summary>
/// pycocotools' compressed counts strings (rleToString / rleFrString). Each value x (count, or count minus the
/// count two places before for index ≥ 3) is cut into 5-bit groups from the least significant end; a group is
/// written as the character '0' + group, plus 32 when more groups follow; writing stops when the rest of x is 0
/// (group bit 4 clear) or -1 (group bit 4 set), so bit 4 of the last group is the sign.
/// </summary>
public class RleCompressedStringTests
{
    [Fact]
    public void Small_counts_are_written_as_single_characters_with_deltas_from_index_three()
    {
        // Counts [6, 2, 3, 2, 12] (5×5 image):
        //   i=0: 6 → '0'+6 = '6';  i=1: 2 → '2';  i=2: 3 → '3' (no delta for i ≤ 2)
        //   i=3: 2 - counts[1] = 0 → '0';  i=4: 12 - counts[2] = 9 → '9'
        var rle = Rle.FromCounts([6, 2, 3, 2, 12], 5, 5);
        rle.ToCompressedString().Should().Be("62309");
        Rle.FromCompressedString("62309", 5, 5).Counts.ToArray().Should().Equal(6, 2, 3, 2, 12);
    }

    [Fact]
    public void Counts_above_31_and_negative_deltas_use_several_characters()
    {
        // Counts [5, 3, 40, 1, 2] (sum 51, a 3×17 image):
        //   i=0: 5 → '5';  i=1: 3 → '3'
        //   i=2: 40 = 0b1_01000: group 8, rest 1 → more → 8+32 = 40 → '0'+40 = 'X'; then 1 → '1'      → "X1"
        //   i=3: 1 - 3 = -2: group -2 & 31 = 30 (bit 4 set), rest -2 >> 5 = -1 → stop → '0'+30 = 'N'
        //   i=4: 2 - 40 = -38: group -38 & 31 = 26 (bit 4 set), rest -38 >> 5 = -2 ≠ -1 → more → 26+32 = 58 → 'j';
        //        then -2: group 30, rest -1 → stop → 'N'                                                   → "jN"
        var rle = Rle.FromCounts([5, 3, 40, 1, 2], 3, 17);
        rle.ToCompressedString().Should().Be("53X1NjN");
        Rle.FromCompressedString("53X1NjN", 3, 17).Should().Be(rle);
    }

    [Fact]
    public void Full_and_empty_masks_match_published_strings()
    {
        // Full 25×25 mask: counts [0, 625]. 625 = 0b10011_10001: group 17 (bit 4 set), rest 19 → 'a' (17+32+48);
        // group 19 (bit 4 set), rest 0 ≠ -1 → more → 'c' (19+32+48); group 0, rest 0 → '0'. With the leading
        // '0' for the empty first run: "0ac0". The empty mask [625] is "ac0". Both also appear in
        // pytorchcocotools' test_merge.py as pycocotools outputs.
        Rle.Encode(MaskTestSupport.Square(25, 0, 25)).ToCompressedString().Should().Be("0ac0");
        Rle.Encode(BinaryMask.Empty(25, 25)).ToCompressedString().Should().Be("ac0");
        Rle.FromCompressedString("ac0", 25, 25).Counts.ToArray().Should().Equal(625);
    }

    [Fact]
    public void Matches_published_pycocotools_strings()
    {
        // pytorchcocotools test_fr_py_objects.py (asserted against pycocotools.mask.frPyObjects): the uncompressed
        // RLE {size: [25, 25], counts: [130, 5, 20, 5, 20, 5, 20, 5, 20, 5, 390]} compresses to "R45d00000000b;".
        // Hand check: 130 = 4·32 + 2 → 'R' (2+32+48), '4'; 5 → '5'; 20 has bit 4 set and rest 0 ≠ -1, so it needs a
        // second group: 'd' (20+32+48), '0'; indices 3..9 are seven zero deltas; 390 - 20 = 370 = 11·32 + 18 → 'b'
        // (18+32+48), ';' (11+48).
        var rle = Rle.FromCounts([130, 5, 20, 5, 20, 5, 20, 5, 20, 5, 390], 25, 25);
        rle.ToCompressedString().Should().Be("R45d00000000b;");
        Rle.FromCompressedString("R45d00000000b;", 25, 25).Should().Be(rle);
    }

    [Fact]
    public void Random_counts_round_trip_including_large_values()
    {
        var random = new Random(77);
        for (var trial = 0; trial < 500; trial++)
        {
            var n = random.Next(1, 20);
            var counts = Enumerable.Range(0, n).Select(i => i == 0 && random.Next(3) == 0 ? 0 : random.Next(1, trial % 5 == 0 ? 3_000_000 : 200)).ToArray();
            long sum = counts.Sum(c => (long)c);
            if (sum > int.MaxValue)
            {
                continue;
            }

            // Lay the pixels out as a sum×1 column so any total is a valid size.
            var rle = Rle.FromCounts(counts, (int)sum, 1);
            var text = rle.ToCompressedString();
            text.Should().MatchRegex("^[0-o]*$");
            Rle.FromCompressedString(text, (int)sum, 1).Counts.ToArray().Should().Equal(counts);
        }
    }

    [Fact]
    public void Counts_near_the_int_limit_round_trip()
    {
        // A 46341×46340 image has 2,147,441,940 pixels (just under 2^31); one huge run stresses the widest values
        // (7 characters) and, at index 3, a delta of almost -2^31.
        const int h = 46341, w = 46340;
        var total = h * w;
        int[] counts = [1, total - 5, 2, 1, 1];
        var rle = Rle.FromCounts(counts, h, w);
        Rle.FromCompressedString(rle.ToCompressedString(), h, w).Counts.ToArray().Should().Equal(counts);
    }

    [Theory]
    [InlineData("6230~", "*'~'*")]
    [InlineData("62 309", "*' '*")]
    [InlineData("X", "*ends inside*")]
    [InlineData("6230", "*sum to 13*5x5*25*")]
    [InlineData("0N", "*-2*")]
    [InlineData("oooooooooooo1", "*too many*")]
    public void Malformed_strings_are_rejected(string text, string message)
    {
        var act = () => Rle.FromCompressedString(text, 5, 5);
        act.Should().Throw<FormatException>().WithMessage(message);
    }

    [Fact]
    public void Empty_string_is_only_valid_for_zero_sized_masks()
    {
        Rle.FromCompressedString("", 0, 3).Counts.Length.Should().Be(0);
        var act = () => Rle.FromCompressedString("", 2, 2);
        act.Should().Throw<FormatException>();
        var negative = () => Rle.FromCompressedString("", -2, 2);
        negative.Should().Throw<ArgumentOutOfRangeException>().WithParameterName("height");
    }
}
