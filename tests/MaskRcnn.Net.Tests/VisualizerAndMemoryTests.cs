using System.Diagnostics;
using MaskRcnn.Net.Backbones;
using MaskRcnn.Net.Core.Detection;
using MaskRcnn.Net.Core.Imaging;
using MaskRcnn.Net.Core.Masks;

namespace MaskRcnn.Net.Tests;

/// <summary>RSS is process-wide: memory tests run alone, after every parallel test of the assembly.</summary>
[CollectionDefinition("memory", DisableParallelization = true)]
public sealed class MemoryCollection
{
}

[Collection("memory")]
public class VisualizerAndMemoryTests
{
    [Fact]
    public void Visualizer_tints_mask_pixels_draws_the_box_and_leaves_the_rest()
    {
        using var image = Tensor.Full([3, 60, 80], 100L, DType.UInt8);
        var bits = new bool[60 * 80];
        for (var y = 20; y < 40; y++)
        {
            for (var x = 30; x < 50; x++)
            {
                bits[y * 80 + x] = true;
            }
        }

        var det = new Detection(new BoundingBox(25, 15, 55, 45), 1, "tumor", 0.9f, BinaryMask.FromBools(bits, 60, 80));
        var detections = new ImageDetections(80, 60, [det]);
        using var drawn = Visualizer.Draw(image, detections, new VisualizerOptions(MaskOpacity: 0.5, BoxThickness: 1, FontScale: 1));
        drawn.Shape.Should().Equal(3, 60, 80);
        var px = drawn.ToArray<byte>();
        byte At(int c, int y, int x) => px[(c * 60 + y) * 80 + x];
        var (r, g, b) = Visualizer.ColorOf(0);
        // Inside the mask: half image grey, half instance colour.
        At(0, 30, 40).Should().Be((byte)Math.Round(100 * 0.5 + r * 0.5));
        At(1, 30, 40).Should().Be((byte)Math.Round(100 * 0.5 + g * 0.5));
        At(2, 30, 40).Should().Be((byte)Math.Round(100 * 0.5 + b * 0.5));
        // On the box's right edge (outside the mask): the full colour.
        (At(0, 42, 55), At(1, 42, 55), At(2, 42, 55)).Should().Be((r, g, b));
        // Far from mask, box and label: untouched.
        (At(0, 55, 5), At(1, 55, 5), At(2, 55, 5)).Should().Be(((byte)100, (byte)100, (byte)100));

        var path = Path.Combine(Path.GetTempPath(), $"mr_vis_{Guid.NewGuid():N}.png");
        try
        {
            Visualizer.Save(image, detections, path, new VisualizerOptions(MaskOpacity: 0.5, BoxThickness: 1, FontScale: 1));
            using var back = ImageCodec.Decode(path);
            back.ToArray<byte>().Should().Equal(px, "the PNG holds exactly the drawn pixels");
        }
        finally
        {
            File.Delete(path);
        }

        FluentActions.Invoking(() => Visualizer.Draw(image, new ImageDetections(10, 10, []))).Should().Throw<ArgumentException>().WithMessage("*80x60*10x10*");
    }

    [Fact]
    public void Labels_stay_inside_the_image_and_the_best_detection_is_drawn_on_top()
    {
        using var image = Tensor.Full([1, 60, 80], 100L, DType.UInt8);
        var options = new VisualizerOptions(MaskOpacity: 0.5, BoxThickness: 1, FontScale: 1);
        var grey = ((byte)100, (byte)100, (byte)100);
        static (byte, byte, byte) At(byte[] px, int y, int x) => (px[(0 * 60 + y) * 80 + x], px[(1 * 60 + y) * 80 + x], px[(2 * 60 + y) * 80 + x]);

        // A box at the right edge: "tumor 0.90" is 10 glyphs, 6·10 + 1 = 61 px wide, so its label starts at x = 80 - 61
        // = 19 instead of the box's x1 = 60; it sits 7 + 2 = 9 rows above the box (rows 11-19).
        var edge = new ImageDetections(80, 60, [new Detection(new BoundingBox(60, 20, 79, 40), 1, "tumor", 0.9f, null)]);
        using var drawn = Visualizer.Draw(image, edge, options);
        var px = drawn.ToArray<byte>();
        var c0 = Visualizer.ColorOf(0);
        At(px, 11, 19).Should().Be(c0, "the label's top-left padding pixel");
        At(px, 11, 79).Should().Be(c0, "the label ends at the right border");
        At(px, 11, 18).Should().Be(grey, "nothing left of the label");
        At(px, 10, 40).Should().Be(grey, "nothing above the label");

        // Two detections on the same box: the higher score (rank 0) is drawn last, its box and label on top.
        var box = new BoundingBox(20, 30, 50, 50);
        var pair = new ImageDetections(80, 60, [new Detection(box, 1, "tumor", 0.9f, null), new Detection(box, 1, "tumor", 0.6f, null)]);
        using var both = Visualizer.Draw(image, pair, options);
        var bp = both.ToArray<byte>();
        At(bp, 21, 19).Should().Be(c0, "the best detection's label covers the other one");
        At(bp, 45, 20).Should().Be(c0, "the best detection's box edge covers the other one");
        Visualizer.ColorOf(1).Should().NotBe(c0);
    }

    [Fact]
    public void Comparison_puts_the_truth_left_and_the_prediction_right_under_captions()
    {
        using var image = Tensor.Full([1, 60, 80], 100L, DType.UInt8);
        static BinaryMask Square(int x0) => BinaryMask.FromBools(Enumerable.Range(0, 60 * 80).Select(i => i / 80 is >= 20 and < 40 && i % 80 >= x0 && i % 80 < x0 + 20).ToArray(), 60, 80);
        var truth = new ImageDetections(80, 60, [new Detection(new BoundingBox(10, 20, 30, 40), 1, "tumor", 1, Square(10))]);
        var predicted = new ImageDetections(80, 60, [new Detection(new BoundingBox(50, 20, 70, 40), 1, "tumor", 0.8f, Square(50)),
            new Detection(new BoundingBox(0, 0, 5, 5), 1, "tumor", 0.2f, null)]);
        var options = new VisualizerOptions(MaskOpacity: 0.5, BoxThickness: 1, FontScale: 1, MinScore: 0.5);
        using var both = Visualizer.DrawComparison(image, truth, predicted, options);
        using var left = Visualizer.Draw(image, truth, options with { MinScore = 0, ShowScores = false });
        using var right = Visualizer.Draw(image, predicted, options);
        var band = 7 + 4; // font height + padding at scale 1
        both.Shape.Should().Equal(3, 60 + band, 2 * 80 + 6);
        using var leftPart = both.Narrow(1, band, 60).Narrow(2, 0, 80).Contiguous();
        using var rightPart = both.Narrow(1, band, 60).Narrow(2, 86, 80).Contiguous();
        leftPart.ToArray<byte>().Should().Equal(left.ToArray<byte>());
        rightPart.ToArray<byte>().Should().Equal(right.ToArray<byte>(), "the 0.2 detection is below MinScore and not drawn");
        using var gap = both.Narrow(2, 80, 6).Contiguous();
        gap.ToArray<byte>().Should().OnlyContain(v => v == 255);
        using var caption = both.Narrow(1, 0, band).Contiguous();
        caption.ToArray<byte>().Should().Contain(0, "the captions are written in black").And.Contain(255);
        left.ToArray<byte>().Should().NotEqual(right.ToArray<byte>());
    }

    [Fact]
    public void Hundreds_of_predictions_do_not_grow_native_memory()
    {
        static long Rss()
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
            using var p = Process.GetCurrentProcess();
            p.Refresh();
            return p.WorkingSet64;
        }

        using var model = new MaskRcnnBuilder().WithBackbone(18, NormKind.FrozenBatchNorm).WithClasses("a").WithImageSize(96, 96)
            .WithScoreThreshold(0.0).WithDetectionsPerImage(20).Build();
        var bytes = File.ReadAllBytes(RepoPaths.MriImage(0));
        for (var i = 0; i < 20; i++)
        {
            model.Predict(bytes);
        }

        var before = Rss();
        for (var i = 0; i < 200; i++)
        {
            model.Predict(bytes);
        }

        var after = Rss();
        // Each prediction allocates tens of MiB of native tensors; a leak of even one mask per call would add > 80 MiB.
        (after - before).Should().BeLessThan(48L << 20, $"RSS went from {before >> 20} MiB to {after >> 20} MiB over 200 predictions");
    }
}
