using MaskRcnn.Net.Core.Masks;
using MaskRcnn.Net.Core.Tests.TestSupport;

namespace MaskRcnn.Net.Core.Tests.Masks;

/// <summary>
/// Polygon and box rasterisation (pycocotools' rleFrPoly / rleFrBbox / annToRLE). Truths: hand derivations of the
/// algorithm for tiny cases (below), published pycocotools strings quoted from twsl/pytorchcocotools'
/// tests (tests/mask/test_fr_py_objects.py asserts the first polygon against pycocotools.mask.frPyObjects;
/// tests/profiling/test_fr_poly.py and test_fr_bbox.py list the others, including real COCO polygons), the literal
/// point-walking form of the algorithm (<see cref="MaskTestSupport.LiteralFrPoly"/>) on random polygons, and
/// geometric consistency (shoelace area, extents) on random convex polygons and real annotations.
/// </summary>
public class RlePolygonTests
{
    [Fact]
    public void Axis_aligned_square_by_hand()
    {
        // Square (1,1)-(3,1)-(3,3)-(1,3) in a 5×5 image. Upsampled ×5 (rounded): (5,5) (15,5) (15,15) (5,15).
        // Crossings are taken where the walk steps between u = 5c+2 and 5c+3, i.e. at pixel-centre columns c:
        //   edge (5,5)→(15,5): u = 5..15, v = 5; columns c = 1 (u 7→8) and c = 2 (u 12→13);
        //     row = ceil((5 + .5)/5 - .5) = ceil(0.6) = 1 → positions c·h + row = 6, 11
        //   edge (15,5)→(15,15) and (5,15)→(5,5): vertical, u constant → no crossings
        //   edge (15,15)→(5,15): flipped to run left→right, v = 15; c = 1, 2; row = ceil(15.5/5 - .5) = ceil(2.6) = 3
        //     → positions 8, 13
        // Sorted with h·w = 25 appended: 6 8 11 13 25 → differences [6, 2, 3, 2, 12]: column 1 rows 1..2 and column 2
        // rows 1..2 — the 2×2 pixels whose centres lie inside, area 4 = the shoelace area.
        var rle = Rle.FromPolygon([1, 1, 3, 1, 3, 3, 1, 3], 5, 5);
        rle.Counts.ToArray().Should().Equal(6, 2, 3, 2, 12);
        rle.ToCompressedString().Should().Be("62309");
        rle.ToBoundingBox().Should().Be(new MaskBoundingBox(1, 1, 2, 2));
    }

    [Fact]
    public void Triangle_by_hand()
    {
        // Triangle (1,1)-(4,1)-(1,4) in 5×5. Upsampled: (5,5) (20,5) (5,20).
        //   edge (5,5)→(20,5): v = 5; columns c with 5 ≤ 5c+2 and 5c+3 ≤ 20: c = 1, 2, 3; row ceil(0.6) = 1
        //     → positions 6, 11, 16
        //   edge (20,5)→(5,20): dx = dy = 15 → "shallow" branch; xs > xe so flipped to (5,20)→(20,5), slope s = -1,
        //     v(t) = (int)(20 - t + .5) = 20 - t. Column c uses t = 5c+2-5 and t+1:
        //       c=1: t=2,3 → v 18,17 → min 17 → row ceil(17.5/5 - .5) = ceil(3.0) = 3 → position 8
        //       c=2: t=7,8 → v 13,12 → row ceil(12.5/5 - .5) = 2 → position 12
        //       c=3: t=12,13 → v 8,7 → row ceil(7.5/5 - .5) = 1 → position 16
        //   edge (5,20)→(5,5): vertical → none
        // Sorted: 6 8 11 12 16 16 25 → differences 6 2 3 1 4 0 9; the 0 (position 16 twice) cancels: it is dropped
        // and the 9 joins the 4 → [6, 2, 3, 1, 13]. Pixels: column 1 rows 1..2, column 2 row 1 (the centres on the
        // hypotenuse x + y = 5 are outside). String: '6' '2' '3', 1-2 = -1 → 'O', 13-3 = 10 → ':'.
        var rle = Rle.FromPolygon([1, 1, 4, 1, 1, 4], 5, 5);
        rle.Counts.ToArray().Should().Equal(6, 2, 3, 1, 13);
        rle.ToCompressedString().Should().Be("623O:");
        rle.Area.Should().Be(3);
    }

    [Fact]
    public void Box_by_hand()
    {
        // Box x=2, y=3, w=4, h=2 in 10×10 → polygon (2,3) (2,5) (6,5) (6,3) → upsampled (10,15) (10,25) (30,25) (30,15).
        //   (10,25)→(30,25): columns c = 2..5 (5c+2 ≥ 10, 5c+3 ≤ 30), row ceil(25.5/5 - .5) = ceil(4.6) = 5
        //     → 25, 35, 45, 55
        //   (30,15)→(10,15): flipped, row ceil(15.5/5 - .5) = ceil(2.6) = 3 → 23, 33, 43, 53
        // Sorted with 100: 23 25 33 35 43 45 53 55 100 → [23, 2, 8, 2, 8, 2, 8, 2, 45]: columns 2..5, rows 3..4.
        // String: 23 = 0b10111 has bit 4 set with rest 0 ≠ -1, so it takes two characters: 'g' (23+32+48), '0';
        // 2 → '2'; 8 → '8'; five zero deltas; 45 - 8 = 37 = 1·32 + 5 → 'U' (5+32+48), '1'.
        var rle = Rle.FromBoundingBox(2, 3, 4, 2, 10, 10);
        rle.Counts.ToArray().Should().Equal(23, 2, 8, 2, 8, 2, 8, 2, 45);
        rle.ToCompressedString().Should().Be("g02800000U1");
        rle.ToBoundingBox().Should().Be(new MaskBoundingBox(2, 3, 4, 2));
        rle.Should().Be(Rle.FromPolygon([2, 3, 2, 5, 6, 5, 6, 3], 10, 10));
    }

    [Fact]
    public void Matches_published_pycocotools_strings_for_small_shapes()
    {
        Rle.FromPolygon([10, 10, 20, 10, 20, 20, 21, 21, 10, 20], 25, 25).ToCompressedString()
            .Should().Be("T8:?00000000001O00000:F`2");
        Rle.FromPolygons([[10, 10, 20, 10, 20, 20, 21, 21, 10, 20]], 25, 25).ToCompressedString()
            .Should().Be("T8:?00000000001O00000:F`2");
        Rle.FromPolygon([10, 10, 20, 10, 15, 20], 25, 25).ToCompressedString().Should().Be("T81h02N2N2N2N00N2N2N2Ne3");
        Rle.FromPolygon([5, 5, 15, 5, 15, 15, 5, 15], 25, 25).ToCompressedString().Should().Be("R4:?00000000000000000e7");
        Rle.FromBoundingBox(10, 10, 10, 10, 25, 25).ToCompressedString().Should().Be("T8:?00000000000000000c3");
        Rle.FromBoundingBox(5, 5, 10, 10, 25, 25).ToCompressedString().Should().Be("R4:?00000000000000000e7");
        Rle.FromBoundingBox(15, 15, 5, 5, 25, 25).ToCompressedString().Should().Be("V<5d00000000^3");
    }

    [Fact]
    public void Matches_published_pycocotools_strings_for_real_coco_polygons()
    {
        double[] complex =
        [
            266.83, 189.37, 267.79, 175.29, 269.46, 170.04, 271.37, 165.98, 270.89, 163.12, 269.12, 159.54, 272.8, 156.44,
            287.36, 156.44, 293.33, 157.87, 296.91, 160.49, 296.91, 161.21, 291.89, 161.92, 289.98, 165.03, 291.42, 169.56,
            285.16, 196.54,
        ];
        Rle.FromPolygon(complex, 427, 640).ToCompressedString().Should().Be(
            "\\`_3;j<6B@nCc0Q<@kCc0S<;01N10001O001O00001O001O0000O1L4K6K4L4B]COh<O<O001O0O2Omk^4");

        double[] small = [266.35, 214.44, 270.41, 217.3, 276.38, 218.97, 282.11, 218.97, 285.93, 217.3, 286.88, 207.28, 267.07, 201.07];
        Rle.FromPolygon(small, 427, 640).ToCompressedString().Should().Be("RT_32n<<O100O0010O000010O0001O00001O000O101O0ISPc4");

        double[] large =
        [
            135.17, 444.83, 113.1, 435.17, 100.69, 439.31, 96.55, 439.31, 75.86, 431.03, 71.72, 428.28, 70.34, 396.55,
            64.83, 356.55, 89.66, 338.62, 104.83, 312.41, 126.9, 291.72, 143.45, 253.1, 144.83, 221.38, 146.21, 199.31,
            157.24, 184.14, 172.41, 160.69, 182.07, 155.17, 200, 149.66, 219.31, 142.76, 234.48, 141.38, 266.21, 149.66,
            277.24, 163.45, 284.14, 171.72, 297.93, 195.17, 307.59, 215.86, 317.24, 248.97, 320, 277.93, 318.62, 293.1,
            321.38, 306.9, 342.07, 323.45, 360, 353.79, 365.52, 371.72, 364.14, 393.79, 354.48, 406.21, 342.07, 413.1,
            324.14, 417.24, 303.45, 420, 303.45, 420, 303.45, 421.38, 296.55, 411.72, 288.28, 370.34, 286.9, 366.21,
            245.52, 362.07, 219.31, 371.72, 206.9, 384.14, 194.48, 400.69, 175.17, 415.86, 172.41, 439.31, 168.28,
            457.24, 155.86, 462.76, 143.45, 448.97, 133.79, 440.69, 129.66, 437.93,
        ];
        const string largeRle =
            "ToX15jc09H7H8H8H:Gf0YO9G1O2O1N1O2O0O1O2N101N1O101N1O2N100N3M2O2M2N3M" +
            "2O1N2N2N2O1N2N2O0O2O1O001O1O001O1O001O2N1O2O0O1O2N1O2N1O2N1O2N1O1M4M2" +
            "MOPAYKm>j4SAUKk>n4UARKg>Q5[AmJc>V513L4M3M3L4M2N3L4K5XOh0]Oc0D<N2M4M2M3" +
            "N2N2M3N2M3N1O1N2O0O2N101N101N101N100ON2M4M2M5H7I8I610O001O01O01O1O00100" +
            "O001O1O10O01O1O001O1O0O2O1O001N2O001N2O001O1O001O1O001O001O1O001O1O1O100" +
            "0O0100O10000O10000O10O0101O0O10001N100O101O0O10001O00001O01O0001O0000001O" +
            "0001O01O0000001O1O1O2N100O1O2N1O1O1O2N1O1O100O2N1O1O2N2N1102N3L4M3M2M4M" +
            "3M3M3L10O100O2O0O1N2N2N2N2M5L3M4L3M4L3M4K4M3M6J:F;^KPA^3m?L5K1N2O001O1" +
            "O1N2O001O1O1N2O001O1N2O1O001O1N2O2M3N1N3N2M2N3N2M2O2M3N1N3M3L3N3M3M3L6" +
            "K4L4L4G9]OmlV2";
        Rle.FromPolygon(large, 640, 480).ToCompressedString().Should().Be(largeRle);
    }

    [Fact]
    public void Matches_the_literal_algorithm_on_random_polygons()
    {
        var random = new Random(2024);
        for (var trial = 0; trial < 2000; trial++)
        {
            int h = random.Next(0, 40), w = random.Next(0, 40);
            var points = random.Next(3, 9);
            // Mostly inside or near the image, sometimes far outside, with negative values, repeated points,
            // and coordinates on the 0.2-pixel grid (where the rounding and the crossing tests are tight).
            var spread = trial % 4 == 0 ? 3.0 : 1.3;
            var xy = new double[2 * points];
            for (var i = 0; i < xy.Length; i++)
            {
                var extent = i % 2 == 0 ? w : h;
                xy[i] = trial % 3 == 0
                    ? Math.Round((random.NextDouble() * spread - (spread - 1) / 2) * extent * 5) / 5
                    : (random.NextDouble() * spread - (spread - 1) / 2) * extent;
                if (i >= 2 && random.Next(10) == 0)
                {
                    xy[i] = xy[i - 2]; // vertical/horizontal edges and repeated vertices
                }
            }

            var expected = MaskTestSupport.LiteralFrPoly(xy, h, w);
            Rle.FromPolygon(xy, h, w).Counts.ToArray().Should().Equal(expected, $"polygon [{string.Join(", ", xy)}] in {h}x{w}");
        }
    }

    [Fact]
    public void Far_vertices_match_the_literal_algorithm_and_stay_cheap()
    {
        double[][] polygons =
        [
            [-200_000, 3.3, 20.7, -150_000.1, 17.2, 22.9],
            [5, 5, 200_000, 5.4, 5.2, 200_000],
            [-3.7, -9.1, 31.4, 2.5, 7.75, 123_456.78, -54_321.2, 15],
        ];
        foreach (var xy in polygons)
        {
            Rle.FromPolygon(xy, 30, 40).Counts.ToArray().Should().Equal(MaskTestSupport.LiteralFrPoly(xy, 30, 40));
        }

        // At the documented bound the work depends on the columns crossed, not the edge length.
        var (far, cpu) = ThreadCpuTime.Of(() => Rle.FromPolygon([-1e6, -1e6, 1e6, -999_999.9, 3.5, 1e6], 512, 512));
        cpu.Should().BeLessThan(TimeSpan.FromSeconds(2), "CPU time of this thread");
        far.Area.Should().Be(512 * 512, "the huge triangle covers the whole image");
    }

    [Theory]
    [InlineData(double.NaN, "*xy[2]*NaN*finite*")]
    [InlineData(double.PositiveInfinity, "*xy[2]*finite*")]
    [InlineData(1e9, "*xy[2]*1000000000*within*")]
    [InlineData(-1_000_000.5, "*xy[2]*within*")]
    public void Rejects_non_finite_and_huge_coordinates(double bad, string message)
    {
        var act = () => Rle.FromPolygon([1, 1, bad, 2, 3, 4], 10, 10);
        act.Should().Throw<ArgumentException>().WithParameterName("xy").WithMessage(message);
    }

    [Fact]
    public void Rejects_malformed_polygons_and_sizes()
    {
        var odd = () => Rle.FromPolygon([1, 1, 2, 2, 3], 10, 10);
        odd.Should().Throw<ArgumentException>().WithParameterName("xy").WithMessage("*odd number (5)*");
        var twoPoints = () => Rle.FromPolygon([1, 1, 5, 5], 10, 10);
        twoPoints.Should().Throw<ArgumentException>().WithParameterName("xy").WithMessage("*2 points*at least 3*");
        var negative = () => Rle.FromPolygon([1, 1, 5, 5, 1, 5], -10, 10);
        negative.Should().Throw<ArgumentOutOfRangeException>().WithParameterName("height");
        var noParts = () => Rle.FromPolygons([], 10, 10);
        noParts.Should().Throw<ArgumentException>().WithParameterName("polygons");
        var badPart = () => Rle.FromPolygons([[1, 1, 5, 5, 1, 5], [1, 1, double.NaN, 5, 1, 5]], 10, 10);
        badPart.Should().Throw<ArgumentException>().WithParameterName("polygons[1]").WithMessage("*polygons[1][2]*");
        var negativeBox = () => Rle.FromBoundingBox(1, 1, -2, 3, 10, 10);
        negativeBox.Should().Throw<ArgumentException>().WithParameterName("boxWidth");
        var hugeBox = () => Rle.FromBoundingBox(1, 1, 2e9, 3, 10, 10);
        hugeBox.Should().Throw<ArgumentException>().WithParameterName("boxWidth");
        var nanBox = () => Rle.FromBoundingBox(double.NaN, 1, 2, 3, 10, 10);
        nanBox.Should().Throw<ArgumentException>().WithParameterName("x");
    }

    [Fact]
    public void Multi_part_objects_are_the_union_of_their_parts()
    {
        double[] left = [1, 1, 6, 1, 6, 8, 1, 8];
        double[] right = [4, 3, 12, 3, 9, 11];
        var union = Rle.FromPolygons([left, right], 15, 14);
        union.Should().Be(Rle.Merge([Rle.FromPolygon(left, 15, 14), Rle.FromPolygon(right, 15, 14)]));
        var a = Rle.FromPolygon(left, 15, 14).Decode().ToBools();
        var b = Rle.FromPolygon(right, 15, 14).Decode().ToBools();
        union.Decode().Should().Be(BinaryMask.FromBools(a.Zip(b, (p, q) => p || q).ToArray(), 15, 14));
    }

    [Fact]
    public void Random_convex_polygons_have_about_their_shoelace_area_and_extent()
    {
        var random = new Random(31);
        for (var trial = 0; trial < 300; trial++)
        {
            int h = random.Next(20, 120), w = random.Next(20, 120);
            double cx = random.NextDouble() * w, cy = random.NextDouble() * h;
            var radius = 2 + random.NextDouble() * Math.Min(h, w) / 2;
            var n = random.Next(3, 12);
            var angles = Enumerable.Range(0, n).Select(_ => random.NextDouble() * 2 * Math.PI).Order().ToArray();
            var xy = angles.SelectMany(a => new[] { cx + radius * Math.Cos(a), cy + radius * Math.Sin(a) }).ToArray();

            // Keep the polygon inside the image so the shoelace area is the area to be covered.
            if (xy.Where((_, i) => i % 2 == 0).Any(x => x < 0 || x > w) || xy.Where((_, i) => i % 2 == 1).Any(y => y < 0 || y > h))
            {
                continue;
            }

            var rle = Rle.FromPolygon(xy, h, w);
            var mask = rle.Decode();
            var shoelace = MaskTestSupport.ShoelaceArea(xy);
            var perimeter = MaskTestSupport.Perimeter(xy);
            // Pixel-centre sampling misses or adds at most about one pixel per boundary column and row (≤ perimeter/2
            // for a convex shape), plus the 0.2-pixel snapping of the vertices.
            Math.Abs(mask.Area - shoelace).Should().BeLessThanOrEqualTo(0.6 * perimeter + 2, $"trial {trial}");
            rle.Area.Should().Be(mask.Area);

            var box = rle.ToBoundingBox();
            box.Should().Be(mask.GetBoundingBox());
            if (mask.Area > 0)
            {
                double minX = xy.Where((_, i) => i % 2 == 0).Min(), maxX = xy.Where((_, i) => i % 2 == 0).Max();
                double minY = xy.Where((_, i) => i % 2 == 1).Min(), maxY = xy.Where((_, i) => i % 2 == 1).Max();
                // Set pixels have their centres inside the outline (up to the vertex snapping), so the mask's box lies
                // within the polygon's; a sharp vertex may cover no centre, so the converse does not hold.
                ((double)box.X).Should().BeGreaterThanOrEqualTo(minX - 0.5);
                ((double)box.Y).Should().BeGreaterThanOrEqualTo(minY - 0.5);
                ((double)box.X + box.Width).Should().BeLessThanOrEqualTo(maxX + 0.5);
                ((double)box.Y + box.Height).Should().BeLessThanOrEqualTo(maxY + 0.5);
            }
        }
    }

    /// <summary>
    /// Real tumour outlines copied from /work/shared/datasets/brain-tumor/train/annotations.json (annotations 0, 1, 2
    /// in 512×512 images and 34 in a 384×320 one), with the annotation's "area" (its shoelace area) and "bbox".
    /// </summary>
    public static TheoryData<int, int, double[], double, double[]> BrainTumorPolygons => new()
    {
        {
            512, 512,
            [
                198.20811287477954, 138.15873015873015, 184.66313932980597, 157.1216931216931, 174.73015873015873,
                175.1816578483245, 185.56613756613757, 191.43562610229276, 201.82010582010582, 220.331569664903,
                230.71604938271605, 224.84656084656083, 252.38800705467372, 193.2416225749559, 257.80599647266314,
                160.7336860670194, 240.6490299823633, 141.77072310405643, 219.88007054673722, 136.352733686067,
            ],
            5146.0260973159275, [174.73015873015873, 136.352733686067, 83.0758377425044, 88.49382716049382]
        },
        {
            512, 512,
            [
                217.17107583774248, 139.06172839506172, 193.69312169312167, 160.7336860670194, 193.69312169312167,
                180.59964726631392, 195.4991181657848, 227.55555555555554, 204.5291005291005, 242.00352733686066,
                234.32804232804233, 244.71252204585537, 254.19400352733686, 228.4585537918871, 265.0299823633157,
                168.86067019400352, 248.77601410934744, 142.673721340388,
            ],
            6089.858327967674, [193.69312169312167, 139.06172839506172, 71.33686067019403, 105.65079365079364]
        },
        {
            512, 512,
            [
                209.04409171075838, 130.03174603174602, 169.31216931216932, 148.09171075837742, 158.47619047619048,
                164.34567901234567, 176.53615520282187, 186.9206349206349, 163.8941798941799, 195.9506172839506,
                163.8941798941799, 217.62257495590828, 184.66313932980597, 223.94356261022926, 195.4991181657848,
                231.16754850088182, 193.69312169312167, 246.5185185185185, 218.07407407407408, 256.45149911816577,
                246.9700176366843, 251.03350970017635, 271.35097001763666, 227.55555555555554, 274.96296296296293,
                189.62962962962962, 266.83597883597884, 158.92768959435625, 246.9700176366843, 133.6437389770723,
            ],
            10882.406004560034, [158.47619047619048, 130.03174603174602, 116.48677248677245, 126.41975308641975]
        },
        {
            384, 320,
            [
                260.2328042328042, 279.026455026455, 248.7195767195767, 271.57671957671954, 235.17460317460316,
                271.57671957671954, 227.72486772486772, 277.67195767195767, 226.37037037037035, 285.79894179894177,
                237.2063492063492, 295.2804232804233, 249.3968253968254, 297.989417989418, 258.2010582010582,
                289.8624338624338,
            ],
            654.5160549816633, [226.37037037037035, 271.57671957671954, 33.862433862433846, 26.412698412698433]
        },
    };

    [Theory]
    [MemberData(nameof(BrainTumorPolygons))]
    public void Real_annotations_rasterise_consistently(int height, int width, double[] xy, double area, double[] bbox)
    {
        MaskTestSupport.ShoelaceArea(xy).Should().BeApproximately(area, 1e-6, "the dataset's area is the polygon area");
        var rle = Rle.FromPolygons([xy], height, width);
        rle.Counts.ToArray().Should().Equal(MaskTestSupport.LiteralFrPoly(xy, height, width));
        var mask = rle.Decode();
        Math.Abs(mask.Area - area).Should().BeLessThanOrEqualTo(0.5 * MaskTestSupport.Perimeter(xy));
        var box = rle.ToBoundingBox();
        ((double)box.X).Should().BeApproximately(bbox[0], 1);
        ((double)box.Y).Should().BeApproximately(bbox[1], 1);
        ((double)box.Width).Should().BeApproximately(bbox[2], 1.5);
        ((double)box.Height).Should().BeApproximately(bbox[3], 1.5);
        Rle.FromCompressedString(rle.ToCompressedString(), height, width).Decode().Should().Be(mask);
    }
}
