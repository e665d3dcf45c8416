using MaskRcnn.Net.Core;
using MaskRcnn.Net.Core.Imaging;
using MaskRcnn.Net.Imaging;

namespace MaskRcnn.Net;

/// <summary>
/// Draws detections onto image tensors and saves the result as PNG or JPEG; the drawing itself is
/// <see cref="DetectionPainter"/>'s (plain arrays, shared with the ONNX Runtime package).
/// </summary>
public static class Visualizer
{
    /// <summary>Colour used for detection number <paramref name="index"/>.</summary>
    public static (byte R, byte G, byte B) ColorOf(int index) => DetectionPainter.ColorOf(index);

    /// <summary>Returns a new uint8 [3, H, W] image with the detections drawn on <paramref name="image"/> ([1 or 3, H, W] uint8).</summary>
    /// <exception cref="ArgumentException">The image is not uint8 [1 or 3, H, W], or not of the detections' size.</exception>
    public static Tensor Draw(Tensor image, ImageDetections detections, VisualizerOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentNullException.ThrowIfNull(detections);
        return DetectionPainter.Draw(image.ToRgbImage(), detections, options).ToTensor();
    }

    /// <summary>
    /// The ground truth (left, captioned "truth") next to the predictions (right, captioned "predicted") on the same
    /// image, as one uint8 [3, H + caption, 2W + gap] image.
    /// </summary>
    public static Tensor DrawComparison(Tensor image, ImageDetections truth, ImageDetections predicted, VisualizerOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(image);
        return DetectionPainter.DrawComparison(image.ToRgbImage(), truth, predicted, options).ToTensor();
    }

    /// <summary>Draws and saves as PNG (".png") or JPEG (any other extension).</summary>
    public static void Save(Tensor image, ImageDetections detections, string path, VisualizerOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        using var drawn = Draw(image, detections, options);
        SaveImage(drawn, path);
    }

    /// <summary>Saves a uint8 [3, H, W] image as PNG (".png") or JPEG (any other extension).</summary>
    public static void SaveImage(Tensor drawn, string path)
    {
        ArgumentNullException.ThrowIfNull(drawn);
        ArgumentNullException.ThrowIfNull(path);
        if (path.EndsWith(".png", StringComparison.OrdinalIgnoreCase))
        {
            ImageCodec.SavePng(drawn, path);
        }
        else
        {
            ImageCodec.SaveJpeg(drawn, path, 92);
        }
    }

    /// <summary>Saves an image (e.g. one <see cref="DetectionPainter"/> drew) as PNG (".png") or JPEG (any other extension).</summary>
    public static void SaveImage(RgbImage image, string path)
    {
        ArgumentNullException.ThrowIfNull(image);
        using var t = image.ToTensor();
        SaveImage(t, path);
    }
}
