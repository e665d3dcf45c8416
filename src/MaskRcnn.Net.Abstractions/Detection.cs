using MaskRcnn.Net.Core.Detection;
using MaskRcnn.Net.Core.Masks;

namespace MaskRcnn.Net;

/// <summary>One detected object instance: box, class, score and (for Mask R-CNN) its full-image binary mask.</summary>
/// <param name="Box">Bounding box in the original image's pixels.</param>
/// <param name="Label">Class id (1..K; 0 is background and never returned).</param>
/// <param name="ClassName">Name of the class (or the id as text when no names were given).</param>
/// <param name="Score">Confidence in [0, 1].</param>
/// <param name="Mask">Instance mask at the original image size (probability &gt; the mask threshold), or null.</param>
public sealed record Detection(BoundingBox Box, int Label, string ClassName, float Score, BinaryMask? Mask)
{
    /// <summary>The mask in COCO run-length encoding (compute on demand), or null when there is no mask.</summary>
    public Rle? ToRle() => Mask?.ToRle();
}

/// <summary>The detections of one image with its size.</summary>
/// <param name="Width">Original image width.</param>
/// <param name="Height">Original image height.</param>
/// <param name="Detections">Detections sorted by decreasing score.</param>
public sealed record ImageDetections(int Width, int Height, IReadOnlyList<Detection> Detections);
