using MaskRcnn.Net.Backbones;
using MaskRcnn.Net.Core.Checkpoints;

namespace MaskRcnn.Net.Cli.Tests;

/// <summary>
/// <c>maskrcnn export</c>: a saved model becomes an ONNX file with the <c>image</c> input and the
/// boxes/labels/scores/masks outputs; bad arguments give exit code 1 and no file.
/// </summary>
public sealed class ExportCommandTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("mr_export_cli_").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    private string SavedModel()
    {
        var path = Path.Combine(dir, "model.safetensors");
        using var model = new MaskRcnnBuilder().WithBackbone(18, NormKind.FrozenBatchNorm).WithClasses("tumor").WithSeed(4).Build();
        model.Save(path);
        return path;
    }

    [Fact]
    public void A_saved_model_is_exported_with_the_contract_outputs()
    {
        var onnx = Path.Combine(dir, "out", "model.onnx");
        Program.Main(["export", "--weights", SavedModel(), "--onnx", onnx]).Should().Be(0);
        var graph = OnnxGraph.Load(onnx);
        graph.Inputs.Should().Equal("image");
        graph.Outputs.Should().Equal("boxes", "labels", "scores", "masks");
        graph.Opset.Should().Be(17);
    }

    [Fact]
    public void Bad_arguments_exit_with_1_and_write_nothing()
    {
        var onnx = Path.Combine(dir, "bad.onnx");
        Program.Main(["export", "--weights", Path.Combine(dir, "missing.safetensors"), "--onnx", onnx]).Should().Be(1);
        Program.Main(["export", "--weights", SavedModel(), "--onnx", onnx, "--opset", "12"]).Should().Be(1);
        File.Exists(onnx).Should().BeFalse();
    }
}
