namespace MaskRcnn.Net.Core;

/// <summary>An error reported by libtorch (or the native shim), carrying libtorch's own message.</summary>
public class TorchException : Exception
{
    /// <summary>Creates the exception with libtorch's message.</summary>
    public TorchException(string message) : base(message)
    {
    }

    /// <summary>Creates the exception with a message and the exception that caused it.</summary>
    public TorchException(string message, Exception inner) : base(message, inner)
    {
    }
}

/// <summary>Thrown when the native shim or libtorch itself cannot be loaded; the message says what to install.</summary>
public sealed class NativeLibraryMissingException : TorchException
{
    /// <summary>Creates the exception with an installation hint and the loader's error.</summary>
    public NativeLibraryMissingException(string message, Exception inner) : base(message, inner)
    {
    }

    /// <summary>Creates the exception for a library that loaded but cannot be used (wrong ABI version).</summary>
    public NativeLibraryMissingException(string message) : base(message)
    {
    }
}
