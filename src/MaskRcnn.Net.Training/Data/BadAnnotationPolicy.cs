using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace MaskRcnn.Net.Training;

/// <summary>
/// What the COCO, VIA and LabelMe readers do with an annotation that is well-formed JSON but unusable: a polygon of
/// fewer than 3 points, a box that is empty once clamped to the image, an unknown category / class / label, an
/// unknown image id (COCO), a shape type the reader cannot turn into a mask, or an image file that does not exist.
/// </summary>
/// <remarks>
/// Structural errors — malformed JSON, a value of the wrong type, a missing required field, a coordinate that is not
/// finite or lies beyond the accepted range — are always a <see cref="DatasetFormatException"/>, whatever the
/// policy. Shapes that have no area by nature (VIA <c>point</c>, LabelMe <c>point</c>, <c>line</c> and
/// <c>linestrip</c>) are not bad: they are skipped with a warning under either policy and counted in
/// <see cref="DatasetLoadReport.IgnoredShapes"/>.
/// </remarks>
public enum BadAnnotationPolicy
{
    /// <summary>
    /// Log a warning naming the file, the JSON path and (COCO) the annotation id, drop the annotation — or, for a
    /// missing image file, the image with all its annotations — and go on. A summary warning and
    /// <see cref="DetectionDataset.LoadReport"/> give the counts. When every image file of a non-empty file list is
    /// missing the load still fails, as under <see cref="Fail"/>: the images directory is most likely wrong.
    /// </summary>
    Skip,

    /// <summary>Throw a <see cref="DatasetFormatException"/> naming the file, the JSON path and (COCO) the annotation id.</summary>
    Fail,
}

/// <summary>What a reader left out of the dataset it returned (see <see cref="BadAnnotationPolicy.Skip"/>).</summary>
public sealed record DatasetLoadReport
{
    /// <summary>Nothing was skipped.</summary>
    public static DatasetLoadReport None { get; } = new();

    /// <summary>
    /// Bad annotations dropped under <see cref="BadAnnotationPolicy.Skip"/>, one per warning. Annotations that went
    /// with a skipped image are not counted here.
    /// </summary>
    public int SkippedAnnotations { get; init; }

    /// <summary>Images dropped, with their annotations, because their image file does not exist.</summary>
    public int SkippedImages { get; init; }

    /// <summary>Shapes without an area (points, lines) skipped with a warning under either policy.</summary>
    public int IgnoredShapes { get; init; }

    /// <summary>True when nothing was skipped or ignored.</summary>
    public bool IsComplete => SkippedAnnotations == 0 && SkippedImages == 0 && IgnoredShapes == 0;
}

/// <summary>
/// Applies a <see cref="BadAnnotationPolicy"/> for one load: every bad annotation, missing image and ignored shape
/// goes through here, so the three readers warn, throw and count alike.
/// </summary>
internal sealed class BadAnnotationReporter
{
    private const int ListedFiles = 10;

    private readonly ILogger logger;
    private int skippedAnnotations;
    private int skippedImages;
    private int ignoredShapes;

    public BadAnnotationReporter(BadAnnotationPolicy policy, ILogger? logger, string optionsName)
    {
        if (!Enum.IsDefined(policy))
        {
            throw new ArgumentOutOfRangeException(optionsName, policy, $"{optionsName}.BadAnnotations must be Skip or Fail");
        }

        Policy = policy;
        this.logger = logger ?? NullLogger.Instance;
    }

    public BadAnnotationPolicy Policy { get; }

    /// <summary>
    /// A bad annotation at <paramref name="at"/>: under <see cref="BadAnnotationPolicy.Fail"/> throws a
    /// <see cref="DatasetFormatException"/> with <paramref name="reason"/>; under Skip logs a warning and counts it.
    /// The caller drops the annotation when this returns.
    /// </summary>
    public void BadAnnotation(JsonCursor at, string reason)
    {
        if (Policy == BadAnnotationPolicy.Fail)
        {
            throw at.Error(reason);
        }

        skippedAnnotations++;
        logger.LogWarning("{File}: {Path}: {Reason}; skipped the annotation", at.File, at.Path, reason);
    }

    /// <summary>A shape with no area (a point or a line): skipped with a warning under either policy.</summary>
    public void IgnoredShape(JsonCursor at, string reason)
    {
        ignoredShapes++;
        logger.LogWarning("{File}: {Path}: {Reason}", at.File, at.Path, reason);
    }

    /// <summary>
    /// Image files named at the given nodes that do not exist, out of <paramref name="images"/> images. Throws
    /// (naming the first node and listing the files) under Fail, or when every image is missing; otherwise logs one
    /// warning listing the files and counts them. The caller leaves the images (and their annotations) out.
    /// </summary>
    public void MissingImages(IReadOnlyList<(string Path, JsonCursor Node)> missing, int images)
    {
        if (missing.Count == 0)
        {
            return;
        }

        if (Policy == BadAnnotationPolicy.Fail || missing.Count >= images)
        {
            var shown = string.Join(", ", missing.Take(5).Select(m => m.Path));
            throw missing[0].Node.Error($"{missing.Count} image file(s) missing: {shown}{(missing.Count > 5 ? ", …" : "")}");
        }

        skippedImages += missing.Count;
        var listed = string.Join(", ", missing.Take(ListedFiles).Select(m => $"{m.Path} ({m.Node.Path})"));
        logger.LogWarning("{File}: {Count} of {Images} image file(s) missing, skipped with their annotations: {Files}",
            missing[0].Node.File, missing.Count, images, missing.Count > ListedFiles ? listed + ", …" : listed);
    }

    /// <summary>Like the overload above, for images whose problem is already a ready exception (LabelMe).</summary>
    public void MissingImages(IReadOnlyList<DatasetFormatException> missing, int images)
    {
        if (missing.Count == 0)
        {
            return;
        }

        if (Policy == BadAnnotationPolicy.Fail || missing.Count >= images)
        {
            throw missing[0];
        }

        skippedImages += missing.Count;
        var listed = string.Join("; ", missing.Take(ListedFiles).Select(m => m.Message));
        logger.LogWarning("{Count} of {Images} LabelMe file(s) have no image, skipped with their annotations: {Files}",
            missing.Count, images, missing.Count > ListedFiles ? listed + "; …" : listed);
    }

    /// <summary>The counts so far; logs a summary warning when anything was skipped.</summary>
    public DatasetLoadReport Finish(string source)
    {
        var report = new DatasetLoadReport
        {
            SkippedAnnotations = skippedAnnotations,
            SkippedImages = skippedImages,
            IgnoredShapes = ignoredShapes,
        };
        if (report.SkippedAnnotations > 0 || report.SkippedImages > 0)
        {
            logger.LogWarning("{Source}: skipped {Annotations} bad annotation(s) and {Images} image(s) without a file (BadAnnotations = Skip)",
                source, report.SkippedAnnotations, report.SkippedImages);
        }

        return report.IsComplete ? DatasetLoadReport.None : report;
    }
}
