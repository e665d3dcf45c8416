using System.Runtime.InteropServices;

namespace MaskRcnn.Net.Core;

/// <summary>
/// glibc allocator settings for libtorch's tensor memory. With glibc's defaults, a process that predicts from several
/// threads grows its resident memory for a long time: every thread that contends gets its own malloc arena (up to 8
/// per core), and the dynamic mmap threshold climbs to 32 MiB, so freed feature maps stay cached in those arenas
/// instead of going back to the system (measured: +27 % RSS over 2000 predictions from 4 threads). Capping the arenas
/// at 2 and fixing the mmap threshold at 128 KiB keeps RSS flat: large tensors are mapped and unmapped, small
/// allocations share two arenas.
/// </summary>
/// <remarks>
/// <para>
/// <see cref="Apply"/> runs once, automatically, when the native library is first loaded. It is skipped when the
/// environment variable <c>MASKRCNN_MALLOC_TUNING</c> is <c>0</c> (keep glibc's defaults), when the process already
/// sets <c>MALLOC_ARENA_MAX</c> or <c>MALLOC_MMAP_THRESHOLD_</c> itself, and on C libraries other than glibc.
/// </para>
/// <para>
/// Training is different: every step allocates and frees the same large activations, and with the 128 KiB threshold
/// each of them is a fresh mapping whose pages the kernel must fault in and zero again (measured: a ResNet-50-FPN
/// training step at 512 px took 3.0–3.4 s instead of 2.4–2.7 s). <see cref="ForTraining"/> raises the threshold to
/// 32 MiB — where glibc's own dynamic threshold tops out — while a training run lasts; the trainer does this itself.
/// </para>
/// <para>
/// The settings are process-wide (glibc has one allocator per process), so they also apply to the host
/// application's other native allocations.
/// </para>
/// <para>
/// <b>Tensor cache.</b> With blocks above the mmap threshold mapped and unmapped, every large tensor's pages are
/// faulted in and zeroed by the kernel again each time (measured: 1.6 million page faults for 4 R50-FPN predictions;
/// memory-bound steps such as a 64→256 1×1 convolution 2.5× slower than on reused memory). So the native library
/// installs its own CPU allocator in libtorch when it loads: freed tensor blocks of at least 128 KiB are kept, up to
/// <see cref="CacheLimitBytes"/> in all (default <see cref="DefaultCacheLimitBytes"/>, or
/// <c>MASKRCNN_TENSOR_CACHE_MB</c> MiB from the environment; 0 turns caching off), and reused for requests of the same
/// size class (64 KiB steps up to 1 MiB, 1 MiB steps up to 16 MiB, then eighths of a power of two). Resident memory
/// is then the working set plus at most the limit, and stays flat under repeated predictions.
/// <see cref="ReleaseCache"/> returns the cached blocks to the system.
/// </para>
/// </remarks>
public static class NativeAllocator
{
    /// <summary>The environment variable that turns the tuning off when set to <c>0</c>.</summary>
    public const string OptOutVariable = "MASKRCNN_MALLOC_TUNING";

    /// <summary>The arena cap applied (glibc <c>M_ARENA_MAX</c>).</summary>
    public const int ArenaMax = 2;

    /// <summary>The fixed mmap threshold applied, in bytes (glibc <c>M_MMAP_THRESHOLD</c>).</summary>
    public const int MmapThreshold = 128 * 1024;

    /// <summary>The mmap threshold while a <see cref="ForTraining"/> scope is open, in bytes (glibc's maximum dynamic threshold on 64-bit).</summary>
    public const int TrainingMmapThreshold = 32 * 1024 * 1024;

    /// <summary>The environment variable that sets the tensor cache's limit in MiB when the library loads (0: no caching).</summary>
    public const string CacheLimitVariable = "MASKRCNN_TENSOR_CACHE_MB";

    /// <summary>The tensor cache's default limit: 1 GiB of freed blocks.</summary>
    public const long DefaultCacheLimitBytes = 1L << 30;

    /// <summary>The smallest block the tensor cache keeps (glibc's mmap threshold as set here).</summary>
    public const long CacheMinimumBlockBytes = MmapThreshold;

    private const int MMmapThreshold = -3; // glibc malloc.h
    private const int MArenaMax = -8;
    private static readonly object Gate = new();
    private static bool attempted;
    private static nint malloptExport;
    private static int trainingScopes;
    private static int cacheInstalled;

    /// <summary>Whether the settings were applied in this process.</summary>
    public static bool IsTuned { get; private set; }

    /// <summary>
    /// Applies the settings once per process (later calls return the first outcome), unless the environment opts
    /// out (see the remarks of <see cref="NativeAllocator"/>).
    /// </summary>
    /// <returns>Whether the settings are in effect.</returns>
    public static bool Apply()
    {
        lock (Gate)
        {
            if (attempted)
            {
                return IsTuned;
            }

            attempted = true;
            if (!OperatingSystem.IsLinux()
                || Environment.GetEnvironmentVariable(OptOutVariable) == "0"
                || Environment.GetEnvironmentVariable("MALLOC_ARENA_MAX") is not null
                || Environment.GetEnvironmentVariable("MALLOC_MMAP_THRESHOLD_") is not null
                || !NativeLibrary.TryLoad("libc.so.6", out var libc))
            {
                return false;
            }

            if (!NativeLibrary.TryGetExport(libc, "mallopt", out var export) || !NativeLibrary.TryGetExport(libc, "gnu_get_libc_version", out _))
            {
                return false; // not glibc
            }

            malloptExport = export;
            IsTuned = Mallopt(MArenaMax, ArenaMax) & Mallopt(MMmapThreshold, MmapThreshold);
            return IsTuned;
        }
    }

    /// <summary>
    /// Raises the mmap threshold to <see cref="TrainingMmapThreshold"/> until the returned scope is disposed (scopes
    /// from several threads nest; the inference setting returns when the last one closes). Nothing happens when the
    /// tuning is not in effect.
    /// </summary>
    public static IDisposable ForTraining()
    {
        Apply();
        lock (Gate)
        {
            if (++trainingScopes == 1 && IsTuned)
            {
                Mallopt(MMmapThreshold, TrainingMmapThreshold);
            }
        }

        return new TrainingScope();
    }

    /// <summary>
    /// The most bytes of freed tensor blocks the native library keeps for reuse (see the remarks of
    /// <see cref="NativeAllocator"/>). Lowering it frees cached blocks above the new limit; 0 frees them all and stops caching.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Negative.</exception>
    public static long CacheLimitBytes
    {
        get => CacheStatistics.LimitBytes;
        set
        {
            ArgumentOutOfRangeException.ThrowIfNegative(value);
            Native.Check(NativeMethods.mr_cpu_cache_configure(value, CacheMinimumBlockBytes));
        }
    }

    /// <summary>What the tensor cache holds and how often it served a request.</summary>
    public static unsafe TensorCacheStatistics CacheStatistics
    {
        get
        {
            var s = stackalloc long[5];
            Native.Check(NativeMethods.mr_cpu_cache_stats(s));
            return new TensorCacheStatistics(s[0], s[1], s[2], s[3], s[4] == 1);
        }
    }

    /// <summary>Returns every cached tensor block to the system (tensors in use are not affected).</summary>
    public static void ReleaseCache() => Native.Check(NativeMethods.mr_cpu_cache_release());

    /// <summary>
    /// Installs the tensor cache with the limit from the environment when the native library loads. The runtime may
    /// resolve the library again for other entry points: only the first call configures (a limit set since stays).
    /// </summary>
    internal static unsafe void InstallCache(nint library)
    {
        if (Interlocked.Exchange(ref cacheInstalled, 1) != 0)
        {
            return;
        }

        var limit = DefaultCacheLimitBytes;
        if (Environment.GetEnvironmentVariable(CacheLimitVariable) is { } mb)
        {
            limit = long.TryParse(mb, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var m) && m <= long.MaxValue / (1 << 20)
                ? m << 20
                : throw new InvalidOperationException($"{CacheLimitVariable}={mb}: expected a whole number of MiB (0 turns the tensor cache off)");
        }

        // Through the export (not the P/Invoke declaration): this runs while the runtime is still resolving the library.
        var configure = (delegate* unmanaged<long, long, int>)NativeLibrary.GetExport(library, "mr_cpu_cache_configure");
        if (configure(limit, CacheMinimumBlockBytes) != 0)
        {
            throw new InvalidOperationException($"the native tensor cache could not be installed (limit {limit} bytes)");
        }
    }

    private static unsafe bool Mallopt(int parameter, int value) =>
        ((delegate* unmanaged<int, int, int>)malloptExport)(parameter, value) == 1;

    private sealed class TrainingScope : IDisposable
    {
        private int disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref disposed, 1) != 0)
            {
                return;
            }

            lock (Gate)
            {
                if (--trainingScopes == 0 && IsTuned)
                {
                    Mallopt(MMmapThreshold, MmapThreshold);
                }
            }
        }
    }
}

/// <summary>A snapshot of the native tensor cache (<see cref="NativeAllocator.CacheStatistics"/>).</summary>
/// <param name="CachedBytes">Bytes of freed blocks held for reuse.</param>
/// <param name="LimitBytes">The most it holds (<see cref="NativeAllocator.CacheLimitBytes"/>).</param>
/// <param name="Hits">Requests served from the cache since the library loaded.</param>
/// <param name="Misses">Cacheable requests that needed new memory.</param>
/// <param name="Installed">Whether the cache is libtorch's CPU allocator.</param>
public sealed record TensorCacheStatistics(long CachedBytes, long LimitBytes, long Hits, long Misses, bool Installed);
