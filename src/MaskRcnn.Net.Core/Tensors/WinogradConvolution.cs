using System.Runtime.InteropServices;

namespace MaskRcnn.Net.Core;

/// <summary>
/// Winograd convolutions for prediction on the CPU. libtorch computes every convolution with oneDNN's direct
/// algorithm; for 3×3, stride-1, padding-1 float32 convolutions whose channel counts are multiples of 16 (the FPN's
/// output convolutions, the RPN head, the mask head, ResNet's 3×3 convolutions) the native library asks oneDNN for
/// its Winograd kernels instead (F(4,3) or F(2,3), AVX-512), which do the same convolution with 2.25–4× fewer
/// multiplications: a 256→256 convolution on a [1, 256, 200, 272] map took 122 ms instead of 263 ms here, layout
/// changes included (docs/benchmarks.md).
/// </summary>
/// <remarks>
/// <para>
/// Only calls that record no gradient take this path (prediction, evaluation, <see cref="Torch.NoGrad"/>); training
/// keeps libtorch's convolution and its backward. Results differ from the direct algorithm by float rounding (about
/// 1e-6 of the output's magnitude; the torchvision parity tests hold with it). Each weight tensor is transformed once
/// and cached by a 128-bit hash of its values, computed at every call (up to 512 MiB of transformed weights, least
/// recently used dropped first): a weight recomputed with the same values at every call (a batch norm folded into its
/// convolution) is transformed once, and weights loaded, trained or written in place are never served stale.
/// </para>
/// <para>
/// Available when the native library was built with oneDNN 2's headers (Debian 12: <c>libdnnl-dev</c>, installed by
/// <c>scripts/setup.sh</c>) over a libtorch that links that oneDNN (Debian's); a CPU or shape without a Winograd kernel
/// falls back to libtorch's convolution. The environment variable <c>MASKRCNN_WINOGRAD=0</c> turns the path off
/// when the library loads; <see cref="Enabled"/> switches it at run time.
/// </para>
/// </remarks>
public static class WinogradConvolution
{
    /// <summary>The environment variable read when the native library loads: <c>0</c> turns the path off, <c>1</c> leaves it on.</summary>
    public const string EnvironmentVariable = "MASKRCNN_WINOGRAD";

    private static int applied;

    /// <summary>Whether the native library was built with the Winograd path.</summary>
    public static bool IsAvailable => NativeMethods.mr_winograd_available() == 1;

    /// <summary>Whether eligible convolutions take the Winograd path (default true; process-wide).</summary>
    public static bool Enabled
    {
        get => Native.Check(NativeMethods.mr_winograd_enabled()) == 1;
        set => NativeMethods.mr_winograd_set_enabled(value ? 1 : 0);
    }

    /// <summary>How many convolutions ran with Winograd, and how many eligible ones oneDNN had no Winograd kernel for.</summary>
    public static unsafe WinogradStatistics Statistics
    {
        get
        {
            var s = stackalloc long[4];
            Native.Check(NativeMethods.mr_winograd_stats(s));
            return new WinogradStatistics(s[0], s[1], s[2], s[3]);
        }
    }

    /// <summary>Applies <see cref="EnvironmentVariable"/> when the native library loads (first call only).</summary>
    internal static unsafe void ApplyEnvironment(nint library)
    {
        if (Interlocked.Exchange(ref applied, 1) != 0 || Environment.GetEnvironmentVariable(EnvironmentVariable) is not { } value)
        {
            return;
        }

        // Through the export (not the P/Invoke declaration): this runs while the runtime is still resolving the library.
        ((delegate* unmanaged<int, void>)NativeLibrary.GetExport(library, "mr_winograd_set_enabled"))(ParseEnvironment(value) ? 1 : 0);
    }

    /// <summary>The setting <see cref="EnvironmentVariable"/>'s value asks for.</summary>
    /// <exception cref="InvalidOperationException">Neither 0 nor 1.</exception>
    internal static bool ParseEnvironment(string value) => value.Trim() switch
    {
        "0" => false,
        "1" => true,
        _ => throw new InvalidOperationException($"{EnvironmentVariable}={value}: expected 0 (off) or 1 (on)"),
    };
}

/// <summary>Counts of <see cref="WinogradConvolution"/> since the process started.</summary>
/// <param name="Convolutions">Convolutions computed with Winograd kernels.</param>
/// <param name="Unsupported">Eligible convolutions that went to libtorch because oneDNN had no Winograd kernel for the CPU or shape.</param>
/// <param name="WeightTransforms">Weights transformed to the Winograd domain (the other calls found their values in the cache).</param>
/// <param name="CachedBytes">Memory held by the transformed weights now cached (at most 512 MiB).</param>
public readonly record struct WinogradStatistics(long Convolutions, long Unsupported, long WeightTransforms, long CachedBytes);
