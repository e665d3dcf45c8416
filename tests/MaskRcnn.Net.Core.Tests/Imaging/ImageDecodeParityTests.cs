using MaskRcnn.Net.Core.Imaging;

namespace MaskRcnn.Net.Core.Tests.Imaging;

/// <summary>Decoded pixels must equal torchvision.io.read_image (or Pillow where torchvision 0.14 has no answer) exactly.</summary>
public class ImageDecodeParityTests(OracleImageCases oracle) : IClassFixture<OracleImageCases>
{
    [Theory]
    [InlineData("mri_", 9)]
    [InlineData("jpeg_rgb_", 5)]
    [InlineData("jpeg_rgb444_", 1)]
    [InlineData("jpeg_progressive_", 2)]
    [InlineData("jpeg_gray_", 3)]
    [InlineData("jpeg_cmyk_", 4)]
    [InlineData("png_L_", 5)]
    [InlineData("png_LA_", 5)]
    [InlineData("png_RGB_", 5)]
    [InlineData("png_RGBA_", 5)]
    [InlineData("png_palette_", 9)]
    [InlineData("png_gray_trns_", 5)]
    [InlineData("png_rgb_trns_", 3)]
    [InlineData("png_gray16_", 5)]
    [InlineData("png_gray_alpha16_", 5)]
    [InlineData("png_rgb16_", 5)]
    [InlineData("png_rgba16_", 5)]
    [InlineData("png_gray1_", 3)]
    [InlineData("png_gray2_", 3)]
    [InlineData("png_gray4_", 3)]
    [InlineData("png_interlaced_", 11)]
    public void Decode_matches_the_oracle_pixel_for_pixel(string prefix, int expectedCases)
    {
        var cases = oracle.Cases.Where(c => c.Name.StartsWith(prefix, StringComparison.Ordinal)).ToList();
        cases.Should().HaveCount(expectedCases);
        foreach (var c in cases)
        {
            var mode = Enum.Parse<ImageReadMode>(c.Mode);
            using var image = ImageCodec.Decode(c.File, mode);
            ImagingTestData.AssertPixels(image, c.Shape, oracle.Expected(c), $"{c.Name} (vs {c.Source})");

            var info = ImageCodec.ReadInfo(c.File, mode);
            info.Should().Be(new ImageInfo(c.File.EndsWith(".png", StringComparison.Ordinal) ? ImageFormat.Png : ImageFormat.Jpeg,
                c.Shape[1], c.Shape[2], (int)c.Shape[0]), c.Name);
        }
    }

    [Fact]
    public void Stream_and_span_decoding_give_the_same_pixels_as_the_file()
    {
        foreach (var c in oracle.Cases.Where(c => c.Mode == "Unchanged").Take(20))
        {
            var bytes = File.ReadAllBytes(c.File);
            var expected = oracle.Expected(c);
            using (var fromSpan = ImageCodec.Decode(bytes))
            {
                ImagingTestData.AssertPixels(fromSpan, c.Shape, expected, c.Name + " (span)");
            }

            using (var stream = File.OpenRead(c.File))
            using (var fromStream = ImageCodec.Decode(stream))
            {
                ImagingTestData.AssertPixels(fromStream, c.Shape, expected, c.Name + " (stream)");
            }
        }
    }

    [Fact]
    public void Real_mri_jpegs_are_single_channel_256_high()
    {
        ImagingTestData.MriJpegs.Should().HaveCountGreaterOrEqualTo(3);
        foreach (var file in ImagingTestData.MriJpegs)
        {
            using var gray = ImageCodec.Decode(file);
            gray.Shape[0].Should().Be(1);
            gray.Shape[1].Should().Be(256);
            using var rgb = ImageCodec.Decode(file, ImageReadMode.Rgb);
            rgb.Shape.Should().Equal(3, gray.Shape[1], gray.Shape[2]);
        }
    }
}
