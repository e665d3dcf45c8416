using MaskRcnn.Net.Core.Imaging;
using MaskRcnn.Net.Core.Tests.TestSupport;

namespace MaskRcnn.Net.Core.Tests.Imaging;

public class ImageEncodeTests
{
    private static Tensor RandomImage(int channels, int height, int width, int seed)
    {
        var rng = new Random(seed);
        var data = new byte[channels * height * width];
        rng.NextBytes(data);
        return Tensor.FromBytes(data, DType.UInt8, [channels, height, width]);
    }

    // Smooth content, so that JPEG's loss stays small.
    private static Tensor SmoothImage(int channels, int height, int width)
    {
        var data = new byte[channels * height * width];
        for (var c = 0; c < channels; c++)
        {
            for (var y = 0; y < height; y++)
            {
                for (var x = 0; x < width; x++)
                {
                    data[(c * height + y) * width + x] = (byte)(128 + 100 * Math.Sin((x + 2 * c) / 9.0) * Math.Cos((y - c) / 13.0));
                }
            }
        }

        return Tensor.FromBytes(data, DType.UInt8, [channels, height, width]);
    }

    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(1, 17, 33)]
    [InlineData(2, 9, 4)]
    [InlineData(3, 31, 20)]
    [InlineData(4, 8, 65)]
    public void Png_round_trip_is_exact(int channels, int height, int width)
    {
        using var image = RandomImage(channels, height, width, seed: channels * 1000 + height);
        var png = ImageCodec.EncodePng(image);
        ImageCodec.DetectFormat(png).Should().Be(ImageFormat.Png);
        using var decoded = ImageCodec.Decode(png);
        ImagingTestData.AssertPixels(decoded, image.Shape, image.ToBytes(), "PNG round trip");

        foreach (var level in new[] { 0, 9 })
        {
            using var again = ImageCodec.Decode(ImageCodec.EncodePng(image, level));
            ImagingTestData.AssertPixels(again, image.Shape, image.ToBytes(), $"PNG round trip, level {level}");
        }
    }

    [Fact]
    public void Png_encodes_non_contiguous_views()
    {
        using var hwc = RandomImage(5, 7, 3, seed: 7); // taken as [H=5, W=7, C=3]
        using var chw = hwc.Permute(2, 0, 1);
        chw.IsContiguous.Should().BeFalse();
        using var decoded = ImageCodec.Decode(ImageCodec.EncodePng(chw));
        using var expected = chw.Contiguous();
        ImagingTestData.AssertPixels(decoded, [3, 5, 7], expected.ToBytes(), "permuted view");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void Jpeg_round_trip_is_close(int channels)
    {
        using var image = SmoothImage(channels, 48, 70);
        var jpeg = ImageCodec.EncodeJpeg(image, quality: 95);
        ImageCodec.DetectFormat(jpeg).Should().Be(ImageFormat.Jpeg);
        using var decoded = ImageCodec.Decode(jpeg);
        decoded.Shape.Should().Equal(image.Shape);
        var a = decoded.ToArray<double>();
        var b = image.ToArray<double>();
        var meanAbs = a.Zip(b, (x, y) => Math.Abs(x - y)).Average();
        meanAbs.Should().BeLessThan(2.0);

        var small = ImageCodec.EncodeJpeg(image, quality: 20);
        small.Length.Should().BeLessThan(jpeg.Length);
    }

    [Fact]
    public void Encoded_files_are_read_back_by_torchvision()
    {
        var dir = Directory.CreateTempSubdirectory("mr_image_encode_").FullName;
        try
        {
            using var rgba = RandomImage(4, 12, 19, seed: 3);
            using var gray = RandomImage(1, 10, 11, seed: 4);
            using var smooth = SmoothImage(3, 40, 56);
            ImageCodec.SavePng(rgba, Path.Combine(dir, "rgba.png"));
            ImageCodec.SavePng(gray, Path.Combine(dir, "gray.png"), compressionLevel: 1);
            ImageCodec.SaveJpeg(smooth, Path.Combine(dir, "smooth.jpg"), quality: 85);
            var output = PythonOracle.Run("""
                import sys, os
                from torchvision.io import read_image
                for f in ['rgba.png', 'gray.png', 'smooth.jpg']:
                    t = read_image(os.path.join(sys.argv[1], f))
                    t.numpy().tofile(os.path.join(sys.argv[1], f + '.raw'))
                    print(f, *t.shape)
                """, dir);
            output.Should().Contain("rgba.png 4 12 19").And.Contain("gray.png 1 10 11").And.Contain("smooth.jpg 3 40 56");
            File.ReadAllBytes(Path.Combine(dir, "rgba.png.raw")).Should().Equal(rgba.ToBytes());
            File.ReadAllBytes(Path.Combine(dir, "gray.png.raw")).Should().Equal(gray.ToBytes());

            // Both sides decode the JPEG with libjpeg-turbo: identical pixels.
            using var ours = ImageCodec.Decode(Path.Combine(dir, "smooth.jpg"));
            ours.ToBytes().Should().Equal(File.ReadAllBytes(Path.Combine(dir, "smooth.jpg.raw")));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Save_then_decode_from_path()
    {
        var file = Path.Combine(Path.GetTempPath(), $"mr_image_{Guid.NewGuid():N}.png");
        try
        {
            using var image = RandomImage(3, 6, 9, seed: 11);
            ImageCodec.SavePng(image, file);
            ImageCodec.ReadInfo(file).Should().Be(new ImageInfo(ImageFormat.Png, 6, 9, 3));
            ImageCodec.ReadInfo(file, ImageReadMode.GrayAlpha).Channels.Should().Be(2);
            using var decoded = ImageCodec.Decode(file);
            ImagingTestData.AssertPixels(decoded, [3, 6, 9], image.ToBytes(), "saved PNG");
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public void Encoders_validate_dtype_rank_and_channels()
    {
        using var floats = Tensor.Zeros([3, 4, 4]);
        var act = () => ImageCodec.EncodePng(floats);
        act.Should().Throw<ArgumentException>().WithMessage("*uint8*Float32*[3, 4, 4]*");

        using var flat = Tensor.Zeros([4, 4], DType.UInt8);
        act = () => ImageCodec.EncodeJpeg(flat);
        act.Should().Throw<ArgumentException>().WithMessage("*3-D*[4, 4]*");

        using var hwc = Tensor.Zeros([8, 8, 3], DType.UInt8);
        act = () => ImageCodec.EncodePng(hwc);
        act.Should().Throw<ArgumentException>().WithMessage("*1, 2, 3 or 4 channels*[8, 8, 3]*");

        using var twoChannels = Tensor.Zeros([2, 4, 4], DType.UInt8);
        act = () => ImageCodec.EncodeJpeg(twoChannels);
        act.Should().Throw<ArgumentException>().WithMessage("*1 or 3 channels*[2, 4, 4]*");
        ImageCodec.EncodePng(twoChannels).Should().NotBeEmpty();

        using var empty = Tensor.Zeros([3, 0, 4], DType.UInt8);
        act = () => ImageCodec.EncodePng(empty);
        act.Should().Throw<ArgumentException>().WithMessage("*[3, 0, 4]*");

        using var ok = Tensor.Zeros([3, 4, 4], DType.UInt8);
        act = () => ImageCodec.EncodeJpeg(ok, quality: 0);
        act.Should().Throw<ArgumentOutOfRangeException>();
        act = () => ImageCodec.EncodePng(ok, compressionLevel: 10);
        act.Should().Throw<ArgumentOutOfRangeException>();
    }

    [Fact]
    public void Decode_rejects_an_unknown_mode()
    {
        var act = () => ImageCodec.Decode([0xFF, 0xD8, 0xFF], (ImageReadMode)7);
        act.Should().Throw<ArgumentOutOfRangeException>();
    }
}
