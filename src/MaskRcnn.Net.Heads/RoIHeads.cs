using MaskRcnn.Net.Core;
using MaskRcnn.Net.Core.Detection;
using MaskRcnn.Net.Core.NN;
using MaskRcnn.Net.Core.Structures;
using MaskRcnn.Net.RoIAlign;
using RoIAlignOp = MaskRcnn.Net.RoIAlign.RoIAlign;

namespace MaskRcnn.Net.Heads;

/// <summary>Options of <see cref="RoIHeads"/> (torchvision's defaults for Mask R-CNN).</summary>
/// <param name="ForegroundIouThreshold">Proposals with IoU ≥ this are foreground.</param>
/// <param name="BackgroundIouThreshold">Proposals with IoU &lt; this are background.</param>
/// <param name="BatchSizePerImage">Proposals sampled per image for the losses.</param>
/// <param name="PositiveFraction">Fraction of foreground proposals in that sample.</param>
/// <param name="ScoreThreshold">Minimum class score of a detection.</param>
/// <param name="NmsThreshold">IoU threshold of the per-class NMS.</param>
/// <param name="DetectionsPerImage">Maximum detections kept per image.</param>
/// <param name="BoxRegressionWeights">Weights of the box coder.</param>
public sealed record RoIHeadsOptions(
    double ForegroundIouThreshold = 0.5,
    double BackgroundIouThreshold = 0.5,
    int BatchSizePerImage = 512,
    double PositiveFraction = 0.25,
    double ScoreThreshold = 0.05,
    double NmsThreshold = 0.5,
    int DetectionsPerImage = 100,
    (double X, double Y, double W, double H)? BoxRegressionWeights = null)
{
    /// <summary>
    /// Crop the mask targets with RoIAlign's half-pixel correction (detectron2's <c>BitMasks.crop_and_resize</c>,
    /// <c>aligned=True</c>): each M×M target cell samples the ground-truth pixels the proposal covers. Off by default
    /// (torchvision's <c>project_masks_on_boxes</c>, which samples half a pixel down and right). Pairs with
    /// <c>RoIPoolerOptions.Aligned</c> on the poolers.
    /// </summary>
    public bool AlignedMaskTargets { get; init; }

    /// <summary>Checks the ranges; throws <see cref="ArgumentException"/> naming the field and its value.</summary>
    public void Validate()
    {
        static void Fraction(double value, string name)
        {
            if (!(value >= 0 && value <= 1))
            {
                throw new ArgumentException($"RoIHeadsOptions.{name} must be in [0, 1], got {value}", name);
            }
        }

        Fraction(ForegroundIouThreshold, nameof(ForegroundIouThreshold));
        Fraction(BackgroundIouThreshold, nameof(BackgroundIouThreshold));
        Fraction(PositiveFraction, nameof(PositiveFraction));
        Fraction(ScoreThreshold, nameof(ScoreThreshold));
        Fraction(NmsThreshold, nameof(NmsThreshold));
        if (BackgroundIouThreshold > ForegroundIouThreshold)
        {
            throw new ArgumentException($"RoIHeadsOptions.BackgroundIouThreshold ({BackgroundIouThreshold}) must not exceed ForegroundIouThreshold ({ForegroundIouThreshold})", nameof(BackgroundIouThreshold));
        }

        if (BatchSizePerImage < 1)
        {
            throw new ArgumentException($"RoIHeadsOptions.BatchSizePerImage must be at least 1, got {BatchSizePerImage}", nameof(BatchSizePerImage));
        }

        if (DetectionsPerImage < 1)
        {
            throw new ArgumentException($"RoIHeadsOptions.DetectionsPerImage must be at least 1, got {DetectionsPerImage}", nameof(DetectionsPerImage));
        }

        if (BoxRegressionWeights is { } w && !new[] { w.X, w.Y, w.W, w.H }.All(v => v > 0 && double.IsFinite(v)))
        {
            throw new ArgumentException($"RoIHeadsOptions.BoxRegressionWeights must be positive and finite, got {w}", nameof(BoxRegressionWeights));
        }
    }
}

/// <summary>
/// The RoI heads of Mask R-CNN (torchvision's <c>RoIHeads</c>): pool proposals, classify and refine boxes,
/// post-process (score threshold, per-class NMS, top-k), and predict a mask for each detection. In training,
/// samples proposals against the targets and returns <c>loss_classifier</c>, <c>loss_box_reg</c> and
/// <c>loss_mask</c>.
/// </summary>
public sealed class RoIHeads : Module
{
    private readonly BoxCoder coder;
    private readonly Matcher matcher;
    private readonly BalancedPositiveNegativeSampler sampler;
    private DType computeType = DType.Float32;

    /// <summary>Creates the heads from their parts; the mask parts are optional (Faster R-CNN without them).</summary>
    public RoIHeads(IRoIPooler boxPooler, IBoxHead boxHead, IBoxPredictor boxPredictor,
        IRoIPooler? maskPooler = null, IMaskHead? maskHead = null, IMaskPredictor? maskPredictor = null, RoIHeadsOptions? options = null)
    {
        BoxPooler = boxPooler ?? throw new ArgumentNullException(nameof(boxPooler));
        BoxHead = boxHead ?? throw new ArgumentNullException(nameof(boxHead));
        BoxPredictor = boxPredictor ?? throw new ArgumentNullException(nameof(boxPredictor));
        RegisterModule("box_head", AsModule(boxHead, nameof(boxHead)));
        RegisterModule("box_predictor", AsModule(boxPredictor, nameof(boxPredictor)));
        if ((maskPooler is null) != (maskHead is null) || (maskHead is null) != (maskPredictor is null))
        {
            throw new ArgumentException("maskPooler, maskHead and maskPredictor must be given together", nameof(maskHead));
        }

        (MaskPooler, MaskHead, MaskPredictor) = (maskPooler, maskHead, maskPredictor);
        if (maskHead is not null)
        {
            RegisterModule("mask_head", AsModule(maskHead, nameof(maskHead)));
            RegisterModule("mask_predictor", AsModule(maskPredictor!, nameof(maskPredictor)));
        }

        Options = options ?? new RoIHeadsOptions();
        Options.Validate();
        coder = new BoxCoder(Options.BoxRegressionWeights ?? (10, 10, 5, 5));
        matcher = new Matcher(Options.ForegroundIouThreshold, Options.BackgroundIouThreshold, allowLowQualityMatches: false);
        sampler = new BalancedPositiveNegativeSampler(Options.BatchSizePerImage, Options.PositiveFraction);
    }

    private static Module AsModule(object part, string name) =>
        part as Module ?? throw new ArgumentException($"{name} must derive from Module", name);

    /// <summary>RoI pooler of the box branch (7×7).</summary>
    public IRoIPooler BoxPooler { get; }

    /// <summary>Box head.</summary>
    public IBoxHead BoxHead { get; }

    /// <summary>Box predictor.</summary>
    public IBoxPredictor BoxPredictor { get; }

    /// <summary>RoI pooler of the mask branch (14×14), or null.</summary>
    public IRoIPooler? MaskPooler { get; }

    /// <summary>Mask head, or null.</summary>
    public IMaskHead? MaskHead { get; }

    /// <summary>Mask predictor, or null.</summary>
    public IMaskPredictor? MaskPredictor { get; }

    /// <summary>The options.</summary>
    public RoIHeadsOptions Options { get; }

    /// <summary>
    /// The floating-point type the box and mask heads compute in at inference (default float32): pooled features are
    /// converted to it, and the heads' outputs back to the pooled features' type before post-processing. Training
    /// always computes in the features' type.
    /// </summary>
    /// <exception cref="ArgumentException">Not a floating-point type.</exception>
    public DType ComputeType
    {
        get => computeType;
        set => computeType = value.IsFloatingPoint() ? value : throw new ArgumentException($"ComputeType must be a floating-point type, got {value}", nameof(value));
    }

    /// <summary>
    /// Runs the heads on feature maps (the levels the poolers use) and proposals per image. Returns detections per
    /// image (masks are [D, 1, 28, 28] probabilities of the predicted class, in the resized frame) at inference, and
    /// losses in training (with <paramref name="targets"/>).
    /// </summary>
    public (IReadOnlyList<DetectionTensors> Detections, LossDictionary Losses) Forward(IReadOnlyList<Tensor> features,
        IReadOnlyList<Tensor> proposals, IReadOnlyList<ImageSize> imageSizes, IReadOnlyList<DetectionTarget>? targets = null)
    {
        ArgumentNullException.ThrowIfNull(features);
        ArgumentNullException.ThrowIfNull(proposals);
        ArgumentNullException.ThrowIfNull(imageSizes);
        var training = IsTraining && targets is not null;
        using var scope = Torch.NewDisposeScope();
        var losses = new LossDictionary();
        var detections = new List<DetectionTensors>();

        IReadOnlyList<Tensor> props = proposals;
        List<Tensor>? matchedIdxs = null;
        List<Tensor>? labels = null;
        List<Tensor>? regressionTargets = null;
        if (training)
        {
            (props, matchedIdxs, labels, regressionTargets) = SelectTrainingSamples(proposals, targets!);
        }

        var pooled = BoxPooler.Forward(features, props, imageSizes);
        StageProfile.Mark("box.roialign");
        var representation = BoxHead.Forward(InCompute(pooled, training));
        var (classLogits, boxDeltas) = BoxPredictor.Forward(representation);
        (classLogits, boxDeltas) = (Back(classLogits, pooled), Back(boxDeltas, pooled));
        StageProfile.Mark("box.head");

        if (training)
        {
            var (lossCls, lossBox) = FastRcnnLoss(classLogits, boxDeltas, labels!, regressionTargets!);
            losses[LossDictionary.Classifier] = lossCls;
            losses[LossDictionary.BoxReg] = lossBox;
        }
        else
        {
            detections.AddRange(PostprocessDetections(classLogits, boxDeltas, props, imageSizes));
            StageProfile.Mark("box.postprocess");
        }

        if (MaskHead is not null)
        {
            List<Tensor> maskProposals;
            List<Tensor>? positiveMatched = null;
            if (training)
            {
                maskProposals = [];
                positiveMatched = [];
                for (var i = 0; i < props.Count; i++)
                {
                    var pos = labels![i].Gt(0L).Nonzero().Select(1, 0);
                    maskProposals.Add(props[i].Index(pos));
                    positiveMatched.Add(matchedIdxs![i].Index(pos));
                }
            }
            else
            {
                maskProposals = detections.Select(d => d.Boxes).ToList();
            }

            var maskFeatures = MaskPooler!.Forward(features, maskProposals, imageSizes);
            StageProfile.Mark("mask.roialign");
            var maskLogits = Back(MaskPredictor!.Forward(MaskHead.Forward(InCompute(maskFeatures, training))), maskFeatures);
            if (training)
            {
                losses[LossDictionary.Mask] = MaskLoss(maskLogits, maskProposals, targets!, positiveMatched!);
            }
            else
            {
                var probs = MaskInference(maskLogits, detections.Select(d => d.Labels).ToList());
                for (var i = 0; i < detections.Count; i++)
                {
                    detections[i] = detections[i] with { Masks = probs[i] };
                }

                StageProfile.Mark("mask.head");
            }
        }

        foreach (var d in detections)
        {
            d.Boxes.MoveToOuterDisposeScope();
            d.Scores.MoveToOuterDisposeScope();
            d.Labels.MoveToOuterDisposeScope();
            d.Masks?.MoveToOuterDisposeScope();
        }

        foreach (var l in losses.Values)
        {
            l.MoveToOuterDisposeScope();
        }

        return (detections, losses);
    }

    /// <summary>The pooled features in <see cref="ComputeType"/> at inference (a conversion registered in the current scope).</summary>
    private Tensor InCompute(Tensor pooled, bool training) => training || pooled.DType == computeType ? pooled : pooled.To(computeType);

    /// <summary>A head output back in the pooled features' type.</summary>
    private static Tensor Back(Tensor output, Tensor pooled) => output.DType == pooled.DType ? output : output.To(pooled.DType);

    private (List<Tensor> Proposals, List<Tensor> Matched, List<Tensor> Labels, List<Tensor> Regression) SelectTrainingSamples(
        IReadOnlyList<Tensor> proposals, IReadOnlyList<DetectionTarget> targets)
    {
        if (targets.Count != proposals.Count)
        {
            throw new ArgumentException($"{proposals.Count} images but {targets.Count} targets", nameof(targets));
        }

        var props = new List<Tensor>();
        var matched = new List<Tensor>();
        var labels = new List<Tensor>();
        for (var i = 0; i < proposals.Count; i++)
        {
            var gt = targets[i].Boxes.To(proposals[i].DType);
            var p = Tensor.Cat([proposals[i], gt]);
            props.Add(p);
            if (gt.NumEl == 0)
            {
                matched.Add(Tensor.Zeros([p.Size(0)], DType.Int64, p.Device));
                labels.Add(Tensor.Zeros([p.Size(0)], DType.Int64, p.Device));
                continue;
            }

            var m = matcher.Match(Boxes.Iou(gt, p));
            var clamped = m.Clamp(min: 0);
            var lab = targets[i].Labels.Index(clamped).To(DType.Int64);
            lab.MaskedFillInPlace(m.Eq(Matcher.BelowLowThreshold), 0);
            lab.MaskedFillInPlace(m.Eq(Matcher.BetweenThresholds), -1);
            matched.Add(clamped);
            labels.Add(lab);
        }

        var samples = sampler.Sample(labels);
        var regression = new List<Tensor>();
        for (var i = 0; i < props.Count; i++)
        {
            var inds = (samples[i].Positive | samples[i].Negative).Nonzero().Select(1, 0);
            props[i] = props[i].Index(inds);
            labels[i] = labels[i].Index(inds);
            matched[i] = matched[i].Index(inds);
            var gt = targets[i].Boxes.To(props[i].DType);
            if (gt.NumEl == 0)
            {
                gt = Tensor.Zeros([1, 4], props[i].DType, props[i].Device);
            }

            regression.Add(coder.Encode(gt.Index(matched[i]), props[i]));
        }

        return (props, matched, labels, regression);
    }

    private static (Tensor Classifier, Tensor BoxReg) FastRcnnLoss(Tensor classLogits, Tensor boxDeltas, List<Tensor> labels, List<Tensor> regressionTargets)
    {
        var lab = Tensor.Cat(labels);
        var reg = Tensor.Cat(regressionTargets);
        var clsLoss = Functional.CrossEntropy(classLogits, lab);
        var pos = lab.Gt(0L).Nonzero().Select(1, 0);
        var labelsPos = lab.Index(pos);
        var n = classLogits.Size(0);
        var deltas = boxDeltas.Reshape(n, boxDeltas.Size(-1) / 4, 4);
        var boxLoss = Functional.SmoothL1Loss(deltas.Index(pos, labelsPos), reg.Index(pos), Reduction.Sum, beta: 1.0 / 9)
            / (double)Math.Max(lab.NumEl, 1);
        return (clsLoss, boxLoss);
    }

    private IEnumerable<DetectionTensors> PostprocessDetections(Tensor classLogits, Tensor boxDeltas, IReadOnlyList<Tensor> proposals, IReadOnlyList<ImageSize> sizes)
    {
        var numClasses = classLogits.Size(-1);
        var perImage = proposals.Select(p => p.Size(0)).ToArray();
        var allProposals = Tensor.Cat(proposals);
        var predBoxes = coder.Decode(boxDeltas, allProposals);
        var predScores = Functional.Softmax(classLogits, -1);
        var boxesList = predBoxes.Split(perImage, 0);
        var scoresList = predScores.Split(perImage, 0);
        for (var i = 0; i < proposals.Count; i++)
        {
            var k = boxesList[i].Size(0);
            var boxes = Boxes.ClipToImage(boxesList[i].Reshape(-1, 4), sizes[i].Height, sizes[i].Width).Reshape(k, numClasses, 4);
            var labels = Tensor.Arange(numClasses, classLogits.Device).View(1, -1).Expand(k, numClasses);
            boxes = boxes.Slice(1, 1, numClasses).Reshape(-1, 4);
            var scores = scoresList[i].Slice(1, 1, numClasses).Reshape(-1);
            labels = labels.Slice(1, 1, numClasses).Reshape(-1);
            var inds = scores.Gt(Options.ScoreThreshold).Nonzero().Select(1, 0);
            (boxes, scores, labels) = (boxes.Index(inds), scores.Index(inds), labels.Index(inds));
            var keep = Boxes.RemoveSmall(boxes, 1e-2);
            (boxes, scores, labels) = (boxes.Index(keep), scores.Index(keep), labels.Index(keep));
            keep = Nms.Batched(boxes, scores, labels, Options.NmsThreshold).Slice(0, 0, Options.DetectionsPerImage);
            yield return new DetectionTensors(boxes.Index(keep), scores.Index(keep), labels.Index(keep), null);
        }
    }

    private static List<Tensor> MaskInference(Tensor maskLogits, List<Tensor> labels)
    {
        var prob = maskLogits.Sigmoid();
        var all = Tensor.Cat(labels);
        var index = Tensor.Arange(prob.Size(0), all.Device);
        var selected = prob.Index(index, all).Unsqueeze(1);
        return selected.Split(labels.Select(l => l.Size(0)).ToArray(), 0).ToList();
    }

    private Tensor MaskLoss(Tensor maskLogits, List<Tensor> proposals, IReadOnlyList<DetectionTarget> targets, List<Tensor> matched)
    {
        var m = maskLogits.Size(-1);
        var labels = new List<Tensor>();
        var maskTargets = new List<Tensor>();
        for (var i = 0; i < proposals.Count; i++)
        {
            var gtMasks = targets[i].Masks ?? throw new ArgumentException($"targets[{i}] has no masks but the model has a mask head", nameof(targets));
            labels.Add(targets[i].Labels.Index(matched[i]));
            maskTargets.Add(ProjectMasksOnBoxes(gtMasks, proposals[i], matched[i], m, Options.AlignedMaskTargets));
        }

        var lab = Tensor.Cat(labels);
        var tgt = Tensor.Cat(maskTargets);
        if (tgt.NumEl == 0)
        {
            return maskLogits.Sum() * 0.0;
        }

        var selected = maskLogits.Index(Tensor.Arange(lab.Size(0), lab.Device), lab);
        return Functional.BinaryCrossEntropyWithLogits(selected, tgt);
    }

    /// <summary>
    /// Crops each matched ground-truth mask to its proposal and resamples it to M×M with RoIAlign (torchvision's
    /// project_masks_on_boxes; with <paramref name="aligned"/> the half-pixel-corrected sampling of detectron2).
    /// </summary>
    /// <param name="gtMasks">The image's ground-truth masks, [G, H, W] (0/1).</param>
    /// <param name="boxes">Proposals, [K, 4] xyxy in the masks' pixels.</param>
    /// <param name="matched">Index of each proposal's ground truth, int64 [K].</param>
    /// <param name="m">Side of the targets (the mask head's output, 28).</param>
    /// <param name="aligned">RoIAlign's half-pixel correction (<see cref="RoIHeadsOptions.AlignedMaskTargets"/>).</param>
    /// <returns>Float [K, M, M] targets in [0, 1].</returns>
    public static Tensor ProjectMasksOnBoxes(Tensor gtMasks, Tensor boxes, Tensor matched, long m, bool aligned = false)
    {
        var idx = matched.To(boxes.DType).Unsqueeze(1);
        var rois = Tensor.Cat([idx, boxes], 1);
        var masks = gtMasks.Unsqueeze(1).To(rois.DType);
        return RoIAlignOp.Apply(masks, rois, (int)m, (int)m, 1.0, -1, aligned).Select(1, 0);
    }
}
