namespace MaskRcnn.Net.Imaging;

/// <summary>The layout of one pixel in a raw buffer given to <see cref="RgbImage.FromPixels"/>.</summary>
public enum PixelFormat
{
    /// <summary>3 bytes: red, green, blue (ImageSharp's <c>Rgb24</c>).</summary>
    Rgb24,

    /// <summary>3 bytes: blue, green, red (OpenCV's default order).</summary>
    Bgr24,

    /// <summary>4 bytes: red, green, blue, alpha (alpha ignored; SkiaSharp's <c>Rgba8888</c>).</summary>
    Rgba32,

    /// <summary>4 bytes: blue, green, red, alpha (alpha ignored; SkiaSharp's <c>Bgra8888</c>, Windows bitmaps).</summary>
    Bgra32,

    /// <summary>1 byte of luminance, copied to all three channels (ImageSharp's <c>L8</c>, SkiaSharp's <c>Gray8</c>).</summary>
    Gray8,
}

/// <summary>Bytes per pixel of each <see cref="PixelFormat"/>.</summary>
public static class PixelFormats
{
    /// <summary>The number of bytes one pixel of <paramref name="format"/> takes.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Not a defined format.</exception>
    public static int BytesPerPixel(this PixelFormat format) => format switch
    {
        PixelFormat.Rgb24 or PixelFormat.Bgr24 => 3,
        PixelFormat.Rgba32 or PixelFormat.Bgra32 => 4,
        PixelFormat.Gray8 => 1,
        _ => throw new ArgumentOutOfRangeException(nameof(format), format, "not a pixel format"),
    };
}
