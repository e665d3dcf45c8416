using System.Globalization;
using MaskRcnn.Net.Core.NN;
using MaskRcnn.Net.Core.Structures;
using Xunit.Abstractions;

namespace MaskRcnn.Net.Backbones.Tests;

/// <summary>ResNet-FPN outputs against torchvision 0.14 with the same weights and input.</summary>
public class BackboneParityTests(ITestOutputHelper output)
{
    private void AssertParity(BackboneWithFpn model, TorchvisionBackboneOracle oracle, double tol)
    {
        using var scope = Torch.NewDisposeScope();
        model.LoadStateDict(oracle.StateDict);
        model.Eval();
        FeatureMaps maps;
        using (Torch.NoGrad())
        {
            maps = model.Forward(oracle.Input);
        }

        maps.Names.Should().Equal(oracle.OutputNames);
        model.FeatureNames.Should().Equal(oracle.OutputNames);
        foreach (var (name, map) in maps)
        {
            var expected = oracle.Output(name);
            var maxDiff = (map - expected).Abs().Max().ItemDouble();
            var maxAbs = expected.Abs().Max().ItemDouble();
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"map {name} [{string.Join(", ", map.Shape)}]: max |diff| {maxDiff:E3} (max |value| {maxAbs:F3})"));
            Assertions.AllClose(map, (expected.ToArray<double>(), expected.Shape), tol, tol, $"map {name}");
        }

        model.TrainableParameters().Should().NotBeEmpty();
        model.NamedParameters().Where(p => p.Parameter.RequiresGrad).Select(p => p.Name)
            .Should().Equal(oracle.TrainableNames, "trainable parameters follow torchvision's trainable_layers");
    }

    [Fact]
    public void ResNet50_frozen_bn_fpn_matches_torchvision()
    {
        using var oracle = new TorchvisionBackboneOracle("resnet50", "frozen", 3, 1e-5, 1, 224, 320);
        using var model = ResNetFpn.Create(50, NormKind.FrozenBatchNorm, trainableLayers: 3);
        AssertParity(model, oracle, 1e-4);
    }

    [Fact]
    public void ResNet18_batch_norm_eval_matches_torchvision_on_odd_sizes()
    {
        // 190×250 is not a multiple of 32: exercises nearest upsampling to the lateral's size and the ceil of the pool.
        using var oracle = new TorchvisionBackboneOracle("resnet18", "bn", 5, 1e-5, 2, 190, 250);
        oracle.StateDict.Keys.Should().Contain("body.bn1.num_batches_tracked");
        using var model = ResNetFpn.Create(18, NormKind.BatchNorm, trainableLayers: 5);
        AssertParity(model, oracle, 1e-4);
        model.Body.Bn1.Should().BeOfType<BatchNorm2d>().Which.NumBatchesTracked.ItemLong().Should().Be(7);
    }

    [Fact]
    public void ResNet34_frozen_bn_with_zero_eps_matches_torchvision()
    {
        // eps = 0 is what torchvision's v1 COCO Mask R-CNN checkpoint needs.
        using var oracle = new TorchvisionBackboneOracle("resnet34", "frozen", 0, 0.0, 1, 128, 160);
        using var model = ResNetFpn.Create(new ResNetOptions(34, NormKind.FrozenBatchNorm) { NormEps = 0.0 }, trainableLayers: 0);
        AssertParity(model, oracle, 1e-4);
    }

    [Fact]
    public void ResNet18_group_norm_matches_torchvision()
    {
        using var oracle = new TorchvisionBackboneOracle("resnet18", "gn", 3, 1e-5, 1, 96, 128);
        using var model = ResNetFpn.Create(18, NormKind.GroupNorm, trainableLayers: 3);
        AssertParity(model, oracle, 1e-4);
    }

    [Fact]
    public void ResNet18_batch_norm_training_step_matches_torchvision()
    {
        // Batch statistics, running-statistics update and gradients (through the in-place add/ReLU) of the trainable part.
        using var oracle = new TorchvisionBackboneOracle("resnet18", "bn", 3, 1e-5, 2, 64, 96, train: true);
        using var model = ResNetFpn.Create(18, NormKind.BatchNorm, trainableLayers: 3);
        model.LoadStateDict(oracle.StateDict);
        model.Train();
        using var scope = Torch.NewDisposeScope();
        var maps = model.Forward(oracle.Input);
        foreach (var (name, map) in maps)
        {
            var expected = oracle.Output(name);
            Assertions.AllClose(map.Detach(), (expected.ToArray<double>(), expected.Shape), 1e-4, 1e-4, $"map {name}");
        }

        maps.Tensors.Select(t => t.Square().Mean()).Aggregate((a, b) => a + b).Backward();
        var gradCount = 0;
        foreach (var (name, p) in model.NamedParameters())
        {
            var g = p.Grad;
            oracle.InputsAndOutputs.TryGetValue("grad." + name, out var expected).Should().Be(g is not null, name);
            if (g is not null)
            {
                Assertions.AllClose(g, (expected!.ToArray<double>(), expected.Shape), 1e-4, 1e-3, $"grad {name}");
                gradCount++;
            }
        }

        gradCount.Should().Be(oracle.TrainableNames.Count);
        foreach (var (name, b) in model.NamedBuffers())
        {
            var expected = oracle.InputsAndOutputs["after." + name];
            Assertions.AllClose(b, (expected.ToArray<double>(), expected.Shape), 1e-5, 1e-5, $"buffer {name}");
        }

        output.WriteLine($"{gradCount} gradients and {model.NamedBuffers().Count()} buffers match");
    }
}
