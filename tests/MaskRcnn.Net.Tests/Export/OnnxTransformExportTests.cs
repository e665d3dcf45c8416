using MaskRcnn.Net.Backbones;
using MaskRcnn.Net.Export;
using MaskRcnn.Net.Heads;
using Xunit.Abstractions;

namespace MaskRcnn.Net.Tests.Export;

/// <summary>
/// The in-graph transform (uint8 → float /255 → normalise → bilinear resize → pad to ×32) against our
/// <see cref="ImageTransform"/> on real MRI images cut and tiled to several sizes: identical resized and padded sizes,
/// values within 1e-5.
/// </summary>
public sealed class OnnxTransformExportTests(ITestOutputHelper output)
{
    public static TheoryData<int, int, int> Sizes => new()
    {
        // image index, height, width (crops of the real image; larger sizes tile it)
        { 0, 0, 0 },     // the image as it is
        { 1, 201, 317 },
        { 2, 97, 455 },  // elongated: the longer side bounds the scale
        { 3, 480, 96 },
        { 4, 1, 1 },     // degenerate but valid: one pixel
        { 5, 733, 1291 }, // larger than the image: tiled, downscaled by the resize
    };

    private static Tensor Cut(Tensor image, int height, int width)
    {
        if (height == 0)
        {
            return image.Alias();
        }

        var tiles = image;
        while (tiles.Size(1) < height || tiles.Size(2) < width)
        {
            var next = Tensor.Cat([Tensor.Cat([tiles, tiles], 2), Tensor.Cat([tiles, tiles], 2)], 1);
            tiles = next;
        }

        using var rows = tiles.Slice(1, 0, height);
        return rows.Slice(2, 0, width).Contiguous();
    }

    private static MaskRcnnModel Model(TransformOptions transform) => new MaskRcnnBuilder()
        .WithBackbone(18, NormKind.FrozenBatchNorm)
        .WithNumClasses(3)
        .WithSeed(3)
        .Configure(c => c with { Transform = transform })
        .Build();

    [Theory]
    [MemberData(nameof(Sizes))]
    public void The_graph_transform_matches_ImageTransform_on_real_images(int index, int height, int width)
    {
        using var scope = Torch.NewDisposeScope();
        using var model = Model(TransformOptions.Default);
        var bytes = OnnxExporter.Build(model, new OnnxExportOptions { DebugOutputs = OnnxDebugOutputs.Transform }).ToBytes();
        Check(model, bytes, Cut(OnnxTestSupport.ValImage(index), height, width));
    }

    [Fact]
    public void Another_configuration_min_max_size_mean_std_and_divisor_is_followed()
    {
        using var scope = Torch.NewDisposeScope();
        var options = new TransformOptions([512, 600], 900, [0.3, 0.5, 0.7], [0.2, 0.25, 0.3], 64);
        using var model = Model(options);
        var bytes = OnnxExporter.Build(model, new OnnxExportOptions { DebugOutputs = OnnxDebugOutputs.Transform }).ToBytes();
        Check(model, bytes, OnnxTestSupport.ValImage(6));
        Check(model, bytes, Cut(OnnxTestSupport.ValImage(7), 333, 1111));
    }

    private void Check(MaskRcnnModel model, byte[] onnx, Tensor imageU8)
    {
        using var f = OnnxTestSupport.AsFloat(imageU8);
        var (batch, _) = model.Transform.Forward([f]);
        using var _batch = batch;
        var outputs = OnnxTestSupport.RunImage(onnx, imageU8, "debug_images", "debug_resized_size");

        var expectedSize = batch.Sizes[0];
        outputs["debug_resized_size"].Values.Should().Equal(expectedSize.Height, expectedSize.Width);
        var images = outputs["debug_images"];
        images.Shape.Should().Equal(batch.Images.Shape, $"the padded batch of a {imageU8.Size(1)}x{imageU8.Size(2)} image");
        var diff = OnnxTestSupport.MaxAbsDiff(images.Values, batch.Images.ToArray<float>().Select(v => (double)v).ToArray());
        output.WriteLine($"{imageU8.Size(1)}x{imageU8.Size(2)} -> [{string.Join(", ", images.Shape)}]: max |diff| {diff:E2}");
        diff.Should().BeLessThanOrEqualTo(1e-5, $"the {imageU8.Size(1)}x{imageU8.Size(2)} image");
    }
}
