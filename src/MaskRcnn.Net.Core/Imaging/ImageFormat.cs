namespace MaskRcnn.Net.Core.Imaging;

/// <summary>Image container formats recognised by their leading bytes (only JPEG and PNG can be decoded).</summary>
public enum ImageFormat
{
    /// <summary>Not a recognised image format.</summary>
    Unknown = 0,

    /// <summary>JPEG (JFIF/EXIF), starting with <c>FF D8 FF</c>.</summary>
    Jpeg = 1,

    /// <summary>PNG, starting with the 8-byte PNG signature.</summary>
    Png = 2,

    /// <summary>GIF (recognised, not decodable).</summary>
    Gif = 3,

    /// <summary>Windows bitmap (recognised, not decodable).</summary>
    Bmp = 4,

    /// <summary>WebP (recognised, not decodable).</summary>
    WebP = 5,

    /// <summary>TIFF (recognised, not decodable).</summary>
    Tiff = 6,
}
