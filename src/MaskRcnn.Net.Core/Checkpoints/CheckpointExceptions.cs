namespace MaskRcnn.Net.Core.Checkpoints;

/// <summary>
/// Base class of the errors raised while reading or writing a checkpoint. The message always names the file (or
/// stream) and, when one is involved, the tensor key.
/// </summary>
public abstract class CheckpointException : Exception
{
    /// <summary>Creates the exception.</summary>
    /// <param name="source">The file path or stream name the checkpoint came from.</param>
    /// <param name="key">The tensor key involved, or null.</param>
    /// <param name="detail">What is wrong.</param>
    /// <param name="inner">The underlying error, or null.</param>
    protected CheckpointException(string source, string? key, string detail, Exception? inner)
        : base(Compose(source, key, detail), inner)
    {
        FilePath = source;
        Key = key;
    }

    /// <summary>The file path (or stream name) of the checkpoint.</summary>
    public string FilePath { get; }

    /// <summary>The tensor key the problem concerns, or null when it concerns the file as a whole.</summary>
    public string? Key { get; }

    private static string Compose(string source, string? key, string detail) =>
        key is null ? $"{source}: {detail}" : $"{source}, tensor '{key}': {detail}";
}

/// <summary>The checkpoint is malformed: truncated, corrupt, or inconsistent with its own header.</summary>
public sealed class CheckpointFormatException : CheckpointException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="source">The file path or stream name the checkpoint came from.</param>
    /// <param name="detail">What is wrong.</param>
    /// <param name="key">The tensor key involved, or null.</param>
    /// <param name="inner">The underlying error, or null.</param>
    public CheckpointFormatException(string source, string detail, string? key = null, Exception? inner = null)
        : base(source, key, detail, inner)
    {
    }
}

/// <summary>
/// The checkpoint is well formed but uses something this reader refuses or does not implement: a pickled global
/// outside the allow-list (loading never runs code), an exotic dtype, or an unknown serialization variant.
/// </summary>
public sealed class UnsupportedCheckpointException : CheckpointException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="source">The file path or stream name the checkpoint came from.</param>
    /// <param name="detail">What is not supported.</param>
    /// <param name="key">The tensor key involved, or null.</param>
    /// <param name="global">The rejected pickled global as <c>module.name</c>, or null.</param>
    public UnsupportedCheckpointException(string source, string detail, string? key = null, string? global = null)
        : base(source, key, detail, null)
    {
        Global = global;
    }

    /// <summary>The rejected pickled global (<c>module.name</c>, e.g. <c>posix.system</c>), when that is the reason.</summary>
    public string? Global { get; }
}
