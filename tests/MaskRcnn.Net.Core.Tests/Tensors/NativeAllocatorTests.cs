
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
}
