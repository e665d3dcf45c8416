using MaskRcnn.Net.Core;

namespace MaskRcnn.Net.Training;

/// <summary>
/// A detection / instance segmentation dataset: a fixed list of images with their annotations. Reading a sample is
/// cheap; decoding its image happens only in <see cref="LoadImage"/>. Implementations must allow calls from any
/// thread (the <see cref="DataLoader"/> loads on a background task), though not necessarily concurrently.
/// </summary>
public interface IDetectionDataset
{
    /// <summary>Number of images.</summary>
    int Count { get; }

    /// <summary>Class names by label; index 0 is <c>"__background__"</c>, labels 1..K name the object classes.</summary>
    IReadOnlyList<string> ClassNames { get; }

    /// <summary>The image identity, size and annotations of image <paramref name="index"/> (no pixels are decoded).</summary>
    /// <param name="index">0 ≤ index &lt; <see cref="Count"/>.</param>
    DatasetSample GetSample(int index);

    /// <summary>Decodes image <paramref name="index"/> as a uint8 [3, H, W] RGB tensor owned by the caller.</summary>
    /// <param name="index">0 ≤ index &lt; <see cref="Count"/>.</param>
    Tensor LoadImage(int index);
}
