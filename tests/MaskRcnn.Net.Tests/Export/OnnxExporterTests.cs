using System.Text.Json;
using MaskRcnn.Net.Backbones;
using MaskRcnn.Net.Core.Checkpoints;
using MaskRcnn.Net.Core.NN;
using MaskRcnn.Net.Core.Structures;
using MaskRcnn.Net.Export;
using Microsoft.ML.OnnxRuntime;

namespace MaskRcnn.Net.Tests.Export;

/// <summary>
/// What <see cref="MaskRcnnModel.ExportOnnx"/> writes around the network: the <c>image</c> input with dynamic height
/// and width, the producer, the opset and the <c>maskrcnn.*</c> metadata (read back by ONNX Runtime and by our reader);
/// and the refusal of an unsupported opset before anything is written.
/// </summary>
public sealed class OnnxExporterTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("mr_onnx_export_").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    private static MaskRcnnModel Model() => new MaskRcnnBuilder()
        .WithBackbone(18, NormKind.FrozenBatchNorm)
        .WithClasses("tumor", "other")
        .WithImageSize(600, 1000)
        .WithScoreThreshold(0.3)
        .WithDetectionsPerImage(17)
        .WithMaskThreshold(0.4)
        .WithDuplicateSuppression(0.8)
        .WithMaskScoring()
        .WithAlignedRoIAlign()
        .WithSeed(1)
        .Build();

    private static readonly OnnxExportOptions Debug = new() { DebugOutputs = OnnxDebugOutputs.Transform };

    [Fact]
    public void The_file_carries_the_image_input_producer_opset_and_the_settings_as_metadata()
    {
        using var model = Model();
        var path = Path.Combine(dir, "sub", "model.onnx");
        model.ExportOnnx(path, Debug);

        var graph = OnnxGraph.Load(path);
        graph.Opset.Should().Be(17);
        graph.Inputs.Should().Equal("image");
        graph.Producer.Should().StartWith("MaskRcnn.Net ");

        using var session = new InferenceSession(path);
        var input = session.InputMetadata["image"];
        input.ElementType.Should().Be(typeof(byte));
        input.Dimensions.Should().Equal(3, -1, -1);
        input.SymbolicDimensions.Should().Equal("", "height", "width");
        session.ModelMetadata.ProducerName.Should().Be("MaskRcnn.Net");
        var meta = session.ModelMetadata.CustomMetadataMap;
        meta["maskrcnn.format"].Should().Be("1");
        JsonSerializer.Deserialize<string[]>(meta["maskrcnn.class_names"]).Should().Equal("__background__", "tumor", "other");
        meta["maskrcnn.num_classes"].Should().Be("3");
        meta["maskrcnn.score_threshold"].Should().Be("0.3");
        meta["maskrcnn.mask_threshold"].Should().Be("0.4");
        meta["maskrcnn.detections_per_image"].Should().Be("17");
        meta["maskrcnn.min_size"].Should().Be("600");
        meta["maskrcnn.max_size"].Should().Be("1000");
        meta["maskrcnn.size_divisible"].Should().Be("32");
        meta["maskrcnn.suppress_contained"].Should().Be("0.8");
        meta["maskrcnn.mask_scoring"].Should().Be("on");
        meta["maskrcnn.mask_paste"].Should().Be("aligned");
        JsonSerializer.Deserialize<double[]>(meta["maskrcnn.image_mean"]).Should().Equal(0.485, 0.456, 0.406);
        JsonSerializer.Deserialize<double[]>(meta["maskrcnn.image_std"]).Should().Equal(0.229, 0.224, 0.225);
    }

    [Fact]
    public void Duplicate_suppression_off_is_written_as_off()
    {
        using var model = new MaskRcnnBuilder().WithBackbone(18, NormKind.FrozenBatchNorm).WithNumClasses(4).WithSeed(2).Build();
        var meta = OnnxExporter.Metadata(model, hasMasks: true).ToDictionary(kv => kv.Key, kv => kv.Value);
        meta["maskrcnn.suppress_contained"].Should().Be("off");
        meta["maskrcnn.mask_scoring"].Should().Be("off");
        meta["maskrcnn.mask_paste"].Should().Be("torchvision");
        JsonSerializer.Deserialize<string[]>(meta["maskrcnn.class_names"]).Should().Equal("0", "1", "2", "3");
        meta["maskrcnn.mask_size"].Should().Be("28");
    }

    [Fact]
    public void An_unsupported_opset_is_refused_naming_the_field_and_nothing_is_written()
    {
        var act = () => new OnnxExportOptions(16).Validate();
        act.Should().Throw<ArgumentException>().Which.ParamName.Should().Be("Opset");

        using var model = Model();
        var path = Path.Combine(dir, "refused.onnx");
        var export = () => model.ExportOnnx(path, new OnnxExportOptions(18));
        export.Should().Throw<ArgumentException>().WithMessage("*Opset*18*");
        File.Exists(path).Should().BeFalse();
    }

    [Fact]
    public void A_backbone_the_exporter_does_not_know_is_refused_naming_it_and_nothing_is_written()
    {
        using var model = new MaskRcnnBuilder().WithBackbone(_ => new WrappedBackbone()).WithNumClasses(2).WithSeed(7).Build();
        var path = Path.Combine(dir, "custom.onnx");
        var export = () => model.ExportOnnx(path, Debug);
        export.Should().Throw<NotSupportedException>().WithMessage($"*{typeof(WrappedBackbone).FullName}*");
        File.Exists(path).Should().BeFalse();
    }

    /// <summary>A custom backbone (it happens to wrap ours, but the exporter cannot know what it computes).</summary>
    private sealed class WrappedBackbone : Module, IBackbone
    {
        private readonly BackboneWithFpn inner;

        public WrappedBackbone() => inner = RegisterModule("inner", ResNetFpn.Create(18));

        public int OutChannels => inner.OutChannels;

        public IReadOnlyList<string> FeatureNames => inner.FeatureNames;

        public FeatureMaps Forward(Tensor images) => inner.Forward(images);
    }
}
