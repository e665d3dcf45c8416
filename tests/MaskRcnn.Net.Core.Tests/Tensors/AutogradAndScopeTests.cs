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

    [Fact]
    public void Libtorch_uses_OpenBLAS_and_a_1024_matmul_is_fast()
    {
        using var scope = Torch.NewDisposeScope();
        var a = Tensor.Randn([1024, 1024]);
        var b = Tensor.Randn([1024, 1024]);
        a.MatMul(b).Sum().ItemDouble(); // warm-up, loads BLAS
        var maps = File.ReadAllText("/proc/self/maps");
        var blasLines = maps.Split('\n').Where(l => l.Contains("blas", StringComparison.OrdinalIgnoreCase)).ToList();
        blasLines.Should().Contain(l => l.Contains("openblas", StringComparison.OrdinalIgnoreCase),
            "libblas.so.3 must resolve to OpenBLAS (apt-get install libopenblas0-pthread); loaded: " + string.Join(" | ", blasLines));
        var sw = Stopwatch.StartNew();
        a.MatMul(b).Sum().ItemDouble();
        sw.Elapsed.TotalSeconds.Should().BeLessThan(0.5, "reference BLAS takes seconds for a 1024² matmul");
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
