using System.Buffers.Binary;
using MaskRcnn.Net.Core.Imaging;

namespace MaskRcnn.Net.Core.Tests.Imaging;

/// <summary>Broken, truncated, hostile and random inputs must give an <see cref="ImageDecodeException"/>, never a crash.</summary>
public class ImageHostileInputTests
{
    private static byte[] MriJpeg => File.ReadAllBytes(ImagingTestData.MriJpegs[0]);

    private static byte[] SmallPng()
    {
        var data = new byte[3 * 20 * 30];
        new Random(5).NextBytes(data);
        using var image = Tensor.FromBytes(data, DType.UInt8, [3, 20, 30]);
        return ImageCodec.EncodePng(image);
    }

    private static ImageDecodeException DecodeFails(byte[] bytes, string what)
    {
        var act = () => { using var t = ImageCodec.Decode(bytes); };
        return act.Should().Throw<ImageDecodeException>(what).Which;
    }

    [Fact]
    public void Zero_byte_file_names_the_path()
    {
        var file = Path.Combine(Path.GetTempPath(), $"mr_empty_{Guid.NewGuid():N}.jpg");
        File.WriteAllBytes(file, []);
        try
        {
            var act = () => ImageCodec.Decode(file);
            var e = act.Should().Throw<ImageDecodeException>().Which;
            e.Failure.Should().Be(ImageDecodeFailure.Empty);
            e.Origin.Should().Be(file);
            e.Message.Should().Contain(file);
            var probe = () => ImageCodec.ReadInfo(file);
            probe.Should().Throw<ImageDecodeException>().Which.Failure.Should().Be(ImageDecodeFailure.Empty);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public void Stream_and_bytes_origins_are_named()
    {
        var e = DecodeFails([], "empty bytes");
        e.Message.Should().Contain("<bytes>");
        var act = () => ImageCodec.Decode(new MemoryStream([1, 2, 3, 4]));
        act.Should().Throw<ImageDecodeException>().Which.Message.Should().Contain("<stream>").And.Contain("0x01020304");
    }

    [Fact]
    public void Truncated_jpeg_fails_at_every_cut()
    {
        var jpeg = MriJpeg;
        foreach (var cut in new[] { 3, 4, 10, 50, 200, jpeg.Length / 2, jpeg.Length - 100, jpeg.Length - 2, jpeg.Length - 1 })
        {
            var e = DecodeFails(jpeg[..cut], $"JPEG cut at {cut} of {jpeg.Length}");
            e.Failure.Should().BeOneOf([ImageDecodeFailure.Truncated, ImageDecodeFailure.Corrupt], $"cut at {cut}");
        }

        DecodeFails(jpeg[..(jpeg.Length / 2)], "half").Failure.Should().Be(ImageDecodeFailure.Truncated);
        DecodeFails(jpeg[..(jpeg.Length / 2)], "half").Message.Should().Contain("Premature end of JPEG file");
    }

    [Fact]
    public void Truncated_png_fails_at_every_cut()
    {
        var png = SmallPng();
        // The last 12 bytes are the IEND chunk, which is not needed once every pixel is in.
        foreach (var cut in new[] { 8, 9, 16, 30, 33, 40, png.Length / 2, png.Length - 30, png.Length - 13 })
        {
            var e = DecodeFails(png[..cut], $"PNG cut at {cut} of {png.Length}");
            e.Failure.Should().Be(ImageDecodeFailure.Truncated, $"cut at {cut}");
        }
    }

    [Fact]
    public void Random_garbage_is_rejected()
    {
        var rng = new Random(42);
        for (var i = 0; i < 20; i++)
        {
            var junk = new byte[rng.Next(1, 4000)];
            rng.NextBytes(junk);
            junk[0] = 0x00; // never accidentally a JPEG/PNG signature
            DecodeFails(junk, "garbage").Failure.Should().Be(ImageDecodeFailure.UnsupportedFormat);

            // Garbage behind a valid signature reaches the real decoders.
            DecodeFails([0xFF, 0xD8, 0xFF, .. junk], "garbage after JPEG magic");
            DecodeFails([0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A, .. junk], "garbage after PNG magic");
        }
    }

    [Fact]
    public void Other_formats_are_named()
    {
        var gif = "GIF89a\u0001\0\u0001\0\0\0\0;"u8.ToArray();
        ImageCodec.DetectFormat(gif).Should().Be(ImageFormat.Gif);
        DecodeFails(gif, "gif").Message.Should().Contain("Gif");
        ImageCodec.DetectFormat("RIFF\0\0\0\0WEBPVP8 "u8).Should().Be(ImageFormat.WebP);
        ImageCodec.DetectFormat("II*\0\u0008\0\0\0"u8).Should().Be(ImageFormat.Tiff);
        ImageCodec.DetectFormat("BM\u0036\0\0\0\0\0\0\0\u0036\0\0\0\u0028"u8).Should().Be(ImageFormat.Bmp);
        ImageCodec.DetectFormat([0xFF, 0xD8]).Should().Be(ImageFormat.Unknown);
    }

    [Fact]
    public void Png_header_claiming_100000_by_100000_is_too_large()
    {
        var png = TestImages.PngWithHeader(100_000, 100_000, bitDepth: 8, colorType: 2, idat: TestImages.Zlib(new byte[64]));
        var e = DecodeFails(png, "huge PNG");
        e.Failure.Should().Be(ImageDecodeFailure.TooLarge);
        e.Message.Should().Contain("100000x100000");
        var probe = () => ImageCodec.ReadInfo(png);
        probe.Should().Throw<ImageDecodeException>().Which.Failure.Should().Be(ImageDecodeFailure.TooLarge);
    }

    [Fact]
    public void Png_with_bad_crc_or_header_is_corrupt()
    {
        var png = SmallPng();
        var badCrc = png.ToArray();
        badCrc[29] ^= 0xFF; // last byte of the IHDR CRC
        DecodeFails(badCrc, "IHDR CRC").Failure.Should().Be(ImageDecodeFailure.Corrupt);

        var badDepth = TestImages.PngWithHeader(4, 4, bitDepth: 7, colorType: 2, idat: TestImages.Zlib(new byte[64]));
        DecodeFails(badDepth, "bit depth 7").Failure.Should().Be(ImageDecodeFailure.Corrupt);

        var zeroWidth = TestImages.PngWithHeader(0, 4, bitDepth: 8, colorType: 0, idat: TestImages.Zlib(new byte[8]));
        DecodeFails(zeroWidth, "zero width");

        var shortData = TestImages.PngWithHeader(16, 16, bitDepth: 8, colorType: 0, idat: TestImages.Zlib(new byte[17 * 3]));
        DecodeFails(shortData, "too little image data").Failure.Should().Be(ImageDecodeFailure.Corrupt);
    }

    [Fact]
    public void Jpeg_header_claiming_65500_by_65500_is_too_large()
    {
        var jpeg = MriJpeg;
        var sof = TestImages.FindMarker(jpeg, 0xC0);
        sof.Should().BePositive("the MRI JPEGs are baseline");
        BinaryPrimitives.WriteUInt16BigEndian(jpeg.AsSpan(sof + 5), 65500); // height
        BinaryPrimitives.WriteUInt16BigEndian(jpeg.AsSpan(sof + 7), 65500); // width
        var e = DecodeFails(jpeg, "huge JPEG");
        e.Failure.Should().Be(ImageDecodeFailure.TooLarge);
        e.Message.Should().Contain("65500x65500");
    }

    [Fact]
    public void Bit_flipped_images_never_crash()
    {
        var rng = new Random(1234);
        foreach (var original in new[] { MriJpeg, SmallPng() })
        {
            for (var i = 0; i < 150; i++)
            {
                var mutated = original.ToArray();
                var flips = rng.Next(1, 6);
                for (var f = 0; f < flips; f++)
                {
                    // Keep the signature so that the real decoder runs.
                    mutated[rng.Next(8, mutated.Length)] = (byte)rng.Next(256);
                }

                foreach (var mode in Enum.GetValues<ImageReadMode>())
                {
                    try
                    {
                        using var t = ImageCodec.Decode(mutated, mode);
                        t.Dim.Should().Be(3);
                    }
                    catch (ImageDecodeException)
                    {
                    }
                }
            }
        }
    }
}
