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
