using MaskRcnn.Net.Tests;
using MaskRcnn.Net.Imaging;
using SkiaSharp;

namespace MaskRcnn.Net.SkiaSharp.Tests;

/// <summary>Decoding with Skia: lossless round trips for truth, a typed exception naming the source for bad data.</summary>
public class SkiaImageDecoderTests
{
    private static byte[] Png(RgbImage image)
    {
        using var bitmap = image.ToSKBitmap();
        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }

    [Fact]
    public void A_png_of_an_mri_slice_decodes_to_the_pixels_it_was_made_from()
    {
        // The slice (JPEG) decoded by Skia, re-encoded losslessly: bytes, stream and file all decode to the same pixels.
        var slice = SkiaImageDecoder.Decode(RepoPaths.MriImage(0));
        slice.Pixels.Distinct().Count().Should().BeGreaterThan(20, "a real image, not a flat one");
        using (var bitmap = SKBitmap.Decode(RepoPaths.MriImage(0)))
        {
            (bitmap.Width, bitmap.Height).Should().Be((slice.Width, slice.Height));
        }

        var png = Png(slice);
        SkiaImageDecoder.Decode(png).Pixels.Should().Equal(slice.Pixels);
        using (var stream = new MemoryStream(png))
        {
            SkiaImageDecoder.Decode(stream).Pixels.Should().Equal(slice.Pixels);
        }

        var path = Path.Combine(Path.GetTempPath(), $"mrcnn-skia-{Guid.NewGuid():N}.png");
        try
        {
            File.WriteAllBytes(path, png);
            SkiaImageDecoder.Decode(path).Pixels.Should().Equal(slice.Pixels);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void A_grey_png_decodes_to_equal_channels()
    {
        byte[] grey = [0, 17, 128, 255, 3, 99];
        using var bitmap = new SKBitmap(new SKImageInfo(3, 2, SKColorType.Gray8, SKAlphaType.Opaque));
        grey.CopyTo(bitmap.GetPixelSpan());
        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        SkiaImageDecoder.Decode(data.ToArray()).Pixels.Should().Equal(grey.SelectMany(g => new[] { g, g, g }));
    }

    [Fact]
    public void Corrupt_truncated_empty_and_oversized_data_throw_InvalidDataException_naming_the_source()
    {
        var png = Png(new RgbImage(64, 48, Enumerable.Range(0, 3 * 64 * 48).Select(i => (byte)(i * 7)).ToArray()));
        FluentActions.Invoking(() => SkiaImageDecoder.Decode(Array.Empty<byte>())).Should().Throw<InvalidDataException>().WithMessage("<bytes>: *empty*");
        FluentActions.Invoking(() => SkiaImageDecoder.Decode("not an image at all"u8.ToArray())).Should().Throw<InvalidDataException>().WithMessage("<bytes>: not an image*");
        FluentActions.Invoking(() => SkiaImageDecoder.Decode(png[..(png.Length / 2)])).Should().Throw<InvalidDataException>().WithMessage("<bytes>: *truncated*");
        FluentActions.Invoking(() => SkiaImageDecoder.Decode(png, maxPixels: 64 * 48 - 1)).Should().Throw<InvalidDataException>().WithMessage("*64x48*");
        SkiaImageDecoder.Decode(png, maxPixels: 64 * 48).Width.Should().Be(64);

        var path = Path.Combine(Path.GetTempPath(), $"mrcnn-skia-{Guid.NewGuid():N}.png");
        try
        {
            var corrupt = (byte[])png.Clone();
            corrupt.AsSpan(8).Fill(0x5A); // a PNG signature followed by garbage
            File.WriteAllBytes(path, corrupt);
            FluentActions.Invoking(() => SkiaImageDecoder.Decode(path)).Should().Throw<InvalidDataException>().WithMessage($"{path}: *");
        }
        finally
        {
            File.Delete(path);
        }

        using var nonSeekable = new NonSeekableStream(png[..(png.Length / 2)]);
        FluentActions.Invoking(() => SkiaImageDecoder.Decode(nonSeekable)).Should().Throw<InvalidDataException>().WithMessage("<stream>: *");
    }

    [Fact]
    public void A_non_seekable_stream_is_read_to_its_end()
    {
        var image = new RgbImage(5, 4, Enumerable.Range(0, 60).Select(i => (byte)(i * 4)).ToArray());
        using var stream = new NonSeekableStream(Png(image));
        SkiaImageDecoder.Decode(stream).Pixels.Should().Equal(image.Pixels);
    }

    private sealed class NonSeekableStream(byte[] bytes) : MemoryStream(bytes)
    {
        public override bool CanSeek => false;

        public override long Position { get => base.Position; set => throw new NotSupportedException(); }

        public override long Seek(long offset, SeekOrigin loc) => throw new NotSupportedException();
    }
}
