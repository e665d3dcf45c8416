namespace MaskRcnn.Net.Core.Imaging;

/// <summary>
/// The channel layout a decoded image is converted to; the values match <c>torchvision.io.ImageReadMode</c>.
/// </summary>
public enum ImageReadMode
{
    /// <summary>
    /// Whatever the file holds: 1 channel for gray, 2 for gray + alpha, 3 for RGB, 4 for RGBA. Palette PNGs are
    /// expanded to RGB (RGBA with a tRNS chunk); CMYK JPEGs give their 4 stored, Adobe-inverted channels, as in
    /// torchvision.
    /// </summary>
    Unchanged = 0,

    /// <summary>One luminance channel.</summary>
    Gray = 1,

    /// <summary>Luminance and alpha (opaque when the image has no transparency).</summary>
    GrayAlpha = 2,

    /// <summary>Red, green and blue.</summary>
    Rgb = 3,

    /// <summary>Red, green, blue and alpha (opaque when the image has no transparency).</summary>
    RgbAlpha = 4,
}
