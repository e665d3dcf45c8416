using MaskRcnn.Net.Backbones;
using MaskRcnn.Net.Core.Imaging;
using MaskRcnn.Net.ImageSharp;
using MaskRcnn.Net.Imaging;
using MaskRcnn.Net.SkiaSharp;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using SkiaSharp;

namespace MaskRcnn.Net.Tests;

/// <summary>
/// The ImageSharp and SkiaSharp adapters against our own decoder (libpng) on lossless PNGs of MRI slices, and a seeded
/// model giving the same detections for adapter input as for the file path.
/// </summary>
public sealed class ImageAdapterTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("mrcnn-adapters-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    /// <summary>An MRI slice (JPEG) decoded by our decoder and written as a PNG by our encoder; returns the path.</summary>
    private string Png(int slice, ImageReadMode mode)
    {
        var path = Path.Combine(dir, $"slice{slice}-{mode}.png");
        using var decoded = ImageCodec.Decode(RepoPaths.MriImage(slice), mode);
        ImageCodec.SavePng(decoded, path);
        return path;
    }

    private static RgbImage OurDecoder(string path)
    {
        using var rgb = ImageCodec.Decode(path, ImageReadMode.Rgb);
        return rgb.ToRgbImage();
    }

    [Fact]
    public void Each_adapter_gives_our_decoders_rgb_pixels_for_a_png()
    {
        var png = Png(0, ImageReadMode.Rgb);
        var truth = OurDecoder(png);
        truth.Pixels.Distinct().Count().Should().BeGreaterThan(20, "a real slice, not a flat image");

        using (var sharp = SixLabors.ImageSharp.Image.Load<Rgb24>(png))
        {
            sharp.ToRgbImage().Pixels.Should().Equal(truth.Pixels, "ImageSharp Image<Rgb24>");
        }

        using (var bitmap = SKBitmap.Decode(png))
        {
            bitmap.ToRgbImage().Pixels.Should().Equal(truth.Pixels, $"SkiaSharp SKBitmap ({bitmap.ColorType}, {bitmap.AlphaType})");
        }

        SkiaImageDecoder.Decode(png).Pixels.Should().Equal(truth.Pixels, "SkiaImageDecoder");
    }

    [Fact]
    public void A_grey_png_gives_equal_channels_through_each_adapter()
    {
        var png = Png(1, ImageReadMode.Gray);
        using (var info = ImageCodec.Decode(png))
        {
            info.Shape[0].Should().Be(1, "the PNG holds one grey channel");
        }

        var truth = OurDecoder(png);
        using (var grey = SixLabors.ImageSharp.Image.Load<L8>(png))
        {
            grey.ToRgbImage().Pixels.Should().Equal(truth.Pixels, "ImageSharp Image<L8>");
        }

        using (var bitmap = SKBitmap.Decode(png))
        {
            bitmap.ToRgbImage().Pixels.Should().Equal(truth.Pixels, $"SkiaSharp SKBitmap ({bitmap.ColorType})");
        }

        SkiaImageDecoder.Decode(png).Pixels.Should().Equal(truth.Pixels, "SkiaImageDecoder");
    }

    [Fact]
    public void A_seeded_model_gives_the_same_detections_for_adapter_input_as_for_the_file()
    {
        var png = Png(2, ImageReadMode.Rgb);
        using var model = new MaskRcnnBuilder()
            .WithBackbone(18, NormKind.FrozenBatchNorm)
            .WithClasses("tumor")
            .WithImageSize(128, 160)
            .WithScoreThreshold(0.0)
            .WithSeed(5)
            .Build();
        var expected = model.Predict(png);
        expected.Detections.Should().NotBeEmpty("a score threshold of 0 keeps detections");

        using (var sharp = SixLabors.ImageSharp.Image.Load<Rgb24>(png))
        {
            ShouldEqual(model.Predict(sharp.ToImageSource()), expected, "ImageSharp");
        }

        using (var bitmap = SKBitmap.Decode(png))
        {
            ShouldEqual(model.Predict(bitmap.ToImageSource()), expected, "SKBitmap");
        }

        ShouldEqual(model.Predict(SkiaImageDecoder.Decode(File.ReadAllBytes(png))), expected, "SkiaImageDecoder");
    }

    private static void ShouldEqual(ImageDetections actual, ImageDetections expected, string input)
    {
        (actual.Width, actual.Height).Should().Be((expected.Width, expected.Height), input);
        actual.Detections.Should().HaveCount(expected.Detections.Count, input);
        for (var i = 0; i < expected.Detections.Count; i++)
        {
            var (a, e) = (actual.Detections[i], expected.Detections[i]);
            (a.Label, a.Score, a.Box).Should().Be((e.Label, e.Score, e.Box), $"{input}: detection {i}");
            a.Mask.Should().Be(e.Mask, $"{input}: detection {i}'s mask");
        }
    }
}
