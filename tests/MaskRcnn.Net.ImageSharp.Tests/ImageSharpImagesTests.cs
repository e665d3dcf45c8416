using MaskRcnn.Net.Tests;
using MaskRcnn.Net.Imaging;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.PixelFormats;

namespace MaskRcnn.Net.ImageSharp.Tests;

/// <summary>
/// ImageSharp images to <see cref="RgbImage"/>: checked against <see cref="RgbImage.FromPixels"/> on the same raw
/// bytes (our own conversion, independent of ImageSharp's), hand-computed pixels and a lossless PNG round trip.
/// </summary>
public class ImageSharpImagesTests
{
    private static byte[] RandomBytes(int count, int seed)
    {
        var bytes = new byte[count];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    private static void EqualsFromPixels<TPixel>(int width, int height, PixelFormat format, int seed)
        where TPixel : unmanaged, IPixel<TPixel>
    {
        var raw = RandomBytes(width * height * format.BytesPerPixel(), seed);
        using var image = Image.LoadPixelData<TPixel>(raw, width, height);
        var rgb = image.ToRgbImage();
        var expected = RgbImage.FromPixels(raw, width, height, format);
        (rgb.Width, rgb.Height).Should().Be((width, height));
        rgb.Pixels.Should().Equal(expected.Pixels, $"{typeof(TPixel).Name} {width}x{height} as {format}");
    }

    [Theory]
    [InlineData(7, 5)]
    [InlineData(1, 1)]
    [InlineData(333, 97)] // long rows: ImageSharp's vectorised conversions
    public void Every_supported_pixel_type_gives_the_rgb_bytes_of_FromPixels(int width, int height)
    {
        EqualsFromPixels<Rgb24>(width, height, PixelFormat.Rgb24, 1);
        EqualsFromPixels<Bgr24>(width, height, PixelFormat.Bgr24, 2);
        EqualsFromPixels<Rgba32>(width, height, PixelFormat.Rgba32, 3);
        EqualsFromPixels<Bgra32>(width, height, PixelFormat.Bgra32, 4);
        EqualsFromPixels<L8>(width, height, PixelFormat.Gray8, 5);
    }

    [Fact]
    public void Hand_computed_pixels_grey_to_all_channels_and_alpha_dropped()
    {
        using var grey = new Image<L8>(3, 2);
        grey[0, 0] = new L8(0);
        grey[1, 0] = new L8(17);
        grey[2, 1] = new L8(255);
        grey.ToRgbImage().Pixels.Should().Equal(0, 0, 0, 17, 17, 17, 0, 0, 0, /* row 1 */ 0, 0, 0, 0, 0, 0, 255, 255, 255);

        using var rgba = new Image<Rgba32>(2, 1);
        rgba[0, 0] = new Rgba32(10, 20, 30, 0);     // transparent: its colour is kept (not premultiplied)
        rgba[1, 0] = new Rgba32(200, 100, 50, 128);
        rgba.ToRgbImage().Pixels.Should().Equal(10, 20, 30, 200, 100, 50);

        using var bgra = new Image<Bgra32>(1, 1);
        bgra[0, 0] = new Bgra32(1, 2, 3, 4); // constructor order r, g, b, a
        bgra.ToRgbImage().Pixels.Should().Equal(1, 2, 3);
    }

    [Fact]
    public void An_image_in_several_memory_blocks_is_copied_row_by_row()
    {
        // 2400 x 1200 Rgb24 = 8.6 MB: ImageSharp's default allocator splits it into several blocks, so rows are not one
        // span and DangerousTryGetSinglePixelMemory fails; the copy must follow each row.
        const int width = 2400, height = 1200;
        var raw = RandomBytes(3 * width * height, 6);
        using var image = Image.LoadPixelData<Rgb24>(raw, width, height);
        image.DangerousTryGetSinglePixelMemory(out _).Should().BeFalse("the test needs a discontiguous image");
        image.ToRgbImage().Pixels.Should().Equal(raw);
    }

    [Fact]
    public void A_lossless_png_of_an_mri_slice_round_trips_through_the_adapter()
    {
        // The MRI slice (a JPEG) decoded once, re-encoded as PNG and read back: the adapter's bytes equal FromPixels on
        // the raw pixels ImageSharp holds, and equal the pixels before the lossless round trip.
        using var slice = Image.Load<Rgb24>(RepoPaths.MriImage(0));
        var before = slice.ToRgbImage();
        before.Pixels.Distinct().Count().Should().BeGreaterThan(20, "a real image, not a flat one");
        using var png = new MemoryStream();
        slice.SaveAsPng(png, new PngEncoder { ColorType = PngColorType.Rgb });
        png.Position = 0;
        using var decoded = Image.Load<Rgb24>(png);
        var raw = new byte[3 * decoded.Width * decoded.Height];
        decoded.CopyPixelDataTo(raw);
        var rgb = decoded.ToRgbImage();
        rgb.Pixels.Should().Equal(RgbImage.FromPixels(raw, decoded.Width, decoded.Height, PixelFormat.Rgb24).Pixels);
        rgb.Pixels.Should().Equal(before.Pixels);
        (rgb.Width, rgb.Height).Should().Be((slice.Width, slice.Height));
    }

    [Fact]
    public void ToImageSource_holds_the_converted_pixels_and_ToImageSharp_converts_back()
    {
        var raw = RandomBytes(3 * 9 * 4, 7);
        var original = new RgbImage(9, 4, raw);
        using var image = original.ToImageSharp();
        (image.Width, image.Height).Should().Be((9, 4));
        image[8, 3].Should().Be(new Rgb24(raw[^3], raw[^2], raw[^1]), "pixel (x 8, y 3) is the last three bytes");
        image[1, 0].Should().Be(new Rgb24(raw[3], raw[4], raw[5]));

        var source = image.ToImageSource();
        var pixels = source.Should().BeOfType<PixelImageSource>().Subject.Image;
        pixels.Pixels.Should().Equal(raw);
        pixels.Pixels.Should().NotBeSameAs(raw, "the image's pixels are copied");
    }

    [Fact]
    public void The_adapter_assembly_references_only_abstractions_and_imagesharp()
    {
        typeof(ImageSharpImages).Assembly.GetReferencedAssemblies().Select(a => a.Name!)
            .Where(n => !n.StartsWith("System", StringComparison.Ordinal) && n != "netstandard")
            .Should().BeEquivalentTo(["MaskRcnn.Net.Abstractions", "SixLabors.ImageSharp"], "no libtorch, no shim: the ONNX package can use it");
    }

    [Fact]
    public void Null_images_are_refused()
    {
        FluentActions.Invoking(() => ((Image<Rgb24>)null!).ToRgbImage()).Should().Throw<ArgumentNullException>();
        FluentActions.Invoking(() => ((RgbImage)null!).ToImageSharp()).Should().Throw<ArgumentNullException>();
    }
}
