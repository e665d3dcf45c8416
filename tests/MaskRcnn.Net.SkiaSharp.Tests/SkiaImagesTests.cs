using System.Runtime.InteropServices;
using MaskRcnn.Net.Imaging;
using SkiaSharp;

namespace MaskRcnn.Net.SkiaSharp.Tests;

/// <summary>
/// SkiaSharp pixels to <see cref="RgbImage"/>: checked against <see cref="RgbImage.FromPixels"/> on the same raw bytes
/// with a padded stride, hand-computed unpremultiplied values, and lossless PNG round trips.
/// </summary>
public class SkiaImagesTests
{
    private static byte[] RandomBytes(int count, int seed)
    {
        var bytes = new byte[count];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    /// <summary>Runs <paramref name="use"/> on a pixmap over <paramref name="buffer"/> (pinned meanwhile).</summary>
    private static T WithPixmap<T>(byte[] buffer, SKImageInfo info, int rowBytes, Func<SKPixmap, T> use)
    {
        var handle = GCHandle.Alloc(buffer, GCHandleType.Pinned);
        try
        {
            using var pixmap = new SKPixmap(info, handle.AddrOfPinnedObject(), rowBytes);
            return use(pixmap);
        }
        finally
        {
            handle.Free();
        }
    }

    [Theory]
    [InlineData(SKColorType.Rgba8888, SKAlphaType.Unpremul, PixelFormat.Rgba32)]
    [InlineData(SKColorType.Rgba8888, SKAlphaType.Opaque, PixelFormat.Rgba32)]
    [InlineData(SKColorType.Bgra8888, SKAlphaType.Unpremul, PixelFormat.Bgra32)]
    [InlineData(SKColorType.Bgra8888, SKAlphaType.Opaque, PixelFormat.Bgra32)]
    [InlineData(SKColorType.Rgb888x, SKAlphaType.Opaque, PixelFormat.Rgba32)]
    [InlineData(SKColorType.Gray8, SKAlphaType.Opaque, PixelFormat.Gray8)]
    public void Each_colour_type_with_a_padded_stride_gives_the_rgb_bytes_of_FromPixels(SKColorType colorType, SKAlphaType alphaType, PixelFormat format)
    {
        const int width = 37, height = 11;
        var rowBytes = width * format.BytesPerPixel() + 12; // 12 bytes of padding after each row
        var raw = RandomBytes(rowBytes * height, (int)colorType * 10 + (int)alphaType);
        var rgb = WithPixmap(raw, new SKImageInfo(width, height, colorType, alphaType), rowBytes, p => p.ToRgbImage());
        (rgb.Width, rgb.Height).Should().Be((width, height));
        rgb.Pixels.Should().Equal(RgbImage.FromPixels(raw, width, height, format, rowBytes).Pixels);
        if (format == PixelFormat.Gray8)
        {
            // Hand-checked: pixel (x 5, y 3) is byte 3 * rowBytes + 5, on all three channels.
            var g = raw[3 * rowBytes + 5];
            rgb.Pixels.Skip(3 * (3 * width + 5)).Take(3).Should().Equal(g, g, g);
        }
    }

    [Fact]
    public void Premultiplied_pixels_are_unpremultiplied_as_documented()
    {
        // RGBA premultiplied, one row of five pixels, row padded to 24 bytes.
        byte[] raw =
        [
            100, 50, 0, 128,     // round(100*255/128) = round(199.2) = 199, round(50*255/128) = round(99.6) = 100, 0
            10, 20, 30, 255,     // opaque: unchanged
            7, 8, 9, 0,          // fully transparent: black (the colour is gone)
            200, 60, 1, 100,     // 200 > alpha is not valid premultiplied data: clamped to 255; 60*255/100 = 153; 1*255/100 = 2.55 -> 3
            1, 1, 1, 2,          // 1*255/2 = 127.5 -> 128 (half rounds up)
            0, 0, 0, 0,          // padding
        ];
        var rgba = WithPixmap(raw, new SKImageInfo(5, 1, SKColorType.Rgba8888, SKAlphaType.Premul), 24, p => p.ToRgbImage());
        rgba.Pixels.Should().Equal(199, 100, 0, 10, 20, 30, 0, 0, 0, 255, 153, 3, 128, 128, 128);

        // The same bytes as BGRA: red and blue swap places.
        var bgra = WithPixmap(raw, new SKImageInfo(5, 1, SKColorType.Bgra8888, SKAlphaType.Premul), 24, p => p.ToRgbImage());
        bgra.Pixels.Should().Equal(0, 100, 199, 30, 20, 10, 0, 0, 0, 3, 153, 255, 128, 128, 128);
    }

    [Fact]
    public void Unpremultiplying_agrees_with_skia_within_one_level()
    {
        // An independent check of the arithmetic: Skia's own premul -> unpremul conversion on valid premultiplied data.
        const int width = 64, height = 16;
        var raw = RandomBytes(4 * width * height, 11);
        for (var i = 0; i < raw.Length; i += 4)
        {
            var a = raw[i + 3];
            (raw[i], raw[i + 1], raw[i + 2]) = ((byte)(raw[i] * a / 255), (byte)(raw[i + 1] * a / 255), (byte)(raw[i + 2] * a / 255));
        }

        var premul = new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Premul);
        var ours = WithPixmap(raw, premul, 4 * width, p => p.ToRgbImage());
        var skia = new byte[4 * width * height];
        WithPixmap(skia, premul.WithAlphaType(SKAlphaType.Unpremul), 4 * width, dst => WithPixmap(raw, premul, 4 * width, src => src.ReadPixels(dst)))
            .Should().BeTrue();
        var skiaRgb = RgbImage.FromPixels(skia, width, height, PixelFormat.Rgba32).Pixels;
        var alphas = Enumerable.Range(0, width * height).Select(i => raw[4 * i + 3]).ToArray();
        for (var i = 0; i < ours.Pixels.Length; i++)
        {
            if (alphas[i / 3] > 0)
            {
                Math.Abs(ours.Pixels[i] - skiaRgb[i]).Should().BeLessThanOrEqualTo(1, $"byte {i} (alpha {alphas[i / 3]})");
            }
        }
    }

    [Fact]
    public void Other_colour_types_go_through_skia_conversion()
    {
        // RGB565, little-endian 16-bit words: pure red 0xF800, pure green 0x07E0, pure blue 0x001F, white 0xFFFF.
        byte[] raw = [0x00, 0xF8, 0xE0, 0x07, 0x1F, 0x00, 0xFF, 0xFF];
        var rgb = WithPixmap(raw, new SKImageInfo(4, 1, SKColorType.Rgb565, SKAlphaType.Opaque), 8, p => p.ToRgbImage());
        rgb.Pixels.Should().Equal(255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255);
    }

    [Fact]
    public void Bitmaps_and_images_give_the_pixels_of_the_decoded_png()
    {
        // A lossless PNG made from known pixels: the bitmap, a raster image and a lazily decoded image all give them back.
        var original = new RgbImage(23, 17, RandomBytes(3 * 23 * 17, 12));
        using var bitmap = original.ToSKBitmap();
        bitmap.ToRgbImage().Pixels.Should().Equal(original.Pixels);
        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        var png = data.ToArray();

        using var decoded = SKBitmap.Decode(png);
        decoded.ToRgbImage().Pixels.Should().Equal(original.Pixels);
        using var raster = SKImage.FromBitmap(decoded);
        raster.ToRgbImage().Pixels.Should().Equal(original.Pixels);
        using var lazy = SKImage.FromEncodedData(png);
        lazy.ToRgbImage().Pixels.Should().Equal(original.Pixels, "a lazily decoded image is rasterised first");
        var source = lazy.ToImageSource().Should().BeOfType<PixelImageSource>().Subject;
        source.Image.Pixels.Should().Equal(original.Pixels);
    }

    [Fact]
    public void Empty_bitmaps_are_refused_with_an_argument_exception()
    {
        using var empty = new SKBitmap();
        FluentActions.Invoking(() => empty.ToRgbImage()).Should().Throw<ArgumentException>().WithMessage("*no pixels*");
        FluentActions.Invoking(() => ((SKBitmap)null!).ToRgbImage()).Should().Throw<ArgumentNullException>();
    }

    [Fact]
    public void The_adapter_assembly_references_only_abstractions_and_skiasharp()
    {
        typeof(SkiaImages).Assembly.GetReferencedAssemblies().Select(a => a.Name!)
            .Where(n => !n.StartsWith("System", StringComparison.Ordinal) && n != "netstandard")
            .Should().BeEquivalentTo(["MaskRcnn.Net.Abstractions", "SkiaSharp"], "no libtorch, no shim: the ONNX package can use it");
    }
}
