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
}
