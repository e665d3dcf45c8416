using MaskRcnn.Net.Core;
using MaskRcnn.Net.Core.Checkpoints;
using MaskRcnn.Net.Core.Detection;
using MaskRcnn.Net.Core.Imaging;
using MaskRcnn.Net.Core.Masks;
using MaskRcnn.Net.Imaging;
using MaskRcnn.Net.SkiaSharp;
using MaskRcnn.Net.Tests;

namespace MaskRcnn.Net.Onnx.Tests;

/// <summary>
/// <see cref="OnnxMaskRcnn"/> on a real ONNX Runtime session of <see cref="TestGraphs.Synthetic"/>: the results are
/// computed independently here (boxes from the image size, scores from its mean, masks pasted by libtorch's tensor
/// <c>MaskPaster</c> and thresholded), and the load refuses graphs that do not have the export's interface.
/// </summary>
public sealed class OnnxMaskRcnnTests : IDisposable
{
    private const float Ambiguity = 1e-5f;
    private readonly string dir = Directory.CreateTempSubdirectory("mr_onnx_run_").FullName;

    public void Dispose() => Directory.Delete(dir, true);

    private string Model(string name = "m.onnx", string suppress = "off") =>
        TestGraphs.Synthetic(Path.Combine(dir, name), TestGraphs.Metadata(suppress));

    /// <summary>A test image: a gradient with a seeded noise, so that sizes and brightness differ between images.</summary>
    private static RgbImage Image(int width, int height, int seed)
    {
        var random = new Random(seed);
        var pixels = new byte[3 * width * height];
        for (var i = 0; i < pixels.Length; i++)
        {
            pixels[i] = (byte)((i / 3 % width * 200 / width) + random.Next(40));
        }

        return new RgbImage(width, height, pixels);
    }

    /// <summary>The detections the synthetic graph and the post-processing must give, computed without either.</summary>
    private static void ShouldMatchTheIndependentTruth(ImageDetections result, RgbImage image, bool suppressed)
    {
        var (w, h) = (image.Width, image.Height);
        var brightness = image.Pixels.Select(p => (double)p).Average() / 255;
        var expected = suppressed ? new[] { 0, 1 } : [0, 1, 2];
        (result.Width, result.Height).Should().Be((w, h));
        result.Detections.Should().HaveCount(expected.Length);
        using var scope = Torch.NewDisposeScope();
        for (var k = 0; k < expected.Length; k++)
        {
            var d = expected[k];
            var det = result.Detections[k];
            var f = TestGraphs.BoxFractions[d];
            det.Box.Should().Be(new BoundingBox(f[0] * w, f[1] * h, f[2] * w, f[3] * h), "float32 fraction × size, as the graph computes it");
            det.Label.Should().Be((int)TestGraphs.Labels[d]);
            det.ClassName.Should().Be(TestGraphs.ClassNames[TestGraphs.Labels[d]]);
            det.Score.Should().BeApproximately((float)(brightness * TestGraphs.ScoreFactors[d]), 1e-5f);

            // The mask: libtorch's tensor paste (torchvision's paste_masks_in_image) thresholded at the metadata's 0.5.
            var plane = TestGraphs.MaskSize * TestGraphs.MaskSize;
            using var probabilities = Tensor.FromArray(TestGraphs.MaskProbabilities.AsSpan(d * plane, plane).ToArray(), 1, 1, TestGraphs.MaskSize, TestGraphs.MaskSize);
            using var box = Tensor.FromArray(new[] { det.Box.X1, det.Box.Y1, det.Box.X2, det.Box.Y2 }, 1, 4);
            var pasted = MaskPaster.Paste(probabilities, box, h, w).ToArray<float>();
            var bits = det.Mask!.ToBytes();
            var compared = 0;
            for (var p = 0; p < bits.Length; p++)
            {
                if (Math.Abs(pasted[p] - 0.5f) > Ambiguity)
                {
                    compared++;
                    bits[p].Should().Be(pasted[p] > 0.5f ? (byte)1 : (byte)0, $"detection {d} pixel ({p % w}, {p / w})");
                }
            }

            compared.Should().BeGreaterThan(bits.Length / 2);
            det.Mask.Area.Should().BeGreaterThan(0, "the blob's centre is above the threshold");
        }
    }

    private static void ShouldBeSame(ImageDetections actual, ImageDetections expected, string because)
    {
        (actual.Width, actual.Height).Should().Be((expected.Width, expected.Height), because);
        actual.Detections.Should().HaveCount(expected.Detections.Count, because);
        foreach (var (a, e) in actual.Detections.Zip(expected.Detections))
        {
            (a.Box, a.Score, a.Label, a.ClassName).Should().Be((e.Box, e.Score, e.Label, e.ClassName), because);
            a.Mask.Should().Be(e.Mask, because);
        }
    }

    [Fact]
    public void Predict_returns_the_graph_outputs_pasted_thresholded_and_named()
    {
        using var model = OnnxMaskRcnn.Load(Model());
        model.ClassNames.Should().Equal(TestGraphs.ClassNames);
        model.Metadata.MaskSize.Should().Be(28);
        model.Metadata.ProducerName.Should().Be("MaskRcnn.Net");
        foreach (var (w, h, seed) in new[] { (97, 71, 1), (320, 240, 2), (64, 200, 3) })
        {
            var image = Image(w, h, seed);
            ShouldMatchTheIndependentTruth(model.Predict(image), image, suppressed: false);
        }
    }

    [Fact]
    public void The_metadata_suppression_setting_is_applied()
    {
        using var model = OnnxMaskRcnn.Load(Model("suppress.onnx", suppress: "0.8"));
        model.Metadata.SuppressContained.Should().Be(0.8);
        var image = Image(160, 120, 4);
        var result = model.Predict(image);
        ShouldMatchTheIndependentTruth(result, image, suppressed: true);

        // Why detection 2 went: counted on the unsuppressed masks, at least 0.8 of its pixels lie in detection 0's
        // (same label, higher score), and detection 1 (other label) is kept whatever its overlap.
        using var all = OnnxMaskRcnn.Load(Model());
        var unsuppressed = all.Predict(image).Detections;
        var (big, small) = (unsuppressed[0].Mask!.ToBytes(), unsuppressed[2].Mask!.ToBytes());
        var inside = big.Zip(small).Count(p => p.First == 1 && p.Second == 1);
        var containment = (double)inside / Math.Min(big.Count(b => b == 1), small.Count(b => b == 1));
        containment.Should().BeGreaterThanOrEqualTo(0.8);
        result.Detections[1].Should().Be(unsuppressed[1]);
    }

    [Fact]
    public void The_metadata_mask_scoring_rescores_and_reorders()
    {
        var metadata = TestGraphs.Metadata();
        metadata["maskrcnn.mask_scoring"] = "on";
        using var model = OnnxMaskRcnn.Load(TestGraphs.Synthetic(Path.Combine(dir, "scoring.onnx"), metadata));
        model.Metadata.MaskScoring.Should().BeTrue();
        var image = Image(160, 120, 5);
        using var plain = OnnxMaskRcnn.Load(Model());
        var unscored = plain.Predict(image).Detections;

        // Independently: each detection's score times the mean of its M×M probabilities above 0.5, sorted by that.
        var plane = TestGraphs.MaskSize * TestGraphs.MaskSize;
        var expected = unscored.Select((d, i) =>
        {
            var above = TestGraphs.MaskProbabilities.Skip(i * plane).Take(plane).Where(p => p > 0.5f).Select(p => (double)p).ToList();
            return (Detection: d, Score: d.Score * above.Average());
        }).OrderByDescending(x => x.Score).ToList();
        var result = model.Predict(image).Detections;
        result.Should().HaveCount(expected.Count);
        for (var k = 0; k < expected.Count; k++)
        {
            result[k].Score.Should().BeApproximately((float)expected[k].Score, 1e-6f);
            (result[k].Box, result[k].Label, result[k].Mask).Should().Be((expected[k].Detection.Box, expected[k].Detection.Label, expected[k].Detection.Mask));
        }
    }

    [Fact]
    public void The_metadata_aligned_mask_paste_pastes_each_mask_with_the_aligned_geometry()
    {
        var metadata = TestGraphs.Metadata();
        metadata["maskrcnn.mask_paste"] = "aligned";
        using var model = OnnxMaskRcnn.Load(TestGraphs.Synthetic(Path.Combine(dir, "aligned.onnx"), metadata));
        model.Metadata.AlignedMaskPaste.Should().BeTrue();
        var image = Image(160, 120, 5);
        using var plain = OnnxMaskRcnn.Load(Model());
        var torchvisionPasted = plain.Predict(image).Detections;
        var result = model.Predict(image).Detections;
        result.Should().HaveCount(torchvisionPasted.Count).And.NotBeEmpty();

        // Same boxes, scores and order; each mask is the graph's M×M probabilities pasted with the aligned geometry.
        var plane = TestGraphs.MaskSize * TestGraphs.MaskSize;
        var differs = 0;
        for (var i = 0; i < result.Count; i++)
        {
            (result[i].Box, result[i].Score, result[i].Label).Should().Be((torchvisionPasted[i].Box, torchvisionPasted[i].Score, torchvisionPasted[i].Label));
            var probabilities = TestGraphs.MaskProbabilities.Skip(i * plane).Take(plane).ToArray();
            result[i].Mask.Should().Be(MaskPasting.PasteAlignedBinary(probabilities, result[i].Box, 160, 120));
            differs += result[i].Mask == torchvisionPasted[i].Mask ? 0 : 1;
        }

        differs.Should().BeGreaterThan(0, "the aligned paste differs from torchvision's");
    }

    [Fact]
    public void A_blank_image_gives_no_detections_not_an_error()
    {
        using var model = OnnxMaskRcnn.Load(Model());
        var result = model.Predict(RgbImage.Filled(80, 60, 0, 0, 0));
        result.Detections.Should().BeEmpty();
        (result.Width, result.Height).Should().Be((80, 60));
    }

    [Fact]
    public void Every_image_source_is_decoded_with_skia_and_bad_input_gets_typed_exceptions()
    {
        using var model = OnnxMaskRcnn.Load(Model());
        var path = RepoPaths.MriImage(0);
        var decoded = SkiaImageDecoder.Decode(path);
        var reference = model.Predict(decoded);
        reference.Detections.Should().NotBeEmpty();
        foreach (var source in new[] { ImageSource.FromFile(path), ImageSource.FromBytes(File.ReadAllBytes(path)), ImageSource.FromStream(new MemoryStream(File.ReadAllBytes(path))) })
        {
            var result = model.Predict(source);
            result.Detections.Select(d => (d.Box, d.Score, d.Label)).Should().Equal(reference.Detections.Select(d => (d.Box, d.Score, d.Label)), source.Description);
            result.Detections.Select(d => d.Mask).Should().Equal(reference.Detections.Select(d => d.Mask), source.Description);
        }

        var truncated = File.ReadAllBytes(path).AsSpan(0, 300).ToArray();
        FluentActions.Invoking(() => model.Predict(ImageSource.FromBytes(truncated))).Should().Throw<IOException>().WithMessage("<bytes>*");
        FluentActions.Invoking(() => model.Predict(ImageSource.FromFile(Path.Combine(dir, "missing.jpg")))).Should().Throw<FileNotFoundException>();
        using var tensor = Tensor.Zeros([3, 8, 8], DType.UInt8);
        FluentActions.Invoking(() => model.Predict(new TensorImageSource(tensor))).Should().Throw<NotSupportedException>().WithMessage("*TensorImageSource*");
        FluentActions.Invoking(() => model.Predict(RgbImage.Filled(6000, 1, 9, 9, 9))).Should().Throw<ArgumentException>()
            .WithMessage("*6000x1*too elongated*");
    }

    [Fact]
    public void Batches_keep_the_input_order_and_equal_single_predictions()
    {
        using var model = OnnxMaskRcnn.Load(Model());
        var images = new[] { Image(50, 40, 5), RgbImage.Filled(30, 30, 0, 0, 0), Image(120, 90, 6) };
        var batch = model.Predict(images);
        batch.Should().HaveCount(3);
        for (var i = 0; i < images.Length; i++)
        {
            ShouldBeSame(batch[i], model.Predict(images[i]), $"image {i}");
        }

        batch[1].Detections.Should().BeEmpty();
        model.Predict(Array.Empty<ImageSource>()).Should().BeEmpty();
    }

    [Fact]
    public async Task Parallel_predictions_equal_sequential_ones()
    {
        using var model = OnnxMaskRcnn.Load(Model(), new OnnxMaskRcnnOptions(IntraOpThreads: 1));
        var images = Enumerable.Range(0, 6).Select(i => Image(60 + 17 * i, 50 + 11 * i, 10 + i)).ToArray();
        var sequential = images.Select(model.Predict).ToArray();
        var tasks = Enumerable.Range(0, 24).Select(j => Task.Run(() => (Index: j % images.Length, Result: model.Predict(images[j % images.Length])))).ToArray();
        foreach (var (index, result) in await Task.WhenAll(tasks))
        {
            ShouldBeSame(result, sequential[index], $"image {index} predicted concurrently");
        }

        IInstanceSegmenter segmenter = model;
        var viaInterface = await segmenter.PredictAsync(ImageSource.FromImage(images[2]));
        ShouldBeSame(viaInterface, sequential[2], "PredictAsync through IInstanceSegmenter");
    }

    [Fact]
    public async Task Cancellation_and_dispose_are_reported()
    {
        var model = OnnxMaskRcnn.Load(Model());
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        await FluentActions.Awaiting(() => model.PredictAsync(ImageSource.FromImage(Image(40, 40, 1)), cancelled.Token)).Should().ThrowAsync<OperationCanceledException>();
        model.Dispose();
        model.Dispose();
        FluentActions.Invoking(() => model.Predict(Image(40, 40, 1))).Should().Throw<ObjectDisposedException>();
    }

    [Theory]
    [InlineData("masks")]
    [InlineData("labels")]
    public void A_graph_without_an_output_is_refused_naming_it(string output)
    {
        var path = TestGraphs.Synthetic(Path.Combine(dir, "no-" + output + ".onnx"), change: w =>
        {
            var kept = w.Outputs.Where(o => o.Name != output).ToList();
            w.Outputs.Clear();
            kept.ForEach(w.Outputs.Add);
        });
        var e = FluentActions.Invoking(() => OnnxMaskRcnn.Load(path)).Should().Throw<OnnxModelFormatException>().Which;
        e.Key.Should().Be(output);
        e.Message.Should().StartWith(path).And.Contain($"'{output}' is missing");
    }

    [Fact]
    public void Graphs_with_another_input_or_metadata_are_refused_naming_the_key()
    {
        var floatInput = TestGraphs.Synthetic(Path.Combine(dir, "float.onnx"), imageType: OnnxElementType.Float);
        FluentActions.Invoking(() => OnnxMaskRcnn.Load(floatInput)).Should().Throw<OnnxModelFormatException>()
            .Where(e => e.Key == "image").WithMessage("*uint8*Float*");

        var wrongLabels = TestGraphs.Synthetic(Path.Combine(dir, "labels-float.onnx"), change: w =>
        {
            var slice = w.Nodes.Single(n => n.Outputs[0] == "labels");
            w.Nodes[w.Nodes.IndexOf(slice)] = slice with { Outputs = ["labels_i"], Name = "labels_i" };
            w.Nodes.Add(new OnnxNodeValue("Cast", ["labels_i"], ["labels"], [OnnxAttributeValue.Int("to", (long)OnnxElementType.Float)], "labels"));
            var i = w.Outputs.Select(o => o.Name).ToList().IndexOf("labels");
            w.Outputs[i] = new OnnxValueInfo("labels", OnnxElementType.Float, ["N"]);
        });
        FluentActions.Invoking(() => OnnxMaskRcnn.Load(wrongLabels)).Should().Throw<OnnxModelFormatException>().Where(e => e.Key == "labels");

        var metadata = TestGraphs.Metadata();
        metadata.Remove("maskrcnn.class_names");
        var noNames = TestGraphs.Synthetic(Path.Combine(dir, "no-names.onnx"), metadata);
        FluentActions.Invoking(() => OnnxMaskRcnn.Load(noNames)).Should().Throw<OnnxModelFormatException>()
            .Where(e => e.Key == "maskrcnn.class_names" && e.Path == noNames);

        var future = TestGraphs.Metadata();
        future["maskrcnn.format"] = "2";
        var v2 = TestGraphs.Synthetic(Path.Combine(dir, "v2.onnx"), future);
        FluentActions.Invoking(() => OnnxMaskRcnn.Load(v2)).Should().Throw<OnnxModelFormatException>().WithMessage($"{v2}: export format 2*");
    }
}
