using MaskRcnn.Net.Core.NN;

namespace MaskRcnn.Net.Core.Structures;

/// <summary>
/// A detector a trainer can train: a module that returns named losses for images and targets. The trainer
/// (MaskRcnn.Net.Training) depends only on this contract, not on any particular model.
/// </summary>
public interface ITrainableDetector
{
    /// <summary>The module whose parameters are trained (switched to training mode by the trainer).</summary>
    Module Module { get; }

    /// <summary>The device the model runs on (batches are moved there).</summary>
    Device Device { get; }

    /// <summary>The named losses (torchvision's keys) for float [3, H, W] images in [0, 1] and their targets.</summary>
    LossDictionary ComputeLosses(IReadOnlyList<Tensor> images, IReadOnlyList<DetectionTarget> targets);
}
