using MaskRcnn.Net.Imaging;

namespace MaskRcnn.Net.Abstractions.Tests.Imaging;

public class RgbImageTests
{
    // A 2×2 image: red, green / blue, white — and each format's bytes for it, written out by hand.
    private static readonly byte[] Expected = [255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255];

    [Theory]
    [InlineData(PixelFormat.Rgb24, 0, new byte[] { 255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255 })]
    [InlineData(PixelFormat.Bgr24, 0, new byte[] { 0, 0, 255, 0, 255, 0, 255, 0, 0, 255, 255, 255 })]
    [InlineData(PixelFormat.Rgba32, 0, new byte[] { 255, 0, 0, 9, 0, 255, 0, 9, 0, 0, 255, 9, 255, 255, 255, 9 })]
    [InlineData(PixelFormat.Bgra32, 0, new byte[] { 0, 0, 255, 1, 0, 255, 0, 1, 255, 0, 0, 1, 255, 255, 255, 1 })]
    [InlineData(PixelFormat.Rgb24, 8, new byte[] { 255, 0, 0, 0, 255, 0, 77, 77, 0, 0, 255, 255, 255, 255 })]
    [InlineData(PixelFormat.Bgra32, 10, new byte[] { 0, 0, 255, 1, 0, 255, 0, 1, 77, 77, 255, 0, 0, 1, 255, 255, 255, 1 })]
    public void FromPixels_reads_each_format_and_stride(PixelFormat format, int stride, byte[] buffer)
    {
        var image = RgbImage.FromPixels(buffer, 2, 2, format, stride);
        (image.Width, image.Height).Should().Be((2, 2));
        image.Pixels.Should().Equal(Expected);
        buffer[0] ^= 0xFF;
        image.Pixels.Should().Equal(Expected, "the pixels were copied");
    }

    [Fact]
    public void Gray8_goes_to_all_three_channels()
    {
        RgbImage.FromPixels(new byte[] { 10, 20, 30, 40, 50, 60 }, 3, 2, PixelFormat.Gray8).Pixels
            .Should().Equal(10, 10, 10, 20, 20, 20, 30, 30, 30, 40, 40, 40, 50, 50, 50, 60, 60, 60);
        PixelFormat.Gray8.BytesPerPixel().Should().Be(1);
        PixelFormat.Bgra32.BytesPerPixel().Should().Be(4);
    }

    [Fact]
    public void Bad_buffers_are_refused_with_the_sizes_in_the_message()
    {
        FluentActions.Invoking(() => RgbImage.FromPixels(new byte[11], 2, 2, PixelFormat.Rgb24)).Should().Throw<ArgumentException>()
            .WithParameterName("pixels").WithMessage("*2x2 Rgb24*needs 12 bytes*holds 11*");
        FluentActions.Invoking(() => RgbImage.FromPixels(new byte[100], 2, 2, PixelFormat.Rgba32, 7)).Should().Throw<ArgumentException>()
            .WithParameterName("stride").WithMessage("*stride of 7*8 bytes*");
        FluentActions.Invoking(() => RgbImage.FromPixels(new byte[100], 0, 2, PixelFormat.Rgb24)).Should().Throw<ArgumentException>()
            .WithParameterName("width").WithMessage("*0x2*");
        FluentActions.Invoking(() => RgbImage.FromPixels(new byte[100], 2, 2, (PixelFormat)42)).Should().Throw<ArgumentOutOfRangeException>();
        FluentActions.Invoking(() => new RgbImage(2, 2, new byte[13])).Should().Throw<ArgumentException>().WithMessage("*12 bytes, got 13*");
        FluentActions.Invoking(() => RgbImage.FromPixels(new byte[100], 100_000, 100_000, PixelFormat.Gray8)).Should().Throw<ArgumentException>()
            .WithMessage("*more than one array holds*");
    }

    [Fact]
    public void Image_sources_keep_what_they_were_given()
    {
        ImageSource path = "a.jpg";
        path.Should().BeOfType<FileImageSource>().Which.Path.Should().Be("a.jpg");
        path.Description.Should().Be("a.jpg");
        var bytes = new byte[] { 1, 2, 3 };
        ImageSource encoded = bytes;
        encoded.Should().BeOfType<EncodedImageSource>().Which.Bytes.Should().BeSameAs(bytes);
        using var stream = new MemoryStream(bytes);
        ImageSource fromStream = stream;
        fromStream.Should().BeOfType<StreamImageSource>().Which.Stream.Should().BeSameAs(stream);
        var image = RgbImage.Filled(3, 2, 1, 2, 3);
        ImageSource pixels = image;
        pixels.Should().BeOfType<PixelImageSource>().Which.Image.Should().BeSameAs(image);
        pixels.Description.Should().Be("<3x2 pixels>");
        ImageSource.FromPixels(new byte[] { 5, 6 }, 2, 1, PixelFormat.Gray8).Should().BeOfType<PixelImageSource>()
            .Which.Image.Pixels.Should().Equal(5, 5, 5, 6, 6, 6);
        FluentActions.Invoking(() => ImageSource.FromFile(null!)).Should().Throw<ArgumentNullException>();
    }
}
