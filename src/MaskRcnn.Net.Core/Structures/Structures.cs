using MaskRcnn.Net.Core.Detection;

namespace MaskRcnn.Net.Core.Structures;

/// <summary>
/// A batch of normalised images padded to a common size: <see cref="Images"/> is [N, 3, H, W] (H, W multiples of
/// the size divisor) and <see cref="Sizes"/> holds each image's size before padding (after resizing).
/// </summary>
/// <param name="Images">[N, 3, H, W] float tensor.</param>
/// <param name="Sizes">Per-image size inside the padded tensor.</param>
public sealed record ImageBatch(Tensor Images, IReadOnlyList<ImageSize> Sizes)
{
    /// <summary>Padded height.</summary>
    public long PaddedHeight => Images.Size(2);

    /// <summary>Padded width.</summary>
    public long PaddedWidth => Images.Size(3);
}

/// <summary>Ground truth of one image for training.</summary>
/// <param name="Boxes">[G, 4] float boxes (x1, y1, x2, y2) in image pixels.</param>
/// <param name="Labels">[G] int64 class labels (1..K; 0 is background).</param>
/// <param name="Masks">[G, H, W] uint8 instance masks at image resolution, or null for box-only training.</param>
public sealed record DetectionTarget(Tensor Boxes, Tensor Labels, Tensor? Masks);

/// <summary>Detections of one image as tensors.</summary>
/// <param name="Boxes">[D, 4] float boxes (x1, y1, x2, y2).</param>
/// <param name="Scores">[D] float scores.</param>
/// <param name="Labels">[D] int64 labels.</param>
/// <param name="Masks">[D, 1, H, W] float mask probabilities, or null.</param>
public sealed record DetectionTensors(Tensor Boxes, Tensor Scores, Tensor Labels, Tensor? Masks);

/// <summary>Named losses with torchvision's keys (loss_objectness, loss_rpn_box_reg, loss_classifier, loss_box_reg, loss_mask).</summary>
public sealed class LossDictionary : Dictionary<string, Tensor>
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
}
