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
    [InlineData(7, 2)]
    [InlineData(14, 2)]
    [InlineData(7, 0)]
    public void Matches_torchvision_MultiScaleRoIAlign_on_two_images(int output, int sampling)
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
            from torchvision.ops import MultiScaleRoIAlign
            x = OrderedDict((str(i), inp['f%d' % i].float()) for i in range(4))
            m = MultiScaleRoIAlign(['0', '1', '2', '3'], {{output}}, {{sampling}})
            out['y'] = m(x, [inp['b0'].float(), inp['b1'].float()], [(96, 120), (80, 128)])
            """, inputs);
        var pooler = new MultiScaleRoIAlign(output, sampling);
        var y = pooler.Forward(feats, boxes, [new ImageSize(96, 120), new ImageSize(80, 128)]);
        Assertions.AllClose(y, expected["y"], atol: 1e-5, what: "multi-scale roi align");
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
