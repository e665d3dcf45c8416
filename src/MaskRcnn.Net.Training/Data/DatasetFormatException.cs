namespace MaskRcnn.Net.Training;

/// <summary>
/// Thrown when an annotation file (COCO, VIA, LabelMe) or the images it refers to do not have the expected form.
/// The message names the file and, where it applies, the JSON location (for example
/// <c>$.annotations[3].segmentation[0][5]</c>) at fault.
/// </summary>
public sealed class DatasetFormatException : FormatException
{
    /// <summary>Creates the exception for a file, an optional JSON location and the reason.</summary>
    /// <param name="filePath">The annotation or image file at fault.</param>
    /// <param name="location">The JSON path of the offending value, or null when the whole file is at fault.</param>
    /// <param name="reason">What is wrong.</param>
    /// <param name="innerException">The underlying error, if any.</param>
    public DatasetFormatException(string filePath, string? location, string reason, Exception? innerException = null)
        : base(location is null ? $"{filePath}: {reason}" : $"{filePath}: {location}: {reason}", innerException)
    {
        FilePath = filePath;
        Location = location;
        Reason = reason;
    }

    /// <summary>The annotation or image file at fault.</summary>
    public string FilePath { get; }

    /// <summary>The JSON path of the offending value (<c>$.images[2].width</c>), or null.</summary>
    public string? Location { get; }

    /// <summary>What is wrong, without the file and location.</summary>
    public string Reason { get; }
}
