using MaskRcnn.Net.Core;
using MaskRcnn.Net.Core.Detection;
using MaskRcnn.Net.Core.NN;
using MaskRcnn.Net.Core.Structures;

namespace MaskRcnn.Net.Heads;

/// <summary>
/// Per-level objectness logits [N, A, H, W] and box deltas [N, 4·A, H, W] predicted by an RPN head. The caller of
/// <see cref="IRpnHead.Forward"/> owns the tensors (inside a dispose scope the scope releases them; outside one,
/// <see cref="Dispose"/> does; idempotent). A copy made with <c>with</c> shares the lists it did not replace: dispose
/// exactly one of the two.
/// </summary>
/// <param name="Objectness">One tensor per feature level.</param>
/// <param name="BoxDeltas">One tensor per feature level.</param>
public sealed record RpnHeadOutput(IReadOnlyList<Tensor> Objectness, IReadOnlyList<Tensor> BoxDeltas) : IDisposable
{
    /// <summary>Disposes every tensor of <see cref="Objectness"/> and <see cref="BoxDeltas"/> (idempotent).</summary>
    public void Dispose()
    {
        foreach (var t in Objectness.Concat(BoxDeltas))
        {
            t.Dispose();
        }
    }
}

/// <summary>A replaceable RPN head: implementations must also derive from <see cref="Module"/>.</summary>
public interface IRpnHead
{
    /// <summary>Predicts objectness and box deltas for each feature level.</summary>
    RpnHeadOutput Forward(IReadOnlyList<Tensor> features);
}

/// <summary>
/// torchvision's RPNHead: a shared 3×3 conv + ReLU, then 1×1 convs for objectness (A channels) and box deltas
/// (4·A channels). State-dict keys: <c>conv.0.0.*</c>, <c>cls_logits.*</c>, <c>bbox_pred.*</c>.
/// </summary>
public sealed class RpnHead : Module, IRpnHead
{
    private readonly Conv2d conv;

    /// <summary>Creates the head with torchvision's init (normal std 0.01, bias 0).</summary>
    public RpnHead(int inChannels, int anchorsPerLocation)
    {
        var seq = RegisterModule("conv", new ModuleList<ModuleList<Conv2d>>());
        conv = new Conv2d(inChannels, inChannels, 3, padding: 1);
        seq.Add(new ModuleList<Conv2d>([conv]));
        ClsLogits = RegisterModule("cls_logits", new Conv2d(inChannels, anchorsPerLocation, 1));
        BboxPred = RegisterModule("bbox_pred", new Conv2d(inChannels, anchorsPerLocation * 4, 1));
        using var _ = Torch.NoGrad();
        foreach (var c in new[] { conv, ClsLogits, BboxPred })
        {
            c.Weight.NormalInPlace(0, 0.01);
            c.Bias!.ZeroInPlace();
        }
    }

    /// <summary>Objectness 1×1 conv.</summary>
    public Conv2d ClsLogits { get; }

    /// <summary>Box-delta 1×1 conv.</summary>
    public Conv2d BboxPred { get; }

    /// <inheritdoc />
    public RpnHeadOutput Forward(IReadOnlyList<Tensor> features)
    {
        var logits = new List<Tensor>();
        var deltas = new List<Tensor>();
        foreach (var f in features)
        {
            using var t = conv.Forward(f).ReluInPlace();
            logits.Add(ClsLogits.Forward(t));
            deltas.Add(BboxPred.Forward(t));
        }

        return new RpnHeadOutput(logits, deltas);
    }
}

/// <summary>Options of <see cref="RegionProposalNetwork"/> (torchvision's defaults for Mask R-CNN).</summary>
/// <param name="PreNmsTopNTrain">Proposals kept per level before NMS in training.</param>
/// <param name="PreNmsTopNTest">Proposals kept per level before NMS at inference.</param>
/// <param name="PostNmsTopNTrain">Proposals kept per image after NMS in training.</param>
/// <param name="PostNmsTopNTest">Proposals kept per image after NMS at inference.</param>
/// <param name="NmsThreshold">IoU threshold of the per-level NMS.</param>
/// <param name="ForegroundIouThreshold">Anchors with IoU ≥ this are positives.</param>
/// <param name="BackgroundIouThreshold">Anchors with IoU &lt; this are negatives.</param>
/// <param name="BatchSizePerImage">Anchors sampled per image for the loss.</param>
/// <param name="PositiveFraction">Fraction of positives in that sample.</param>
/// <param name="ScoreThreshold">Minimum objectness probability of a proposal.</param>
/// <param name="MinSize">Minimum proposal side in pixels.</param>
public sealed record RpnOptions(
    int PreNmsTopNTrain = 2000,
    int PreNmsTopNTest = 1000,
    int PostNmsTopNTrain = 2000,
    int PostNmsTopNTest = 1000,
    double NmsThreshold = 0.7,
    double ForegroundIouThreshold = 0.7,
    double BackgroundIouThreshold = 0.3,
    int BatchSizePerImage = 256,
    double PositiveFraction = 0.5,
    double ScoreThreshold = 0.0,
    double MinSize = 1e-3)
{
    /// <summary>Checks the ranges; throws <see cref="ArgumentException"/> naming the field and its value.</summary>
    public void Validate()
    {
        static void Positive(int value, string name)
        {
            if (value < 1)
            {
                throw new ArgumentException($"RpnOptions.{name} must be at least 1, got {value}", name);
            }
        }

        static void Fraction(double value, string name)
        {
            if (!(value >= 0 && value <= 1))
            {
                throw new ArgumentException($"RpnOptions.{name} must be in [0, 1], got {value}", name);
            }
        }

        Positive(PreNmsTopNTrain, nameof(PreNmsTopNTrain));
        Positive(PreNmsTopNTest, nameof(PreNmsTopNTest));
        Positive(PostNmsTopNTrain, nameof(PostNmsTopNTrain));
        Positive(PostNmsTopNTest, nameof(PostNmsTopNTest));
        Fraction(NmsThreshold, nameof(NmsThreshold));
        Fraction(ForegroundIouThreshold, nameof(ForegroundIouThreshold));
        Fraction(BackgroundIouThreshold, nameof(BackgroundIouThreshold));
        if (BackgroundIouThreshold > ForegroundIouThreshold)
        {
            throw new ArgumentException(
                $"RpnOptions.BackgroundIouThreshold ({BackgroundIouThreshold}) must not exceed ForegroundIouThreshold ({ForegroundIouThreshold})",
                nameof(BackgroundIouThreshold));
        }

        Positive(BatchSizePerImage, nameof(BatchSizePerImage));
        Fraction(PositiveFraction, nameof(PositiveFraction));
        Fraction(ScoreThreshold, nameof(ScoreThreshold));
        if (!(MinSize >= 0) || !double.IsFinite(MinSize))
        {
            throw new ArgumentException($"RpnOptions.MinSize must be finite and non-negative, got {MinSize}", nameof(MinSize));
        }
    }
}

/// <summary>
/// The region proposal network (torchvision's <c>RegionProposalNetwork</c>): anchors, objectness and deltas from the
/// head, decoding, per-level top-k, clipping, small-box removal, per-level NMS; in training also the objectness and
/// box-regression losses.
/// </summary>
public sealed class RegionProposalNetwork : Module
{
    private readonly BoxCoder coder = new((1, 1, 1, 1));
    private readonly Matcher matcher;
    private readonly BalancedPositiveNegativeSampler sampler;

    /// <summary>Creates the RPN from its parts.</summary>
    public RegionProposalNetwork(AnchorGenerator anchorGenerator, IRpnHead head, RpnOptions? options = null)
    {
        AnchorGenerator = anchorGenerator ?? throw new ArgumentNullException(nameof(anchorGenerator));
        Head = head ?? throw new ArgumentNullException(nameof(head));
        if (head is not Module m)
        {
            throw new ArgumentException("an RPN head must derive from Module", nameof(head));
        }

        RegisterModule("head", m);
        Options = options ?? new RpnOptions();
        Options.Validate();
        matcher = new Matcher(Options.ForegroundIouThreshold, Options.BackgroundIouThreshold, allowLowQualityMatches: true);
        sampler = new BalancedPositiveNegativeSampler(Options.BatchSizePerImage, Options.PositiveFraction);
    }

    /// <summary>The anchor generator.</summary>
    public AnchorGenerator AnchorGenerator { get; }

    /// <summary>The head.</summary>
    public IRpnHead Head { get; }

    /// <summary>The options.</summary>
    public RpnOptions Options { get; }

    /// <summary>
    /// Proposals per image ([P, 4] boxes in the padded batch's pixel frame) and, when <paramref name="targets"/> are
    /// given in training mode, the losses <c>loss_objectness</c> and <c>loss_rpn_box_reg</c>.
    /// </summary>
    public (IReadOnlyList<Tensor> Proposals, LossDictionary Losses) Forward(ImageBatch batch, IReadOnlyList<Tensor> features,
        IReadOnlyList<DetectionTarget>? targets = null)
    {
        ArgumentNullException.ThrowIfNull(batch);
        ArgumentNullException.ThrowIfNull(features);
        using var scope = Torch.NewDisposeScope();
        var n = (int)batch.Images.Size(0);
        var head = Head.Forward(features);
        if (head.Objectness.Concat(head.BoxDeltas).Any(t => t.DType.IsReducedFloat()))
        {
            // Reduced-precision features (GeneralizedRcnn.Precision): proposals are decoded and filtered in float32.
            head = new RpnHeadOutput(head.Objectness.Select(t => t.To(DType.Float32)).ToList(), head.BoxDeltas.Select(t => t.To(DType.Float32)).ToList());
        }

        StageProfile.Mark("rpn.head");
        var anchors = AnchorGenerator.Generate(batch.PaddedHeight, batch.PaddedWidth,
            features.Select(f => (f.Size(2), f.Size(3))).ToArray(), batch.Images.Device);
        var perLevel = head.Objectness.Select(o => o.Size(1) * o.Size(2) * o.Size(3)).ToArray();
        var (objectness, deltas) = Flatten(head);

        Tensor proposals;
        using (Torch.NoGrad())
        {
            using var detached = deltas.Detach();
            using var allAnchors = anchors.Repeat(n, 1);
            proposals = coder.Decode(detached, allAnchors).View(n, -1, 4);
        }

        var boxes = FilterProposals(proposals, objectness, batch.Sizes, perLevel);
        var losses = new LossDictionary();
        if (IsTraining && targets is not null)
        {
            var (labels, regressionTargets) = AssignTargets(anchors, targets, n);
            var (lossObj, lossBox) = ComputeLoss(objectness, deltas, labels, regressionTargets);
            losses[LossDictionary.Objectness] = lossObj.MoveToOuterDisposeScope();
            losses[LossDictionary.RpnBoxReg] = lossBox.MoveToOuterDisposeScope();
        }

        foreach (var b in boxes)
        {
            b.MoveToOuterDisposeScope();
        }

        StageProfile.Mark("rpn.proposals");
        return (boxes, losses);
    }

    /// <summary>Concatenates per-level predictions into [N·ΣHWA, 1] objectness and [N·ΣHWA, 4] deltas.</summary>
    private static (Tensor Objectness, Tensor Deltas) Flatten(RpnHeadOutput head)
    {
        var cls = new List<Tensor>();
        var reg = new List<Tensor>();
        for (var i = 0; i < head.Objectness.Count; i++)
        {
            cls.Add(PermuteAndFlatten(head.Objectness[i], 1));
            reg.Add(PermuteAndFlatten(head.BoxDeltas[i], 4));
        }

        return (Tensor.Cat(cls, 1).Flatten(0, -2), Tensor.Cat(reg, 1).Reshape(-1, 4));
    }

    private static Tensor PermuteAndFlatten(Tensor layer, long c)
    {
        var s = layer.Shape;
        return layer.View(s[0], -1, c, s[2], s[3]).Permute(0, 3, 4, 1, 2).Reshape(s[0], -1, c);
    }

    private List<Tensor> FilterProposals(Tensor proposals, Tensor objectness, IReadOnlyList<ImageSize> sizes, long[] perLevel)
    {
        var n = proposals.Size(0);
        var device = proposals.Device;
        var obj = objectness.Detach().Reshape(n, -1);
        var levels = Tensor.Cat(perLevel.Select((count, i) => Tensor.Full([count], (long)i, DType.Int64, device)).ToArray())
            .Reshape(1, -1).Expand(obj.Shape);
        var preNms = IsTraining ? Options.PreNmsTopNTrain : Options.PreNmsTopNTest;
        var postNms = IsTraining ? Options.PostNmsTopNTrain : Options.PostNmsTopNTest;

        var topIdx = new List<Tensor>();
        long offset = 0;
        foreach (var ob in obj.Split(perLevel, 1))
        {
            var k = Math.Min(preNms, ob.Size(1));
            topIdx.Add(ob.TopK(k, 1).Indices + offset);
            offset += ob.Size(1);
        }

        var top = Tensor.Cat(topIdx, 1);
        var batchIdx = Tensor.Arange(n, device).Unsqueeze(1);
        obj = obj.Index(batchIdx, top);
        levels = levels.Index(batchIdx, top);
        var props = proposals.Index(batchIdx, top);
        var prob = obj.Sigmoid();

        var result = new List<Tensor>();
        for (var i = 0; i < n; i++)
        {
            var boxes = Boxes.ClipToImage(props[i], sizes[i].Height, sizes[i].Width);
            var scores = prob[i];
            var lvl = levels[i];
            var keep = Boxes.RemoveSmall(boxes, Options.MinSize);
            (boxes, scores, lvl) = (boxes.Index(keep), scores.Index(keep), lvl.Index(keep));
            keep = scores.Ge(Options.ScoreThreshold).Nonzero().Select(1, 0);
            (boxes, scores, lvl) = (boxes.Index(keep), scores.Index(keep), lvl.Index(keep));
            keep = Nms.Batched(boxes, scores, lvl, Options.NmsThreshold).Slice(0, 0, postNms);
            result.Add(boxes.Index(keep));
        }

        return result;
    }

    private (List<Tensor> Labels, List<Tensor> RegressionTargets) AssignTargets(Tensor anchors, IReadOnlyList<DetectionTarget> targets, int n)
    {
        if (targets.Count != n)
        {
            throw new ArgumentException($"{n} images but {targets.Count} targets", nameof(targets));
        }

        var labels = new List<Tensor>();
        var regression = new List<Tensor>();
        foreach (var t in targets)
        {
            Tensor matchedBoxes, lab;
            if (t.Boxes.NumEl == 0)
            {
                matchedBoxes = anchors.ZerosLike();
                lab = Tensor.Zeros([anchors.Size(0)], DType.Float32, anchors.Device);
            }
            else
            {
                var iou = Boxes.Iou(t.Boxes, anchors);
                var matched = matcher.Match(iou);
                matchedBoxes = t.Boxes.Index(matched.Clamp(min: 0));
                lab = matched.Ge(0L).To(DType.Float32);
                lab.MaskedFillInPlace(matched.Eq(Matcher.BelowLowThreshold), 0.0);
                lab.MaskedFillInPlace(matched.Eq(Matcher.BetweenThresholds), -1.0);
            }

            labels.Add(lab);
            regression.Add(coder.Encode(matchedBoxes, anchors));
        }

        return (labels, regression);
    }

    private (Tensor Objectness, Tensor BoxReg) ComputeLoss(Tensor objectness, Tensor deltas, List<Tensor> labels, List<Tensor> regressionTargets)
    {
        var samples = sampler.Sample(labels);
        var pos = Tensor.Cat(samples.Select(s => s.Positive).ToArray()).Nonzero().Select(1, 0);
        var neg = Tensor.Cat(samples.Select(s => s.Negative).ToArray()).Nonzero().Select(1, 0);
        var sampled = Tensor.Cat([pos, neg]);
        var obj = objectness.Flatten();
        var lab = Tensor.Cat(labels);
        var reg = Tensor.Cat(regressionTargets);
        var boxLoss = Functional.SmoothL1Loss(deltas.Index(pos), reg.Index(pos), Reduction.Sum, beta: 1.0 / 9) / (double)Math.Max(sampled.NumEl, 1);
        var objLoss = Functional.BinaryCrossEntropyWithLogits(obj.Index(sampled), lab.Index(sampled));
        return (objLoss, boxLoss);
    }
}
