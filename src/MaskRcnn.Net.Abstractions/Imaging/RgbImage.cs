namespace MaskRcnn.Net.Imaging;

/// <summary>
/// An 8-bit RGB image as one plain array: row-major, 3 bytes (red, green, blue) per pixel, no row padding — pixel
/// (y, x) starts at <c>3 * (y * Width + x)</c>. The common currency between decoders, the model and the drawing code,
/// with no native code behind it.
/// </summary>
public sealed class RgbImage
{
    /// <summary>Wraps <paramref name="pixels"/> (not copied: the image owns the array from now on).</summary>
    /// <exception cref="ArgumentException">A side is not positive, or the array's length is not 3 × width × height.</exception>
    public RgbImage(int width, int height, byte[] pixels)
    {
        ArgumentNullException.ThrowIfNull(pixels);
        CheckSize(width, height);
        if (pixels.LongLength != 3L * width * height)
        {
            throw new ArgumentException($"an RGB image of {width}x{height} pixels needs {3L * width * height} bytes, got {pixels.LongLength}", nameof(pixels));
        }

        (Width, Height, Pixels) = (width, height, pixels);
    }

    /// <summary>Width in pixels.</summary>
    public int Width { get; }

    /// <summary>Height in pixels.</summary>
    public int Height { get; }

    /// <summary>The pixels, row-major RGB (3 × Width × Height bytes).</summary>
    public byte[] Pixels { get; }

    /// <summary>A new image of one colour.</summary>
    public static RgbImage Filled(int width, int height, byte red, byte green, byte blue)
    {
        CheckSize(width, height);
        var px = new byte[3L * width * height];
        for (var i = 0; i < px.Length; i += 3)
        {
            (px[i], px[i + 1], px[i + 2]) = (red, green, blue);
        }

        return new RgbImage(width, height, px);
    }

    /// <summary>
    /// Copies a raw pixel buffer (as an app holds it: a camera frame, a locked bitmap, an ImageSharp or SkiaSharp
    /// pixel span) into a new RGB image.
    /// </summary>
    /// <param name="pixels">The buffer: <paramref name="height"/> rows of <paramref name="stride"/> bytes (the last row
    /// may stop after its pixels).</param>
    /// <param name="width">Width in pixels.</param>
    /// <param name="height">Height in pixels.</param>
    /// <param name="format">Pixel layout; alpha is ignored, grey is copied to all channels.</param>
    /// <param name="stride">Bytes from one row to the next; 0 for tightly packed rows (width × bytes per pixel).</param>
    /// <exception cref="ArgumentException">A side is not positive, the stride is shorter than a row, or the buffer is
    /// shorter than the image (the message gives the sizes).</exception>
    public static RgbImage FromPixels(ReadOnlySpan<byte> pixels, int width, int height, PixelFormat format, int stride = 0)
    {
        CheckSize(width, height);
        var bpp = format.BytesPerPixel();
        var row = (long)width * bpp;
        if (stride == 0)
        {
            stride = (int)Math.Min(int.MaxValue, row);
        }

        if (stride < row)
        {
            throw new ArgumentException($"a stride of {stride} bytes is shorter than one row of {width} {format} pixels ({row} bytes)", nameof(stride));
        }

        var needed = (long)stride * (height - 1) + row;
        if (pixels.Length < needed)
        {
            throw new ArgumentException(
                $"a {width}x{height} {format} image with a stride of {stride} bytes needs {needed} bytes, the buffer holds {pixels.Length}", nameof(pixels));
        }

        var dst = new byte[3L * width * height];
        for (var y = 0; y < height; y++)
        {
            var src = pixels.Slice(y * stride, (int)row);
            var d = dst.AsSpan(3 * y * width, 3 * width);
            switch (format)
            {
                case PixelFormat.Rgb24:
                    src.CopyTo(d);
                    break;
                case PixelFormat.Bgr24:
                    for (var x = 0; x < width; x++)
                    {
                        (d[3 * x], d[3 * x + 1], d[3 * x + 2]) = (src[3 * x + 2], src[3 * x + 1], src[3 * x]);
                    }

                    break;
                case PixelFormat.Rgba32:
                    for (var x = 0; x < width; x++)
                    {
                        (d[3 * x], d[3 * x + 1], d[3 * x + 2]) = (src[4 * x], src[4 * x + 1], src[4 * x + 2]);
                    }

                    break;
                case PixelFormat.Bgra32:
                    for (var x = 0; x < width; x++)
                    {
                        (d[3 * x], d[3 * x + 1], d[3 * x + 2]) = (src[4 * x + 2], src[4 * x + 1], src[4 * x]);
                    }

                    break;
                default: // Gray8
                    for (var x = 0; x < width; x++)
                    {
                        d[3 * x] = d[3 * x + 1] = d[3 * x + 2] = src[x];
                    }

                    break;
            }
        }

        return new RgbImage(width, height, dst);
    }

    /// <summary>A deep copy.</summary>
    public RgbImage Clone() => new(Width, Height, (byte[])Pixels.Clone());

    private static void CheckSize(int width, int height)
    {
        if (width < 1 || height < 1)
        {
            throw new ArgumentException($"an image needs at least one pixel per side, got {width}x{height} (width x height)", width < 1 ? nameof(width) : nameof(height));
        }

        if (3L * width * height > Array.MaxLength)
        {
            throw new ArgumentException($"an RGB image of {width}x{height} pixels is more than one array holds", nameof(width));
        }
    }
}
