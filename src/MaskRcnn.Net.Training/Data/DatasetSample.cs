using MaskRcnn.Net.Core;
using MaskRcnn.Net.Core.Imaging;

namespace MaskRcnn.Net.Training;

/// <summary>
/// One image of a dataset: its identity, size, where its pixels come from and its annotations. Creating or
/// reading a sample never decodes the image; <see cref="LoadImage"/> does.
/// </summary>
/// <param name="ImageId">The image's id (COCO's image id; the file's position for formats without ids).</param>
/// <param name="FileName">The image's name as the annotation file gives it.</param>
/// <param name="Width">Image width in pixels.</param>
/// <param name="Height">Image height in pixels.</param>
/// <param name="Annotations">The object instances (empty for a negative image).</param>
public sealed record DatasetSample(long ImageId, string FileName, int Width, int Height, IReadOnlyList<Annotation> Annotations)
{
    /// <summary>The full path of the image file, or null when the image is embedded (<see cref="EmbeddedImage"/>).</summary>
    public string? ImagePath { get; init; }

    /// <summary>The encoded image (JPEG/PNG bytes) when the annotation file embeds it instead of naming a file.</summary>
    public ReadOnlyMemory<byte> EmbeddedImage { get; init; }

    /// <summary>The image file path, or a description of the embedded image, for error messages.</summary>
    public string Origin => ImagePath ?? $"{FileName} (embedded image)";

    /// <summary>
    /// Decodes the image as a uint8 [3, H, W] RGB tensor owned by the caller (gray images are expanded to RGB).
    /// </summary>
    /// <exception cref="ImageDecodeException">The image cannot be decoded; the message names the file.</exception>
    /// <exception cref="FileNotFoundException">The image file does not exist.</exception>
    /// <exception cref="DatasetFormatException">The decoded size differs from <see cref="Width"/> × <see cref="Height"/>.</exception>
    /// <exception cref="InvalidOperationException">The sample has neither a path nor embedded data.</exception>
    public Tensor LoadImage()
    {
        Tensor image;
        if (ImagePath is not null)
        {
            image = ImageCodec.Decode(ImagePath, ImageReadMode.Rgb);
        }
        else if (!EmbeddedImage.IsEmpty)
        {
            try
            {
                image = ImageCodec.Decode(EmbeddedImage.Span, ImageReadMode.Rgb);
            }
            catch (ImageDecodeException e)
            {
                throw new ImageDecodeException(Origin, e.Failure, e.Reason);
            }
        }
        else
        {
            throw new InvalidOperationException($"sample {ImageId} ({FileName}) has neither an image path nor embedded image data");
        }

        var shape = image.Shape;
        if (shape[1] != Height || shape[2] != Width)
        {
            image.Dispose();
            throw new DatasetFormatException(Origin, null,
                $"the image is {shape[2]}x{shape[1]} (width x height) but the annotations say {Width}x{Height}");
        }

        return image;
    }
}
