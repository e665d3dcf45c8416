using System.Diagnostics;
using MaskRcnn.Net.Core.Tests.TestSupport;

namespace MaskRcnn.Net.Core.Tests.Tensors;

/// <summary>RSS is process-wide: memory tests run alone, after every parallel test of the assembly.</summary>
[CollectionDefinition("memory", DisableParallelization = true)]
public sealed class MemoryCollection
{
}

[Collection("memory")]
public class AutogradAndScopeTests
{
    [Fact]
    public void Backward_of_sum_of_squares_is_twice_x()
    {
        using var scope = Torch.NewDisposeScope();
        var x = Tensor.FromArray(new float[] { 1, -2, 3 }).RequiresGrad_();
        x.IsLeaf.Should().BeTrue();
        var y = (x * x).Sum();
        y.RequiresGrad.Should().BeTrue();
        y.Backward();
        x.Grad!.ToArray<float>().Should().Equal(2, -4, 6);
        (x * 3).Sum().Backward();
        x.Grad!.ToArray<float>().Should().Equal([5f, -1f, 9f], "gradients accumulate");
        x.Grad = null;
        x.Grad.Should().BeNull();
    }

    [Fact]
    public void NoGrad_and_inference_mode_stop_recording_and_restore()
    {
        using var scope = Torch.NewDisposeScope();
        var x = Tensor.Ones([2]).RequiresGrad_();
        Torch.IsGradEnabled.Should().BeTrue();
        using (Torch.NoGrad())
        {
            Torch.IsGradEnabled.Should().BeFalse();
            (x * 2).RequiresGrad.Should().BeFalse();
        }

        Torch.IsGradEnabled.Should().BeTrue();
        (x * 2).RequiresGrad.Should().BeTrue();
        using (Torch.InferenceMode())
        {
            var y = x * 2;
            y.RequiresGrad.Should().BeFalse();
            y.IsInference.Should().BeTrue();
        }

        var d = (x * 2).Detach();
        d.RequiresGrad.Should().BeFalse();
    }

    [Fact]
    public void Backward_on_non_scalar_without_gradient_throws_TorchException()
    {
        using var scope = Torch.NewDisposeScope();
        var x = Tensor.Ones([3]).RequiresGrad_();
        var y = x * 2;
        FluentActions.Invoking(() => y.Backward()).Should().Throw<TorchException>().WithMessage("*scalar*");
    }

    [Fact]
    public void Dispose_scope_disposes_its_tensors_except_moved_ones()
    {
        Tensor inner, kept, detached;
        using (var outer = Torch.NewDisposeScope())
        {
            using (var scope = Torch.NewDisposeScope())
            {
                inner = Tensor.Zeros([3]);
                kept = (inner + 1).MoveToOuterDisposeScope();
                detached = Tensor.Ones([1]).DetachFromDisposeScope();
                scope.Count.Should().Be(1);
            }

            inner.IsDisposed.Should().BeTrue();
            kept.IsDisposed.Should().BeFalse();
            kept.ToArray<float>().Should().Equal(1, 1, 1);
            outer.Count.Should().Be(1);
        }

        kept.IsDisposed.Should().BeTrue();
        detached.IsDisposed.Should().BeFalse();
        detached.Dispose();
        DisposeScope.Current.Should().BeNull();
    }

    [Fact]
    public void Hundred_thousand_temporaries_in_scopes_leave_RSS_flat()
    {
        static long Rss()
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
            using var p = Process.GetCurrentProcess();
            p.Refresh();
            return p.WorkingSet64;
        }

        using var a = Tensor.Randn([64, 64]);
        void Round(int n)
        {
            for (var i = 0; i < n; i++)
            {
                using var scope = Torch.NewDisposeScope();
                var t = (a * 2 + 1).Relu().Sum(0);
                _ = t.Shape;
            }
        }

        Round(10_000); // warm-up: allocator pools, JIT
        var before = Rss();
        Round(100_000);
        var after = Rss();
        // Every temporary is 16 KiB: leaking them would grow RSS by > 4 GiB; allow 64 MiB of allocator noise.
        (after - before).Should().BeLessThan(64L << 20, $"RSS went from {before >> 20} MiB to {after >> 20} MiB");
    }

    [Fact]
    public void ManualSeed_reproduces_torch_random_streams()
    {
        Torch.ManualSeed(1234);
        using var a = Tensor.Randn([5]);
        using var u = Tensor.Rand([3]);
        using var p = Tensor.RandPerm(6);
        Torch.ManualSeed(1234);
        using var b = Tensor.Randn([5]);
        b.ToArray<float>().Should().Equal(a.ToArray<float>());
        var py = PythonOracle.Run("""
            import torch
            torch.manual_seed(1234)
            a = torch.randn(5); u = torch.rand(3); p = torch.randperm(6)
            print(' '.join(repr(float(v)) for v in a.tolist() + u.tolist() + p.tolist()))
            """).Trim().Split(' ').Select(double.Parse).ToArray();
        Assertions.AllClose(a.ToArray<double>().Concat(u.ToArray<double>()).Concat(p.ToArray<double>()).ToArray(), py, atol: 0, rtol: 0, what: "random streams");
    }

    /// <summary>glibc's <c>Dl_info</c>.</summary>
    [System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential)]
    private struct DlInfo
    {
        public IntPtr FileName, FileBase, SymbolName, SymbolAddress;
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "dladdr")]
    private static extern int DlAddr(IntPtr address, out DlInfo info);

    /// <summary>
    /// Which file serves libtorch's BLAS calls, read from the loader rather than from speed (a timing would depend on
    /// the machine's load): <c>sgemm_</c> looked up the way libtorch_cpu's own references are (in the library and its
    /// dependencies) must come from OpenBLAS, not from the reference BLAS that is 14x slower.
    /// </summary>
    [Fact]
    public void Libtorch_uses_OpenBLAS()
    {
        using var scope = Torch.NewDisposeScope();
        var a = Tensor.Randn([256, 256]);
        var b = Tensor.Randn([256, 256]);
        a.MatMul(b).Sum().ItemDouble(); // loads BLAS
        var maps = File.ReadAllText("/proc/self/maps").Split('\n');
        var blasLines = maps.Where(l => l.Contains("blas", StringComparison.OrdinalIgnoreCase)).ToList();
        blasLines.Should().Contain(l => l.Contains("openblas", StringComparison.OrdinalIgnoreCase),
            "libblas.so.3 must resolve to OpenBLAS (apt-get install libopenblas0-pthread); loaded: " + string.Join(" | ", blasLines));

        var torchCpu = maps.Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)).Where(f => f.Length >= 6)
            .Select(f => f[5]).FirstOrDefault(path => Path.GetFileName(path).StartsWith("libtorch_cpu.so", StringComparison.Ordinal));
        torchCpu.Should().NotBeNull("libtorch_cpu is mapped once a tensor exists");
        var handle = System.Runtime.InteropServices.NativeLibrary.Load(torchCpu!);
        try
        {
            var sgemm = System.Runtime.InteropServices.NativeLibrary.GetExport(handle, "sgemm_");
            DlAddr(sgemm, out var info).Should().NotBe(0, "dladdr knows the address of sgemm_");
            var file = System.Runtime.InteropServices.Marshal.PtrToStringUTF8(info.FileName)!;
            var real = new FileInfo(file).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? file;
            real.Should().ContainEquivalentOf("openblas", $"libtorch's sgemm_ comes from {file} (-> {real}); install libopenblas0-pthread");
        }
        finally
        {
            System.Runtime.InteropServices.NativeLibrary.Free(handle);
        }
    }

    [Fact]
    public void Tensors_on_an_unavailable_cuda_device_throw_TorchException()
    {
        if (Device.IsCudaAvailable)
        {
            using var t = Tensor.Ones([2], device: Device.Cuda(0));
            t.Device.Should().Be(Device.Cuda(0));
            return;
        }

        FluentActions.Invoking(() => Tensor.Ones([2], device: Device.Cuda(0))).Should().Throw<TorchException>();
        Device.Parse("cuda:1").Should().Be(Device.Cuda(1));
        Device.Parse("cpu").Should().Be(Device.Cpu);
        FluentActions.Invoking(() => Device.Parse("tpu")).Should().Throw<FormatException>();
    }
}
