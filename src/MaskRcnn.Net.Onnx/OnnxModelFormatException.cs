namespace MaskRcnn.Net.Onnx;

/// <summary>
/// A file <see cref="OnnxMaskRcnn.Load"/> cannot serve: not an ONNX model ONNX Runtime loads (not ONNX at all,
/// truncated, corrupt), an ONNX graph that is not a MaskRcnn.Net export (missing or malformed metadata, other inputs or
/// outputs), a format version this package does not read, or outputs of the wrong shape at run time. The message
/// names the file and what is wrong; <see cref="Key"/> names the metadata key, input or output concerned, if any. An
/// <see cref="IOException"/>, as a file that cannot be read.
/// </summary>
public sealed class OnnxModelFormatException : IOException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="path">The model file.</param>
    /// <param name="key">The metadata key, input or output concerned, or null.</param>
    /// <param name="message">What is wrong (the path is prepended).</param>
    /// <param name="inner">The underlying error, if any.</param>
    public OnnxModelFormatException(string path, string? key, string message, Exception? inner = null)
        : base($"{path}: {message}", inner)
    {
        Path = path;
        Key = key;
    }

    /// <summary>The model file.</summary>
    public string Path { get; }

    /// <summary>The metadata key (e.g. <c>maskrcnn.class_names</c>), input or output name concerned, or null.</summary>
    public string? Key { get; }
}
