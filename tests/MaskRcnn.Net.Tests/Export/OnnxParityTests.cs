using MaskRcnn.Net.Backbones;
using MaskRcnn.Net.Core.Imaging;
using MaskRcnn.Net.Export;
using MaskRcnn.Net.RoIAlign;
using Microsoft.ML.OnnxRuntime;
using Xunit.Abstractions;

namespace MaskRcnn.Net.Tests.Export;

/// <summary>
/// Issue 14 §3: the whole exported graph (transform, backbone, RPN, RoI heads, mask head) run by ONNX Runtime on
/// uint8 images against our libtorch <see cref="MaskRcnnModel"/> — detections scoring at least 0.05 above the score
/// threshold matched by label and box IoU ≥ 0.99 (≥ 98 %), scores within 1e-3, masks (pasted by the same
/// <see cref="Core.Detection.MaskPaster"/>, thresholded at 0.5) with IoU ≥ 0.98 — on real MRI images with several
/// detections, and empty outputs for a blank image; for the torchvision-seeded fixture and for a model trained at
/// test time.
/// </summary>
[Collection(TrainedModelCollection.Name)]
public sealed class OnnxParityTests : IClassFixture<MaskRcnnParityTests.Oracle>
{
    private readonly MaskRcnnParityTests.Oracle oracle;
    private readonly TrainedModelFixture trained;
    private readonly ITestOutputHelper output;

    public OnnxParityTests(MaskRcnnParityTests.Oracle oracle, TrainedModelFixture trained, ITestOutputHelper output) =>
        (this.oracle, this.trained, this.output) = (oracle, trained, output);

    private MaskRcnnModel BuildFixture(double scoreThreshold = 0.05) => new MaskRcnnBuilder()
        .WithBackbone(50, NormKind.BatchNorm, trainableLayers: 5)
        .WithWeights(oracle.WeightsPath)
        .WithScoreThreshold(scoreThreshold)
        .Build();

    /// <summary>
    /// The seeded fixture (classifier scaled ×40: a saturated softmax) finds one or two objects per image; the
    /// many-detection case is the trained model's test.
    /// </summary>
    [Theory]
    [InlineData(0.05)]
    public void Torchvision_fixture_onnx_runtime_matches_libtorch_on_mri_images(double scoreThreshold)
    {
        using var model = BuildFixture(scoreThreshold);
        var images = OnnxTestImages.ValImages(6).Append(RepoPaths.MriImage(0)).Append(RepoPaths.MriImage(1)).ToArray();
        AssertParity(model, images);
    }

    [Fact]
    public void Trained_model_onnx_runtime_matches_libtorch_on_mri_images()
    {
        AssertParity(trained.Model, OnnxTestImages.ValImages(10).ToArray());
    }

    /// <summary>
    /// The trained weights run with aligned RoIAlign (ONNX <c>half_pixel</c>) and the aligned mask paste on both sides:
    /// libtorch's <c>Detect</c> pastes with <see cref="MaskPaster.PasteAligned"/>, the graph's M×M masks are pasted
    /// the same way.
    /// </summary>
    [Fact]
    public void Aligned_roialign_model_onnx_runtime_matches_libtorch_on_mri_images()
    {
        using var model = MaskRcnnModel.Load(trained.WeightsPath, configure: c => c with
        {
            BoxPooler = c.BoxPooler with { Aligned = true },
            MaskPooler = c.MaskPooler with { Aligned = true },
            RoIHeads = c.RoIHeads with { AlignedMaskTargets = true },
            AlignedMaskPaste = true,
        });
        ((MultiScaleRoIAlign)model.RoIHeads.BoxPooler).Aligned.Should().BeTrue();
        AssertParity(model, OnnxTestImages.ValImages(6).ToArray());
    }

    /// <summary>
    /// Blank images through the whole graph, for the fixture, the trained model, and the trained model loaded with a
    /// score threshold of 0.5 (as <c>maskrcnn predict</c> can set it), which finds nothing there: where our model finds
    /// nothing, ONNX Runtime must return empty outputs of the declared ranks; otherwise as many detections.
    /// </summary>
    [Fact]
    public void Blank_images_give_empty_outputs_where_libtorch_finds_nothing()
    {
        using var fixture = BuildFixture();
        using var strict = MaskRcnnModel.Load(trained.WeightsPath, configure: c => c with { RoIHeads = c.RoIHeads with { ScoreThreshold = 0.5 } });
        var empties = 0;
        foreach (var model in new[] { fixture, trained.Model, strict })
        {
            using var session = FullGraph.Create(model);
            foreach (var (h, w) in new[] { (256, 256), (200, 333) })
            {
                using var scope = Torch.NewDisposeScope();
                using var inference = Torch.InferenceMode();
                using var blank = Tensor.Zeros([3, h, w], DType.UInt8);
                var ours = model.Detect([blank.To(DType.Float32)])[0];
                var onnx = session.Run(blank);
                output.WriteLine($"threshold {model.RoIHeads.Options.ScoreThreshold}, blank {w}x{h}: ours {ours.Labels.Size(0)}, onnx {onnx["labels"].Size(0)}");
                if (ours.Labels.Size(0) == 0)
                {
                    empties++;
                    AssertEmpty(onnx, OnnxExporter.MaskSize(model));
                    continue;
                }

                // A constant image gives equal objectness over whole regions of the feature maps: which of the tied
                // anchors top-k keeps is arbitrary in both runtimes, so the detections are reported, not matched.
                var report = DetectionMatcher.Match(
                    DetectionSet.From(ours.Boxes, ours.Labels, ours.Scores, ours.Masks) with { MasksArePasted = true },
                    DetectionSet.From(onnx["boxes"], onnx["labels"], onnx["scores"], onnx["masks"]), 0, h, w);
                output.WriteLine($"  {report}");
                onnx["labels"].Size(0).Should().Be(ours.Labels.Size(0));
            }
        }

        empties.Should().BeGreaterThan(0, "the trained model at threshold 0.5 must find nothing in a blank image");
    }

    /// <summary>
    /// Stage-by-stage view of the whole-graph differences: our libtorch RPN and RoI heads, run on the feature maps the
    /// ONNX graph computed (its debug outputs), must reproduce the graph's own detections — so whatever differs in
    /// <see cref="Trained_model_onnx_runtime_matches_libtorch_on_mri_images"/> comes from the float rounding of the
    /// transform and backbone (reported as the features' relative difference), not from the exported heads.
    /// </summary>
    [Fact]
    public void Libtorch_heads_on_the_graphs_own_features_reproduce_its_detections()
    {
        var model = trained.Model;
        var options = OnnxExportOptions.Default with { DebugOutputs = OnnxDebugOutputs.Transform | OnnxDebugOutputs.Features };
        using var session = new InferenceSession(OnnxExporter.Build(model, options).ToBytes(), OnnxTestSession.Options());
        var fpn = (BackboneWithFpn)model.Backbone;
        var totals = new MatchTotals();
        foreach (var path in OnnxTestImages.ValImages(10))
        {
            using var scope = Torch.NewDisposeScope();
            using var inference = Torch.InferenceMode();
            using var u8 = ImageCodec.Decode(path, ImageReadMode.Rgb);
            var onnx = OnnxTestSession.Run(session, [("image", OrtValue.CreateTensorValueFromMemory(u8.Contiguous().ToArray<byte>(), u8.Shape))]);
            var resized = onnx["debug_resized_size"].ToArray<long>();
            var batch = new Core.Structures.ImageBatch(onnx["debug_images"], [new Core.Detection.ImageSize((int)resized[0], (int)resized[1])]);
            var features = fpn.FeatureNames.Select(n => onnx["debug_feature_" + n]).ToArray();
            var (proposals, _) = model.Rpn.Forward(batch, features);
            var (detections, _) = model.RoIHeads.Forward(features.Take(fpn.LevelNames.Count).ToArray(), proposals, batch.Sizes);
            var ours = model.Transform.Postprocess(detections[0], batch.Sizes[0], new Core.Detection.ImageSize((int)u8.Size(1), (int)u8.Size(2)));

            // How far the graph's features are from our backbone's on our transform.
            var (ourBatch, _) = model.Transform.Forward([u8.To(DType.Float32) / 255.0]);
            var ourFeatures = model.Backbone.Forward(ourBatch.Images);
            var relative = fpn.FeatureNames.Max(n =>
            {
                var a = ourFeatures[n];
                var b = onnx["debug_feature_" + n];
                return a.Shape.SequenceEqual(b.Shape) ? (a - b).Abs().Max().ItemDouble() / a.Abs().Max().ItemDouble() : double.PositiveInfinity;
            });

            var report = DetectionMatcher.Match(
                DetectionSet.From(ours.Boxes, ours.Labels, ours.Scores, ours.Masks) with { MasksArePasted = true },
                DetectionSet.From(onnx["boxes"], onnx["labels"], onnx["scores"], onnx["masks"]) with { AlignedPaste = model.Config.AlignedMaskPaste },
                model.RoIHeads.Options.ScoreThreshold + 0.05, u8.Size(1), u8.Size(2));
            output.WriteLine($"{Path.GetFileName(path)}: features max relative diff {relative:E2}; heads on the graph's features: {report}");
            totals.Add(report);
        }

        output.WriteLine(totals.ToString());
        totals.Considered.Should().BeGreaterThan(5);
        totals.MatchRate.Should().Be(1.0, "the same features must give the same detections");
        totals.MaxScoreDiff.Should().BeLessThan(1e-4);
        totals.MaxMaskProbabilityDiff.Should().BeLessThan(1e-3);
    }

    /// <summary>
    /// A score threshold no detection can pass (1.0, compared strictly) leaves the per-class NMS nothing, so every
    /// image goes through the empty path of the box and mask branches: outputs [0, 4], [0], [0], [0, 1, M, M].
    /// </summary>
    [Fact]
    public void Zero_detections_give_empty_outputs_not_an_error()
    {
        using var model = BuildFixture(scoreThreshold: 1.0);
        using var session = FullGraph.Create(model);
        using var scope = Torch.NewDisposeScope();
        using var inference = Torch.InferenceMode();
        using var u8 = ImageCodec.Decode(RepoPaths.MriImage(0), ImageReadMode.Rgb);
        model.Detect([u8.To(DType.Float32) / 255.0])[0].Labels.Size(0).Should().Be(0);
        AssertEmpty(session.Run(u8), OnnxExporter.MaskSize(model));
    }

    private static void AssertEmpty(Dictionary<string, Tensor> onnx, int maskSize)
    {
        onnx["boxes"].Shape.Should().Equal(0, 4);
        onnx["labels"].Shape.Should().Equal(0);
        onnx["scores"].Shape.Should().Equal(0);
        onnx["masks"].Shape.Should().Equal(0, 1, maskSize, maskSize);
    }

    private void AssertParity(MaskRcnnModel model, IReadOnlyList<string> images)
    {
        using var session = FullGraph.Create(model);
        var totals = new MatchTotals();
        var onnxTotal = 0;
        foreach (var path in images)
        {
            using var scope = Torch.NewDisposeScope();
            using var inference = Torch.InferenceMode();
            using var u8 = ImageCodec.Decode(path, ImageReadMode.Rgb);
            var ours = model.Detect([u8.To(DType.Float32) / 255.0])[0];
            var onnx = session.Run(u8);
            var report = DetectionMatcher.Match(
                DetectionSet.From(ours.Boxes, ours.Labels, ours.Scores, ours.Masks) with { MasksArePasted = true },
                DetectionSet.From(onnx["boxes"], onnx["labels"], onnx["scores"], onnx["masks"]) with { AlignedPaste = model.Config.AlignedMaskPaste },
                model.RoIHeads.Options.ScoreThreshold + 0.05, u8.Size(1), u8.Size(2));
            output.WriteLine($"{Path.GetFileName(path)} ({u8.Size(2)}x{u8.Size(1)}): {report}");
            totals.Add(report);
            onnxTotal += report.OnnxTotal;
        }

        output.WriteLine(totals.ToString());
        totals.Considered.Should().BeGreaterThan(5, "the model must give detections for the comparison to mean something");
        totals.MatchRate.Should().BeGreaterThanOrEqualTo(0.98);
        totals.MaxScoreDiff.Should().BeLessThanOrEqualTo(1e-3);
        // Masks: the issue's IoU ≥ 0.98 (after pasting both with the same code, threshold 0.5) for at least 98 % of the
        // matched detections; a briefly trained mask head outputs probabilities near 0.5 over whole boxes, where float
        // rounding alone flips pixels at the threshold, so the pasted probabilities themselves must agree everywhere.
        totals.MaskRate.Should().BeGreaterThanOrEqualTo(0.98);
        totals.MaxMaskProbabilityDiff.Should().BeLessThan(0.02);
    }
}

/// <summary>The exported graph of a whole model in an ONNX Runtime session.</summary>
internal sealed class FullGraph : IDisposable
{
    private readonly InferenceSession session;

    private FullGraph(InferenceSession session) => this.session = session;

    public static FullGraph Create(MaskRcnnModel model) =>
        new(new InferenceSession(OnnxExporter.Build(model).ToBytes(), OnnxTestSession.Options()));

    /// <summary>Runs the graph on a uint8 [3, H, W] image; outputs as tensors.</summary>
    public Dictionary<string, Tensor> Run(Tensor imageU8) =>
        OnnxTestSession.Run(session, [("image", OrtValue.CreateTensorValueFromMemory(imageU8.Contiguous().ToArray<byte>(), imageU8.Shape))]);

    public void Dispose() => session.Dispose();
}
