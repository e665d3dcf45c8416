using MaskRcnn.Net.Imaging;

namespace MaskRcnn.Net;

/// <summary>
/// An image to run a model on: a file path, a <see cref="System.IO.Stream"/>, encoded bytes (JPEG/PNG), or decoded
/// pixels (<see cref="RgbImage"/>, or a raw buffer through <see cref="FromPixels"/>). Converts implicitly from a path,
/// a stream, a byte array and an <see cref="RgbImage"/>. Runtimes may accept more kinds (the libtorch model takes a
/// uint8 [C, H, W] tensor: <c>TensorImageSource</c>, converted implicitly from a tensor).
/// </summary>
/// <remarks>Nothing is read or decoded until a model runs on it. A stream is read to its end and not disposed.</remarks>
public abstract class ImageSource
{
    /// <summary>For the kinds defined here and runtime-specific ones.</summary>
    protected ImageSource()
    {
    }

    /// <summary>A short description for messages (the path, or the kind of source).</summary>
    public abstract string Description { get; }

    /// <summary>An image file (JPEG or PNG).</summary>
    public static ImageSource FromFile(string path) => new FileImageSource(path);

    /// <summary>A stream holding an encoded image (read to the end, not disposed).</summary>
    public static ImageSource FromStream(Stream stream) => new StreamImageSource(stream);

    /// <summary>Encoded image bytes (JPEG or PNG; not copied).</summary>
    public static ImageSource FromBytes(byte[] bytes) => new EncodedImageSource(bytes);

    /// <summary>Decoded RGB pixels (not copied).</summary>
    public static ImageSource FromImage(RgbImage image) => new PixelImageSource(image);

    /// <summary>A raw pixel buffer, copied now (see <see cref="RgbImage.FromPixels"/> for the arguments and checks).</summary>
    /// <exception cref="ArgumentException">The buffer does not hold the image described.</exception>
    public static ImageSource FromPixels(ReadOnlySpan<byte> pixels, int width, int height, PixelFormat format, int stride = 0) =>
        new PixelImageSource(RgbImage.FromPixels(pixels, width, height, format, stride));

    /// <summary>An image file.</summary>
    public static implicit operator ImageSource(string path) => FromFile(path);

    /// <summary>A stream.</summary>
    public static implicit operator ImageSource(Stream stream) => FromStream(stream);

    /// <summary>Encoded bytes.</summary>
    public static implicit operator ImageSource(byte[] bytes) => FromBytes(bytes);

    /// <summary>Decoded pixels.</summary>
    public static implicit operator ImageSource(RgbImage image) => FromImage(image);
}

/// <summary>An image file to decode.</summary>
public sealed class FileImageSource : ImageSource
{
    /// <summary>The file.</summary>
    public FileImageSource(string path) => Path = path ?? throw new ArgumentNullException(nameof(path));

    /// <summary>The file.</summary>
    public string Path { get; }

    /// <inheritdoc />
    public override string Description => Path;
}

/// <summary>A stream holding an encoded image.</summary>
public sealed class StreamImageSource : ImageSource
{
    /// <summary>The stream (read to the end when the model runs, not disposed).</summary>
    public StreamImageSource(Stream stream) => Stream = stream ?? throw new ArgumentNullException(nameof(stream));

    /// <summary>The stream.</summary>
    public Stream Stream { get; }

    /// <inheritdoc />
    public override string Description => "<stream>";
}

/// <summary>Encoded image bytes in memory.</summary>
public sealed class EncodedImageSource : ImageSource
{
    /// <summary>The bytes (not copied).</summary>
    public EncodedImageSource(byte[] bytes) => Bytes = bytes ?? throw new ArgumentNullException(nameof(bytes));

    /// <summary>The bytes.</summary>
    public byte[] Bytes { get; }

    /// <inheritdoc />
    public override string Description => "<bytes>";
}

/// <summary>Decoded RGB pixels.</summary>
public sealed class PixelImageSource : ImageSource
{
    /// <summary>The image (not copied).</summary>
    public PixelImageSource(RgbImage image) => Image = image ?? throw new ArgumentNullException(nameof(image));

    /// <summary>The image.</summary>
    public RgbImage Image { get; }

    /// <inheritdoc />
    public override string Description => $"<{Image.Width}x{Image.Height} pixels>";
}
