namespace MaskRcnn.Net;

/// <summary>Initialisation of the last layers of the box and mask heads (<see cref="MaskRcnnBuilder.WithPredictorInit"/>).</summary>
public enum PredictorInit
{
    /// <summary>
    /// torchvision's: PyTorch's default linear initialisation for the class scores and box deltas, Kaiming normal
    /// (fan-out) for the mask logits. With a backbone trained from scratch the initial mask logits are large
    /// (standard deviation around 10), so the first mask losses are 5–10 instead of ln 2.
    /// </summary>
    Torchvision,

    /// <summary>
    /// detectron2's: normal weights with standard deviation 0.01 (class scores) and 0.001 (box deltas, mask logits),
    /// zero biases. Every prediction starts near "uncertain" (mask loss ≈ ln 2), which shortens the start of training
    /// from scratch.
    /// </summary>
    SmallNormal,
}
