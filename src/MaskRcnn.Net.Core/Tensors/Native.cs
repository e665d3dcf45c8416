using System.Runtime.InteropServices;

namespace MaskRcnn.Net.Core;

/// <summary>Turns the shim's error protocol (null handle / negative status + per-thread message) into exceptions.</summary>
internal static class Native
{
    internal static nint Check(nint result)
    {
        if (result == 0)
        {
            Throw();
        }

        return result;
    }

    internal static int Check(int status)
    {
        if (status < 0)
        {
            Throw();
        }

        return status;
    }

    internal static long Check(long value)
    {
        if (value < 0)
        {
            Throw();
        }

        return value;
    }

    /// <summary>Throws the pending native error, if any (for calls whose null result is not an error by itself).</summary>
    internal static void ThrowIfError()
    {
        if (NativeMethods.mr_last_error() != 0)
        {
            Throw();
        }
    }

    internal static void Throw()
    {
        var p = NativeMethods.mr_last_error();
        var message = p == 0 ? "native call failed without a message" : Marshal.PtrToStringUTF8(p) ?? "";
        NativeMethods.mr_clear_error();
        throw new TorchException(message);
    }

    internal static string TakeString(nint p)
    {
        Check(p);
        try
        {
            return Marshal.PtrToStringUTF8(p) ?? "";
        }
        finally
        {
            NativeMethods.mr_free_string(p);
        }
    }
}
