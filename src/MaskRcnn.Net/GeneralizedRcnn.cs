using MaskRcnn.Net.Backbones;
using MaskRcnn.Net.Core;
using MaskRcnn.Net.Core.Detection;
using MaskRcnn.Net.Core.NN;
using MaskRcnn.Net.Core.Structures;
using MaskRcnn.Net.Heads;

namespace MaskRcnn.Net;

/// <summary>
/// The meta-architecture of a two-stage detector (torchvision's <c>GeneralizedRCNN</c>), orchestration only:
/// transform → backbone → region proposal network → RoI heads → postprocess to the original image size. It owns
/// its stages as submodules <c>backbone</c>, <c>rpn</c> and <c>roi_heads</c>, so state-dict keys start with those
/// prefixes. <see cref="MaskRcnnModel"/> derives from it and adds the configuration, input checks, conversion to .NET
/// results and file I/O.
/// </summary>
public class GeneralizedRcnn : Module
{
    private readonly IReadOnlyList<string> poolerFeatureNames;
    private Precision precision;

    /// <summary>Wires the stages; registers <paramref name="backbone"/>, <paramref name="rpn"/> and <paramref name="roiHeads"/> as submodules.</summary>
    /// <param name="transform">Resize/normalise/batch transform (holds no weights).</param>
    /// <param name="backbone">A module implementing <see cref="IBackbone"/>.</param>
    /// <param name="rpn">Region proposal network.</param>
    /// <param name="roiHeads">Box and mask heads.</param>
    /// <exception cref="ArgumentException"><paramref name="backbone"/> does not implement <see cref="IBackbone"/>.</exception>
    public GeneralizedRcnn(ImageTransform transform, Module backbone, RegionProposalNetwork rpn, RoIHeads roiHeads)
    {
        ArgumentNullException.ThrowIfNull(transform);
        ArgumentNullException.ThrowIfNull(backbone);
        ArgumentNullException.ThrowIfNull(rpn);
        ArgumentNullException.ThrowIfNull(roiHeads);
        Backbone = backbone as IBackbone ?? throw new ArgumentException("the backbone must implement IBackbone", nameof(backbone));
        RegisterModule("backbone", backbone);
        Rpn = RegisterModule("rpn", rpn);
        RoIHeads = RegisterModule("roi_heads", roiHeads);
        Transform = transform;
        poolerFeatureNames = backbone is BackboneWithFpn fpn ? fpn.LevelNames : Backbone.FeatureNames.Where(n => n != "pool").ToArray();
    }

    /// <summary>Backbone with FPN.</summary>
    public IBackbone Backbone { get; }

    /// <summary>Region proposal network.</summary>
    public RegionProposalNetwork Rpn { get; }

    /// <summary>Box and mask heads.</summary>
    public RoIHeads RoIHeads { get; }

    /// <summary>Resize/normalise/batch transform.</summary>
    public ImageTransform Transform { get; }

    /// <summary>
    /// The number format prediction computes in (default <see cref="Precision.Float32"/>): the backbone, FPN and RPN
    /// head run on images converted to it, the RoI heads on pooled features converted to it
    /// (<see cref="RoIHeads.ComputeType"/>); proposals, pooling and post-processing stay float32. Training ignores it.
    /// </summary>
    /// <exception cref="NotSupportedException">The precision cannot run natively where the model's parameters are.</exception>
    public Precision Precision
    {
        get => precision;
        set
        {
            PrecisionSupport.EnsureSupported(value, Parameters().FirstOrDefault()?.Device ?? Device.Cpu);
            precision = value;
            RoIHeads.ComputeType = value.ComputeType();
        }
    }

    /// <summary>
    /// Checks one input image before any work (called for every image by <see cref="ComputeLosses"/> and
    /// <see cref="Detect(IReadOnlyList{Tensor}, CancellationToken)"/>). The base refuses only null; derived models
    /// add their own checks.
    /// </summary>
    /// <param name="image">The image, float [3, H, W].</param>
    /// <param name="description">How to name the image in an exception message (e.g. <c>images[2]</c>).</param>
    protected virtual void CheckImage(Tensor image, string description) => ArgumentNullException.ThrowIfNull(image, description);

    /// <summary>
    /// Whether <see cref="Detect(IReadOnlyList{Tensor})"/> pastes masks with the exact, half-pixel-aligned geometry
    /// (<see cref="MaskPaster.PasteAligned"/>) instead of torchvision's paste; false here.
    /// </summary>
    private protected virtual bool AlignedMaskPaste => false;

    private (ImageBatch Batch, FeatureMaps Features, IReadOnlyList<DetectionTarget>? Targets) Prepare(
        IReadOnlyList<Tensor> images, IReadOnlyList<DetectionTarget>? targets)
    {
        var (batch, resizedTargets) = Transform.Forward(images, targets, IsTraining);
        var compute = precision.ComputeType();
        if (!IsTraining && batch.Images.DType != compute)
        {
            batch = batch with { Images = batch.Images.To(compute) };
        }

        StageProfile.Mark("transform");
        var features = Backbone.Forward(batch.Images);
        if (Backbone is not BackboneWithFpn)
        {
            StageProfile.Mark("backbone");   // BackboneWithFpn marks its body and its FPN apart
        }

        return (batch, features, resizedTargets);
    }

    /// <summary>The maps the RoI poolers read, in float32 (pooling and everything after it run in float32; the heads convert the pooled features).</summary>
    private IReadOnlyList<Tensor> PoolerFeatures(FeatureMaps features) =>
        poolerFeatureNames.Select(n => features[n].DType.IsReducedFloat() ? features[n].To(DType.Float32) : features[n]).ToArray();

    /// <summary>
    /// Training forward pass on float [3, H, W] images in [0, 1] (on the model's device) with their targets: returns
    /// the five named losses (<see cref="LossDictionary"/>). Call <see cref="Module.Train"/> first.
    /// </summary>
    /// <returns>
    /// A new dictionary the caller owns: its loss tensors were moved out of this call's dispose scope into the
    /// caller's (if any). Dispose it (or let the caller's scope do it) when the losses have been used.
    /// </returns>
    public LossDictionary ComputeLosses(IReadOnlyList<Tensor> images, IReadOnlyList<DetectionTarget> targets)
    {
        ArgumentNullException.ThrowIfNull(targets);
        if (!IsTraining)
        {
            throw new InvalidOperationException("ComputeLosses needs training mode: call Train() first");
        }

        ArgumentNullException.ThrowIfNull(images);
        for (var i = 0; i < images.Count; i++)
        {
            CheckImage(images[i], $"images[{i}]");
        }

        using var scope = Torch.NewDisposeScope();
        var (batch, features, resized) = Prepare(images, targets);
        var (proposals, rpnLosses) = Rpn.Forward(batch, features.Tensors, resized);
        var (_, headLosses) = RoIHeads.Forward(PoolerFeatures(features), proposals, batch.Sizes, resized);
        var losses = new LossDictionary();
        foreach (var (k, v) in rpnLosses.Concat(headLosses))
        {
            losses[k] = v.MoveToOuterDisposeScope();
        }

        return losses;
    }

    /// <summary>
    /// Inference on float [3, H, W] images in [0, 1] (on the model's device): detections per image as tensors at
    /// the original size, masks as [D, 1, H, W] probabilities. The caller owns the returned tensors.
    /// </summary>
    /// <returns>
    /// One <see cref="DetectionTensors"/> per image, owned by the caller: their tensors were moved out of this call's
    /// dispose scope into the caller's (if any); outside a scope, dispose each one when done.
    /// </returns>
    public IReadOnlyList<DetectionTensors> Detect(IReadOnlyList<Tensor> images) => Detect(images, CancellationToken.None);

    /// <summary>
    /// <see cref="Detect(IReadOnlyList{Tensor})"/>, checking <paramref name="cancellationToken"/> between stages
    /// (backbone, proposals, RoI heads, each image's postprocessing).
    /// </summary>
    /// <returns>One <see cref="DetectionTensors"/> per image, owned by the caller (as for <see cref="Detect(IReadOnlyList{Tensor})"/>).</returns>
    /// <exception cref="OperationCanceledException">Cancelled; nothing is returned and nothing leaks.</exception>
    public IReadOnlyList<DetectionTensors> Detect(IReadOnlyList<Tensor> images, CancellationToken cancellationToken) =>
        Detect(images, cancellationToken, pasteMasks: true);

    /// <summary>
    /// <see cref="Detect(IReadOnlyList{Tensor}, CancellationToken)"/>; with <paramref name="pasteMasks"/> false the
    /// masks stay the mask head's [D, 1, M, M] probabilities in their boxes (boxes at the original size), for the
    /// shared array post-processing (<see cref="DetectionPostprocessing"/>) to paste.
    /// </summary>
    private protected IReadOnlyList<DetectionTensors> Detect(IReadOnlyList<Tensor> images, CancellationToken cancellationToken, bool pasteMasks)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (IsTraining)
        {
            throw new InvalidOperationException("prediction needs evaluation mode: call Eval() first");
        }

        for (var i = 0; i < images.Count; i++)
        {
            CheckImage(images[i], $"images[{i}]");
        }

        using var scope = Torch.NewDisposeScope();
        cancellationToken.ThrowIfCancellationRequested();
        var (batch, features, _) = Prepare(images, null);
        cancellationToken.ThrowIfCancellationRequested();
        var (proposals, _) = Rpn.Forward(batch, features.Tensors);
        cancellationToken.ThrowIfCancellationRequested();
        var (detections, _) = RoIHeads.Forward(PoolerFeatures(features), proposals, batch.Sizes);
        var result = new List<DetectionTensors>();
        for (var i = 0; i < detections.Count; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var original = new ImageSize((int)images[i].Size(1), (int)images[i].Size(2));
            var mapped = Transform.Postprocess(detections[i], batch.Sizes[i], original, pasteMasks && !AlignedMaskPaste);
            if (pasteMasks && AlignedMaskPaste && mapped.Masks is { } unpasted)
            {
                // The unpasted masks stay in this call's scope, which releases them.
                mapped = mapped with { Masks = MaskPaster.PasteAligned(unpasted, mapped.Boxes, original.Height, original.Width) };
            }

            result.Add(mapped);
        }

        StageProfile.Mark("postprocess");

        // Only now, with nothing left to cancel, do the results leave this call's scope: a cancellation above lets
        // the scope release the images already postprocessed.
        foreach (var d in result)
        {
            d.Boxes.MoveToOuterDisposeScope();
            d.Scores.MoveToOuterDisposeScope();
            d.Labels.MoveToOuterDisposeScope();
            d.Masks?.MoveToOuterDisposeScope();
        }

        return result;
    }
}
