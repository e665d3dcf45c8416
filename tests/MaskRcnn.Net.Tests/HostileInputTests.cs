using MaskRcnn.Net.Backbones;
using MaskRcnn.Net.Core.Imaging;
using MaskRcnn.Net.Core.Tests.TestSupport;

namespace MaskRcnn.Net.Tests;

/// <summary>
/// Degenerate and hostile images through the model (issue 6, item 4): empty, one-pixel, elongated, huge and
/// object-free images give a clear <see cref="ArgumentException"/> / <see cref="ImageDecodeException"/> naming the
/// image and its size, or a correct (possibly empty) result. A small ResNet-18 model at 128 px keeps them fast.
/// </summary>
public class HostileInputTests
{
    private static MaskRcnnBuilder Small() => new MaskRcnnBuilder()
        .WithBackbone(18, NormKind.FrozenBatchNorm)
        .WithClasses("tumor")
        .WithImageSize(128, 160)
        .WithScoreThreshold(0.0);

    [Fact]
    public void Empty_images_are_refused_naming_their_size()
    {
        using var model = Small().Build();
        foreach (long[] shape in new[] { new long[] { 3, 0, 0 }, [3, 0, 5], [1, 7, 0] })
        {
            using var empty = Tensor.Zeros(shape, DType.UInt8);
            FluentActions.Invoking(() => model.Predict(empty)).Should().Throw<ArgumentException>()
                .WithMessage($"*[{string.Join(", ", shape)}]*");
            using var asFloat = Tensor.Zeros(shape);
            FluentActions.Invoking(() => model.Detect([asFloat])).Should().Throw<ArgumentException>()
                .WithMessage($"images[0]: the image is {shape[2]}x{shape[1]}*");
        }

        FluentActions.Invoking(() => model.Predict(Array.Empty<byte>())).Should().Throw<ImageDecodeException>()
            .Which.Failure.Should().Be(ImageDecodeFailure.Empty);
        var file = Path.Combine(Path.GetTempPath(), $"mr_empty_{Guid.NewGuid():N}.png");
        File.WriteAllBytes(file, []);
        try
        {
            FluentActions.Invoking(() => model.Predict(file)).Should().Throw<ImageDecodeException>().Which.Origin.Should().Be(file);
        }
        finally
        {
            File.Delete(file);
        }

        // No images at all is an empty result, not an error.
        model.Predict(Array.Empty<ImageSource>()).Should().BeEmpty();
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(1, 2)]
    [InlineData(3, 2)]
    public void Tiny_images_give_detections_with_masks_of_their_size(int height, int width)
    {
        using var model = Small().Build();
        using var image = Tensor.Full([3, height, width], 128L, DType.UInt8);
        foreach (ImageSource source in new ImageSource[] { image, ImageCodec.EncodePng(image) })
        {
            var result = model.Predict(source);
            (result.Width, result.Height).Should().Be((width, height));
            result.Detections.Should().NotBeEmpty("the untrained model with score threshold 0 always detects something");
            foreach (var d in result.Detections)
            {
                d.Mask.Should().NotBeNull();
                (d.Mask!.Width, d.Mask.Height).Should().Be((width, height));
                d.Box.X1.Should().BeInRange(0, width);
                d.Box.X2.Should().BeInRange(d.Box.X1, width);
                d.Box.Y1.Should().BeInRange(0, height);
                d.Box.Y2.Should().BeInRange(d.Box.Y1, height);
                float.IsFinite(d.Score).Should().BeTrue();
            }
        }
    }

    [Theory]
    [InlineData(1, 300)]
    [InlineData(300, 1)]
    [InlineData(2, 10_000)]
    public void Images_too_elongated_for_the_resize_are_refused_naming_their_size(int height, int width)
    {
        // Resizing the shorter side to 128 with the longer side at most 160 would leave no row (or column); libtorch
        // would fail inside interpolate without naming the image.
        using var model = Small().Build();
        using var image = Tensor.Zeros([3, height, width], DType.UInt8);
        FluentActions.Invoking(() => model.Predict(image)).Should().Throw<ArgumentException>()
            .WithMessage($"<tensor>: the image is {width}x{height} pixels, too elongated*");

        model.Train();
        using var floats = Tensor.Zeros([3, height, width]);
        var target = new Core.Structures.DetectionTarget(Tensor.Zeros([0, 4]), Tensor.Zeros([0], DType.Int64), null);
        FluentActions.Invoking(() => model.ComputeLosses([floats], [target])).Should().Throw<ArgumentException>()
            .WithMessage("images[0]: *too elongated*");
    }

    [Fact]
    public void An_image_without_objects_gives_an_empty_list()
    {
        using var model = Small().WithScoreThreshold(0.05).Build();

        // Make the background class win every box: the classifier's background bias dominates all logits.
        using (Torch.NoGrad())
        {
            var bias = model.StateDict().Single(kv => kv.Key == "roi_heads.box_predictor.cls_score.bias").Value;
            bias.Narrow(0, 0, 1).FillInPlace(1000.0);
        }

        var result = model.Predict(RepoPaths.MriImage(0));
        result.Detections.Should().BeEmpty();
        using var decoded = ImageCodec.Decode(RepoPaths.MriImage(0));
        (result.Height, result.Width).Should().Be(((int)decoded.Size(1), (int)decoded.Size(2)));

        // The tensor API agrees: zero rows of boxes and masks of the image's size.
        using var scope = Torch.NewDisposeScope();
        var floats = ImageCodec.Decode(RepoPaths.MriImage(0), ImageReadMode.Rgb).To(DType.Float32) / 255.0;
        var d = model.Detect([floats])[0];
        d.Boxes.Shape.Should().Equal(0, 4);
        d.Scores.Shape.Should().Equal(0);
        d.Masks!.Shape.Should().Equal(0, 1, decoded.Size(1), decoded.Size(2));
        model.ToDotNet(d, (int)decoded.Size(2), (int)decoded.Size(1)).Detections.Should().BeEmpty();
    }

    [Fact]
    public void A_10000_by_10000_image_is_refused_before_any_large_allocation_unless_its_masks_fit()
    {
        // Decision: masks are returned at full size (one byte per pixel per detection, through one array), so
        // 10^8 pixels × 100 detections (10 GB) cannot be returned; the model refuses the image up front, naming its
        // size and the setting to change, instead of allocating 1.2 GB of float input and tens of GB of masks.
        using var model = Small().Build();
        using var image = Tensor.Zeros([3, 10_000, 10_000], DType.UInt8);
        var (e, cpu) = ThreadCpuTime.Of(() => FluentActions.Invoking(() => model.Predict(image)).Should().Throw<ArgumentException>().Which);
        cpu.Should().BeLessThan(TimeSpan.FromSeconds(2), "the size check comes before converting 10^8 pixels (CPU time of this thread)");
        e.Message.Should().Contain("10000x10000").And.Contain("DetectionsPerImage").And.Contain("100 detections");

        // The same check protects the tensor API.
        using var column = Tensor.Zeros([3, 10_000, 1]);
        using var floats = column.Expand(3, 10_000, 10_000); // a view: no 1.2 GB allocation
        FluentActions.Invoking(() => model.Detect([floats])).Should().Throw<ArgumentException>().WithMessage("images[0]: *10000x10000*");
    }

    [Fact]
    public void A_large_image_whose_masks_fit_runs_and_returns_full_size_masks()
    {
        // 3000 x 2000 with at most 3 detections: every mask is pasted at 6 megapixels.
        using var model = Small().WithDetectionsPerImage(3).Build();
        using var image = Tensor.Zeros([3, 2000, 3000], DType.UInt8);
        image.Narrow(1, 500, 1000).Narrow(2, 1000, 1000).FillInPlace(255L);
        var result = model.Predict(image);
        result.Detections.Should().HaveCountLessThanOrEqualTo(3).And.NotBeEmpty();
        result.Detections.Should().OnlyContain(d => d.Mask!.Width == 3000 && d.Mask.Height == 2000);
    }

    [Fact]
    public void A_bad_image_in_a_batch_is_named_by_its_source()
    {
        using var model = Small().Build();
        using var good = Tensor.Full([3, 20, 30], 100L, DType.UInt8);
        using var wrongDtype = Tensor.Zeros([3, 20, 30]);
        FluentActions.Invoking(() => model.Predict(new ImageSource[] { good, wrongDtype })).Should().Throw<ArgumentException>()
            .WithMessage("*uint8*");
        var brokenPng = ImageCodec.EncodePng(good)[..40];
        FluentActions.Invoking(() => model.Predict(new ImageSource[] { good, brokenPng })).Should().Throw<ImageDecodeException>()
            .Which.Failure.Should().Be(ImageDecodeFailure.Truncated);

        // Non-finite float input reaches the network and gives no detections rather than a crash.
        using var nan = Tensor.Full([3, 40, 50], double.NaN);
        using var scope = Torch.NewDisposeScope();
        model.Detect([nan])[0].Boxes.Size(0).Should().Be(0);
    }
}
