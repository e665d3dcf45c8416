namespace MaskRcnn.Net;

/// <summary>
/// A model that detects, classifies and segments every object instance in an image — what an app depends on (and
/// mocks in its tests), whichever runtime serves it: the libtorch <c>MaskRcnnModel</c> or the ONNX Runtime model.
/// Implementations are thread-safe: one instance may serve concurrent calls.
/// </summary>
public interface IInstanceSegmenter
{
    /// <summary>Class names by label id; index 0 is the background.</summary>
    IReadOnlyList<string> ClassNames { get; }

    /// <summary>Detects and segments the objects in one image.</summary>
    /// <exception cref="ArgumentException">The image is refused (empty, too elongated, too large); the message names it.</exception>
    /// <exception cref="IOException">Encoded image data cannot be read or decoded (the runtime's decode exception derives from it).</exception>
    ImageDetections Predict(ImageSource image);

    /// <summary>Detects and segments the objects in several images, run as one batch; results in input order.</summary>
    /// <exception cref="ArgumentException">An image is refused; the message names it.</exception>
    /// <exception cref="IOException">Encoded image data cannot be read or decoded.</exception>
    IReadOnlyList<ImageDetections> Predict(IReadOnlyList<ImageSource> images);

    /// <summary>
    /// <see cref="Predict(ImageSource)"/> off the calling thread. Cancelling stops the work at the next stage
    /// boundary and faults the task with <see cref="OperationCanceledException"/>.
    /// </summary>
    Task<ImageDetections> PredictAsync(ImageSource image, CancellationToken cancellationToken = default);

    /// <summary><see cref="Predict(IReadOnlyList{ImageSource})"/> off the calling thread, cancellable between stages.</summary>
    Task<IReadOnlyList<ImageDetections>> PredictAsync(IReadOnlyList<ImageSource> images, CancellationToken cancellationToken = default);
}
