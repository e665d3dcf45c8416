using MaskRcnn.Net.Core.Masks;

namespace MaskRcnn.Net.Core.Tests.Masks;

/// <summary>
/// Encode/decode, area, box, merge and IoU of <see cref="Rle"/>. Truths: the examples in pycocotools' own
/// documentation (mask.py / MaskApi.m), values derived by hand below, published pycocotools outputs quoted from the
/// test suite of twsl/pytorchcocotools (tests/mask/test_merge.py, test_iou.py, test_fr_py_objects.py, whose
/// <c>*_np</c> tests assert them against pycocotools itself), and pixel-level computations on decoded masks.
/// </summary>
public class RleTests
{
    [Fact]
    public void Encodes_the_examples_of_the_pycocotools_documentation()
    {
        // pycocotools/mask.py: "given M=[0 0 1 1 1 0 1] the RLE counts would be [2 3 1 1], or for
        // M=[1 1 1 1 1 1 0] the counts would be [0 6 1]". A single column (7×1) is read top to bottom.
        Rle.Encode(BinaryMask.FromBytes([0, 0, 1, 1, 1, 0, 1], 7, 1)).Counts.ToArray().Should().Equal(2, 3, 1, 1);
        Rle.Encode(BinaryMask.FromBytes([1, 1, 1, 1, 1, 1, 0], 7, 1)).Counts.ToArray().Should().Equal(0, 6, 1);
    }

    [Fact]
    public void Counts_run_in_column_major_order()
    {
        // 2×3 mask (row-major):   0 1 1      column-major order reads columns: (0,0) (1,0) | (0,1) (1,1) | (0,2) (1,2)
        //                         0 0 1      = 0 0 | 1 0 | 1 1  → runs: 2 zeros, 1 one, 1 zero, 2 ones = [2, 1, 1, 2]
        var mask = BinaryMask.FromBytes([0, 1, 1, 0, 0, 1], 2, 3);
        var rle = Rle.Encode(mask);
        rle.Counts.ToArray().Should().Equal(2, 1, 1, 2);
        rle.Area.Should().Be(3);
        rle.ToBoundingBox().Should().Be(new MaskBoundingBox(1, 0, 2, 2));
        rle.Decode().Should().Be(mask);
    }

    [Fact]
    public void Random_masks_round_trip_through_counts_strings_and_back()
    {
        var random = new Random(1234);
        for (var trial = 0; trial < 300; trial++)
        {
            int h = random.Next(0, 50), w = random.Next(0, 50);
            var mask = MaskTestSupport.RandomMask(random, h, w, random.NextDouble(), clustered: trial % 3 == 0);
            var rle = Rle.Encode(mask);
            rle.Counts.ToArray().Should().Equal(MaskTestSupport.NaiveCounts(mask.ToBools(), h, w));
            rle.Area.Should().Be(mask.Area);
            rle.Decode().Should().Be(mask);
            var text = rle.ToCompressedString();
            var parsed = Rle.FromCompressedString(text, h, w);
            parsed.Should().Be(rle);
            parsed.Decode().Should().Be(mask);
            Rle.FromCounts(rle.ToCounts(), h, w).Should().Be(rle);
        }
    }

    [Fact]
    public void Uncompressed_counts_are_validated()
    {
        var rle = Rle.FromCounts([130, 5, 20, 5, 20, 5, 20, 5, 20, 5, 390], 25, 25);
        rle.Area.Should().Be(25);

        var wrongSum = () => Rle.FromCounts([1, 2, 3], 2, 2);
        wrongSum.Should().Throw<ArgumentException>().WithParameterName("counts").WithMessage("*sum to 6*2x2*4*");
        var negative = () => Rle.FromCounts([5, -1, 0], 2, 2);
        negative.Should().Throw<ArgumentException>().WithParameterName("counts").WithMessage("*counts[1]*");
        var negativeSize = () => Rle.FromCounts([], -1, 0);
        negativeSize.Should().Throw<ArgumentOutOfRangeException>().WithParameterName("height");
    }

    [Fact]
    public void Non_canonical_counts_are_kept_and_decode_like_rleDecode()
    {
        // rleDecode toggles at every count, empty or not: [2, 0, 3] is all zeros, [1, 2, 0, 1, 1] has ones at 1..3.
        var zeros = Rle.FromCounts([2, 0, 3], 5, 1);
        zeros.Counts.ToArray().Should().Equal(2, 0, 3);
        zeros.Decode().Area.Should().Be(0);
        zeros.ToBoundingBox().Should().Be(default(MaskBoundingBox));
        var joined = Rle.FromCounts([1, 2, 0, 1, 1], 5, 1);
        joined.Decode().ToBytes().Should().Equal(0, 1, 1, 1, 0);
        joined.Area.Should().Be(3);
        Rle.Merge([joined, zeros]).Counts.ToArray().Should().Equal(1, 3, 1); // merging canonicalises
        Rle.FromCounts([0, 0], 0, 4).Decode().Should().Be(BinaryMask.Empty(0, 4));
    }

    [Fact]
    public void Merge_matches_published_pycocotools_results_for_squares()
    {
        // test_merge.py: masks m[lo:hi, lo:hi] = 1 in 25×25, merged by pycocotools.mask.merge.
        (int, int, int, int, bool, string)[] cases =
        [
            (0, 5, 0, 5, false, "05d00000000d?"),
            (5, 10, 5, 10, false, "R45d00000000b;"),
            (20, 25, 20, 25, false, "X`05d00000000"),
            (0, 25, 0, 25, false, "0ac0"),
            (5, 10, 10, 15, false, "R45d0000000050K0000000`7"),
            (5, 10, 5, 15, false, "R4:?00000000000000000e7"),
            (5, 10, 8, 13, false, "R45d000003M03M0000T9"),
            (5, 10, 10, 15, true, "ac0"),
            (5, 10, 5, 15, true, "R45d00000000b;"),
            (5, 10, 8, 13, true, "`62g00_;"),
            (20, 25, 20, 25, true, "X`05d00000000"),
        ];
        foreach (var (lo1, hi1, lo2, hi2, intersect, expected) in cases)
        {
            var a = Rle.Encode(MaskTestSupport.Square(25, lo1, hi1));
            var b = Rle.Encode(MaskTestSupport.Square(25, lo2, hi2));
            Rle.Merge([a, b], intersect).ToCompressedString().Should().Be(expected, $"[{lo1}:{hi1}] {(intersect ? "∩" : "∪")} [{lo2}:{hi2}]");
        }
    }

    [Fact]
    public void Merge_matches_a_published_pycocotools_result_for_real_masks()
    {
        // test_merge.py case_complex: two 427×640 COCO masks and pycocotools' union of them.
        var a = Rle.FromCompressedString(
            "\\`_3;j<6M3E_OjCd0T<:O1O2O001O00001O00001O001O0000O1K6J5J6A^C0g<N=O001O0O2Omk^4", 427, 640);
        var b = Rle.FromCompressedString("RT_32n<<O100O0010O000010O0001O00001O000O101O0ISPc4", 427, 640);
        const string union =
            "RT_32X<9SD3f;3ZDNb;5_DKU;DeDd05HU;b0kD_OS;b0nD]OQ;e0nD[OR;e0nD[OR;f0nDZOQ;f0oDZOQ;f0oDZOQ;g0oDXOQ;h0oDXOQ;" +
            "h0oDXOQ;i0oDVOQ;j0oDVOQ;k0nDTOS;l0mDTOS;l0nDSOR;l0oDmNX;n0f0J5J6A^C0g<N=O001O0O2Omk^4";
        Rle.Merge([a, b]).ToCompressedString().Should().Be(union);
        // Re-encoding the decoded masks gives back the same strings (pycocotools decode → encode).
        Rle.Encode(a.Decode()).ToCompressedString().Should().Be(a.ToCompressedString());
    }

    [Fact]
    public void Merge_and_iou_agree_with_pixel_arithmetic()
    {
        var random = new Random(99);
        for (var trial = 0; trial < 200; trial++)
        {
            int h = random.Next(1, 30), w = random.Next(1, 30);
            var n = random.Next(1, 4);
            var masks = Enumerable.Range(0, n)
                .Select(_ => MaskTestSupport.RandomMask(random, h, w, random.NextDouble() * 0.6, clustered: random.Next(2) == 0))
                .ToArray();
            var pixels = masks.Select(m => m.ToBools()).ToArray();
            var rles = masks.Select(Rle.Encode).ToArray();
            var union = Enumerable.Range(0, h * w).Select(i => pixels.Any(p => p[i])).ToArray();
            var inter = Enumerable.Range(0, h * w).Select(i => pixels.All(p => p[i])).ToArray();
            Rle.Merge(rles).Decode().Should().Be(BinaryMask.FromBools(union, h, w));
            Rle.Merge(rles, intersect: true).Decode().Should().Be(BinaryMask.FromBools(inter, h, w));
            Rle.Merge(rles).Counts.ToArray().Should().Equal(MaskTestSupport.NaiveCounts(union, h, w), "the result is canonical");

            var dt = pixels[0];
            var gt = pixels[^1];
            long i2 = 0, u2 = 0, dtArea = dt.Count(p => p);
            for (var i = 0; i < h * w; i++)
            {
                i2 += dt[i] && gt[i] ? 1 : 0;
                u2 += dt[i] || gt[i] ? 1 : 0;
            }

            var expectedIou = i2 == 0 ? 0 : (double)i2 / u2;
            var expectedCrowd = i2 == 0 ? 0 : (double)i2 / dtArea;
            Rle.Iou(rles[0], rles[^1], isCrowd: false).Should().Be(expectedIou);
            Rle.Iou(rles[0], rles[^1], isCrowd: true).Should().Be(expectedCrowd);
        }
    }

    [Fact]
    public void Iou_matches_published_pycocotools_values()
    {
        // test_iou.py: squares m[lo:hi, lo:hi] in 25×25, iou(dt, gt, [False]).
        Iou(0, 5, 0, 5).Should().Be(1);
        Iou(0, 25, 0, 25).Should().Be(1);
        Iou(5, 10, 10, 15).Should().Be(0);
        Iou(5, 10, 5, 15).Should().Be(0.25);
        Iou(5, 10, 8, 13).Should().Be(4.0 / 46);

        static double Iou(int lo1, int hi1, int lo2, int hi2) =>
            Rle.Iou(Rle.Encode(MaskTestSupport.Square(25, lo1, hi1)), Rle.Encode(MaskTestSupport.Square(25, lo2, hi2)), false);
    }

    [Fact]
    public void Iou_handles_crowds_empty_masks_and_matrices()
    {
        var small = Rle.Encode(MaskTestSupport.Square(25, 5, 10)); // 25 pixels
        var large = Rle.Encode(MaskTestSupport.Square(25, 5, 15)); // 100 pixels, contains small
        var empty = Rle.Encode(BinaryMask.Empty(25, 25));
        // Crowd ground truth: intersection over the detection's area only.
        Rle.Iou(small, large, isCrowd: true).Should().Be(1);
        Rle.Iou(large, small, isCrowd: true).Should().Be(0.25);
        Rle.Iou(empty, empty, isCrowd: false).Should().Be(0);
        Rle.Iou(empty, large, isCrowd: true).Should().Be(0);

        var matrix = Rle.Iou([small, large, empty], [large, small], [false, true]);
        matrix.GetLength(0).Should().Be(3);
        matrix.GetLength(1).Should().Be(2);
        matrix[0, 0].Should().Be(0.25);
        matrix[1, 1].Should().Be(0.25);
        matrix[0, 1].Should().Be(1);
        matrix[2, 0].Should().Be(0);

        var mismatch = () => Rle.Iou(small, Rle.Encode(BinaryMask.Empty(25, 24)), false);
        mismatch.Should().Throw<ArgumentException>().WithParameterName("groundTruth").WithMessage("*25x24*25x25*");
        var flags = () => Rle.Iou([small], [large], [true, false]);
        flags.Should().Throw<ArgumentException>().WithParameterName("isCrowd");
    }

    [Fact]
    public void Merge_validates_its_inputs()
    {
        var a = Rle.Encode(BinaryMask.Empty(3, 4));
        Rle.Merge([a]).Should().BeSameAs(a);
        var none = () => Rle.Merge([]);
        none.Should().Throw<ArgumentException>().WithParameterName("rles");
        var sizes = () => Rle.Merge([a, Rle.Encode(BinaryMask.Empty(4, 3))]);
        sizes.Should().Throw<ArgumentException>().WithParameterName("rles").WithMessage("*rles[1]*4x3*3x4*");
    }

    [Fact]
    public void Bounding_box_handles_runs_that_cross_columns()
    {
        // 4×3, column-major ones at positions 3..4: (y=3, x=0) and (y=0, x=1) → box x 0..1, y 0..3.
        var rle = Rle.FromCounts([3, 2, 7], 4, 3);
        rle.ToBoundingBox().Should().Be(new MaskBoundingBox(0, 0, 2, 4));
        rle.Decode().GetBoundingBox().Should().Be(rle.ToBoundingBox());
        // A run inside one column: rows 1..2 of column 2 → (2, 1, 1, 2).
        Rle.FromCounts([9, 2, 1], 4, 3).ToBoundingBox().Should().Be(new MaskBoundingBox(2, 1, 1, 2));
        Rle.FromCounts([9, 2, 1], 4, 3).ToBoundingBox().ToXywh().Should().Equal(2, 1, 1, 2);
    }
}
