
namespace MaskRcnn.Net.Core.Tests.Tensors;

/// <summary>The glibc allocator settings applied when the shim loads (RSS is process-wide: runs alone).</summary>
[Collection("memory")]
public class NativeAllocatorTests
{
    private static long RssKiB()
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                return long.Parse(line["VmRSS:".Length..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
            }
        }

        throw new InvalidOperationException("no VmRSS in /proc/self/status");
    }

    [Fact]
    public void Loading_the_shim_tunes_glibc_unless_the_environment_says_otherwise()
    {
        using var t = Tensor.Zeros([2]); // the shim is loaded by now
        var optedOut = Environment.GetEnvironmentVariable(NativeAllocator.OptOutVariable) == "0"
            || Environment.GetEnvironmentVariable("MALLOC_ARENA_MAX") is not null
            || Environment.GetEnvironmentVariable("MALLOC_MMAP_THRESHOLD_") is not null;
        NativeAllocator.IsTuned.Should().Be(!optedOut);
        NativeAllocator.Apply().Should().Be(NativeAllocator.IsTuned, "a second call reports the first outcome");
    }

    [Fact]
    public void Freed_large_tensors_go_back_to_the_system()
    {
        NativeAllocator.Apply().Should().BeTrue("this check needs the tuning (run without MASKRCNN_MALLOC_TUNING=0 / MALLOC_* variables)");

        // glibc's defaults: freeing a mapped 24 MiB block raises the dynamic mmap threshold to 24 MiB, so the next
        // 20 MiB block comes from the heap; a small block allocated after it and kept pins the heap top, and the freed
        // 20 MiB stays resident (measured: +50.8 MiB over three rounds with MASKRCNN_MALLOC_TUNING=0, +3.0 MiB tuned).
        // The tensor cache keeps freed blocks on purpose (next test); this checks glibc's part, with the cache off.
        var limit = NativeAllocator.CacheLimitBytes;
        NativeAllocator.CacheLimitBytes = 0;
        var before = RssKiB();
        var kept = new List<Tensor>();
        try
        {
            for (var i = 0; i < 3; i++)
            {
                using (var raise = Tensor.Ones([6L * 1024 * 1024]))
                {
                    using var sum = raise.Sum();
                    sum.ItemDouble().Should().Be(6L * 1024 * 1024);
                }

                var big = Tensor.Ones([5L * 1024 * 1024]);
                kept.Add(Tensor.Ones([256]));
                big.Dispose();
            }

            var growth = (RssKiB() - before) / 1024.0;
            growth.Should().BeLessThan(16, "freed 20 MiB tensors must not stay resident behind a live small one");
        }
        finally
        {
            foreach (var t in kept)
            {
                t.Dispose();
            }

            NativeAllocator.CacheLimitBytes = limit;
        }
    }

    private static unsafe nint Address(Tensor t)
    {
        fixed (float* p = t.AsSpan<float>())
        {
            return (nint)p;
        }
    }

    [Fact]
    public void The_tensor_cache_hands_a_freed_block_out_again_and_keeps_no_more_than_its_limit()
    {
        using (Tensor.Zeros([2]))
        {
            // the shim is loaded by now
        }

        var stats = NativeAllocator.CacheStatistics;
        stats.Installed.Should().BeTrue("the native library installs the cache as libtorch's CPU allocator when it loads");
        var fromEnvironment = Environment.GetEnvironmentVariable(NativeAllocator.CacheLimitVariable);
        var limit = NativeAllocator.CacheLimitBytes;
        limit.Should().Be(fromEnvironment is null ? NativeAllocator.DefaultCacheLimitBytes : long.Parse(fromEnvironment, System.Globalization.CultureInfo.InvariantCulture) << 20);
        try
        {
            NativeAllocator.CacheLimitBytes = NativeAllocator.DefaultCacheLimitBytes;
            // 37 MiB + 12 bytes: size class 40 MiB (eighths of 32 MiB), a size no other test allocates.
            const long Count = (37L << 18) + 3;
            nint first;
            using (var a = Tensor.Full([Count], 2.5))
            {
                first = Address(a);
            }

            var hits = NativeAllocator.CacheStatistics.Hits;
            NativeAllocator.CacheStatistics.CachedBytes.Should().BeGreaterThanOrEqualTo(40L << 20, "the freed block is kept");
            using (var b = Tensor.Ones([Count]))
            {
                Address(b).Should().Be(first, "the same size class gets the cached block back");
                NativeAllocator.CacheStatistics.Hits.Should().BeGreaterThan(hits);
                using var sum = b.Sum();
                sum.ItemDouble().Should().Be(Count, "a reused block holds the new tensor's values, not the old ones");
            }

            NativeAllocator.ReleaseCache();
            NativeAllocator.CacheStatistics.CachedBytes.Should().Be(0);

            // Limit 0: nothing is kept.
            NativeAllocator.CacheLimitBytes = 0;
            using (Tensor.Ones([Count]))
            {
            }

            NativeAllocator.CacheStatistics.Should().Match<TensorCacheStatistics>(s => s.CachedBytes == 0 && s.LimitBytes == 0);
            FluentActions.Invoking(() => NativeAllocator.CacheLimitBytes = -1).Should().Throw<ArgumentOutOfRangeException>();
        }
        finally
        {
            NativeAllocator.CacheLimitBytes = limit;
        }
    }

    /// <summary>
    /// Whether glibc served this tensor's memory with a mapping of its own: every chunk malloc/posix_memalign hands out
    /// is preceded by its size word, whose bit 1 (IS_MMAPPED) says so — the bit free() itself reads. Asking the
    /// allocation itself, rather than comparing process-wide counters, is immune to other threads allocating or
    /// freeing at the same time (the finalizer thread releasing tensors, other tests).
    /// </summary>
    private static unsafe bool IsOwnMapping(Tensor t)
    {
        fixed (float* p = t.AsSpan<float>())
        {
            var sizeWord = *(ulong*)((byte*)p - sizeof(ulong));
            return (sizeWord & 2) != 0;
        }
    }

    [Fact]
    public void Training_scopes_serve_large_tensors_from_the_heap_and_then_restore_the_inference_setting()
    {
        NativeAllocator.Apply().Should().BeTrue("this check needs the tuning (run without MASKRCNN_MALLOC_TUNING=0 / MALLOC_* variables)");
        const long Bytes = 4L << 20; // above the 128 KiB inference threshold, below the 32 MiB training one

        // This checks glibc's threshold: with the tensor cache off (a cached block would come back whatever glibc does).
        var limit = NativeAllocator.CacheLimitBytes;
        NativeAllocator.CacheLimitBytes = 0;
        using var restore = new Restore(() => NativeAllocator.CacheLimitBytes = limit);

        bool Mapped()
        {
            using var t = Tensor.Ones([Bytes / 4]);
            return IsOwnMapping(t);
        }

        using (var small = Tensor.Ones([16]))
        {
            IsOwnMapping(small).Should().BeFalse("the check itself: a 64-byte tensor comes from the heap");
        }

        Mapped().Should().BeTrue("outside training a 4 MiB tensor is its own mapping");
        using (NativeAllocator.ForTraining())
        {
            using (NativeAllocator.ForTraining())
            {
                Mapped().Should().BeFalse("inside training it comes from the heap");
            }

            Mapped().Should().BeFalse("the outer scope is still open");
        }

        Mapped().Should().BeTrue("closing the last scope restores the 128 KiB threshold");
    }

    private sealed class Restore(Action action) : IDisposable
    {
        public void Dispose() => action();
    }
}
