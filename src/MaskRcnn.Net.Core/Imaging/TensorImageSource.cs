using MaskRcnn.Net.Imaging;

namespace MaskRcnn.Net.Core.Imaging;

/// <summary>
/// A uint8 [C, H, W] tensor (C = 1 or 3) as an <see cref="ImageSource"/> for the libtorch model; a tensor converts
/// to it implicitly. The tensor is not copied and never disposed by the model: the caller keeps owning it.
/// </summary>
public sealed class TensorImageSource : ImageSource
{
    /// <summary>The image tensor (checked when the model runs).</summary>
    public TensorImageSource(Tensor image) => Image = image ?? throw new ArgumentNullException(nameof(image));

    /// <summary>The image tensor.</summary>
    public Tensor Image { get; }

    /// <inheritdoc />
    public override string Description => "<tensor>";
}

/// <summary>Decoding an <see cref="ImageSource"/> to a tensor, and <see cref="RgbImage"/> to and from tensors.</summary>
public static class ImageTensors
{
    /// <summary>Decodes (files, streams, bytes with libjpeg-turbo/libpng) or converts to a uint8 [3, H, W] RGB tensor owned by the caller.</summary>
    /// <exception cref="ImageDecodeException">Encoded data cannot be decoded.</exception>
    /// <exception cref="ArgumentException">A tensor is not uint8 [1 or 3, H, W] with H, W &gt; 0.</exception>
    /// <exception cref="NotSupportedException">A kind of source this runtime does not know.</exception>
    public static Tensor LoadRgb(this ImageSource source)
    {
        ArgumentNullException.ThrowIfNull(source);
        return source switch
        {
            FileImageSource f => ImageCodec.Decode(f.Path, ImageReadMode.Rgb),
            StreamImageSource s => ImageCodec.Decode(s.Stream, ImageReadMode.Rgb),
            EncodedImageSource b => ImageCodec.Decode(b.Bytes, ImageReadMode.Rgb),
            PixelImageSource p => p.Image.ToTensor(),
            TensorImageSource t => FromImageTensor(t.Image),
            _ => throw new NotSupportedException($"{source.Description}: images of type {source.GetType().Name} are not supported by the libtorch model"),
        };
    }

    /// <summary>The image as a new uint8 [3, H, W] tensor on the CPU.</summary>
    public static Tensor ToTensor(this RgbImage image)
    {
        ArgumentNullException.ThrowIfNull(image);
        using var hwc = Tensor.FromArray(image.Pixels, image.Height, image.Width, 3);
        return hwc.Permute(2, 0, 1).Contiguous();
    }

    /// <summary>A uint8 [1 or 3, H, W] tensor (any device) as a new <see cref="RgbImage"/> (grey is copied to all channels).</summary>
    /// <exception cref="ArgumentException">The tensor is not uint8 [1 or 3, H, W] with H, W &gt; 0.</exception>
    public static RgbImage ToRgbImage(this Tensor image)
    {
        using var rgb = FromImageTensor(image);
        using var hwc = rgb.Permute(1, 2, 0).Contiguous();
        return new RgbImage((int)rgb.Size(2), (int)rgb.Size(1), hwc.ToArray<byte>());
    }

    private static Tensor FromImageTensor(Tensor t)
    {
        ArgumentNullException.ThrowIfNull(t, "image");
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
