using System.Globalization;
using MaskRcnn.Net.Core.Detection;
using MaskRcnn.Net.Core.Masks;

namespace MaskRcnn.Net;

/// <summary>
/// What <see cref="DetectionPostprocessing"/> does after the network: class names, the mask threshold, the mask
/// paste's padding and the contained-duplicate suppression. The libtorch model fills it from its configuration, the
/// ONNX Runtime model from the exported file's metadata, so both return the same results for the same outputs.
/// </summary>
public sealed record PostprocessingOptions
{
    /// <summary>Class names by label id, index 0 the background; null: a label is named by its id as text.</summary>
    public IReadOnlyList<string>? ClassNames { get; init; }

    /// <summary>A mask pixel is in the instance when its pasted probability is strictly above this (default 0.5).</summary>
    public double MaskThreshold { get; init; } = 0.5;

    /// <summary>
    /// Drops a detection lying at least this fraction inside a higher-scoring one of the same class (or holding it;
    /// see <see cref="DuplicateSuppression"/>); null (default): off.
    /// </summary>
    public double? SuppressContained { get; init; }

    /// <summary>Zero pixels around the M×M mask before it is pasted (torchvision's <c>paste_masks_in_image</c> uses 1).</summary>
    public int MaskPadding { get; init; } = 1;

    /// <summary>
    /// Multiplies each score by its mask's confidence and sorts by the result (<see cref="Net.MaskScoring"/>); false
    /// (default): the network's scores.
    /// </summary>
    public bool MaskScoring { get; init; }

    /// <summary>
    /// Pastes the M×M masks with exact, half-pixel-aligned geometry (<see cref="MaskPasting.PasteAligned"/>, for mask
    /// heads trained on aligned targets) instead of torchvision's <c>paste_masks_in_image</c> (default false; then
    /// <see cref="MaskPadding"/> applies).
    /// </summary>
    public bool AlignedMaskPaste { get; init; }

    /// <summary>Checks the ranges; throws <see cref="ArgumentException"/> naming the field and its value.</summary>
    public void Validate()
    {
        if (!(MaskThreshold >= 0 && MaskThreshold <= 1))
        {
            throw new ArgumentException($"PostprocessingOptions.MaskThreshold must be in [0, 1], got {MaskThreshold}", nameof(MaskThreshold));
        }

        if (SuppressContained is { } s && !(s > 0 && s <= 1))
        {
            throw new ArgumentException($"PostprocessingOptions.SuppressContained must be in (0, 1] or null, got {s}", nameof(SuppressContained));
        }

        if (MaskPadding < 0)
        {
            throw new ArgumentException($"PostprocessingOptions.MaskPadding must be at least 0, got {MaskPadding}", nameof(MaskPadding));
        }

        if (ClassNames is { } names && names.Any(n => n is null))
        {
            throw new ArgumentException("PostprocessingOptions.ClassNames must not contain null", nameof(ClassNames));
        }
    }

    /// <summary>The name of a label: <see cref="ClassNames"/>[label], or the id as text when there is no such name.</summary>
    public string ClassName(int label) =>
        ClassNames is { } names && label >= 0 && label < names.Count ? names[label] : label.ToString(CultureInfo.InvariantCulture);

    /// <inheritdoc/>
    public bool Equals(PostprocessingOptions? other) =>
        other is not null && MaskThreshold.Equals(other.MaskThreshold) && SuppressContained.Equals(other.SuppressContained) &&
        MaskPadding == other.MaskPadding && MaskScoring == other.MaskScoring && AlignedMaskPaste == other.AlignedMaskPaste &&
        (ReferenceEquals(ClassNames, other.ClassNames) || (ClassNames is not null && other.ClassNames is not null && ClassNames.SequenceEqual(other.ClassNames)));

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(MaskThreshold, SuppressContained, MaskPadding, MaskScoring, AlignedMaskPaste, ClassNames?.Count);
}

/// <summary>
/// The post-processing after a Mask R-CNN network, on plain arrays, shared by every runtime (the libtorch
/// <c>MaskRcnnModel.Predict</c> and the ONNX Runtime <c>OnnxMaskRcnn.Predict</c>): from the network's outputs for one
/// image — boxes in the input image's pixels, labels, scores and each detection's M×M mask probabilities in its box —
/// to <see cref="ImageDetections"/>: masks pasted at full size (<see cref="MaskPasting"/>, torchvision's
/// <c>paste_masks_in_image</c>), thresholded, class names attached, scores rescored by mask confidence when asked,
/// nested duplicates suppressed.
/// </summary>
public static class DetectionPostprocessing
{
    /// <summary>Converts one image's network outputs to detections.</summary>
    /// <param name="width">The input image's width (the masks' width).</param>
    /// <param name="height">The input image's height.</param>
    /// <param name="boxes">N × 4 values x1, y1, x2, y2 in the input image's pixels, row-major.</param>
    /// <param name="labels">N class ids.</param>
    /// <param name="scores">N scores, in decreasing order.</param>
    /// <param name="masks">N × M × M probabilities (detection-major, row-major M×M each), or empty for a model without
    /// a mask head (the detections then have no mask).</param>
    /// <param name="options">Threshold, names and suppression (null: the defaults).</param>
    /// <returns>The detections in the order given (by rescored score with <see cref="PostprocessingOptions.MaskScoring"/>),
    /// less the suppressed duplicates.</returns>
    /// <exception cref="ArgumentException">The image has no pixel, or the lengths disagree (boxes not 4 per label,
    /// scores not one per label, masks not N square planes); the message names the array and the lengths.</exception>
    public static ImageDetections ToImageDetections(int width, int height, ReadOnlySpan<float> boxes, ReadOnlySpan<long> labels,
        ReadOnlySpan<float> scores, ReadOnlySpan<float> masks, PostprocessingOptions? options = null)
    {
        options ??= new PostprocessingOptions();
        options.Validate();
        if (width < 1 || height < 1)
        {
            throw new ArgumentException($"the image must have at least one pixel, got {width}x{height} (width x height)", nameof(width));
        }

        var n = labels.Length;
        if (boxes.Length != 4 * n)
        {
            throw new ArgumentException($"boxes must hold 4 values per detection: {n} labels but {boxes.Length} box values", nameof(boxes));
        }

        if (scores.Length != n)
        {
            throw new ArgumentException($"scores must hold one value per detection: {n} labels but {scores.Length} scores", nameof(scores));
        }

        var plane = 0;
        if (!masks.IsEmpty)
        {
            var m = n == 0 ? 0 : (int)Math.Round(Math.Sqrt(masks.Length / (double)n));
            if (n == 0 || m < 1 || (long)m * m * n != masks.Length)
            {
                throw new ArgumentException($"masks must hold one M×M plane per detection: {n} labels but {masks.Length} mask values", nameof(masks));
            }

            plane = m * m;
        }

        var threshold = (float)options.MaskThreshold;
        var rescore = plane > 0 && options.MaskScoring;
        var list = new List<Detection>(n);
        var confidences = new List<float>(n);
        for (var i = 0; i < n; i++)
        {
            var box = new BoundingBox(boxes[4 * i], boxes[4 * i + 1], boxes[4 * i + 2], boxes[4 * i + 3]);
            var mask = plane == 0 ? null : options.AlignedMaskPaste
                ? MaskPasting.PasteAlignedBinary(masks.Slice(i * plane, plane), box, width, height, threshold)
                : MaskPasting.PasteBinary(masks.Slice(i * plane, plane), box, width, height, threshold, options.MaskPadding);
            var label = checked((int)labels[i]);
            list.Add(new Detection(box, label, options.ClassName(label), scores[i], mask));
            if (rescore)
            {
                confidences.Add(MaskScoring.Confidence(masks.Slice(i * plane, plane), options.MaskThreshold));
            }
        }

        return Finish(width, height, rescore ? MaskScoring.Rescore(list, confidences) : list, options);
    }

    /// <summary>
    /// The last step shared by every path: applies <see cref="PostprocessingOptions.SuppressContained"/> to
    /// detections already holding their full-size masks, and wraps them with the image size.
    /// </summary>
    /// <param name="width">The input image's width.</param>
    /// <param name="height">The input image's height.</param>
    /// <param name="detections">Detections in decreasing score order.</param>
    /// <param name="options">The options (null: the defaults, no suppression).</param>
    public static ImageDetections Finish(int width, int height, IReadOnlyList<Detection> detections, PostprocessingOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(detections);
        var containment = options?.SuppressContained;
        return new ImageDetections(width, height, containment is { } c ? DuplicateSuppression.Apply(detections, c) : detections);
    }
}
