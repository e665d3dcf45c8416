using MaskRcnn.Net.Core;

namespace MaskRcnn.Net.Training;

/// <summary>
/// An in-memory <see cref="IDetectionDataset"/>: a list of <see cref="DatasetSample"/>s whose images are decoded on
/// demand. The COCO, VIA and LabelMe readers return this type; it can also be built directly.
/// </summary>
public sealed class DetectionDataset : IDetectionDataset
{
    /// <summary>The name of label 0.</summary>
    public const string BackgroundName = "__background__";

    private readonly DatasetSample[] samples;
    private readonly string[] classNames;

    /// <summary>Creates a dataset from class names and samples.</summary>
    /// <param name="classNames">Class names by label; index 0 must be <see cref="BackgroundName"/>.</param>
    /// <param name="samples">The images and their annotations.</param>
    /// <exception cref="ArgumentException">Index 0 is not the background, or an annotation's label is outside 1..K.</exception>
    public DetectionDataset(IEnumerable<string> classNames, IEnumerable<DatasetSample> samples)
    {
        ArgumentNullException.ThrowIfNull(classNames);
        ArgumentNullException.ThrowIfNull(samples);
        this.classNames = classNames.ToArray();
        this.samples = samples.ToArray();
        if (this.classNames.Length == 0 || this.classNames[0] != BackgroundName)
        {
            throw new ArgumentException($"class name 0 must be \"{BackgroundName}\"", nameof(classNames));
        }

        foreach (var s in this.samples)
        {
            ArgumentNullException.ThrowIfNull(s, nameof(samples));
            foreach (var a in s.Annotations)
            {
                if (a.Label >= this.classNames.Length)
                {
                    throw new ArgumentException(
                        $"image {s.ImageId} ({s.FileName}) has label {a.Label} but there are only {this.classNames.Length - 1} classes",
                        nameof(samples));
                }
            }
        }
    }

    /// <inheritdoc />
    public int Count => samples.Length;

    /// <inheritdoc />
    public IReadOnlyList<string> ClassNames => classNames;

    /// <summary>All samples in order.</summary>
    public IReadOnlyList<DatasetSample> Samples => samples;

    /// <summary>
    /// What the reader that built this dataset left out (bad annotations and images skipped under
    /// <see cref="BadAnnotationPolicy.Skip"/>, shapes without an area); <see cref="DatasetLoadReport.None"/> for a
    /// dataset built directly.
    /// </summary>
    public DatasetLoadReport LoadReport { get; init; } = DatasetLoadReport.None;

    /// <summary>
    /// The COCO <c>category_id</c> of each label (index 0, the background, is 0) when the dataset was read from a COCO
    /// file, so results can be written or read with the file's own ids; null for other sources, whose labels are
    /// their ids.
    /// </summary>
    public IReadOnlyList<long>? CategoryIds { get; init; }

    /// <summary>Total number of annotations over all images.</summary>
    public int AnnotationCount => samples.Sum(s => s.Annotations.Count);

    /// <inheritdoc />
    public DatasetSample GetSample(int index) => samples[CheckIndex(index)];

    /// <inheritdoc />
    public Tensor LoadImage(int index) => samples[CheckIndex(index)].LoadImage();

    private int CheckIndex(int index)
    {
        if ((uint)index >= (uint)samples.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(index), index, $"the dataset has {samples.Length} images");
        }

        return index;
    }
}
