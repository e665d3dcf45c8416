using MaskRcnn.Net.Core;
using MaskRcnn.Net.Core.Detection;
using MaskRcnn.Net.Core.Tests.TestSupport;

namespace MaskRcnn.Net.RoIAlign.Tests;

public class MultiScaleRoIAlignTests
{
    [Fact]
    public void Level_mapper_matches_hand_computed_levels()
    {
        using var scope = Torch.NewDisposeScope();
        // sqrt(area) 224 -> level 4, 112 -> 3, 448 -> 5, 1 -> 0 clamped to 2, 10000 -> 9 clamped to 5; eps keeps 224 on 4.
        var boxes = Tensor.FromArray(new float[]
        {
            0, 0, 224, 224,
            10, 10, 122, 122,
            0, 0, 448, 448,
            5, 5, 6, 6,
            0, 0, 10000, 10000,
        }, 5, 4);
        new LevelMapper(2, 5).Map([boxes]).ToArray<long>().Should().Equal(2, 1, 3, 0, 3);
    }

    [Theory]
    [InlineData(7, 2, false)]
    [InlineData(14, 2, false)]
    [InlineData(7, 0, false)]
    [InlineData(14, 2, true)]
    [InlineData(7, 0, true)]
    public void Matches_torchvision_MultiScaleRoIAlign_on_two_images(int output, int sampling, bool aligned)
    {
        using var scope = Torch.NewDisposeScope();
        Torch.ManualSeed(21);
        // Padded batch 96x128 with images 96x120 and 80x128; FPN levels at strides 4, 8, 16, 32.
        var feats = new[] { 4, 8, 16, 32 }.Select(s => Tensor.Randn([2, 8, 96 / s, 128 / s])).ToArray();
        var xy = Tensor.Rand([30, 2]) * 100;
        var wh = Tensor.Rand([30, 2]).Pow(2) * 120 + 1;
        var all = Tensor.Cat([xy, xy + wh], 1);
        var boxes = new[] { all.Slice(0, 0, 18), all.Slice(0, 18, 30) };
        var inputs = new Dictionary<string, Tensor> { ["b0"] = boxes[0], ["b1"] = boxes[1] };
        for (var i = 0; i < 4; i++)
        {
            inputs[$"f{i}"] = feats[i];
        }

        var expected = PythonOracle.Compute($$"""
            from collections import OrderedDict
            import torchvision.ops.poolers as poolers
            from torchvision.ops import MultiScaleRoIAlign
            if {{(aligned ? "True" : "False")}}:
                # torchvision's pooler always passes aligned=False; the aligned variant is the same with roi_align(aligned=True).
                plain = poolers.roi_align
                poolers.roi_align = lambda *a, **k: plain(*a, **k, aligned=True)
            x = OrderedDict((str(i), inp['f%d' % i].float()) for i in range(4))
            m = MultiScaleRoIAlign(['0', '1', '2', '3'], {{output}}, {{sampling}})
            out['y'] = m(x, [inp['b0'].float(), inp['b1'].float()], [(96, 120), (80, 128)])
            """, inputs);
        var pooler = new MultiScaleRoIAlign(new RoIPoolerOptions(output, sampling) { Aligned = aligned });
        pooler.Aligned.Should().Be(aligned);
        var y = pooler.Forward(feats, boxes, [new ImageSize(96, 120), new ImageSize(80, 128)]);
        Assertions.AllClose(y, expected["y"], atol: 1e-5, what: $"multi-scale roi align (aligned={aligned})");
        if (aligned)
        {
            // The correction moves the samples: the unaligned pooler differs on the same input.
            var plain = new MultiScaleRoIAlign(output, sampling).Forward(feats, boxes, [new ImageSize(96, 120), new ImageSize(80, 128)]);
            (plain - y).Abs().Max().ItemDouble().Should().BeGreaterThan(1e-3);
        }
    }

    private static readonly double[] LevelScales = [0.25, 0.125, 0.0625, 0.03125];

    // Four levels of odd sizes over two images; level 2 gets no RoI. With 3 channels every level runs the planar
    // kernel; with 16 the busy levels are transposed to channels-last once and the quiet one stays planar.
    private static (Tensor[] Features, Tensor Rois, Tensor Levels) MultiLevelInputs(int channels, DType dtype, int seed)
    {
        Torch.ManualSeed((ulong)seed);
        var features = new[] { (23, 31), (12, 16), (6, 8), (3, 4) }
            .Select(s => Tensor.Randn([2, channels, s.Item1, s.Item2], dtype)).ToArray();
        var rois = RoIAlignTests.MakeRois(seed, 50).To(dtype);
        var levels = Enumerable.Range(0, (int)rois.Size(0)).Select(i => (long)(i % 5 == 0 ? 3 : i % 2)).ToArray();
        levels[7] = 3; // a few RoIs on the coarsest level, many on the finest ones
        return (features, rois, Tensor.FromArray(levels));
    }

    private static string LevelByLevelScript(string dtype, int outH, int outW, int sampling, bool aligned) => $$"""
        from torchvision.ops import roi_align
        scales = [0.25, 0.125, 0.0625, 0.03125]
        fs = [inp[f'f{l}'].to(torch.{{dtype}}).requires_grad_() for l in range(4)]
        rois = inp['rois'].to(torch.{{dtype}})
        levels = inp['levels'].long()
        y = torch.zeros(rois.shape[0], fs[0].shape[1], {{outH}}, {{outW}}, dtype=torch.{{dtype}})
        for l in range(4):
            idx = (levels == l).nonzero().flatten()
            if len(idx):
                y[idx] = roi_align(fs[l], rois[idx], ({{outH}}, {{outW}}), scales[l], {{sampling}}, {{(aligned ? "True" : "False")}})
        y.backward(inp['g'].to(torch.{{dtype}}))
        out['y'] = y
        for l in range(4):
            out[f'gx{l}'] = fs[l].grad if fs[l].grad is not None else torch.zeros_like(fs[l])
        """;

    [Theory]
    [InlineData(3, 2, false)]
    [InlineData(16, 2, false)]
    [InlineData(16, 0, true)]
    [InlineData(3, 0, true)]
    [InlineData(16, 0, false)]
    public void Fused_multi_level_kernel_matches_torchvision_roi_align_level_by_level(int channels, int sampling, bool aligned)
    {
        using var scope = Torch.NewDisposeScope();
        var (features, rois, levels) = MultiLevelInputs(channels, DType.Float32, 40 + channels + sampling);
        var g = Tensor.Randn([rois.Size(0), channels, 5, 4]);
        var inputs = new Dictionary<string, Tensor> { ["rois"] = rois, ["levels"] = levels.To(DType.Float64), ["g"] = g };
        for (var l = 0; l < 4; l++)
        {
            inputs[$"f{l}"] = features[l];
        }

        var expected = PythonOracle.Compute(LevelByLevelScript("float32", 5, 4, sampling, aligned), inputs);

        // No gradient: the fused native pass.
        Tensor fused;
        using (Torch.NoGrad())
        {
            fused = RoIAlign.ApplyMultiLevel(features, LevelScales, rois, levels, 5, 4, sampling, aligned);
        }

        fused.RequiresGrad.Should().BeFalse();
        Assertions.AllClose(fused, expected["y"], atol: 1e-5, what: $"fused forward C={channels} sampling={sampling} aligned={aligned}");

        // With gradients: level by level through the autograd-aware kernel; same values, torchvision's gradients.
        var leaves = features.Select(f => f.Detach().RequiresGrad_()).ToArray();
        var y = RoIAlign.ApplyMultiLevel(leaves, LevelScales, rois, levels, 5, 4, sampling, aligned);
        y.ToArray<float>().Should().Equal(fused.ToArray<float>());
        y.Backward(g);
        foreach (var l in new[] { 0, 1, 3 })
        {
            Assertions.AllClose(leaves[l].Grad!, expected[$"gx{l}"], atol: 1e-5, what: $"gradient of level {l}");
        }

        // No RoI reads level 2: torchvision gives it no gradient either.
        leaves[2].Grad.Should().BeNull();
        expected["gx2"].Data.Should().OnlyContain(v => v == 0);
    }

    [Fact]
    public void Fused_multi_level_kernel_matches_torchvision_in_float64()
    {
        using var scope = Torch.NewDisposeScope();
        var (features, rois, levels) = MultiLevelInputs(16, DType.Float64, 52);
        var g = Tensor.Randn([rois.Size(0), 16, 3, 3], DType.Float64);
        var inputs = new Dictionary<string, Tensor> { ["rois"] = rois, ["levels"] = levels.To(DType.Float64), ["g"] = g };
        for (var l = 0; l < 4; l++)
        {
            inputs[$"f{l}"] = features[l];
        }

        var expected = PythonOracle.Compute(LevelByLevelScript("float64", 3, 3, 2, true), inputs);
        using (Torch.NoGrad())
        {
            var fused = RoIAlign.ApplyMultiLevel(features, LevelScales, rois, levels, 3, 3, 2, aligned: true);
            fused.DType.Should().Be(DType.Float64);
            Assertions.AllClose(fused, expected["y"], atol: 1e-12, rtol: 1e-12, what: "fused float64 forward");
        }
    }

    [Fact]
    public void Fused_multi_level_kernel_handles_no_rois_and_rejects_bad_levels()
    {
        using var scope = Torch.NewDisposeScope();
        var (features, rois, levels) = MultiLevelInputs(3, DType.Float32, 60);
        using (Torch.NoGrad())
        {
            var empty = RoIAlign.ApplyMultiLevel(features, LevelScales, Tensor.Zeros([0, 5]), Tensor.Zeros([0], DType.Int64), 7, 7, 2, false);
            empty.Shape.Should().Equal(0, 3, 7, 7);
        }

        var leaves = features.Select(f => f.Detach().RequiresGrad_()).ToArray();
        var none = RoIAlign.ApplyMultiLevel(leaves, LevelScales, Tensor.Zeros([0, 5]), Tensor.Zeros([0], DType.Int64), 7, 7, 0, true);
        none.Shape.Should().Equal(0, 3, 7, 7);

        var tooHigh = Tensor.FromArray(levels.ToArray<long>().Select((v, i) => i == 0 ? 4L : v).ToArray());
        FluentActions.Invoking(() => RoIAlign.ApplyMultiLevel(features, LevelScales, rois, tooHigh, 7, 7, 2, false))
            .Should().Throw<ArgumentException>().Which.ParamName.Should().Be("levels");
        FluentActions.Invoking(() => RoIAlign.ApplyMultiLevel(features, LevelScales, rois, levels.To(DType.Float32), 7, 7, 2, false))
            .Should().Throw<ArgumentException>().Which.ParamName.Should().Be("levels");
        FluentActions.Invoking(() => RoIAlign.ApplyMultiLevel(features, LevelScales, rois, levels.Slice(0, 0, 3), 7, 7, 2, false))
            .Should().Throw<ArgumentException>().Which.ParamName.Should().Be("levels");
        FluentActions.Invoking(() => RoIAlign.ApplyMultiLevel(features, LevelScales.Take(3).ToArray(), rois, levels, 7, 7, 2, false))
            .Should().Throw<ArgumentException>().Which.ParamName.Should().Be("spatialScales");
        var otherChannels = features.ToArray();
        otherChannels[1] = Tensor.Randn([2, 4, 12, 16]);
        FluentActions.Invoking(() => RoIAlign.ApplyMultiLevel(otherChannels, LevelScales, rois, levels, 7, 7, 2, false))
            .Should().Throw<ArgumentException>().Which.ParamName.Should().Be("features");
    }

    [Fact]
    public void RoIPool_variant_pools_the_same_rois_differently_and_gradients_flow()
    {
        using var scope = Torch.NewDisposeScope();
        Torch.ManualSeed(3);
        var feats = new[] { 4, 8 }.Select(s => Tensor.Randn([1, 4, 64 / s, 64 / s]).RequiresGrad_()).ToArray();
        var boxes = new[] { Tensor.FromArray(new float[] { 3.3f, 4.1f, 40.7f, 30.2f, 10, 10, 20, 20 }, 2, 4) };
        var sizes = new[] { new ImageSize(64, 64) };
        var align = new MultiScaleRoIAlign(7, 2).Forward(feats, boxes, sizes);
        var pool = new MultiScaleRoIAlign(7, 2, PoolingKernel.RoIPool).Forward(feats, boxes, sizes);
        pool.Shape.Should().Equal(align.Shape);
        align.AllClose(pool, 1e-3, 1e-3).Should().BeFalse();
        (align.Sum() + pool.Sum()).Backward();
        feats[0].Grad.Should().NotBeNull();
        feats[0].Grad!.Abs().Sum().ItemDouble().Should().BeGreaterThan(0);
    }

    [Fact]
    public void The_options_record_builds_the_same_pooler_and_its_canonical_level_is_used()
    {
        using var scope = Torch.NewDisposeScope();
        Torch.ManualSeed(4);
        var feats = new[] { 4, 8, 16 }.Select(s => Tensor.Randn([1, 3, 96 / s, 96 / s])).ToArray();
        var boxes = new[] { Tensor.FromArray(new float[] { 2, 3, 30, 40, 10, 12, 90, 88, 40, 40, 52, 49 }, 3, 4) };
        var sizes = new[] { new ImageSize(96, 96) };
        var options = new RoIPoolerOptions(OutputSize: 5, SamplingRatio: 3, CanonicalScale: 56, CanonicalLevel: 3);
        var pooler = new MultiScaleRoIAlign(options);
        pooler.Options.Should().Be(options);
        pooler.OutputSize.Should().Be((5, 5));
        new MultiScaleRoIAlign(5, 3, PoolingKernel.RoIAlign, 56, 3).Options.Should().Be(options);

        var y = pooler.Forward(feats, boxes, sizes);
        y.AllClose(new MultiScaleRoIAlign(5, 3, canonicalScale: 56, canonicalLevel: 3).Forward(feats, boxes, sizes), 0, 0).Should().BeTrue();

        // With torchvision's 224 / 4 the same boxes map to other levels, so the pooled features differ.
        y.AllClose(new MultiScaleRoIAlign(options with { CanonicalScale = 224, CanonicalLevel = 4 }).Forward(feats, boxes, sizes), 1e-4, 1e-4)
            .Should().BeFalse();

        FluentActions.Invoking(() => new MultiScaleRoIAlign(options with { OutputSize = 0 }))
            .Should().Throw<ArgumentException>().Which.ParamName.Should().Be(nameof(RoIPoolerOptions.OutputSize));
        FluentActions.Invoking(() => new MultiScaleRoIAlign(options with { CanonicalLevel = -2 }))
            .Should().Throw<ArgumentException>().Which.ParamName.Should().Be(nameof(RoIPoolerOptions.CanonicalLevel));
        FluentActions.Invoking(() => new MultiScaleRoIAlign(options with { Kernel = PoolingKernel.RoIPool, Aligned = true }))
            .Should().Throw<ArgumentException>().Which.ParamName.Should().Be(nameof(RoIPoolerOptions.Aligned));
        (options with { Aligned = true }).Should().NotBe(options, "the half-pixel correction is part of the settings a model saves");
    }

    [Fact]
    public void Bad_arguments_throw()
    {
        using var scope = Torch.NewDisposeScope();
        var pooler = new MultiScaleRoIAlign();
        FluentActions.Invoking(() => pooler.Forward([], [Tensor.Zeros([1, 4])], [new ImageSize(8, 8)])).Should().Throw<ArgumentException>();
        FluentActions.Invoking(() => pooler.Forward([Tensor.Zeros([1, 2, 4, 4])], [Tensor.Zeros([1, 3])], [new ImageSize(8, 8)])).Should().Throw<ArgumentException>();
        FluentActions.Invoking(() => pooler.Forward([Tensor.Zeros([1, 2, 4, 4])], [Tensor.Zeros([1, 4])], [])).Should().Throw<ArgumentException>();
        FluentActions.Invoking(() => new LevelMapper(5, 2)).Should().Throw<ArgumentException>();
    }
}
