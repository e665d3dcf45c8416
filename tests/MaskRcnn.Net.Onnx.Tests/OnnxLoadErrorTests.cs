using MaskRcnn.Net.Backbones;
using MaskRcnn.Net.Tests;

namespace MaskRcnn.Net.Onnx.Tests;

/// <summary>
/// Files <see cref="OnnxMaskRcnn.Load"/> must refuse with a typed exception naming the file (never a native crash): a
/// real ONNX model that is not ours (the ImageNet ResNet-18), the same file truncated, a JPEG, an empty file.
/// </summary>
public sealed class OnnxLoadErrorTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("mr_onnx_load_").FullName;

    public void Dispose() => Directory.Delete(dir, true);

    private static string ForeignOnnx() =>
        PretrainedBackbone.FindResNet18() ?? throw new InvalidOperationException(
            "the ImageNet ResNet-18 ONNX file (package Microsoft.ML.DnnImageFeaturizer.ResNet18, a PackageDownload of this project) is not in the NuGet cache");

    [Fact]
    public void A_foreign_onnx_model_is_refused_naming_the_missing_metadata_key()
    {
        var path = ForeignOnnx();
        var e = FluentActions.Invoking(() => OnnxMaskRcnn.Load(path)).Should().Throw<OnnxModelFormatException>().Which;
        e.Key.Should().Be("maskrcnn.format");
        e.Path.Should().Be(path);
        e.Message.Should().StartWith(path).And.Contain("not a MaskRcnn.Net export").And.Contain("maskrcnn.format");
    }

    [Theory]
    [InlineData(0.5)]
    [InlineData(0.02)]
    public void A_truncated_onnx_file_is_refused_naming_the_file(double fraction)
    {
        var bytes = File.ReadAllBytes(ForeignOnnx());
        var path = Path.Combine(dir, "truncated.onnx");
        File.WriteAllBytes(path, bytes.AsSpan(0, (int)(bytes.Length * fraction)).ToArray());
        var e = FluentActions.Invoking(() => OnnxMaskRcnn.Load(path)).Should().Throw<OnnxModelFormatException>().Which;
        e.Path.Should().Be(path);
        e.Message.Should().StartWith(path).And.Contain("not an ONNX model ONNX Runtime can load");
        e.InnerException.Should().NotBeNull("ONNX Runtime's own message is kept");
    }

    [Fact]
    public void Files_that_are_not_onnx_are_refused_and_a_missing_file_is_not_found()
    {
        var jpeg = Path.Combine(dir, "image.onnx");
        File.Copy(RepoPaths.MriImage(0), jpeg);
        FluentActions.Invoking(() => OnnxMaskRcnn.Load(jpeg)).Should().Throw<OnnxModelFormatException>().Which.Path.Should().Be(jpeg);

        var empty = Path.Combine(dir, "empty.onnx");
        File.WriteAllBytes(empty, []);
        FluentActions.Invoking(() => OnnxMaskRcnn.Load(empty)).Should().Throw<OnnxModelFormatException>().WithMessage(empty + ":*");

        var missing = Path.Combine(dir, "missing.onnx");
        FluentActions.Invoking(() => OnnxMaskRcnn.Load(missing)).Should().Throw<FileNotFoundException>().WithMessage($"*{missing}*");
    }
}
