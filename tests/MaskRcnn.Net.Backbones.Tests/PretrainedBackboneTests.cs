using MaskRcnn.Net.Core.Checkpoints;
using MaskRcnn.Net.Core.Imaging;
using MaskRcnn.Net.Core.NN;
using Microsoft.ML.OnnxRuntime;
using DenseTensor = Microsoft.ML.OnnxRuntime.Tensors.DenseTensor<float>;
using Tensor = MaskRcnn.Net.Core.Tensor;

namespace MaskRcnn.Net.Backbones.Tests;

/// <summary>
/// The ImageNet ResNet-18 from ML.NET's package, loaded by topology onto our body, against ONNX Runtime running the
/// file itself (the package is fetched by the test project's &lt;PackageDownload&gt;).
/// </summary>
public class PretrainedBackboneTests
{
    private static string ResNet18Path =>
        PretrainedBackbone.FindResNet18() ?? throw new InvalidOperationException(
            "ResNet18.onnx not found (restore the test project: its <PackageDownload> of Microsoft.ML.DnnImageFeaturizer.ResNet18 0.24.0 fetches it); looked in " +
            string.Join(", ", PretrainedBackbone.ResNet18Candidates()));

    private static string PreprocessPath =>
        Path.Combine(Path.GetDirectoryName(Path.GetDirectoryName(ResNet18Path))!, "ResNetPrepOnnx", "ResNetPreprocess.onnx");

    /// <summary>A real MRI slice resized to the ONNX input's 224×224, as float RGB in 0–255 ([1, 3, 224, 224]).</summary>
    private static float[] Image224()
    {
        using var scope = Torch.NewDisposeScope();
        var image = ImageCodec.Decode(Path.Combine(AppContext.BaseDirectory, "data", "mri.jpg"), ImageReadMode.Rgb).To(DType.Float32).Unsqueeze(0);
        return Functional.Interpolate(image, 224, 224, InterpolationMode.Bilinear).Contiguous().ToArray<float>();
    }

    private static float[] RunOnnx(string path, string input, float[] data, out string outputName)
    {
        using var session = new InferenceSession(path);
        var tensor = new DenseTensor(data, [1, 3, 224, 224]);
        using var results = session.Run([NamedOnnxValue.CreateFromTensor(input, tensor)]);
        var first = results.First();
        outputName = first.Name;
        return first.AsTensor<float>().ToArray();
    }

    [Fact]
    public void The_loaded_body_gives_onnx_runtimes_features_for_a_real_image()
    {
        var rgb = Image224();
        var preprocessed = RunOnnx(PreprocessPath, "OriginalInput", rgb, out _);
        var expected = RunOnnx(ResNet18Path, "Input247", preprocessed, out var outputName);
        outputName.Should().Be("Pooling395_Output_0");
        expected.Should().HaveCount(512);

        using var pretrained = PretrainedBackbone.ImageNetResNet18(ResNet18Path);
        pretrained.Options.BlocksPerStage.Should().Equal([2, 2, 2, 3], "the layout is read from the graph");
        pretrained.Options.Depth.Should().Be(18);
        pretrained.Options.Norm.Should().Be(NormKind.FrozenBatchNorm);
        pretrained.Options.NormEps.Should().BeApproximately(1e-5, 1e-9);
        pretrained.StateDict.Should().HaveCount(22 + 22 * 4, "22 convolutions and 22 batch norms");

        using var body = new ResNet(pretrained.Options);
        body.LoadStateDict(pretrained.StateDict);
        body.Eval();
        using var scope = Torch.NewDisposeScope();
        // ONNX Runtime's preprocessed input is BGR; our body's stem was turned to read RGB.
        var bgr = Tensor.FromArray(preprocessed, 1, 3, 224, 224);
        var input = bgr.IndexSelect(1, Tensor.FromArray(new long[] { 2, 1, 0 }, 3));
        using var noGrad = Torch.NoGrad();
        var c5 = body.Forward(input)[3];
        c5.Shape.Should().Equal(1, 512, 7, 7);
        var ours = c5.Mean([2, 3]).Contiguous().ToArray<float>();
        var scale = expected.Max(Math.Abs);
        scale.Should().BeGreaterThan(0.1f);
        var worst = ours.Zip(expected, (a, b) => Math.Abs(a - b)).Max();
        worst.Should().BeLessThanOrEqualTo(1e-4f * scale, $"max |difference| {worst:G3} against max |value| {scale:G3}");
    }

    [Fact]
    public void The_input_normalisation_is_read_from_the_preprocessing_graph()
    {
        using var pretrained = PretrainedBackbone.ImageNetResNet18(ResNet18Path);
        // Channel means of CNTK's 224x224 ImageNet mean image (B, G, R planes), computed separately from the file with
        // a throw-away protobuf dump in Python: 103.0626, 115.9029, 123.1516; the network reads 0-255 BGR.
        pretrained.PixelMean.Select(m => m * 255).Should().Equal([123.1516, 115.9029, 103.0626], (a, b) => Math.Abs(a - b) < 1e-3);
        pretrained.PixelStd.Should().Equal([1 / 255.0, 1 / 255.0, 1 / 255.0]);
    }

    [Fact]
    public void The_stem_reads_rgb_the_onnx_file_reads_bgr()
    {
        var graph = OnnxGraph.Load(ResNet18Path);
        graph.Producer.Should().Be("CNTK 2.6");
        graph.Opset.Should().Be(8);
        var onnxStem = graph.Initializers[graph.Nodes[0].Inputs[1]];
        using var pretrained = PretrainedBackbone.ImageNetResNet18(ResNet18Path);
        var ours = pretrained.StateDict["conv1.weight"].ToArray<float>();
        const int Plane = 7 * 7;
        for (var o = 0; o < 64; o += 21)
        {
            for (var c = 0; c < 3; c++)
            {
                ours.AsSpan((o * 3 + c) * Plane, Plane).ToArray().Should().Equal(onnxStem.Values.AsSpan((o * 3 + (2 - c)) * Plane, Plane).ToArray());
            }
        }
    }

    // ---- bad input ---------------------------------------------------------------------------------------------

    private static string TempCopy(byte[] bytes, string name)
    {
        var dir = Directory.CreateTempSubdirectory("mr_onnx_");
        var file = Path.Combine(dir.FullName, name);
        File.WriteAllBytes(file, bytes);
        return file;
    }

    [Fact]
    public void A_truncated_file_is_refused_naming_it()
    {
        var bytes = File.ReadAllBytes(ResNet18Path);
        var file = TempCopy(bytes[..(bytes.Length / 3)], "ResNet18.onnx");
        var e = FluentActions.Invoking(() => PretrainedBackbone.ImageNetResNet18(file, PreprocessPath)).Should().Throw<CheckpointFormatException>().Which;
        e.FilePath.Should().Be(file);
        e.Message.Should().Contain("truncated");
    }

    [Fact]
    public void A_foreign_onnx_file_is_refused_with_the_first_mismatch()
    {
        // The preprocessing graph is a valid ONNX file but not a ResNet.
        var e = FluentActions.Invoking(() => PretrainedBackbone.ImageNetResNet18(PreprocessPath, PreprocessPath)).Should().Throw<CheckpointFormatException>().Which;
        e.FilePath.Should().Be(PreprocessPath);
        e.Message.Should().Contain("not the expected ImageNet ResNet-18 graph").And.Contain("no convolution reads the input");

        var garbage = TempCopy("not a protobuf at all, just text"u8.ToArray(), "ResNet18.onnx");
        FluentActions.Invoking(() => PretrainedBackbone.ImageNetResNet18(garbage, PreprocessPath)).Should().Throw<CheckpointFormatException>()
            .Which.FilePath.Should().Be(garbage);
    }

    [Fact]
    public void A_missing_initializer_or_a_changed_shape_is_named()
    {
        var bytes = File.ReadAllBytes(ResNet18Path);
        // Rename the initializer of the last convolution (the nodes still read "Parameter10"): TensorProto's name is
        // field 8 (tag 0x42) with length 11; same length, so the protobuf stays well formed.
        var renamed = Replace(bytes, [0x42, 11, .. "Parameter10"u8], [0x42, 11, .. "Parameter1X"u8]);
        var file = TempCopy(renamed, "ResNet18.onnx");
        var e = FluentActions.Invoking(() => PretrainedBackbone.ImageNetResNet18(file, PreprocessPath)).Should().Throw<CheckpointFormatException>().Which;
        e.Message.Should().Contain("layer4.2.conv2").And.Contain("'Parameter10' is missing");
    }

    [Fact]
    public void A_missing_file_says_how_to_get_the_package()
    {
        var missing = Path.Combine(Path.GetTempPath(), $"mr_none_{Guid.NewGuid():N}", "ResNet18.onnx");
        FluentActions.Invoking(() => PretrainedBackbone.ImageNetResNet18(missing)).Should().Throw<FileNotFoundException>()
            .Which.Message.Should().Contain(missing);
    }

    /// <summary>Replaces the single occurrence of <paramref name="what"/>.</summary>
    private static byte[] Replace(byte[] bytes, byte[] what, byte[] with)
    {
        var at = bytes.AsSpan().IndexOf(what);
        at.Should().BeGreaterThanOrEqualTo(0);
        bytes.AsSpan(at + 1).IndexOf(what).Should().Be(-1, "the pattern must be unique");
        var copy = (byte[])bytes.Clone();
        with.CopyTo(copy, at);
        return copy;
    }
}
