using MaskRcnn.Net.Core.NN;

namespace MaskRcnn.Net.Backbones.Tests;

public class TorchvisionKeysTests
{
    [Theory]
    [InlineData("fpn.inner_blocks.0.weight", "fpn.inner_blocks.0.0.weight")]
    [InlineData("backbone.fpn.layer_blocks.3.bias", "backbone.fpn.layer_blocks.3.0.bias")]
    [InlineData("inner_blocks.12.bias", "inner_blocks.12.0.bias")]
    [InlineData("fpn.inner_blocks.0.0.weight", "fpn.inner_blocks.0.0.weight")]
    [InlineData("body.layer1.0.conv1.weight", "body.layer1.0.conv1.weight")]
    [InlineData("my_inner_blocks.0.weight", "my_inner_blocks.0.weight")]
    public void Normalize_rewrites_legacy_fpn_keys_only(string key, string expected) =>
        TorchvisionKeys.Normalize(key).Should().Be(expected);

    private static string ToLegacy(string key) =>
        System.Text.RegularExpressions.Regex.Replace(key, @"^fpn\.(inner_blocks|layer_blocks)\.(\d+)\.0\.", "fpn.$1.$2.");

    [Fact]
    public void Legacy_fpn_state_dict_loads_after_normalisation()
    {
        using var source = ResNetFpn.Create(18);
        using var target = ResNetFpn.Create(18);
        using var scope = Torch.NewDisposeScope();
        var legacy = source.StateDict()
            .Select(kv => new KeyValuePair<string, Tensor>(ToLegacy(kv.Key), kv.Value))
            .ToList();
        legacy.Select(kv => kv.Key).Should().Contain("fpn.inner_blocks.2.weight").And.Contain("fpn.layer_blocks.0.bias");

        var direct = FluentActions.Invoking(() => target.LoadStateDict(legacy.ToDictionary())).Should()
            .Throw<CheckpointMismatchException>().Which;
        direct.Message.Should().Contain("fpn.inner_blocks.0.0.weight").And.Contain("fpn.inner_blocks.2.weight");

        TorchvisionKeys.LoadStateDict(target, legacy);
        foreach (var ((name, a), (_, b)) in source.StateDict().Zip(target.StateDict()))
        {
            b.AllClose(a, 0, 0).Should().BeTrue(name);
        }
    }

    [Fact]
    public void Both_old_and_new_key_is_an_error_naming_both()
    {
        using var scope = Torch.NewDisposeScope();
        var sd = new Dictionary<string, Tensor>
        {
            ["fpn.inner_blocks.0.weight"] = Tensor.Zeros([1]),
            ["fpn.inner_blocks.0.0.weight"] = Tensor.Zeros([1]),
        };
        FluentActions.Invoking(() => TorchvisionKeys.Normalize(sd)).Should().Throw<CheckpointMismatchException>()
            .WithMessage("*fpn.inner_blocks.0.weight*fpn.inner_blocks.0.0.weight*");
    }

    [Fact]
    public void Batch_norm_checkpoint_loads_into_frozen_batch_norm()
    {
        using var bn = ResNetFpn.Create(18, NormKind.BatchNorm);
        using var frozen = ResNetFpn.Create(18, NormKind.FrozenBatchNorm);
        var sd = bn.StateDict();
        sd.Should().Contain(kv => kv.Key == "body.layer2.0.downsample.1.num_batches_tracked");
        FluentActions.Invoking(() => frozen.LoadStateDict(sd.ToDictionary())).Should().Throw<CheckpointMismatchException>()
            .WithMessage("*unexpected keys*num_batches_tracked*");
        TorchvisionKeys.NormalizeFor(frozen, sd).Keys.Should().NotContain(k => k.EndsWith("num_batches_tracked"));
        TorchvisionKeys.LoadStateDict(frozen, sd);

        // ...but a BatchNorm target keeps (and needs) them.
        TorchvisionKeys.NormalizeFor(bn, sd).Should().HaveCount(sd.Count);
    }

    [Fact]
    public void Strict_load_errors_name_the_key()
    {
        using var model = ResNetFpn.Create(18);
        using var scope = Torch.NewDisposeScope();
        var sd = model.StateDict().ToDictionary();
        sd.Remove("body.layer3.1.bn2.running_var");
        sd["body.fc.weight"] = Tensor.Zeros([1000, 512]);
        var ex = FluentActions.Invoking(() => model.LoadStateDict(sd)).Should().Throw<CheckpointMismatchException>().Which;
        ex.Message.Should().Contain("body.layer3.1.bn2.running_var").And.Contain("body.fc.weight");
        ex.MissingKeys.Should().Equal("body.layer3.1.bn2.running_var");
        ex.UnexpectedKeys.Should().Equal("body.fc.weight");

        var wrongShape = model.StateDict().ToDictionary();
        wrongShape["fpn.layer_blocks.1.0.weight"] = Tensor.Zeros([256, 256, 1, 1]);
        FluentActions.Invoking(() => TorchvisionKeys.LoadStateDict(model, wrongShape)).Should().Throw<CheckpointMismatchException>()
            .WithMessage("*fpn.layer_blocks.1.0.weight*[256, 256, 1, 1]*[256, 256, 3, 3]*");
    }
}
