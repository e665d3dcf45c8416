using MaskRcnn.Net.Imaging;
using SkiaSharp;

namespace MaskRcnn.Net.SkiaSharp;

/// <summary>
/// SkiaSharp images an app already holds as MaskRcnn.Net input: <c>segmenter.Predict(bitmap.ToImageSource())</c> for an
/// <see cref="SKBitmap"/>, <see cref="SKImage"/> or <see cref="SKPixmap"/>. The pixels are copied (any
/// <see cref="SKPixmap.RowBytes"/>), so the Skia object may be disposed once this returns.
/// </summary>
/// <remarks>
/// <para>Colour types: <see cref="SKColorType.Rgba8888"/>, <see cref="SKColorType.Bgra8888"/>,
/// <see cref="SKColorType.Rgb888x"/> and <see cref="SKColorType.Gray8"/> (grey to all three channels) are read
/// directly; any other colour type (<see cref="SKColorType.Rgb565"/>, <see cref="SKColorType.RgbaF16"/>, …) is first
/// converted by Skia to unpremultiplied <see cref="SKColorType.Rgba8888"/>, without colour-space conversion.</para>
/// <para>Alpha is dropped, as torchvision drops it when it reads an RGBA file as RGB: the model sees each pixel's own
/// (unpremultiplied) colour. Pixels stored with <see cref="SKAlphaType.Premul"/> are therefore unpremultiplied first:
/// each channel becomes <c>round(c × 255 / a)</c> (half rounded up, at most 255), and a fully transparent pixel
/// (<c>a = 0</c>) becomes black, since premultiplication has already lost its colour. Opaque pixels (<c>a = 255</c>)
/// are unchanged. <see cref="SKAlphaType.Opaque"/> and <see cref="SKAlphaType.Unpremul"/> pixels are taken as they are.</para>
/// </remarks>
public static class SkiaImages
{
    /// <summary>Copies the pixmap's pixels into a new <see cref="RgbImage"/>.</summary>
    /// <param name="pixmap">The pixels (not changed).</param>
    /// <exception cref="ArgumentNullException"><paramref name="pixmap"/> is null.</exception>
    /// <exception cref="ArgumentException">The pixmap has no pixels, or its colour type is <see cref="SKColorType.Unknown"/>.</exception>
    public static RgbImage ToRgbImage(this SKPixmap pixmap)
    {
        ArgumentNullException.ThrowIfNull(pixmap);
        var (width, height, rowBytes) = (pixmap.Width, pixmap.Height, pixmap.RowBytes);
        if (width < 1 || height < 1 || pixmap.GetPixels() == IntPtr.Zero)
        {
            throw new ArgumentException($"the {width}x{height} {pixmap.ColorType} pixmap has no pixels", nameof(pixmap));
        }

        ReadOnlySpan<byte> pixels = pixmap.GetPixelSpan();
        var premultiplied = pixmap.AlphaType == SKAlphaType.Premul;
        switch (pixmap.ColorType)
        {
            case SKColorType.Rgba8888 when premultiplied:
                return Unpremultiply(pixels, width, height, rowBytes, red: 0, blue: 2);
            case SKColorType.Bgra8888 when premultiplied:
                return Unpremultiply(pixels, width, height, rowBytes, red: 2, blue: 0);
            case SKColorType.Rgba8888:
            case SKColorType.Rgb888x: // the fourth byte is padding
                return RgbImage.FromPixels(pixels, width, height, PixelFormat.Rgba32, rowBytes);
            case SKColorType.Bgra8888:
                return RgbImage.FromPixels(pixels, width, height, PixelFormat.Bgra32, rowBytes);
            case SKColorType.Gray8:
                return RgbImage.FromPixels(pixels, width, height, PixelFormat.Gray8, rowBytes);
            case SKColorType.Unknown:
                throw new ArgumentException($"the {width}x{height} pixmap has an unknown colour type", nameof(pixmap));
            default:
                return ConvertedBySkia(pixmap);
        }
    }

    /// <summary>Copies the bitmap's pixels into a new <see cref="RgbImage"/> (see <see cref="ToRgbImage(SKPixmap)"/>).</summary>
    /// <param name="bitmap">The bitmap (not changed).</param>
    /// <exception cref="ArgumentNullException"><paramref name="bitmap"/> is null.</exception>
    /// <exception cref="ArgumentException">The bitmap has no pixels, or an unknown colour type.</exception>
    public static RgbImage ToRgbImage(this SKBitmap bitmap)
    {
        ArgumentNullException.ThrowIfNull(bitmap);
        using var pixmap = bitmap.PeekPixels()
            ?? throw new ArgumentException($"the {bitmap.Width}x{bitmap.Height} {bitmap.ColorType} bitmap has no pixels", nameof(bitmap));
        return pixmap.ToRgbImage();
    }

    /// <summary>
    /// Copies the image's pixels into a new <see cref="RgbImage"/> (see <see cref="ToRgbImage(SKPixmap)"/>); an image
    /// that is not in memory yet (lazily decoded, or on the GPU) is rasterised first.
    /// </summary>
    /// <param name="image">The image (not changed).</param>
    /// <exception cref="ArgumentNullException"><paramref name="image"/> is null.</exception>
    /// <exception cref="ArgumentException">The image cannot be read into memory, or has an unknown colour type.</exception>
    public static RgbImage ToRgbImage(this SKImage image)
    {
        ArgumentNullException.ThrowIfNull(image);
        using (var pixmap = image.PeekPixels())
        {
            if (pixmap is not null)
            {
                return pixmap.ToRgbImage();
            }
        }

        using var raster = image.ToRasterImage(ensurePixelData: true)
            ?? throw new ArgumentException($"the {image.Width}x{image.Height} image cannot be read into memory", nameof(image));
        using var rasterPixels = raster.PeekPixels()
            ?? throw new ArgumentException($"the {image.Width}x{image.Height} image cannot be read into memory", nameof(image));
        return rasterPixels.ToRgbImage();
    }

    /// <summary>The pixmap's pixels as model input (copied now).</summary>
    /// <param name="pixmap">The pixels.</param>
    /// <exception cref="ArgumentException">See <see cref="ToRgbImage(SKPixmap)"/>.</exception>
    public static ImageSource ToImageSource(this SKPixmap pixmap) => ImageSource.FromImage(pixmap.ToRgbImage());

    /// <summary>The bitmap's pixels as model input (copied now).</summary>
    /// <param name="bitmap">The bitmap.</param>
    /// <exception cref="ArgumentException">See <see cref="ToRgbImage(SKBitmap)"/>.</exception>
    public static ImageSource ToImageSource(this SKBitmap bitmap) => ImageSource.FromImage(bitmap.ToRgbImage());

    /// <summary>The image's pixels as model input (copied now).</summary>
    /// <param name="image">The image.</param>
    /// <exception cref="ArgumentException">See <see cref="ToRgbImage(SKImage)"/>.</exception>
    public static ImageSource ToImageSource(this SKImage image) => ImageSource.FromImage(image.ToRgbImage());

    /// <summary>A new bitmap with a copy of the pixels (opaque <see cref="SKColorType.Rgba8888"/>), for drawing on results.</summary>
    /// <param name="image">The RGB image.</param>
    /// <exception cref="ArgumentNullException"><paramref name="image"/> is null.</exception>
    public static SKBitmap ToSKBitmap(this RgbImage image)
    {
        ArgumentNullException.ThrowIfNull(image);
        var bitmap = new SKBitmap(new SKImageInfo(image.Width, image.Height, SKColorType.Rgba8888, SKAlphaType.Opaque));
        var dst = bitmap.GetPixelSpan();
        var src = image.Pixels;
        for (var y = 0; y < image.Height; y++)
        {
            var row = dst.Slice(y * bitmap.RowBytes, 4 * image.Width);
            var s = src.AsSpan(3 * y * image.Width, 3 * image.Width);
            for (var x = 0; x < image.Width; x++)
            {
                (row[4 * x], row[4 * x + 1], row[4 * x + 2], row[4 * x + 3]) = (s[3 * x], s[3 * x + 1], s[3 * x + 2], 255);
            }
        }

        bitmap.NotifyPixelsChanged();
        return bitmap;
    }

    /// <summary>4-byte premultiplied pixels (red at byte <paramref name="red"/>, blue at <paramref name="blue"/>, alpha last) to RGB.</summary>
    private static RgbImage Unpremultiply(ReadOnlySpan<byte> pixels, int width, int height, int rowBytes, int red, int blue)
    {
        var needed = (long)rowBytes * (height - 1) + 4L * width;
        if (rowBytes < 4L * width || pixels.Length < needed)
        {
            throw new ArgumentException($"a {width}x{height} pixmap with {rowBytes} bytes per row needs {needed} bytes, it holds {pixels.Length}", nameof(pixels));
        }

        var rgb = new byte[3L * width * height];
        for (var y = 0; y < height; y++)
        {
            var src = pixels.Slice(y * rowBytes, 4 * width);
            var dst = rgb.AsSpan(3 * y * width, 3 * width);
            for (var x = 0; x < width; x++)
            {
                var p = src.Slice(4 * x, 4);
                int a = p[3];
                if (a == 255)
                {
                    (dst[3 * x], dst[3 * x + 1], dst[3 * x + 2]) = (p[red], p[1], p[blue]);
                }
                else if (a != 0)
                {
                    (dst[3 * x], dst[3 * x + 1], dst[3 * x + 2]) = (Unpremultiply(p[red], a), Unpremultiply(p[1], a), Unpremultiply(p[blue], a));
                }
            }
        }

        return new RgbImage(width, height, rgb);
    }

    private static byte Unpremultiply(int c, int a) => (byte)Math.Min(255, (c * 255 + a / 2) / a);

    /// <summary>Other colour types: Skia converts to unpremultiplied RGBA (no colour-space conversion).</summary>
    private static RgbImage ConvertedBySkia(SKPixmap pixmap)
    {
        var info = new SKImageInfo(pixmap.Width, pixmap.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul, pixmap.ColorSpace);
        var rgba = new byte[info.BytesSize64];
        unsafe
        {
            fixed (byte* p = rgba)
            {
                if (!pixmap.ReadPixels(info, (IntPtr)p, info.RowBytes))
                {
                    throw new ArgumentException($"Skia cannot convert the {pixmap.Width}x{pixmap.Height} {pixmap.ColorType} pixmap to RGBA", nameof(pixmap));
                }
            }
        }

        return RgbImage.FromPixels(rgba, info.Width, info.Height, PixelFormat.Rgba32, info.RowBytes);
    }
}
