using BenchmarkDotNet.Attributes;
using MaskRcnn.Net.Core;
using MaskRcnn.Net.Core.Detection;
using MaskRcnn.Net.RoIAlign;

namespace MaskRcnn.Net.Benchmarks;

/// <summary>
/// Detection kernels on the shapes of a Mask R-CNN forward pass (compare_torch.sh runs torchvision's kernels on
/// the same inputs — generated from the same seed, which reproduces torch's random streams — and prints ratios).
/// </summary>
[MemoryDiagnoser(displayGenColumns: false)]
[MedianColumn]
public class KernelBenchmarks
{
    private Tensor feature = null!;
    private Tensor rois = null!;
    private Tensor[] levels = null!;
    private Tensor[] levelBoxes = null!;

    /// <summary>libtorch threads (the Python side uses the same).</summary>
    [Params(2)]
    public int Threads { get; set; }

    /// <summary>Builds the inputs; see compare_torch.sh for the identical Python construction.</summary>
    [GlobalSetup]
    public void Setup()
    {
        Torch.NumThreads = Threads;
        Torch.ManualSeed(0);
        feature = Tensor.Randn([1, 256, 200, 272]);
        rois = Inputs.Rois(1000, 1088, 800);
        Torch.ManualSeed(1);
        levels = [Tensor.Randn([1, 256, 200, 272]), Tensor.Randn([1, 256, 100, 136]), Tensor.Randn([1, 256, 50, 68]), Tensor.Randn([1, 256, 25, 34])];
        levelBoxes = [rois.Slice(1, 1, 5).Contiguous()];
    }

    /// <summary>Frees the inputs.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var t in new[] { feature, rois }.Concat(levels).Concat(levelBoxes))
        {
            t.Dispose();
        }
    }

    /// <summary>RoIAlign forward: 1000 RoIs on [1, 256, 200, 272], 7×7, sampling 2, scale 1/4.</summary>
    [Benchmark]
    public void RoIAlignForward()
    {
        using var _ = Torch.NoGrad();
        using var y = MaskRcnn.Net.RoIAlign.RoIAlign.Apply(feature, rois, 7, 7, 0.25, 2, aligned: false);
    }

    /// <summary>RoIAlign forward + backward into the feature map (same shapes).</summary>
    [Benchmark]
    public void RoIAlignForwardBackward()
    {
        using var scope = Torch.NewDisposeScope();
        var x = feature.Detach().RequiresGrad_();
        MaskRcnn.Net.RoIAlign.RoIAlign.Apply(x, rois, 7, 7, 0.25, 2, aligned: false).Sum().Backward();
    }

    /// <summary>MultiScaleRoIAlign over 4 FPN levels for 1000 boxes (one 800×1088 image).</summary>
    [Benchmark]
    public void MultiScaleRoIAlign4Levels()
    {
        using var _ = Torch.NoGrad();
        using var y = new MultiScaleRoIAlign(7, 2).Forward(levels, levelBoxes, [new ImageSize(800, 1088)]);
    }

}

/// <summary>NMS at IoU 0.5 over 1000 / 4000 / 12000 boxes (the sizes RPN and RoI heads see).</summary>
[MemoryDiagnoser(displayGenColumns: false)]
[MedianColumn]
public class NmsBenchmarks
{
    private Tensor boxes = null!;
    private Tensor scores = null!;

    /// <summary>libtorch threads.</summary>
    [Params(2)]
    public int Threads { get; set; }

    /// <summary>Number of boxes.</summary>
    [Params(1000, 4000, 12000)]
    public int Boxes { get; set; }

    /// <summary>Builds the boxes from seed 2.</summary>
    [GlobalSetup]
    public void Setup()
    {
        Torch.NumThreads = Threads;
        Torch.ManualSeed(2);
        (boxes, scores) = Inputs.NmsInputs(Boxes);
    }

    /// <summary>Frees the inputs.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        boxes.Dispose();
        scores.Dispose();
    }

    /// <summary>Nms.Apply at IoU 0.5.</summary>
    [Benchmark]
    public void NmsApply()
    {
        using var keep = Nms.Apply(boxes, scores, 0.5);
    }
}

/// <summary>Deterministic benchmark inputs (mirrored line by line in compare_torch.sh).</summary>
internal static class Inputs
{
    /// <summary>[n, 5] RoIs for image 0: top-left uniform in the image, sizes 8..264 px.</summary>
    public static Tensor Rois(int n, int width, int height)
    {
        using var scope = Torch.NewDisposeScope();
        var xy = Tensor.Rand([n, 2]) * Tensor.FromArray(new float[] { width, height });
        var wh = Tensor.Rand([n, 2]) * 256 + 8;
        return Tensor.Cat([Tensor.Zeros([n, 1]), xy, xy + wh], 1).MoveToOuterDisposeScope();
    }

    /// <summary>n boxes clustered like RPN proposals, with random scores.</summary>
    public static (Tensor Boxes, Tensor Scores) NmsInputs(int n)
    {
        using var scope = Torch.NewDisposeScope();
        var xy = Tensor.Rand([n, 2]) * 1000;
        var wh = Tensor.Rand([n, 2]) * 200 + 4;
        var boxes = Tensor.Cat([xy, xy + wh], 1);
        var scores = Tensor.Rand([n]);
        return (boxes.MoveToOuterDisposeScope(), scores.MoveToOuterDisposeScope());
    }
}
