using BenchmarkDotNet.Attributes;
using MaskRcnn.Net.Core;
using MaskRcnn.Net.Core.NN;

namespace MaskRcnn.Net.Benchmarks;

/// <summary>
/// The binding against the same ops in python3-torch (see compare_torch.sh, which runs the Python side on the
/// same shapes and thread count and prints ours/torch ratios). Tensors are created once; each call's result is
/// disposed immediately, as model code does through dispose scopes.
/// </summary>
[MemoryDiagnoser(displayGenColumns: false)]
[MedianColumn]
public class BindingBenchmarks
{
    private Tensor convInput = null!;
    private Tensor convWeight = null!;
    private Tensor convBias = null!;
    private Tensor matA = null!;
    private Tensor matB = null!;
    private Tensor tiny = null!;

    /// <summary>Threads for libtorch (the comparison uses the same number in Python).</summary>
    [Params(2)]
    public int Threads { get; set; }

    /// <summary>Creates the inputs: FPN-sized conv (256→256, 3×3, 200×272) and 1024² matrices.</summary>
    [GlobalSetup]
    public void Setup()
    {
        Torch.NumThreads = Threads;
        Torch.ManualSeed(0);
        convInput = Tensor.Randn([1, 256, 200, 272]);
        convWeight = Tensor.Randn([256, 256, 3, 3]);
        convBias = Tensor.Randn([256]);
        matA = Tensor.Randn([1024, 1024]);
        matB = Tensor.Randn([1024, 1024]);
        tiny = Tensor.Ones([1]);
    }

    /// <summary>Frees the inputs.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var t in new[] { convInput, convWeight, convBias, matA, matB, tiny })
        {
            t.Dispose();
        }
    }

    /// <summary>conv2d 256→256 3×3 padding 1 on [1, 256, 200, 272] (an FPN P2 layer).</summary>
    [Benchmark]
    public void Conv2d()
    {
        using var _ = Torch.InferenceMode();
        using var y = Functional.Conv2d(convInput, convWeight, convBias, padding: 1);
    }

    /// <summary>1024×1024 matmul.</summary>
    [Benchmark]
    public void MatMul1024()
    {
        using var _ = Torch.InferenceMode();
        using var y = matA.MatMul(matB);
    }

    /// <summary>An op with negligible compute (1-element add): measures the per-call cost of the binding.</summary>
    [Benchmark]
    public void TinyAdd()
    {
        using var y = tiny + tiny;
    }

    /// <summary>A metadata read (no libtorch compute, no allocation of a tensor): the bare P/Invoke round trip.</summary>
    [Benchmark]
    public long NumEl() => tiny.NumEl;
}
