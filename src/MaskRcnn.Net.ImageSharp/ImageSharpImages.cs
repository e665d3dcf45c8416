using MaskRcnn.Net.Imaging;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Advanced;
using SixLabors.ImageSharp.PixelFormats;

namespace MaskRcnn.Net.ImageSharp;

/// <summary>
/// Conversions between ImageSharp images an app already holds and MaskRcnn.Net's <see cref="RgbImage"/> /
/// <see cref="ImageSource"/>: <c>segmenter.Predict(image.ToImageSource())</c> for an <c>Image&lt;Rgb24&gt;</c>,
/// <c>Image&lt;L8&gt;</c> or any other pixel type, and <see cref="ToImageSharp"/> to draw on results.
/// </summary>
/// <remarks>
/// Only converts pixels that ImageSharp has already decoded; nothing here decodes a file. SixLabors.ImageSharp 2.1.x
/// has reported flaws with crafted images, so do not let it decode untrusted files for you: pass such files to the
/// model as a path, stream or bytes (its own decoder), or decode them with MaskRcnn.Net.SkiaSharp.
/// Pixels are copied row by row through the image's row spans (any buffer layout) with ImageSharp's bulk conversion
/// to <see cref="Rgb24"/>: alpha is dropped (ImageSharp's alpha is not premultiplied, so the colour is kept as it is,
/// as torchvision's RGB decode does), grey (<see cref="L8"/>) goes to all three channels, wider channels
/// (<see cref="Rgb48"/>, <see cref="RgbaVector"/>) are scaled to 8 bits by ImageSharp.
/// </remarks>
public static class ImageSharpImages
{
    /// <summary>Copies the image's pixels (the root frame) into a new <see cref="RgbImage"/>.</summary>
    /// <typeparam name="TPixel">Any ImageSharp pixel type (<see cref="Rgb24"/>, <see cref="L8"/>, <see cref="Rgba32"/>,
    /// <see cref="Bgra32"/>, <see cref="Bgr24"/>, …).</typeparam>
    /// <param name="image">The decoded image; not changed.</param>
    /// <returns>Row-major RGB bytes, equal to <see cref="RgbImage.FromPixels"/> on the same pixels in the matching
    /// <see cref="PixelFormat"/>.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="image"/> is null.</exception>
    /// <exception cref="ObjectDisposedException">The image has been disposed.</exception>
    public static RgbImage ToRgbImage<TPixel>(this Image<TPixel> image)
        where TPixel : unmanaged, IPixel<TPixel>
    {
        ArgumentNullException.ThrowIfNull(image);
        var (width, height) = (image.Width, image.Height);
        if (3L * width * height > Array.MaxLength)
        {
            throw new ArgumentException($"an RGB image of {width}x{height} pixels is more than one array holds", nameof(image));
        }

        var rgb = new byte[3L * width * height];
        var configuration = image.GetConfiguration();
        var operations = PixelOperations<TPixel>.Instance;
        image.ProcessPixelRows(rows =>
        {
            for (var y = 0; y < rows.Height; y++)
            {
                operations.ToRgb24Bytes(configuration, rows.GetRowSpan(y), rgb.AsSpan(3 * y * width, 3 * width), width);
            }
        });
        return new RgbImage(width, height, rgb);
    }

    /// <summary>The image's pixels as model input (copied now; see <see cref="ToRgbImage{TPixel}"/>).</summary>
    /// <param name="image">The decoded image; not changed, and free to dispose once this returns.</param>
    /// <exception cref="ArgumentNullException"><paramref name="image"/> is null.</exception>
    public static ImageSource ToImageSource<TPixel>(this Image<TPixel> image)
        where TPixel : unmanaged, IPixel<TPixel> =>
        ImageSource.FromImage(image.ToRgbImage());

    /// <summary>A new ImageSharp image with a copy of the pixels (for drawing on results or saving).</summary>
    /// <param name="image">The RGB image.</param>
    /// <exception cref="ArgumentNullException"><paramref name="image"/> is null.</exception>
    public static Image<Rgb24> ToImageSharp(this RgbImage image)
    {
        ArgumentNullException.ThrowIfNull(image);
        return Image.LoadPixelData<Rgb24>(image.Pixels, image.Width, image.Height);
    }
}
