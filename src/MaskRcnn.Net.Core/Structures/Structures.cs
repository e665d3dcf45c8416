using MaskRcnn.Net.Core.Detection;

namespace MaskRcnn.Net.Core.Structures;

/// <summary>
/// <para>
/// A batch of normalised images padded to a common size: <see cref="Images"/> is [N, 3, H, W] (H, W multiples of
/// the size divisor) and <see cref="Sizes"/> holds each image's size before padding (after resizing).
/// </para>
/// <para>
/// Ownership: the record holds its tensors, it does not copy them. Whoever receives it owns it and disposes it once,
/// when no longer needed (<see cref="Dispose"/> disposes every tensor it holds); records created inside a
/// <see cref="DisposeScope"/> need not be disposed, the scope disposes their tensors. Disposing twice, or disposing a
/// record whose tensors the scope has already released, is harmless (<see cref="Tensor.Dispose"/> is idempotent). A
/// copy made with <c>with</c> shares the tensors it did not replace: dispose exactly one of the two, after the last use
/// of either (and dispose yourself any tensor you replaced and no longer need).
/// </para>
/// </summary>
/// <param name="Images">[N, 3, H, W] float tensor.</param>
/// <param name="Sizes">Per-image size inside the padded tensor.</param>
public sealed record ImageBatch(Tensor Images, IReadOnlyList<ImageSize> Sizes) : IDisposable
{
    /// <summary>Padded height.</summary>
    public long PaddedHeight => Images.Size(2);

    /// <summary>Padded width.</summary>
    public long PaddedWidth => Images.Size(3);

    /// <summary>Disposes <see cref="Images"/> (idempotent; see the ownership rule above).</summary>
    public void Dispose() => Images.Dispose();
}

/// <summary>
/// <para>Ground truth of one image for training.</para>
/// <para>
/// Ownership: the record holds its tensors, it does not copy them. Whoever receives it owns it and disposes it once,
/// when no longer needed (<see cref="Dispose"/> disposes every tensor it holds); records created inside a
/// <see cref="DisposeScope"/> need not be disposed, the scope disposes their tensors. Disposing twice, or disposing a
/// record whose tensors the scope has already released, is harmless (<see cref="Tensor.Dispose"/> is idempotent). A
/// copy made with <c>with</c> shares the tensors it did not replace: dispose exactly one of the two, after the last use
/// of either (and dispose yourself any tensor you replaced and no longer need).
/// </para>
/// </summary>
/// <param name="Boxes">[G, 4] float boxes (x1, y1, x2, y2) in image pixels.</param>
/// <param name="Labels">[G] int64 class labels (1..K; 0 is background).</param>
/// <param name="Masks">[G, H, W] uint8 instance masks at image resolution, or null for box-only training.</param>
public sealed record DetectionTarget(Tensor Boxes, Tensor Labels, Tensor? Masks) : IDisposable
{
    /// <summary>Disposes <see cref="Boxes"/>, <see cref="Labels"/> and <see cref="Masks"/> (idempotent; see the ownership rule above).</summary>
    public void Dispose()
    {
        Boxes.Dispose();
        Labels.Dispose();
        Masks?.Dispose();
    }
}

/// <summary>
/// <para>
/// Detections of one image as tensors (what a model's <c>Detect</c> returns, one per image: the caller owns each one).
/// </para>
/// <para>
/// Ownership: the record holds its tensors, it does not copy them. Whoever receives it owns it and disposes it once,
/// when no longer needed (<see cref="Dispose"/> disposes every tensor it holds); records created inside a
/// <see cref="DisposeScope"/> need not be disposed, the scope disposes their tensors. Disposing twice, or disposing a
/// record whose tensors the scope has already released, is harmless (<see cref="Tensor.Dispose"/> is idempotent). A
/// copy made with <c>with</c> shares the tensors it did not replace: dispose exactly one of the two, after the last use
/// of either (and dispose yourself any tensor you replaced and no longer need).
/// </para>
/// </summary>
/// <param name="Boxes">[D, 4] float boxes (x1, y1, x2, y2).</param>
/// <param name="Scores">[D] float scores.</param>
/// <param name="Labels">[D] int64 labels.</param>
/// <param name="Masks">[D, 1, H, W] float mask probabilities, or null.</param>
public sealed record DetectionTensors(Tensor Boxes, Tensor Scores, Tensor Labels, Tensor? Masks) : IDisposable
{
    /// <summary>Disposes <see cref="Boxes"/>, <see cref="Scores"/>, <see cref="Labels"/> and <see cref="Masks"/> (idempotent; see the ownership rule above).</summary>
    public void Dispose()
    {
        Boxes.Dispose();
        Scores.Dispose();
        Labels.Dispose();
        Masks?.Dispose();
    }
}

/// <summary>
/// <para>Named losses with torchvision's keys (loss_objectness, loss_rpn_box_reg, loss_classifier, loss_box_reg, loss_mask).</para>
/// <para>
/// Ownership: the dictionary holds its loss tensors. Whoever receives it (e.g. from a model's <c>ComputeLosses</c>)
/// owns it and disposes it once the losses have been used (<see cref="Dispose"/> disposes every value); one created
/// inside a <see cref="DisposeScope"/> need not be disposed, the scope disposes its tensors. Disposing twice is
/// harmless (<see cref="Tensor.Dispose"/> is idempotent). Removing or replacing an entry hands that tensor back to the
/// caller. <see cref="Total"/> returns a new tensor that the caller owns separately.
/// </para>
/// </summary>
public sealed class LossDictionary : Dictionary<string, Tensor>, IDisposable
{
    /// <summary>RPN objectness loss key.</summary>
    public const string Objectness = "loss_objectness";

    /// <summary>RPN box regression loss key.</summary>
    public const string RpnBoxReg = "loss_rpn_box_reg";

    /// <summary>Box classifier loss key.</summary>
    public const string Classifier = "loss_classifier";

    /// <summary>Box regression loss key.</summary>
    public const string BoxReg = "loss_box_reg";

    /// <summary>Mask loss key.</summary>
    public const string Mask = "loss_mask";

    /// <summary>The sum of all losses (a new tensor).</summary>
    public Tensor Total()
    {
        if (Count == 0)
        {
            throw new InvalidOperationException("no losses to sum");
        }

        using var scope = Torch.NewDisposeScope();
        var total = Values.First();
        foreach (var t in Values.Skip(1))
        {
            total = total + t;
        }

        return total.Alias().MoveToOuterDisposeScope();
    }

    /// <summary>Disposes every loss tensor (idempotent; see the ownership rule above). The entries stay in the dictionary, disposed.</summary>
    public void Dispose()
    {
        foreach (var t in Values)
        {
            t.Dispose();
        }
    }
}
