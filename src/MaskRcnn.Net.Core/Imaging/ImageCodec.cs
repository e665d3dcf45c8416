using System.Runtime.InteropServices;

namespace MaskRcnn.Net.Core.Imaging;

/// <summary>
/// Decodes JPEG and PNG images into uint8 CHW tensors and encodes such tensors as PNG or JPEG, through the system
/// libjpeg-turbo and libpng (the same libraries torchvision uses, so decoded pixels match
/// <c>torchvision.io.read_image</c>).
/// </summary>
/// <remarks>
/// Differences from torchvision 0.14, which rejects these inputs: 16-bit PNGs decode to their high bytes; CMYK
/// JPEGs convert to RGB or gray the way Pillow does (in <see cref="ImageReadMode.Unchanged"/> they keep their 4
/// stored channels, as in torchvision); alpha modes on JPEGs add an opaque channel; palette PNGs in
/// <see cref="ImageReadMode.Unchanged"/> expand to RGB/RGBA instead of returning palette indices; a gray or RGB
/// PNG's tRNS colour key becomes transparency in the alpha modes. Exif orientation is not applied.
/// </remarks>
public static class ImageCodec
{
    private const string StreamOrigin = "<stream>";
    private const string BytesOrigin = "<bytes>";
    private const int ProbePrefixBytes = 1 << 18;
    private const long JpegMaxSide = 65500;
    private const long PngMaxSide = 1_000_000;

    /// <summary>The default of <see cref="MaxPixels"/>: 2^28 (268,435,456) pixels, e.g. 16384 × 16384.</summary>
    public const long DefaultMaxPixels = 1L << 28;

    /// <summary>The largest value <see cref="MaxPixels"/> accepts: 2^31 pixels, the native decoder's own limit.</summary>
    public const long MaxPixelsLimit = 1L << 31;

    private static long maxPixels = DefaultMaxPixels;

    /// <summary>
    /// The largest image, in pixels (height × width), that <see cref="Decode(string, ImageReadMode)"/> and
    /// <see cref="ReadInfo(string, ImageReadMode)"/> accept (default <see cref="DefaultMaxPixels"/>). A header
    /// announcing more fails with <see cref="ImageDecodeFailure.TooLarge"/> before any pixel memory is allocated, so a
    /// small hostile file (a "decompression bomb") cannot make the decoder allocate gigabytes. Process-wide; raise it
    /// for genuinely huge images (up to <see cref="MaxPixelsLimit"/>).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The value is below 1 or above <see cref="MaxPixelsLimit"/>.</exception>
    public static long MaxPixels
    {
        get => Volatile.Read(ref maxPixels);
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 1);
            ArgumentOutOfRangeException.ThrowIfGreaterThan(value, MaxPixelsLimit);
            Volatile.Write(ref maxPixels, value);
        }
    }

    // ---- decoding ----------------------------------------------------------------------------------------------

    /// <summary>Decodes a JPEG or PNG file into a uint8 tensor of shape [channels, height, width].</summary>
    /// <param name="path">The image file.</param>
    /// <param name="mode">The channel layout to convert to.</param>
    /// <returns>A new contiguous CPU tensor owned by the caller.</returns>
    /// <exception cref="ImageDecodeException">The file is not a decodable JPEG/PNG, or it has more than
    /// <see cref="MaxPixels"/> pixels; the message names the path.</exception>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    public static Tensor Decode(string path, ImageReadMode mode = ImageReadMode.Unchanged)
    {
        ArgumentNullException.ThrowIfNull(path);
        CheckMode(mode);
        return DecodeCore(File.ReadAllBytes(path), mode, path);
    }

    /// <summary>Decodes a JPEG or PNG image read from the current position to the end of a stream.</summary>
    /// <param name="stream">The stream holding the encoded image.</param>
    /// <param name="mode">The channel layout to convert to.</param>
    /// <returns>A new uint8 tensor [channels, height, width] owned by the caller.</returns>
    /// <exception cref="ImageDecodeException">The data is not a decodable JPEG/PNG, or it has more than <see cref="MaxPixels"/> pixels.</exception>
    public static Tensor Decode(Stream stream, ImageReadMode mode = ImageReadMode.Unchanged)
    {
        ArgumentNullException.ThrowIfNull(stream);
        CheckMode(mode);
        return DecodeCore(ReadToEnd(stream), mode, StreamOrigin);
    }

    /// <summary>Decodes an in-memory JPEG or PNG image.</summary>
    /// <param name="bytes">The encoded image.</param>
    /// <param name="mode">The channel layout to convert to.</param>
    /// <returns>A new uint8 tensor [channels, height, width] owned by the caller.</returns>
    /// <exception cref="ImageDecodeException">The data is not a decodable JPEG/PNG, or it has more than <see cref="MaxPixels"/> pixels.</exception>
    public static Tensor Decode(ReadOnlySpan<byte> bytes, ImageReadMode mode = ImageReadMode.Unchanged)
    {
        CheckMode(mode);
        return DecodeCore(bytes, mode, BytesOrigin);
    }

    /// <summary>Reads only the header of an image file: format and the shape a decode in <paramref name="mode"/> gives.</summary>
    /// <param name="path">The image file.</param>
    /// <param name="mode">The channel layout whose channel count to report.</param>
    /// <returns>The format, height, width and channel count.</returns>
    /// <exception cref="ImageDecodeException">The header is not a decodable JPEG/PNG header, or it announces more than <see cref="MaxPixels"/> pixels.</exception>
    public static ImageInfo ReadInfo(string path, ImageReadMode mode = ImageReadMode.Unchanged)
    {
        ArgumentNullException.ThrowIfNull(path);
        CheckMode(mode);
        byte[] prefix;
        long length;
        using (var file = File.OpenRead(path))
        {
            length = file.Length;
            prefix = new byte[(int)Math.Min(length, ProbePrefixBytes)];
            file.ReadExactly(prefix);
        }

        try
        {
            return Probe(prefix, mode, path);
        }
        catch (ImageDecodeException e) when (e.Failure == ImageDecodeFailure.Truncated && length > prefix.Length)
        {
            // The header reaches beyond the prefix (large Exif/ICC blocks): look at the whole file.
            return Probe(File.ReadAllBytes(path), mode, path);
        }
    }

    /// <summary>Reads only the header of an in-memory image: format and the shape a decode in <paramref name="mode"/> gives.</summary>
    /// <param name="bytes">The encoded image (its beginning is enough).</param>
    /// <param name="mode">The channel layout whose channel count to report.</param>
    /// <returns>The format, height, width and channel count.</returns>
    /// <exception cref="ImageDecodeException">The header is not a decodable JPEG/PNG header, or it announces more than <see cref="MaxPixels"/> pixels.</exception>
    public static ImageInfo ReadInfo(ReadOnlySpan<byte> bytes, ImageReadMode mode = ImageReadMode.Unchanged)
    {
        CheckMode(mode);
        return Probe(bytes, mode, BytesOrigin);
    }

    /// <summary>Recognises an image format by its leading bytes (magic number); never throws.</summary>
    /// <param name="bytes">The beginning of the encoded image (12 bytes suffice).</param>
    /// <returns>The format, or <see cref="ImageFormat.Unknown"/>.</returns>
    public static ImageFormat DetectFormat(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF)
        {
            return ImageFormat.Jpeg;
        }

        if (bytes.StartsWith((ReadOnlySpan<byte>)[0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A]))
        {
            return ImageFormat.Png;
        }

        if (bytes.StartsWith("GIF87a"u8) || bytes.StartsWith("GIF89a"u8))
        {
            return ImageFormat.Gif;
        }

        if (bytes.Length >= 12 && bytes.StartsWith("RIFF"u8) && bytes[8..12].SequenceEqual("WEBP"u8))
        {
            return ImageFormat.WebP;
        }

        if (bytes.StartsWith("II*\0"u8) || bytes.StartsWith("MM\0*"u8))
        {
            return ImageFormat.Tiff;
        }

        return bytes.Length >= 14 && bytes.StartsWith("BM"u8) ? ImageFormat.Bmp : ImageFormat.Unknown;
    }

    // ---- encoding ----------------------------------------------------------------------------------------------

    /// <summary>Encodes a uint8 [channels, height, width] tensor (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA) as PNG.</summary>
    /// <param name="image">The image, on any device, contiguous or not.</param>
    /// <param name="compressionLevel">zlib level, 0 (none) to 9 (smallest); 6 like torchvision.</param>
    /// <returns>The PNG file bytes.</returns>
    /// <exception cref="ArgumentException">The tensor is not a uint8 CHW image with 1–4 channels.</exception>
    public static byte[] EncodePng(Tensor image, int compressionLevel = 6)
    {
        var (c, h, w) = CheckImage(image, "PNG", [1, 2, 3, 4], PngMaxSide);
        ArgumentOutOfRangeException.ThrowIfLessThan(compressionLevel, 0);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(compressionLevel, 9);
        return Encode(image, c, h, w, png: true, compressionLevel);
    }

    /// <summary>Encodes a uint8 [channels, height, width] tensor (1 gray or 3 RGB) as baseline JPEG (4:2:0 chroma).</summary>
    /// <param name="image">The image, on any device, contiguous or not.</param>
    /// <param name="quality">JPEG quality, 1 to 100.</param>
    /// <returns>The JPEG file bytes.</returns>
    /// <exception cref="ArgumentException">The tensor is not a uint8 CHW image with 1 or 3 channels.</exception>
    public static byte[] EncodeJpeg(Tensor image, int quality = 90)
    {
        var (c, h, w) = CheckImage(image, "JPEG", [1, 3], JpegMaxSide);
        ArgumentOutOfRangeException.ThrowIfLessThan(quality, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(quality, 100);
        return Encode(image, c, h, w, png: false, quality);
    }

    /// <summary>Writes a uint8 CHW tensor to a PNG file (see <see cref="EncodePng"/>).</summary>
    /// <param name="image">The image.</param>
    /// <param name="path">The file to create or overwrite.</param>
    /// <param name="compressionLevel">zlib level, 0 to 9.</param>
    public static void SavePng(Tensor image, string path, int compressionLevel = 6)
    {
        ArgumentNullException.ThrowIfNull(path);
        File.WriteAllBytes(path, EncodePng(image, compressionLevel));
    }

    /// <summary>Writes a uint8 CHW tensor to a JPEG file (see <see cref="EncodeJpeg"/>).</summary>
    /// <param name="image">The image.</param>
    /// <param name="path">The file to create or overwrite.</param>
    /// <param name="quality">JPEG quality, 1 to 100.</param>
    public static void SaveJpeg(Tensor image, string path, int quality = 90)
    {
        ArgumentNullException.ThrowIfNull(path);
        File.WriteAllBytes(path, EncodeJpeg(image, quality));
    }

    // ---- internals ---------------------------------------------------------------------------------------------

    private static void CheckMode(ImageReadMode mode)
    {
        if (!Enum.IsDefined(mode))
        {
            throw new ArgumentOutOfRangeException(nameof(mode), mode, "unknown image read mode");
        }
    }

    private static unsafe Tensor DecodeCore(ReadOnlySpan<byte> bytes, ImageReadMode mode, string origin)
    {
        var info = Probe(bytes, mode, origin);
        var size = info.Channels * info.Height * info.Width;
        Tensor image;
        try
        {
            image = Tensor.Empty([info.Channels, info.Height, info.Width], DType.UInt8);
        }
        catch (TorchException e)
        {
            throw new ImageDecodeException(origin, ImageDecodeFailure.OutOfMemory,
                $"cannot allocate {size} bytes for a {info.Width}x{info.Height} image: {e.Message}");
        }

        try
        {
            var destination = (byte*)Native.Check(NativeMethods.mr_data_ptr(image.Handle));
            fixed (byte* p = bytes)
            {
                ThrowIfFailed(NativeMethods.mr_image_decode_into(p, bytes.Length, (int)mode, destination, size, planar: 1), origin);
            }

            return image;
        }
        catch
        {
            image.Dispose();
            throw;
        }
    }

    private static unsafe ImageInfo Probe(ReadOnlySpan<byte> bytes, ImageReadMode mode, string origin)
    {
        if (bytes.IsEmpty)
        {
            throw new ImageDecodeException(origin, ImageDecodeFailure.Empty, "the data is empty (0 bytes)");
        }

        var format = DetectFormat(bytes);
        if (format == ImageFormat.Unknown)
        {
            var head = Convert.ToHexString(bytes[..Math.Min(8, bytes.Length)]);
            throw new ImageDecodeException(origin, ImageDecodeFailure.UnsupportedFormat,
                $"not a JPEG or PNG image (starts with 0x{head}, {bytes.Length} bytes)");
        }

        if (format is not (ImageFormat.Jpeg or ImageFormat.Png))
        {
            throw new ImageDecodeException(origin, ImageDecodeFailure.UnsupportedFormat,
                $"{format} images cannot be decoded (only JPEG and PNG)");
        }

        fixed (byte* p = bytes)
        {
            var status = NativeMethods.mr_image_probe(p, bytes.Length, (int)mode, out var height, out var width, out var channels, out _);
            ThrowIfFailed(status, origin);
            var limit = MaxPixels;
            if (height * width > limit)
            {
                throw new ImageDecodeException(origin, ImageDecodeFailure.TooLarge,
                    $"the image is {width}x{height} pixels ({height * width}), more than {nameof(ImageCodec)}.{nameof(MaxPixels)} ({limit})");
            }

            return new ImageInfo(format, height, width, channels);
        }
    }

    private static void ThrowIfFailed(int status, string origin)
    {
        if (status >= 0)
        {
            return;
        }

        var reason = TakeNativeError();
        throw (NativeMethods.ImageStatus)status switch
        {
            NativeMethods.ImageStatus.Truncated => new ImageDecodeException(origin, ImageDecodeFailure.Truncated, reason),
            NativeMethods.ImageStatus.Unsupported => new ImageDecodeException(origin, ImageDecodeFailure.UnsupportedFormat, reason),
            NativeMethods.ImageStatus.TooLarge => new ImageDecodeException(origin, ImageDecodeFailure.TooLarge, reason),
            NativeMethods.ImageStatus.NoMemory => new ImageDecodeException(origin, ImageDecodeFailure.OutOfMemory, reason),
            NativeMethods.ImageStatus.BadArgument => new InvalidOperationException($"image decoder rejected its arguments: {reason}"),
            _ => new ImageDecodeException(origin, ImageDecodeFailure.Corrupt, reason),
        };
    }

    private static string TakeNativeError()
    {
        var p = NativeMethods.mr_last_error();
        var message = p == 0 ? "the native image codec failed without a message" : Marshal.PtrToStringUTF8(p) ?? "";
        NativeMethods.mr_clear_error();
        return message;
    }

    private static ArraySegment<byte> ReadToEnd(Stream stream)
    {
        if (stream is MemoryStream memory && memory.TryGetBuffer(out var buffer))
        {
            var start = (int)Math.Min(memory.Position, memory.Length);
            memory.Position = memory.Length;
            return buffer.Slice(start, (int)memory.Length - start);
        }

        var copy = new MemoryStream();
        stream.CopyTo(copy);
        return new ArraySegment<byte>(copy.GetBuffer(), 0, (int)copy.Length);
    }

    private static (int C, long H, long W) CheckImage(Tensor image, string format, int[] channels, long maxSide)
    {
        ArgumentNullException.ThrowIfNull(image);
        var shape = image.Shape;
        var shown = $"[{string.Join(", ", shape)}]";
        if (image.DType != DType.UInt8)
        {
            throw new ArgumentException($"{format} encoding needs a uint8 image, got {image.DType} with shape {shown}", nameof(image));
        }

        if (shape.Length != 3)
        {
            throw new ArgumentException($"{format} encoding needs a 3-D [channels, height, width] image, got shape {shown}", nameof(image));
        }

        if (!channels.Contains((int)Math.Min(shape[0], int.MaxValue)))
        {
            throw new ArgumentException(
                $"{format} encoding needs {string.Join(", ", channels[..^1])} or {channels[^1]} channels in dimension 0 (CHW), got shape {shown}",
                nameof(image));
        }

        if (shape[1] < 1 || shape[2] < 1 || shape[1] > maxSide || shape[2] > maxSide)
        {
            throw new ArgumentException(
                $"{format} encoding needs height and width between 1 and {maxSide}, got shape {shown}", nameof(image));
        }

        return ((int)shape[0], shape[1], shape[2]);
    }

    private static unsafe byte[] Encode(Tensor image, int c, long h, long w, bool png, int parameter)
    {
        byte[]? copy = null;
        ReadOnlySpan<byte> pixels = image.IsContiguous && image.Device == Device.Cpu
            ? image.AsSpan<byte>()
            : (copy = image.ToBytes());
        nint output;
        long size;
        int status;
        fixed (byte* p = pixels)
        {
            status = png
                ? NativeMethods.mr_image_encode_png(p, h, w, c, 1, parameter, out output, out size)
                : NativeMethods.mr_image_encode_jpeg(p, h, w, c, 1, parameter, out output, out size);
        }

        GC.KeepAlive(image);
        GC.KeepAlive(copy);
        if (status < 0)
        {
            throw new InvalidOperationException($"{(png ? "PNG" : "JPEG")} encoding failed: {TakeNativeError()}");
        }

        try
        {
            var result = new byte[size];
            Marshal.Copy(output, result, 0, result.Length);
            return result;
        }
        finally
        {
            NativeMethods.mr_image_free(output);
        }
    }
}
