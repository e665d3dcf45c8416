namespace MaskRcnn.Net.Core.Imaging;

/// <summary>Why an image could not be decoded.</summary>
public enum ImageDecodeFailure
{
    /// <summary>The data is malformed (bad markers, CRC errors, invalid compressed data...).</summary>
    Corrupt,

    /// <summary>The data ends before the image is complete.</summary>
    Truncated,

    /// <summary>There is no data at all.</summary>
    Empty,

    /// <summary>The format (or a feature of it, such as 12-bit JPEG) is not supported.</summary>
    UnsupportedFormat,

    /// <summary>The header announces an image larger than the decoder accepts.</summary>
    TooLarge,

    /// <summary>The decoder ran out of memory.</summary>
    OutOfMemory,
}

/// <summary>
/// Thrown when image data cannot be decoded. The message names the source (a file path, <c>&lt;stream&gt;</c> or
/// <c>&lt;bytes&gt;</c>) and the reason.
/// </summary>
public sealed class ImageDecodeException : IOException
{
    /// <summary>Creates the exception for a source and a failure kind with the decoder's explanation.</summary>
    /// <param name="origin">The file path, or <c>&lt;stream&gt;</c> / <c>&lt;bytes&gt;</c>.</param>
    /// <param name="failure">Why decoding failed.</param>
    /// <param name="reason">The decoder's explanation.</param>
    public ImageDecodeException(string origin, ImageDecodeFailure failure, string reason)
        : base($"cannot decode image {origin}: {Describe(failure)}: {reason}")
    {
        Origin = origin;
        Failure = failure;
        Reason = reason;
    }

    /// <summary>The file path, or <c>&lt;stream&gt;</c> / <c>&lt;bytes&gt;</c>.</summary>
    public string Origin { get; }

    /// <summary>Why decoding failed.</summary>
    public ImageDecodeFailure Failure { get; }

    /// <summary>The decoder's explanation (without the origin).</summary>
    public string Reason { get; }

    private static string Describe(ImageDecodeFailure failure) => failure switch
    {
        ImageDecodeFailure.Corrupt => "corrupt data",
        ImageDecodeFailure.Truncated => "truncated data",
        ImageDecodeFailure.Empty => "no data",
        ImageDecodeFailure.UnsupportedFormat => "unsupported format",
        ImageDecodeFailure.TooLarge => "image too large",
        ImageDecodeFailure.OutOfMemory => "out of memory",
        _ => failure.ToString(),
    };
}
