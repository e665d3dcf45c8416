using MaskRcnn.Net.Core;
using MaskRcnn.Net.Core.Imaging;

namespace MaskRcnn.Net;

/// <summary>
/// An image to run the model on: a file path, a <see cref="System.IO.Stream"/>, encoded bytes (JPEG/PNG), or a
/// uint8 [C, H, W] tensor (C = 1 or 3). Converts implicitly from each.
/// </summary>
public sealed class ImageSource
{
    private readonly string? path;
    private readonly Stream? stream;
    private readonly byte[]? bytes;
    private readonly Tensor? tensor;

    private ImageSource(string? path, Stream? stream, byte[]? bytes, Tensor? tensor) =>
        (this.path, this.stream, this.bytes, this.tensor) = (path, stream, bytes, tensor);

    /// <summary>An image file (JPEG or PNG).</summary>
    public static ImageSource FromFile(string path) => new(path ?? throw new ArgumentNullException(nameof(path)), null, null, null);

    /// <summary>A stream holding an encoded image (read to the end).</summary>
    public static ImageSource FromStream(Stream stream) => new(null, stream ?? throw new ArgumentNullException(nameof(stream)), null, null);

    /// <summary>Encoded image bytes.</summary>
    public static ImageSource FromBytes(byte[] bytes) => new(null, null, bytes ?? throw new ArgumentNullException(nameof(bytes)), null);

    /// <summary>A uint8 [C, H, W] tensor (not copied, not disposed by the model).</summary>
    public static ImageSource FromTensor(Tensor image) => new(null, null, null, image ?? throw new ArgumentNullException(nameof(image)));

    /// <summary>An image file.</summary>
    public static implicit operator ImageSource(string path) => FromFile(path);

    /// <summary>A stream.</summary>
    public static implicit operator ImageSource(Stream stream) => FromStream(stream);

    /// <summary>Encoded bytes.</summary>
    public static implicit operator ImageSource(byte[] bytes) => FromBytes(bytes);

    /// <summary>A uint8 CHW tensor.</summary>
    public static implicit operator ImageSource(Tensor image) => FromTensor(image);

    /// <summary>A short description for messages (the path, or the kind of source).</summary>
    public string Description => path ?? (stream is not null ? "<stream>" : bytes is not null ? "<bytes>" : "<tensor>");

    /// <summary>Decodes to a uint8 [3, H, W] RGB tensor owned by the caller.</summary>
    public Tensor LoadRgb()
    {
        if (path is not null)
        {
            return ImageCodec.Decode(path, ImageReadMode.Rgb);
        }

        if (stream is not null)
        {
            return ImageCodec.Decode(stream, ImageReadMode.Rgb);
        }

        if (bytes is not null)
        {
            return ImageCodec.Decode(bytes, ImageReadMode.Rgb);
        }

        var t = tensor!;
        var s = t.Shape;
        if (s.Length != 3 || (s[0] != 1 && s[0] != 3) || s[1] == 0 || s[2] == 0)
        {
            throw new ArgumentException($"an image tensor must be [1 or 3, H, W] with H, W > 0, got [{string.Join(", ", s)}]", "image");
        }

        if (t.DType != DType.UInt8)
        {
            throw new ArgumentException($"an image tensor must be uint8, got {t.DType}", "image");
        }

        return s[0] == 1 ? t.Expand(3, -1, -1).Contiguous() : t.Alias();
    }
}
