using MaskRcnn.Net.Backbones;
using MaskRcnn.Net.Core.Checkpoints;
using MaskRcnn.Net.Core.Detection;
using MaskRcnn.Net.Core.Imaging;
using MaskRcnn.Net.Export;
using MaskRcnn.Net.RoIAlign;
using Microsoft.ML.OnnxRuntime;
using TensorElementType = Microsoft.ML.OnnxRuntime.Tensors.TensorElementType;
using Xunit.Abstractions;

namespace MaskRcnn.Net.Tests.Export;

/// <summary>
/// The RPN, box and mask stages written as ONNX graphs, run by ONNX Runtime on the feature maps our libtorch backbone
/// computed, against our libtorch <see cref="Heads.RegionProposalNetwork"/> and <see cref="Heads.RoIHeads"/> on the
/// same feature maps (the torchvision-seeded parity fixture's weights): proposals, detections and unpasted masks.
/// Isolating the heads from the backbone, the two implementations should agree up to float rounding.
/// </summary>
public sealed class OnnxHeadsExportTests : IClassFixture<MaskRcnnParityTests.Oracle>
{
    private readonly MaskRcnnParityTests.Oracle oracle;
    private readonly ITestOutputHelper output;

    public OnnxHeadsExportTests(MaskRcnnParityTests.Oracle oracle, ITestOutputHelper output) => (this.oracle, this.output) = (oracle, output);

    private MaskRcnnModel Build(double scoreThreshold = 0.05) => new MaskRcnnBuilder()
        .WithBackbone(50, NormKind.BatchNorm, trainableLayers: 5)
        .WithWeights(oracle.WeightsPath)
        .WithScoreThreshold(scoreThreshold)
        .Build();

    /// <summary>
    /// The seeded fixture (classifier scaled ×40, so its softmax saturates) finds one or two objects per image; the
    /// many-detection case is <see cref="OnnxHeadsTrainedModelTests"/>.
    /// </summary>
    [Theory]
    [InlineData(0.05)]
    public void Rpn_box_and_mask_stages_match_libtorch_on_the_same_features(double scoreThreshold)
    {
        using var model = Build(scoreThreshold);
        using var heads = HeadsGraph.Create(model);
        var images = OnnxTestImages.ValImages(6).Append(RepoPaths.MriImage(0)).Append(RepoPaths.MriImage(2)).ToArray();
        var totals = new MatchTotals();
        foreach (var path in images)
        {
            using var scope = Torch.NewDisposeScope();
            using var inference = Torch.InferenceMode();
            using var u8 = ImageCodec.Decode(path, ImageReadMode.Rgb);
            var image = u8.To(DType.Float32) / 255.0;
            var stage = heads.Compare(image);
            output.WriteLine($"{Path.GetFileName(path)}: {stage}");
            stage.ProposalCount.Onnx.Should().Be(stage.ProposalCount.Ours, $"proposal count of {path}");
            // Same features: float rounding only, amplified by exp(dw)·anchor in the decoding (ONNX Runtime's and libtorch's
            // vectorised exp differ in the last bits); the bound is MaskRcnnParityTests' proposal bound.
            stage.ProposalsFound.Should().Be(1.0, $"every proposal of {path} must be found");
            totals.Add(stage.Detections);
        }

        output.WriteLine(totals.ToString());
        totals.Considered.Should().BeGreaterThan(5, "the fixture must give detections for the comparison to mean something");
        totals.MatchRate.Should().Be(1.0, "on the same features every detection must be found");
        totals.MaxScoreDiff.Should().BeLessThan(1e-4);
        totals.MaskRate.Should().BeGreaterThanOrEqualTo(0.98);
        // Same features: float rounding only, amplified by the fixture's ×10 mask logits. Our CPU prediction computes the
        // up-sampling as a 1×1 convolution + pixel shuffle and the mask convolutions channels-last (InferencePathTests:
        // ≤ 1e-5 relative to the plain layers), ONNX Runtime a ConvTranspose: the sums run in another order (measured 2.8e-3).
        totals.MaxMaskProbabilityDiff.Should().BeLessThan(5e-3, "same features: float rounding only (the fixture's mask logits are scaled ×10)");
    }

    [Fact]
    public void Zero_proposals_give_empty_detections_and_masks()
    {
        using var model = Build();
        using var scope = Torch.NewDisposeScope();
        using var inference = Torch.InferenceMode();
        var g = new OnnxGraphBuilder();
        var fpn = (BackboneWithFpn)model.Backbone;
        var features = fpn.LevelNames.Select((_, i) => g.Input($"f{i}", OnnxElementType.Float, 1, 256, $"h{i}", $"w{i}")).ToArray();
        var proposals = g.Input("proposals", OnnxElementType.Float, "p", 4);
        var size = g.Input("image_size", OnnxElementType.Int64, 2);
        var (boxes, scores, labels) = RoIHeadsExport.Emit(g, model.RoIHeads, features, proposals, size);
        var masks = MaskHeadExport.Emit(g, model.RoIHeads, features, boxes, labels, size);
        g.Output(boxes, "boxes", OnnxElementType.Float, null);
        g.Output(scores, "scores", OnnxElementType.Float, null);
        g.Output(labels, "labels", OnnxElementType.Int64, null);
        g.Output(masks, "masks", OnnxElementType.Float, null);
        using var session = new InferenceSession(g.ToWriter().ToBytes());

        var inputs = new Dictionary<string, OrtValue>();
        try
        {
            long[] sizes = [200, 100, 50, 25];
            for (var i = 0; i < features.Length; i++)
            {
                inputs[$"f{i}"] = OrtValue.CreateTensorValueFromMemory(new float[256 * sizes[i] * sizes[i]], [1, 256, sizes[i], sizes[i]]);
            }

            inputs["proposals"] = OrtValue.CreateTensorValueFromMemory(Array.Empty<float>(), [0, 4]);
            inputs["image_size"] = OrtValue.CreateTensorValueFromMemory(new long[] { 800, 800 }, [2]);
            using var run = new RunOptions();
            using var results = session.Run(run, inputs, session.OutputNames);
            results[0].GetTensorTypeAndShape().Shape.Should().Equal(0, 4);
            results[1].GetTensorTypeAndShape().Shape.Should().Equal(0);
            results[2].GetTensorTypeAndShape().Shape.Should().Equal(0);
            results[3].GetTensorTypeAndShape().Shape.Should().Equal(0, 1, 28, 28);
        }
        finally
        {
            foreach (var v in inputs.Values)
            {
                v.Dispose();
            }
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Pooler_level_mapping_and_roialign_match_multiscale_roialign(bool aligned)
    {
        // Boxes of every size class (so every FPN level is used), random features: ONNX RoiAlign with
        // output_half_pixel (half_pixel when aligned) and the in-graph level mapping against our MultiScaleRoIAlign.
        using var model = Build();
        IRoIPooler pooler = aligned
            ? new MultiScaleRoIAlign(((MultiScaleRoIAlign)model.RoIHeads.BoxPooler).Options with { Aligned = true })
            : model.RoIHeads.BoxPooler;
        using var scope = Torch.NewDisposeScope();
        using var inference = Torch.InferenceMode();
        Torch.ManualSeed(3);
        long[] sizes = [200, 100, 50, 25];
        var maps = sizes.Select(s => Tensor.Randn([1, 8, s, s + 8])).ToArray();
        var boxes = Tensor.FromArray(new float[]
        {
            10, 10, 40, 50, 100.5f, 20.25f, 300, 260, 0, 0, 799, 799, 5, 600, 6, 601, 400, 400, 400, 400, 50, 60, 500, 700,
            700, 10, 799, 300, 3.3f, 4.4f, 150.7f, 180.2f, 250, 250, 700, 780,
        }, 9, 4);
        var imageSize = new ImageSize(800, 832);
        var expected = pooler.Forward(maps, [boxes], [imageSize]);

        var g = new OnnxGraphBuilder();
        var features = sizes.Select((_, i) => g.Input($"f{i}", OnnxElementType.Float, 1, 8, $"h{i}", $"w{i}")).ToArray();
        var rois = g.Input("rois", OnnxElementType.Float, "k", 4);
        var size = g.Input("image_size", OnnxElementType.Int64, 2);
        g.Output(RoIHeadsExport.EmitPooler(g, pooler, features, rois, size, "pool"), "pooled", OnnxElementType.Float, null);
        using var session = new InferenceSession(g.ToWriter().ToBytes());
        var inputs = maps.Select((m, i) => ($"f{i}", OnnxTestSession.Value(m)))
            .Append(("rois", OnnxTestSession.Value(boxes)))
            .Append(("image_size", OrtValue.CreateTensorValueFromMemory(new long[] { 800, 832 }, [2])));
        var pooled = OnnxTestSession.Run(session, inputs)["pooled"];
        pooled.Shape.Should().Equal(expected.Shape);
        using var diff = (pooled - expected).Abs().Max();
        output.WriteLine($"pooled (aligned={aligned}) max abs diff {diff.ItemDouble():E2}");
        diff.ItemDouble().Should().BeLessThan(1e-5);
        if (aligned)
        {
            using var plain = (model.RoIHeads.BoxPooler.Forward(maps, [boxes], [imageSize]) - expected).Abs().Max();
            plain.ItemDouble().Should().BeGreaterThan(1e-3, "the half-pixel correction changes the pooled values");
        }
    }
}

/// <summary>The RPN + RoI heads + mask head of a model as one ONNX graph whose inputs are the backbone's feature maps.</summary>
internal sealed class HeadsGraph : IDisposable
{
    private readonly MaskRcnnModel model;
    private readonly InferenceSession session;
    private readonly int poolerLevels;

    private HeadsGraph(MaskRcnnModel model, InferenceSession session, int poolerLevels) =>
        (this.model, this.session, this.poolerLevels) = (model, session, poolerLevels);

    public static HeadsGraph Create(MaskRcnnModel model)
    {
        var g = new OnnxGraphBuilder();
        var fpn = (BackboneWithFpn)model.Backbone;
        var channels = fpn.OutChannels;
        var features = fpn.FeatureNames.Select((_, i) => g.Input($"f{i}", OnnxElementType.Float, 1, channels, $"h{i}", $"w{i}")).ToArray();
        var padded = g.Input("padded_size", OnnxElementType.Int64, 2);
        var size = g.Input("image_size", OnnxElementType.Int64, 2);
        var (proposals, _) = RpnExport.Emit(g, model.Rpn, features, padded, size);
        var pooler = features.Take(fpn.LevelNames.Count).ToArray();
        var (boxes, scores, labels) = RoIHeadsExport.Emit(g, model.RoIHeads, pooler, proposals, size);
        var masks = MaskHeadExport.Emit(g, model.RoIHeads, pooler, boxes, labels, size);
        g.Output(proposals, "proposals", OnnxElementType.Float, null);
        g.Output(boxes, "boxes", OnnxElementType.Float, null);
        g.Output(scores, "scores", OnnxElementType.Float, null);
        g.Output(labels, "labels", OnnxElementType.Int64, null);
        g.Output(masks, "masks", OnnxElementType.Float, null);
        return new HeadsGraph(model, new InferenceSession(g.ToWriter().ToBytes(), OnnxTestSession.Options()), fpn.LevelNames.Count);
    }

    /// <summary>Runs our transform and backbone on a float [3, H, W] image, then both heads implementations on the features.</summary>
    public StageComparison Compare(Tensor image)
    {
        var (batch, _) = model.Transform.Forward([image]);
        var features = model.Backbone.Forward(batch.Images);
        var (proposals, _) = model.Rpn.Forward(batch, features.Tensors);
        var pooler = features.Tensors.Take(poolerLevels).ToArray();
        var (detections, _) = model.RoIHeads.Forward(pooler, proposals, batch.Sizes);
        var ours = detections[0];

        var size = batch.Sizes[0];
        var inputs = features.Tensors.Select((t, i) => ($"f{i}", OnnxTestSession.Value(t)))
            .Append(("padded_size", OrtValue.CreateTensorValueFromMemory(new long[] { batch.PaddedHeight, batch.PaddedWidth }, [2])))
            .Append(("image_size", OrtValue.CreateTensorValueFromMemory(new long[] { size.Height, size.Width }, [2])));
        var onnx = OnnxTestSession.Run(session, inputs);

        var ourProposals = proposals[0];
        var onnxProposals = onnx["proposals"];
        // As sets: proposals of (nearly) equal objectness may come in either order, and float rounding may flip an
        // NMS decision at the IoU threshold or the post-NMS top-n cut; the fraction found within the bound is reported.
        var range = ourProposals.NumEl == 0 ? 0 : ourProposals.Abs().Max().ItemDouble();
        var bound = 1e-2 + 2.5e-4 * range;
        var (found, proposalDiff) = NearestDistances(ourProposals, onnxProposals, bound);

        var report = DetectionMatcher.Match(
            DetectionSet.From(ours.Boxes, ours.Labels, ours.Scores, ours.Masks),
            DetectionSet.From(onnx["boxes"], onnx["labels"], onnx["scores"], onnx["masks"]),
            minScore: model.RoIHeads.Options.ScoreThreshold + 0.05, size.Height, size.Width);
        return new StageComparison((ourProposals.Size(0), onnxProposals.Size(0)), found, proposalDiff, bound, report);
    }

    /// <summary>
    /// For each box of <paramref name="a"/> the smallest max-abs coordinate difference to a box of <paramref name="b"/>:
    /// the fraction of boxes within <paramref name="bound"/> and the largest such difference among them.
    /// </summary>
    private static (double Fraction, double MaxDiff) NearestDistances(Tensor a, Tensor b, double bound)
    {
        if (a.Size(0) == 0 || b.Size(0) == 0)
        {
            return (a.Size(0) == b.Size(0) ? 1 : 0, 0);
        }

        using var nearest = (a.Unsqueeze(1) - b.Unsqueeze(0)).Abs().Amax([2]).Amin([1]);
        var d = nearest.ToArray<float>();
        var within = d.Where(v => v <= bound).ToArray();
        return ((double)within.Length / d.Length, within.Length == 0 ? double.NaN : within.Max());
    }

    public void Dispose() => session.Dispose();
}

/// <summary>Proposals and detections of one image from both implementations.</summary>
internal sealed record StageComparison((long Ours, long Onnx) ProposalCount, double ProposalsFound, double ProposalMaxAbsDiff, double ProposalBound, MatchReport Detections)
{
    public override string ToString() =>
        $"proposals {ProposalCount.Ours} vs {ProposalCount.Onnx}, {ProposalsFound:P2} found within {ProposalBound:0.000} px (max abs diff {ProposalMaxAbsDiff:E2}); {Detections}";
}

/// <summary>Helpers around ONNX Runtime for the export tests.</summary>
internal static class OnnxTestSession
{
    public static SessionOptions Options() => new() { IntraOpNumThreads = 2, InterOpNumThreads = 1 };

    /// <summary>An ORT value holding a copy of a float32 tensor.</summary>
    public static OrtValue Value(Tensor t)
    {
        using var f = t.To(DType.Float32).Contiguous();
        return OrtValue.CreateTensorValueFromMemory(f.ToArray<float>(), t.Shape);
    }

    /// <summary>Runs the session and converts every output to a tensor (float32 or int64); disposes the inputs.</summary>
    public static Dictionary<string, Tensor> Run(InferenceSession session, IEnumerable<(string Name, OrtValue Value)> inputs)
    {
        var dict = inputs.ToDictionary(i => i.Name, i => i.Value);
        try
        {
            using var run = new RunOptions();
            using var results = session.Run(run, dict, session.OutputNames);
            var outputs = new Dictionary<string, Tensor>();
            for (var i = 0; i < results.Count; i++)
            {
                var info = results[i].GetTensorTypeAndShape();
                outputs[session.OutputNames[i]] = info.ElementDataType switch
                {
                    TensorElementType.Float => Tensor.FromArray(results[i].GetTensorDataAsSpan<float>().ToArray(), info.Shape),
                    TensorElementType.Int64 => Tensor.FromArray(results[i].GetTensorDataAsSpan<long>().ToArray(), info.Shape),
                    var other => throw new InvalidOperationException($"unexpected output type {other}"),
                };
            }

            return outputs;
        }
        finally
        {
            foreach (var v in dict.Values)
            {
                v.Dispose();
            }
        }
    }
}

/// <summary>Real brain-MRI slices of the validation split.</summary>
internal static class OnnxTestImages
{
    /// <summary>The first <paramref name="count"/> images of data/brain-tumor/val (sorted by name, several sizes).</summary>
    public static IEnumerable<string> ValImages(int count)
    {
        var all = Directory.GetFiles(RepoPaths.Get("data", "brain-tumor", "val", "images"), "*.jpg").Order(StringComparer.Ordinal).ToArray();
        // Spread over the split so that several patients and image sizes are covered.
        return Enumerable.Range(0, count).Select(i => all[i * all.Length / count]);
    }
}

/// <summary>Detections of one image as arrays; masks unpasted [D, 1, M, M], or pasted [D, 1, H, W] probabilities, or null.</summary>
internal sealed record DetectionSet(float[] Boxes, long[] Labels, float[] Scores, Tensor? Masks)
{
    public int Count => Labels.Length;

    /// <summary>True when <see cref="Masks"/> are already full-image probabilities (our model's Detect output).</summary>
    public bool MasksArePasted { get; init; }

    /// <summary>Paste with the aligned geometry (<see cref="MaskPaster.PasteAligned"/>) instead of torchvision's.</summary>
    public bool AlignedPaste { get; init; }

    /// <summary>Full-image [D, 1, H, W] mask probabilities: pasted at the boxes (unless already).</summary>
    public Tensor? Pasted(long height, long width) =>
        Masks is not { } m || Count == 0 ? null
        : MasksArePasted ? m
        : AlignedPaste ? MaskPaster.PasteAligned(m, Tensor.FromArray(Boxes, Count, 4), height, width)
        : MaskPaster.Paste(m, Tensor.FromArray(Boxes, Count, 4), height, width);

    public static DetectionSet From(Tensor boxes, Tensor labels, Tensor scores, Tensor? masks) =>
        new(boxes.To(DType.Float32).ToArray<float>(), labels.To(DType.Int64).ToArray<long>(), scores.To(DType.Float32).ToArray<float>(), masks);

    public float[] Box(int i) => Boxes.AsSpan(4 * i, 4).ToArray();
}

/// <summary>How well one detection set reproduces another.</summary>
internal sealed record MatchReport(int Considered, int Matched, double MaxScoreDiff, double MinMaskIou, int OursTotal, int OnnxTotal)
{
    public double MatchRate => Considered == 0 ? 1 : (double)Matched / Considered;

    /// <summary>Details of the matched detections whose mask IoU is below 0.98.</summary>
    public IReadOnlyList<string> LowMasks { get; init; } = [];

    /// <summary>Matched detections whose masks were compared.</summary>
    public int MasksCompared { get; init; }

    /// <summary>Of those, how many have mask IoU ≥ 0.98.</summary>
    public int MasksAboveIou { get; init; }

    /// <summary>Largest |p − p'| of the pasted mask probabilities of matched detections.</summary>
    public double MaxMaskProbabilityDiff { get; init; }

    public override string ToString() =>
        $"{OursTotal} vs {OnnxTotal} detections; {Matched}/{Considered} above the margin matched, max score diff {MaxScoreDiff:E2}, " +
        $"mask IoU ≥ 0.98 for {MasksAboveIou}/{MasksCompared} (min {MinMaskIou:F4}), max pasted probability diff {MaxMaskProbabilityDiff:E2}" +
        string.Concat(LowMasks.Select(m => "\n    " + m));
}

/// <summary>Aggregates <see cref="MatchReport"/>s over images.</summary>
internal sealed class MatchTotals
{
    public int Considered { get; private set; }

    public int Matched { get; private set; }

    public double MaxScoreDiff { get; private set; }

    public double MinMaskIou { get; private set; } = 1;

    public int MasksCompared { get; private set; }

    public int MasksAboveIou { get; private set; }

    public double MaxMaskProbabilityDiff { get; private set; }

    public double MatchRate => Considered == 0 ? 1 : (double)Matched / Considered;

    /// <summary>Share of the compared masks with IoU ≥ 0.98.</summary>
    public double MaskRate => MasksCompared == 0 ? 1 : (double)MasksAboveIou / MasksCompared;

    public void Add(MatchReport r)
    {
        Considered += r.Considered;
        Matched += r.Matched;
        MaxScoreDiff = Math.Max(MaxScoreDiff, r.MaxScoreDiff);
        MinMaskIou = Math.Min(MinMaskIou, r.MinMaskIou);
        MasksCompared += r.MasksCompared;
        MasksAboveIou += r.MasksAboveIou;
        MaxMaskProbabilityDiff = Math.Max(MaxMaskProbabilityDiff, r.MaxMaskProbabilityDiff);
    }

    public override string ToString() =>
        $"total: {Matched}/{Considered} matched ({MatchRate:P2}), max score diff {MaxScoreDiff:E2}, mask IoU ≥ 0.98 for " +
        $"{MasksAboveIou}/{MasksCompared} ({MaskRate:P2}, min {MinMaskIou:F4}), max pasted mask probability diff {MaxMaskProbabilityDiff:E2}";
}

/// <summary>
/// The issue's parity criterion: every reference detection scoring at least <c>minScore</c> is matched to an unused
/// candidate detection of the same label with box IoU ≥ 0.99 (the best such); matched scores are compared, and the
/// masks, pasted by the same <see cref="MaskPaster"/> into an image of the given size at their own boxes and
/// thresholded at 0.5, by IoU.
/// </summary>
internal static class DetectionMatcher
{
    public static MatchReport Match(DetectionSet reference, DetectionSet candidate, double minScore, long height, long width)
    {
        using var scope = Torch.NewDisposeScope();
        var refProbabilities = reference.Pasted(height, width);
        var candProbabilities = candidate.Pasted(height, width);
        var refPasted = refProbabilities?.Gt(0.5);
        var candPasted = candProbabilities?.Gt(0.5);
        int masksCompared = 0, masksAbove = 0;
        double maxProbabilityDiff = 0;
        var lowMasks = new List<string>();
        var unmatched = new List<string>();

        var used = new bool[candidate.Count];
        int considered = 0, matched = 0;
        double maxScoreDiff = 0, minMaskIou = 1;
        for (var i = 0; i < reference.Count; i++)
        {
            if (reference.Scores[i] < minScore)
            {
                continue;
            }

            considered++;
            var best = -1;
            var bestIou = 0.99;
            for (var j = 0; j < candidate.Count; j++)
            {
                if (used[j] || candidate.Labels[j] != reference.Labels[i])
                {
                    continue;
                }

                var iou = BoxIou(reference.Box(i), candidate.Box(j));
                if (iou >= bestIou)
                {
                    (best, bestIou) = (j, iou);
                }
            }

            if (best < 0)
            {
                if (unmatched.Count < 5)
                {
                    var nearest = Enumerable.Range(0, candidate.Count).Where(j => candidate.Labels[j] == reference.Labels[i])
                        .Select(j => (j, iou: BoxIou(reference.Box(i), candidate.Box(j)))).OrderByDescending(t => t.iou).FirstOrDefault();
                    unmatched.Add($"unmatched: label {reference.Labels[i]} score {reference.Scores[i]:F4} box [{string.Join(", ", reference.Box(i).Select(v => v.ToString("F1")))}]" +
                        (candidate.Count == 0 ? "" : $"; nearest candidate IoU {nearest.iou:F4} score {candidate.Scores[nearest.j]:F4}{(used[nearest.j] ? " (already matched)" : "")}"));
                }

                continue;
            }

            used[best] = true;
            matched++;
            maxScoreDiff = Math.Max(maxScoreDiff, Math.Abs(reference.Scores[i] - candidate.Scores[best]));
            if (refPasted is not null && candPasted is not null)
            {
                using var a = refPasted.Select(0, i);
                using var b = candPasted.Select(0, best);
                var inter = (a & b).Sum().ItemLong();
                var union = (a | b).Sum().ItemLong();
                var maskIou = union == 0 ? 1.0 : (double)inter / union;
                minMaskIou = Math.Min(minMaskIou, maskIou);
                masksCompared++;
                masksAbove += maskIou >= 0.98 ? 1 : 0;
                using var pa = refProbabilities!.Select(0, i);
                using var pb = candProbabilities!.Select(0, best);
                maxProbabilityDiff = Math.Max(maxProbabilityDiff, (pa - pb).Abs().Max().ItemDouble());
                if (maskIou < 0.98)
                {
                    // How ill-conditioned the 0.5 threshold is for this mask: the share of its pixels whose probability
                    // (ours) is within 0.05 of 0.5.
                    using var p = refProbabilities!.Select(0, i);
                    var near = ((p - 0.5).Abs().Lt(0.05) & (a | b)).Sum().ItemLong();
                    lowMasks.Add($"label {reference.Labels[i]} score {reference.Scores[i]:F3}: mask IoU {maskIou:F4}, {union} px, " +
                        $"{(double)near / Math.Max(union, 1):P0} of them with p in (0.45, 0.55)");
                }
            }
        }

        return new MatchReport(considered, matched, maxScoreDiff, minMaskIou, reference.Count, candidate.Count)
        {
            LowMasks = [.. lowMasks, .. unmatched],
            MasksCompared = masksCompared,
            MasksAboveIou = masksAbove,
            MaxMaskProbabilityDiff = maxProbabilityDiff,
        };
    }

    public static double BoxIou(float[] a, float[] b)
    {
        var iw = Math.Max(0, Math.Min(a[2], b[2]) - Math.Max(a[0], b[0]));
        var ih = Math.Max(0, Math.Min(a[3], b[3]) - Math.Max(a[1], b[1]));
        var inter = (double)iw * ih;
        var union = (double)(a[2] - a[0]) * (a[3] - a[1]) + (double)(b[2] - b[0]) * (b[3] - b[1]) - inter;
        return union <= 0 ? (a.SequenceEqual(b) ? 1 : 0) : inter / union;
    }
}

/// <summary>
/// A small Mask R-CNN (ResNet-18 + GroupNorm, 64 FPN channels, one class "tumor", 320 px) trained at test time for a
/// few steps on brain-MRI slices of data/brain-tumor/train with our <see cref="Training.Trainer"/>, saved and loaded
/// back as <c>maskrcnn train</c> leaves it. Its configuration differs from torchvision's on purpose (depth, norm,
/// channels, image size, class count) so that the export is tested on more than one shape of model.
/// </summary>
public sealed class TrainedModelFixture : IDisposable
{
    public TrainedModelFixture()
    {
        Dir = Directory.CreateTempSubdirectory("mr_onnx_trained_").FullName;
        var full = Training.CocoDataset.Load(RepoPaths.Get("data", "brain-tumor", "train", "annotations.json"),
            RepoPaths.Get("data", "brain-tumor", "train", "images"));
        // Two blank slices as negatives (no annotations), so that the briefly trained model learns that an empty image
        // holds nothing: the parity tests need an image with no detection at all.
        var negatives = new[] { (256, 256), (256, 192) }.Select((size, i) =>
        {
            var path = Path.Combine(Dir, $"blank{i}.png");
            using (var blank = Tensor.Zeros([3, size.Item1, size.Item2], DType.UInt8))
            {
                ImageCodec.SavePng(blank, path);
            }

            return new Training.DatasetSample(-1 - i, Path.GetFileName(path), size.Item2, size.Item1, []) { ImagePath = path };
        });
        var subset = new Training.DetectionDataset(full.ClassNames, full.Samples.Where(s => s.Annotations.Count > 0).Take(16).Concat(negatives));
        Torch.ManualSeed(11);
        using (var model = new MaskRcnnBuilder().WithClasses(full.ClassNames.Skip(1).ToArray())
                   .WithBackbone(18, NormKind.GroupNorm, 5, outChannels: 64).WithImageSize(320, 512)
                   .WithRoIHeads(new Heads.RoIHeadsOptions(BatchSizePerImage: 64)).WithHeadSizes(256, [64, 64], 64).WithSeed(11).Build())
        {
            var loader = new Training.DataLoader(subset, new Training.DataLoaderOptions(BatchSize: 2, Shuffle: true, Seed: 1, Prefetch: 0));
            new Training.Trainer(model, new Training.TrainerOptions(Epochs: 8, LearningRate: 0.02, WarmupIterations: 5)).Train(loader);
            model.Save(WeightsPath);
        }

        Model = MaskRcnnModel.Load(WeightsPath);
    }

    public string Dir { get; }

    public string WeightsPath => Path.Combine(Dir, "model.safetensors");

    public MaskRcnnModel Model { get; }

    public void Dispose()
    {
        Model.Dispose();
        Directory.Delete(Dir, recursive: true);
    }
}

/// <summary>
/// The tests that share <see cref="TrainedModelFixture"/>: trained once, and not in parallel with other test classes,
/// whose model construction would draw from libtorch's global generator while the fixture trains (the trained model,
/// hence its detections, would change from run to run).
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TrainedModelCollection : ICollectionFixture<TrainedModelFixture>
{
    public const string Name = "onnx-trained-model";
}

/// <summary><see cref="OnnxHeadsExportTests"/>' stage comparison on the model trained at test time.</summary>
[Collection(TrainedModelCollection.Name)]
public sealed class OnnxHeadsTrainedModelTests
{
    private readonly TrainedModelFixture trained;
    private readonly ITestOutputHelper output;

    public OnnxHeadsTrainedModelTests(TrainedModelFixture trained, ITestOutputHelper output) => (this.trained, this.output) = (trained, output);

    [Fact]
    public void Rpn_box_and_mask_stages_match_libtorch_on_the_same_features()
    {
        using var heads = HeadsGraph.Create(trained.Model);
        var totals = new MatchTotals();
        foreach (var path in OnnxTestImages.ValImages(8))
        {
            using var scope = Torch.NewDisposeScope();
            using var inference = Torch.InferenceMode();
            using var u8 = ImageCodec.Decode(path, ImageReadMode.Rgb);
            var stage = heads.Compare(u8.To(DType.Float32) / 255.0);
            output.WriteLine($"{Path.GetFileName(path)}: {stage}");
            stage.ProposalCount.Onnx.Should().Be(stage.ProposalCount.Ours, $"proposal count of {path}");
            stage.ProposalsFound.Should().BeGreaterThanOrEqualTo(0.99, $"proposals of {path} (float rounding may flip NMS or top-n ties)");
            totals.Add(stage.Detections);
        }

        output.WriteLine(totals.ToString());
        totals.Considered.Should().BeGreaterThan(5, "the trained model must give detections for the comparison to mean something");
        totals.MatchRate.Should().Be(1.0);
        totals.MaxScoreDiff.Should().BeLessThan(1e-4);
        totals.MaskRate.Should().BeGreaterThanOrEqualTo(0.98);
        totals.MaxMaskProbabilityDiff.Should().BeLessThan(1e-4, "same features: the mask probabilities differ by float rounding only");
    }
}
