using System.Runtime.InteropServices;

namespace MaskRcnn.Net.Core;

/// <summary>P/Invoke declarations of the image codec in the native shim (image_codec.cpp).</summary>
internal static partial class NativeMethods
{
    /// <summary>Status codes returned by the <c>mr_image_*</c> functions (0 = success).</summary>
    internal enum ImageStatus
    {
        Ok = 0,
        Corrupt = -1,
        Truncated = -2,
        Unsupported = -3,
        TooLarge = -4,
        BadArgument = -5,
        NoMemory = -6,
    }

    [LibraryImport(Lib)]
    internal static unsafe partial int mr_image_probe(byte* data, long size, int mode, out long height, out long width, out int channels, out int format);

    [LibraryImport(Lib)]
    internal static unsafe partial int mr_image_decode_into(byte* data, long size, int mode, byte* destination, long destinationSize, int planar);

    [LibraryImport(Lib)]
    internal static unsafe partial int mr_image_encode_png(byte* pixels, long height, long width, int channels, int planar, int compressionLevel, out nint output, out long outputSize);

    [LibraryImport(Lib)]
    internal static unsafe partial int mr_image_encode_jpeg(byte* pixels, long height, long width, int channels, int planar, int quality, out nint output, out long outputSize);

    [LibraryImport(Lib)]
    internal static partial void mr_image_free(nint buffer);
}
