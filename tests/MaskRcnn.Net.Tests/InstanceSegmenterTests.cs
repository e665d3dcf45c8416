using MaskRcnn.Net.Backbones;
using MaskRcnn.Net.Core.Imaging;
using MaskRcnn.Net.Core.NN;
using MaskRcnn.Net.Heads;
using MaskRcnn.Net.Imaging;

namespace MaskRcnn.Net.Tests;

/// <summary>The model through <see cref="IInstanceSegmenter"/>: async prediction, cancellation, raw-pixel input.</summary>
public class InstanceSegmenterTests
{
    private static MaskRcnnModel Small() => new MaskRcnnBuilder()
        .WithBackbone(18, NormKind.FrozenBatchNorm)
        .WithClasses("tumor")
        .WithImageSize(128, 160)
        .WithScoreThreshold(0.0)
        .WithSeed(3)
        .Build();

    private static void ShouldEqual(ImageDetections actual, ImageDetections expected)
    {
        actual.Width.Should().Be(expected.Width);
        actual.Height.Should().Be(expected.Height);
        actual.Detections.Should().HaveCount(expected.Detections.Count);
        for (var i = 0; i < expected.Detections.Count; i++)
        {
            var (a, e) = (actual.Detections[i], expected.Detections[i]);
            (a.Label, a.ClassName, a.Score, a.Box).Should().Be((e.Label, e.ClassName, e.Score, e.Box), $"detection {i}");
            a.Mask.Should().Be(e.Mask, $"detection {i}'s mask");
        }
    }

    [Fact]
    public async Task PredictAsync_through_the_interface_equals_Predict_and_honours_cancellation()
    {
        using var model = Small();
        IInstanceSegmenter segmenter = model;
        segmenter.ClassNames.Should().Equal("__background__", "tumor");
        var expected = model.Predict(RepoPaths.MriImage(0));
        expected.Detections.Should().NotBeEmpty("a score threshold of 0 keeps detections");

        ShouldEqual(await segmenter.PredictAsync(RepoPaths.MriImage(0)), expected);
        // A batch is padded to its largest image, so compare with the synchronous batch.
        var batch = await segmenter.PredictAsync([RepoPaths.MriImage(1), RepoPaths.MriImage(0)]);
        var syncBatch = model.Predict([RepoPaths.MriImage(1), RepoPaths.MriImage(0)]);
        batch.Should().HaveCount(2);
        ShouldEqual(batch[0], syncBatch[0]);
        ShouldEqual(batch[1], syncBatch[1]);

        // Concurrent calls on one instance give the same answers.
        var concurrent = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => segmenter.PredictAsync(RepoPaths.MriImage(0))));
        foreach (var r in concurrent)
        {
            ShouldEqual(r, expected);
        }

        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        await FluentActions.Awaiting(() => segmenter.PredictAsync(RepoPaths.MriImage(0), cancelled.Token)).Should().ThrowAsync<OperationCanceledException>();

        // Cancelled while running: the mask head cancels the token, the check after the RoI heads stops the
        // prediction before any image is postprocessed.
        using var during = new CancellationTokenSource();
        var head = default(CancellingMaskHead);
        using var cancelling = new MaskRcnnBuilder().WithBackbone(18, NormKind.FrozenBatchNorm).WithClasses("tumor")
            .WithImageSize(128, 160).WithScoreThreshold(0.0).WithSeed(3)
            .WithMaskHead(c => head = new CancellingMaskHead(c, during)).Build();
        await FluentActions.Awaiting(() => cancelling.PredictAsync(RepoPaths.MriImage(0), during.Token)).Should().ThrowAsync<OperationCanceledException>();
        head!.Calls.Should().Be(1, "the prediction got as far as the mask head, then stopped");
    }

    /// <summary>A mask head (3×3 conv + ReLU) that cancels a token when it runs.</summary>
    private sealed class CancellingMaskHead : Module, IMaskHead
    {
        private readonly Conv2d conv;
        private readonly CancellationTokenSource source;

        public CancellingMaskHead(int inChannels, CancellationTokenSource source)
        {
            conv = RegisterModule("conv", new Conv2d(inChannels, 8, 3, padding: 1));
            this.source = source;
        }

        public int OutChannels => 8;

        public int Calls { get; private set; }

        public Tensor Forward(Tensor pooled)
        {
            Calls++;
            source.Cancel();
            return conv.Forward(pooled).ReluInPlace();
        }
    }

    [Fact]
    public void Raw_pixels_in_every_format_give_the_detections_of_the_decoded_image()
    {
        using var model = Small();
        using var decoded = ImageCodec.Decode(RepoPaths.MriImage(2), ImageReadMode.Rgb);
        var expected = model.Predict(decoded);
        var rgb = decoded.ToRgbImage();
        var (w, h) = (rgb.Width, rgb.Height);
        byte[] Pack(int bpp, Func<byte, byte, byte, byte[]> pixel, int stride)
        {
            var buffer = new byte[stride * h];
            for (var y = 0; y < h; y++)
            {
                for (var x = 0; x < w; x++)
                {
                    var k = 3 * (y * w + x);
                    pixel(rgb.Pixels[k], rgb.Pixels[k + 1], rgb.Pixels[k + 2]).CopyTo(buffer, y * stride + bpp * x);
                }
            }

            return buffer;
        }

        ShouldEqual(model.Predict(ImageSource.FromPixels(Pack(3, (r, g, b) => [r, g, b], 3 * w), w, h, PixelFormat.Rgb24)), expected);
        ShouldEqual(model.Predict(ImageSource.FromPixels(Pack(3, (r, g, b) => [b, g, r], 3 * w + 5), w, h, PixelFormat.Bgr24, 3 * w + 5)), expected);
        ShouldEqual(model.Predict(ImageSource.FromPixels(Pack(4, (r, g, b) => [r, g, b, 7], 4 * w), w, h, PixelFormat.Rgba32)), expected);
        ShouldEqual(model.Predict(ImageSource.FromPixels(Pack(4, (r, g, b) => [b, g, r, 255], 4 * w + 12), w, h, PixelFormat.Bgra32, 4 * w + 12)), expected);
        ShouldEqual(model.Predict(rgb), expected);

        // The MRI slice is grey (R = G = B), so its luminance plane is the same image.
        rgb.Pixels.Chunk(3).Should().OnlyContain(p => p[0] == p[1] && p[1] == p[2]);
        ShouldEqual(model.Predict(ImageSource.FromPixels(Pack(1, (r, _, _) => [r], w), w, h, PixelFormat.Gray8)), expected);
    }
}
