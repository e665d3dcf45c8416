using MaskRcnn.Net.Backbones;
using MaskRcnn.Net.Core.Tests.TestSupport;
using MaskRcnn.Net.Export;
using MaskRcnn.Net.Heads;
using Xunit.Abstractions;

namespace MaskRcnn.Net.Tests.Export;

/// <summary>
/// The exported ResNet body + FPN against our libtorch <see cref="BackboneWithFpn"/> on the same real MRI image: every
/// level (<c>0</c>…<c>3</c>, <c>pool</c>) has the same shape and max |ONNX − libtorch| ≤ 1e-4 · max |libtorch| (group
/// norm: 5e-4). Models:
/// the seeded torchvision-format R50 (eval batch norm with non-trivial statistics, as the parity tests build it),
/// a ResNet-18 with frozen batch norm (randomised statistics, eps 1e-3) and a ResNet-18 with group norm.
/// </summary>
public sealed class OnnxBackboneExportTests : IClassFixture<OnnxBackboneExportTests.TorchvisionWeights>
{
    private readonly TorchvisionWeights weights;
    private readonly ITestOutputHelper output;

    public OnnxBackboneExportTests(TorchvisionWeights weights, ITestOutputHelper output) => (this.weights, this.output) = (weights, output);

    /// <summary>The seeded torchvision maskrcnn_resnet50_fpn state dict (weights=None, batch-norm statistics scaled).</summary>
    public sealed class TorchvisionWeights : IDisposable
    {
        public TorchvisionWeights()
        {
            Dir = Directory.CreateTempSubdirectory("mr_onnx_backbone_").FullName;
            PythonOracle.Run(Script, Dir);
        }

        public string Dir { get; }

        public string Path => System.IO.Path.Combine(Dir, "maskrcnn.pth");

        public void Dispose() => Directory.Delete(Dir, recursive: true);

        private const string Script = """
            import sys, os, torch
            from torchvision.models.detection import maskrcnn_resnet50_fpn
            out_dir = sys.argv[1]
            torch.manual_seed(0)
            m = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91)
            with torch.no_grad():
                for mod in m.modules():
                    if isinstance(mod, torch.nn.BatchNorm2d):
                        mod.running_mean.normal_(0, 0.1); mod.running_var.uniform_(0.5, 1.5)
                        mod.weight.uniform_(0.5, 1.5); mod.bias.normal_(0, 0.1)
            m.eval()
            torch.save(m.state_dict(), os.path.join(out_dir, 'maskrcnn.pth'))
            """;
    }

    [Fact]
    public void The_R50_torchvision_fixture_gives_libtorchs_fpn_levels()
    {
        using var model = new MaskRcnnBuilder()
            .WithBackbone(50, NormKind.BatchNorm, trainableLayers: 5)
            .WithWeights(weights.Path)
            .Build();
        Compare(model, OnnxTestSupport.ValImage(0));
    }

    [Fact]
    public void A_ResNet18_with_frozen_batch_norm_gives_libtorchs_fpn_levels_on_a_non_square_image()
    {
        using var model = new MaskRcnnBuilder()
            .WithBackbone(18, NormKind.FrozenBatchNorm, trainableLayers: 3, normEps: 1e-3)
            .WithNumClasses(2)
            .WithSeed(11)
            .Build();
        Randomise(model, 12);
        using var image = OnnxTestSupport.ValImage(3);
        using var rows = image.Slice(1, 0, 203);
        using var crop = rows.Slice(2, 0, 251).Contiguous();
        Compare(model, crop);
    }

    [Fact]
    public void A_ResNet18_with_group_norm_gives_libtorchs_fpn_levels()
    {
        using var model = new MaskRcnnBuilder()
            .WithBackbone(new ResNetOptions(18, NormKind.GroupNorm) { GroupNormGroups = 16, NormEps = 1e-4 }, trainableLayers: 5)
            .WithNumClasses(2)
            .WithSeed(5)
            .Configure(c => c with { Transform = new TransformOptions([320], 512) })
            .Build();
        Randomise(model, 6);
        // Group norm divides by each group's standard deviation, which on this random model is small for the groups
        // covering the MRI's black background: the convolutions' float rounding differences are amplified (measured
        // up to 1e-4 relative, against 4e-6 with batch norms), hence the wider bound.
        Compare(model, OnnxTestSupport.ValImage(1), 5e-4);
    }

    /// <summary>Gives every norm layer non-trivial statistics and affine values (frozen/group norm start at identity).</summary>
    private static void Randomise(MaskRcnnModel model, ulong seed)
    {
        Torch.ManualSeed(seed);
        using var noGrad = Torch.NoGrad();
        foreach (var (name, t) in model.NamedBuffers().Concat(model.NamedParameters()))
        {
            if (!name.StartsWith("backbone.body.", StringComparison.Ordinal) || name.Contains("conv", StringComparison.Ordinal) ||
                name.EndsWith("downsample.0.weight", StringComparison.Ordinal) || t.DType != DType.Float32)
            {
                continue;
            }

            if (name.EndsWith("running_var", StringComparison.Ordinal) || name.EndsWith(".weight", StringComparison.Ordinal))
            {
                t.UniformInPlace(0.5, 1.5);
            }
            else if (name.EndsWith("running_mean", StringComparison.Ordinal) || name.EndsWith(".bias", StringComparison.Ordinal))
            {
                t.NormalInPlace(0, 0.1);
            }
        }
    }

    private void Compare(MaskRcnnModel model, Tensor imageU8, double relativeTolerance = 1e-4)
    {
        var onnx = OnnxExporter.Build(model, new OnnxExportOptions { DebugOutputs = OnnxDebugOutputs.Features }).ToBytes();
        var backbone = (BackboneWithFpn)model.Backbone;
        var names = backbone.FeatureNames;
        names.Should().Equal("0", "1", "2", "3", "pool");
        var outputs = OnnxTestSupport.RunImage(onnx, imageU8, [.. names.Select(n => "debug_feature_" + n)]);

        using var inference = Torch.InferenceMode();
        using var scope = Torch.NewDisposeScope();
        using var f = OnnxTestSupport.AsFloat(imageU8);
        var (batch, _) = model.Transform.Forward([f]);
        var features = model.Backbone.Forward(batch.Images);
        foreach (var name in names)
        {
            var expected = features[name];
            var actual = outputs["debug_feature_" + name];
            actual.Shape.Should().Equal(expected.Shape, $"level {name}");
            var values = expected.Contiguous().ToArray<float>().Select(v => (double)v).ToArray();
            var scale = values.Max(Math.Abs);
            scale.Should().BeGreaterThan(0, $"level {name} is not all zeros");
            var diff = OnnxTestSupport.MaxAbsDiff(actual.Values, values);
            output.WriteLine($"level {name} [{string.Join(", ", actual.Shape)}]: max |diff| {diff:E2}, max |value| {scale:E2}, ratio {diff / scale:E2}");
            diff.Should().BeLessThanOrEqualTo(relativeTolerance * scale, $"level {name} (max |value| {scale})");
        }
    }
}
