using MaskRcnn.Net.Imaging;
using SkiaSharp;

namespace MaskRcnn.Net.SkiaSharp;

/// <summary>
/// Decodes encoded images (JPEG, PNG, WebP, GIF, BMP, …: whatever Skia's codecs read) to <see cref="RgbImage"/> with
/// SkiaSharp, a maintained decoder for files from untrusted sources. The first frame of an animation is taken; EXIF
/// orientation and colour profiles are not applied (as torchvision's decoders do not); alpha is dropped from the
/// unpremultiplied colour.
/// </summary>
public static class SkiaImageDecoder
{
    /// <summary>The default <c>maxPixels</c>: 2^28 (268,435,456) pixels, e.g. 16384 × 16384.</summary>
    public const long DefaultMaxPixels = 1L << 28;

    /// <summary>Decodes an image file.</summary>
    /// <param name="path">The file.</param>
    /// <param name="maxPixels">The largest image accepted (width × height), checked on the header before pixel memory is allocated.</param>
    /// <exception cref="InvalidDataException">The file is empty, not an image Skia reads, truncated, corrupt, or larger
    /// than <paramref name="maxPixels"/>; the message names the path.</exception>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    public static RgbImage Decode(string path, long maxPixels = DefaultMaxPixels)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var stream = File.OpenRead(path);
        return Decode(stream, path, maxPixels);
    }

    /// <summary>Decodes encoded image bytes.</summary>
    /// <param name="bytes">The encoded image.</param>
    /// <param name="maxPixels">The largest image accepted (width × height).</param>
    /// <exception cref="InvalidDataException">The bytes are empty, not an image, truncated, corrupt, or too large.</exception>
    public static RgbImage Decode(byte[] bytes, long maxPixels = DefaultMaxPixels)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        using var stream = new MemoryStream(bytes, writable: false);
        return Decode(stream, "<bytes>", maxPixels);
    }

    /// <summary>Decodes an encoded image read from a stream (to its end; not disposed).</summary>
    /// <param name="stream">The stream.</param>
    /// <param name="maxPixels">The largest image accepted (width × height).</param>
    /// <exception cref="InvalidDataException">The data is empty, not an image, truncated, corrupt, or too large.</exception>
    public static RgbImage Decode(Stream stream, long maxPixels = DefaultMaxPixels)
    {
        ArgumentNullException.ThrowIfNull(stream);
        return Decode(stream, "<stream>", maxPixels);
    }

    private static RgbImage Decode(Stream stream, string origin, long maxPixels)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxPixels, 1);
        if (!stream.CanSeek)
        {
            // Skia's codecs may rewind; read the whole stream first.
            var copy = new MemoryStream();
            stream.CopyTo(copy);
            copy.Position = 0;
            stream = copy;
        }

        if (stream.Length - stream.Position <= 0)
        {
            throw new InvalidDataException($"{origin}: the data is empty (0 bytes)");
        }

        using var codec = SKCodec.Create(stream, out var created)
            ?? throw new InvalidDataException($"{origin}: not an image Skia can decode ({created})");
        var (width, height) = (codec.Info.Width, codec.Info.Height);
        if (width < 1 || height < 1 || (long)width * height > maxPixels)
        {
            throw new InvalidDataException($"{origin}: a {width}x{height} image is outside 1 to {maxPixels} pixels");
        }

        var info = new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        var rgba = new byte[info.BytesSize64];
        var result = codec.GetPixels(info, rgba);
        if (result != SKCodecResult.Success)
        {
            var what = result == SKCodecResult.IncompleteInput ? "truncated" : "corrupt";
            throw new InvalidDataException($"{origin}: the {codec.EncodedFormat} data is {what} ({result})");
        }

        return RgbImage.FromPixels(rgba, width, height, PixelFormat.Rgba32, info.RowBytes);
    }
}
