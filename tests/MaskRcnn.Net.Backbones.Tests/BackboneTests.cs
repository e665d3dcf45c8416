using MaskRcnn.Net.Core.NN;
using MaskRcnn.Net.Core.Structures;

namespace MaskRcnn.Net.Backbones.Tests;

public class BackboneTests
{
    [Fact]
    public void State_dict_keys_follow_torchvision_names()
    {
        using var model = ResNetFpn.Create(50);
        var keys = model.StateDict().Select(kv => kv.Key).ToList();
        keys.Should().StartWith(["body.conv1.weight", "body.bn1.weight", "body.bn1.bias", "body.bn1.running_mean", "body.bn1.running_var"]);
        keys.Should().Contain([
            "body.layer1.0.conv3.weight", "body.layer1.0.bn3.running_var", "body.layer1.0.downsample.0.weight",
            "body.layer1.0.downsample.1.running_mean", "body.layer3.5.conv2.weight", "body.layer4.2.bn3.bias",
            "fpn.inner_blocks.0.0.weight", "fpn.inner_blocks.3.0.bias", "fpn.layer_blocks.2.0.weight",
        ]);
        keys.Should().NotContain(k => k.Contains("num_batches_tracked") || k.StartsWith("body.fc") || k.Contains("layer1.1.downsample"));
        keys.Count.Should().Be(265 + 16, "torchvision's resnet_fpn_backbone(resnet50) state dict has 281 entries");
        model.Body.StageChannels.Should().Equal(256, 512, 1024, 2048);
        model.OutChannels.Should().Be(256);
        model.FeatureNames.Should().Equal("0", "1", "2", "3", "pool");
    }

    [Theory]
    [InlineData(18, 2, 64)]
    [InlineData(34, 6, 64)]
    [InlineData(101, 23, 256)]
    public void Depths_have_torchvision_block_counts(int depth, int layer3Blocks, int c2Channels)
    {
        using var body = new ResNet(new ResNetOptions(depth, NormKind.BatchNorm));
        body.Stages[2].Count.Should().Be(layer3Blocks);
        body.StageChannels[0].Should().Be(c2Channels);
        body.Stages[0][0].Downsample.Should().Match(d => (d != null) == (depth >= 50), "only bottlenecks project in layer1");
        FluentActions.Invoking(() => new ResNet(new ResNetOptions(42))).Should().Throw<ArgumentOutOfRangeException>().WithMessage("*18, 34, 50, 101, 152*");
    }

    [Fact]
    public void GroupNorm_groups_reach_every_norm_layer_and_must_divide_the_stem_channels()
    {
        using var body = new ResNet(new ResNetOptions(18, NormKind.GroupNorm) { GroupNormGroups = 8 });
        var norms = body.NamedModules().Select(m => m.Module).OfType<GroupNorm>().ToList();
        norms.Should().HaveCount(1 + 8 * 2 + 3, "stem + two per basic block + three downsamples");
        norms.Should().OnlyContain(n => n.Groups == 8);

        // 48 divides no norm layer's channels (64, 128, …): refused before any layer is made, naming the field.
        FluentActions.Invoking(() => new ResNet(new ResNetOptions(18, NormKind.GroupNorm) { GroupNormGroups = 48 }))
            .Should().Throw<ArgumentOutOfRangeException>().Which.ParamName.Should().Be(nameof(ResNetOptions.GroupNormGroups));
        new ResNetOptions(18, NormKind.BatchNorm) { GroupNormGroups = 48 }.Validate(); // ignored unless the norm is GroupNorm
    }

    [Fact]
    public void Trainable_layers_follow_torchvision_semantics()
    {
        static string[] Trainable(BackboneWithFpn m) =>
            m.NamedParameters().Where(p => p.Parameter.RequiresGrad).Select(p => p.Name).ToArray();

        using var m0 = ResNetFpn.Create(18, NormKind.BatchNorm, trainableLayers: 0);
        Trainable(m0).Should().OnlyContain(n => n.StartsWith("fpn."));
        Trainable(m0).Should().HaveCount(16);

        using var m3 = ResNetFpn.Create(18, NormKind.BatchNorm, trainableLayers: 3);
        var t3 = Trainable(m3);
        t3.Should().Contain(["body.layer2.0.conv1.weight", "body.layer2.0.bn1.weight", "body.layer4.1.bn2.bias", "fpn.layer_blocks.0.0.weight"]);
        t3.Should().NotContain(n => n.StartsWith("body.layer1.") || n.StartsWith("body.conv1") || n.StartsWith("body.bn1"));

        using var m5 = ResNetFpn.Create(18, NormKind.BatchNorm, trainableLayers: 5);
        Trainable(m5).Should().HaveCount(m5.Parameters().Count(), "5 trains every layer including bn1");

        using var m4 = ResNetFpn.Create(18, NormKind.BatchNorm, trainableLayers: 4);
        Trainable(m4).Should().NotContain(n => n.StartsWith("body.conv1") || n.StartsWith("body.bn1"));
        Trainable(m4).Should().Contain("body.layer1.0.conv1.weight");

        // Frozen BN has no parameters at all: its statistics and affine terms are buffers.
        using var frozen = ResNetFpn.Create(50, NormKind.FrozenBatchNorm, trainableLayers: 5);
        frozen.NamedParameters().Should().NotContain(p => p.Name.Contains(".bn") || p.Name.Contains("downsample.1"));

        // Re-selecting unfreezes.
        m0.Body.SetTrainableLayers(5);
        Trainable(m0).Should().HaveCount(m0.Parameters().Count());
        FluentActions.Invoking(() => ResNetFpn.Create(18, trainableLayers: 6)).Should().Throw<ArgumentOutOfRangeException>();
    }

    [Fact]
    public void Trainable_layer_sets_match_torchvision_for_every_count()
    {
        var fromPython = PythonOracle.Run("""
            import torch
            from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
            for tl in range(6):
                m = resnet_fpn_backbone(backbone_name="resnet18", weights=None, norm_layer=torch.nn.BatchNorm2d, trainable_layers=tl)
                print(",".join(k for k, p in m.named_parameters() if p.requires_grad))
            """).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        fromPython.Should().HaveCount(6);
        for (var tl = 0; tl <= 5; tl++)
        {
            using var m = ResNetFpn.Create(18, NormKind.BatchNorm, trainableLayers: tl);
            m.NamedParameters().Where(p => p.Parameter.RequiresGrad).Select(p => p.Name)
                .Should().Equal(fromPython[tl].Split(','), $"trainable_layers={tl}");
        }
    }

    [Fact]
    public void Group_norm_variant_builds_and_runs()
    {
        using var model = ResNetFpn.Create(new ResNetOptions(50, NormKind.GroupNorm) { GroupNormGroups = 16 });
        model.StateDict().Select(kv => kv.Key).Should().Contain("body.bn1.weight")
            .And.NotContain(k => k.Contains("running_"));
        model.Body.Bn1.Should().BeOfType<GroupNorm>().Which.Groups.Should().Be(16);
        using var scope = Torch.NewDisposeScope();
        FeatureMaps maps;
        using (Torch.NoGrad())
        {
            maps = model.Forward(Tensor.Randn([1, 3, 64, 96]));
        }

        maps.Select(m => m.Map.Shape).Should().BeEquivalentTo(
            new[] { new long[] { 1, 256, 16, 24 }, [1, 256, 8, 12], [1, 256, 4, 6], [1, 256, 2, 3], [1, 256, 1, 2] },
            o => o.WithStrictOrdering());
        maps.Tensors.Should().OnlyContain(t => t.IsFinite().All().ItemBool());
    }

    [Fact]
    public void Gradients_flow_through_the_trainable_part_only()
    {
        using var model = ResNetFpn.Create(18, NormKind.BatchNorm, trainableLayers: 2);
        model.Train();
        using var scope = Torch.NewDisposeScope();
        var maps = model.Forward(Tensor.Randn([2, 3, 64, 64]));
        var loss = maps.Tensors.Select(t => t.Square().Mean()).Aggregate((a, b) => a + b);
        loss.Backward();
        foreach (var (name, p) in model.NamedParameters())
        {
            using var g = p.Grad;
            if (name.StartsWith("fpn.") || name.StartsWith("body.layer3.") || name.StartsWith("body.layer4."))
            {
                g.Should().NotBeNull(name);
                g!.Abs().Sum().ItemDouble().Should().BeGreaterThan(0, name);
            }
            else
            {
                g.Should().BeNull(name);
            }
        }

        // Training mode updates the running statistics of every BatchNorm, frozen-gradient ones included.
        model.Body.Bn1.Should().BeOfType<BatchNorm2d>().Which.NumBatchesTracked.ItemLong().Should().Be(1);
    }

    [Fact]
    public void Frozen_bn_backbone_backpropagates_to_the_input()
    {
        using var model = ResNetFpn.Create(18, NormKind.FrozenBatchNorm, trainableLayers: 0);
        using var scope = Torch.NewDisposeScope();
        var x = Tensor.Randn([1, 3, 64, 64]).RequiresGrad_();
        var maps = model.Forward(x);
        maps["pool"].Sum().Backward();
        using var g = x.Grad;
        g.Should().NotBeNull();
        g!.Abs().Sum().ItemDouble().Should().BeGreaterThan(0);
        model.Body.Parameters().Should().OnlyContain(p => !p.RequiresGrad);
        using var fpnGrad = model.Fpn.LayerBlocks[3].Conv.Weight.Grad;
        fpnGrad.Should().NotBeNull();
    }

    [Fact]
    public void Forward_keeps_only_its_outputs()
    {
        using var model = ResNetFpn.Create(50);
        model.Eval();
        using var scope = Torch.NewDisposeScope();
        var x = Tensor.Randn([1, 3, 64, 64]);
        using (Torch.NoGrad())
        {
            var maps = model.Forward(x);
            scope.Count.Should().Be(1 + 5, "the input and the five maps");
            maps.Dispose();
            scope.Count.Should().Be(1);
            var stages = model.Body.Forward(x);
            stages.Should().HaveCount(4);
            scope.Count.Should().Be(1 + 4);
        }
    }

    [Fact]
    public void Frozen_batch_norm_matches_torchvision_with_eps()
    {
        foreach (var eps in new[] { 0.0, 1e-3 })
        {
            using var bn = new FrozenBatchNorm2d(5, eps);
            using var scope = Torch.NewDisposeScope();
            var inputs = new Dictionary<string, Tensor>
            {
                ["x"] = Tensor.Randn([2, 5, 3, 4]),
                ["weight"] = Tensor.Rand([5]) + 0.5,
                ["bias"] = Tensor.Randn([5]),
                ["running_mean"] = Tensor.Randn([5]),
                ["running_var"] = Tensor.Rand([5]) + 0.1,
            };
            bn.LoadStateDict(inputs.Where(kv => kv.Key != "x").ToDictionary());
            var expected = PythonOracle.Compute($$"""
                from torchvision.ops.misc import FrozenBatchNorm2d
                m = FrozenBatchNorm2d(5, eps={{eps.ToString("R", System.Globalization.CultureInfo.InvariantCulture)}})
                m.load_state_dict({k: v.float() for k, v in inp.items() if k != "x"})
                out["y"] = m(inp["x"].float())
                """, inputs);
            Assertions.AllClose(bn.Forward(inputs["x"]), expected["y"], 1e-6, 1e-6, $"eps {eps}");
            bn.NamedParameters().Should().BeEmpty();
            bn.StateDict().Select(kv => kv.Key).Should().Equal("weight", "bias", "running_mean", "running_var");
        }
    }
}
