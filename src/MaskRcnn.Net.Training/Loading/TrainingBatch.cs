using MaskRcnn.Net.Core;
using MaskRcnn.Net.Core.Structures;

namespace MaskRcnn.Net.Training;

/// <summary>
/// A batch of training images and their targets from a <see cref="DataLoader"/>. The batch owns every tensor it
/// holds (outside any dispose scope); the consumer that received it from the loader owns the batch and disposes it
/// when the step is done. <see cref="Images"/> and the <see cref="DetectionTarget"/>s of <see cref="Targets"/> are
/// the batch's own tensors, not copies: do not dispose them separately (a <c>with</c> copy of a target shares them
/// too). Disposing twice is harmless.
/// </summary>
public sealed class TrainingBatch : IDisposable
{
    private readonly Tensor[] images;
    private readonly DetectionTarget[] targets;

    internal TrainingBatch(int epoch, int batchIndex, int[] indices, long[] imageIds, Tensor[] images, DetectionTarget[] targets)
    {
        Epoch = epoch;
        BatchIndex = batchIndex;
        Indices = indices;
        ImageIds = imageIds;
        this.images = images;
        this.targets = targets;
    }

    /// <summary>The epoch this batch belongs to.</summary>
    public int Epoch { get; }

    /// <summary>Position of the batch in its epoch (0-based).</summary>
    public int BatchIndex { get; }

    /// <summary>Number of images.</summary>
    public int Count => images.Length;

    /// <summary>Dataset indices of the images, in batch order.</summary>
    public IReadOnlyList<int> Indices { get; }

    /// <summary>Image ids (<see cref="DatasetSample.ImageId"/>) of the images, in batch order.</summary>
    public IReadOnlyList<long> ImageIds { get; }

    /// <summary>
    /// The images as float32 [3, H, W] tensors in [0, 1], each at its own size (not padded: the model's transform
    /// resizes, normalises and pads).
    /// </summary>
    public IReadOnlyList<Tensor> Images => images;

    /// <summary>
    /// Targets per image: boxes float32 [G, 4] (x1, y1, x2, y2), labels int64 [G] (1..K), masks uint8 [G, H, W]
    /// (or null when <see cref="DataLoaderOptions.IncludeMasks"/> is false).
    /// </summary>
    public IReadOnlyList<DetectionTarget> Targets => targets;

    /// <summary>True once disposed.</summary>
    public bool IsDisposed { get; private set; }

    /// <summary>Disposes every tensor of the batch (idempotent).</summary>
    public void Dispose()
    {
        if (IsDisposed)
        {
            return;
        }

        IsDisposed = true;
        foreach (var image in images)
        {
            image.Dispose();
        }

        foreach (var t in targets)
        {
            t.Dispose();
        }
    }
}
