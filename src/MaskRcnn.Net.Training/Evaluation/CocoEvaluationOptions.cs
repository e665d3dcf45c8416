using System.Collections.ObjectModel;

namespace MaskRcnn.Net.Training.Evaluation;

/// <summary>A named range of object areas, both ends inclusive (one row of pycocotools' <c>areaRng</c>).</summary>
/// <param name="Label">Name used by the summary (<c>all</c>, <c>small</c>, <c>medium</c>, <c>large</c>).</param>
/// <param name="Min">Smallest area in the range.</param>
/// <param name="Max">Largest area in the range.</param>
public sealed record CocoAreaRange(string Label, double Min, double Max)
{
    /// <summary>True when <paramref name="area"/> lies in [<see cref="Min"/>, <see cref="Max"/>].</summary>
    public bool Contains(double area) => !(area < Min || area > Max);
}

/// <summary>
/// The evaluation parameters (pycocotools' <c>Params</c> for <c>bbox</c> / <c>segm</c>). The defaults are COCO's.
/// </summary>
public sealed record CocoEvaluationOptions
{
    private static readonly ReadOnlyCollection<double> DefaultIouThresholds = Array.AsReadOnly(Linspace(0.5, 0.95, 10));
    private static readonly ReadOnlyCollection<double> DefaultRecallThresholds = Array.AsReadOnly(Linspace(0.0, 1.0, 101));
    private static readonly ReadOnlyCollection<int> DefaultMaxDetections = Array.AsReadOnly(new[] { 1, 10, 100 });

    private static readonly ReadOnlyCollection<CocoAreaRange> DefaultAreaRanges = Array.AsReadOnly(new[]
    {
        new CocoAreaRange("all", 0, 1e5 * 1e5),
        new CocoAreaRange("small", 0, 32 * 32),
        new CocoAreaRange("medium", 32 * 32, 96 * 96),
        new CocoAreaRange("large", 96 * 96, 1e5 * 1e5),
    });

    /// <summary>COCO's defaults.</summary>
    public static CocoEvaluationOptions Default { get; } = new();

    /// <summary>
    /// IoU thresholds (<c>iouThrs</c>); default 0.50:0.05:0.95 with NumPy's <c>linspace(.5, .95, 10)</c> values
    /// (so the ninth is 0.8999999999999999). A detection matches at threshold t when its IoU is at least
    /// min(t, 1 − 1e-10).
    /// </summary>
    public IReadOnlyList<double> IouThresholds { get; init; } = DefaultIouThresholds;

    /// <summary>Recall points the precision is sampled at (<c>recThrs</c>); default <c>linspace(0, 1, 101)</c>.</summary>
    public IReadOnlyList<double> RecallThresholds { get; init; } = DefaultRecallThresholds;

    /// <summary>
    /// Limits on the detections per image and category (<c>maxDets</c>), used in increasing order; default 1, 10, 100.
    /// Only the top-scored <c>max</c> detections of an image and category are evaluated at all. The summary reads
    /// the first three (a missing one gives −1) and, like pycocotools, its first number (AP) reads the limit 100,
    /// which is −1 when 100 is not among the limits.
    /// </summary>
    public IReadOnlyList<int> MaxDetections { get; init; } = DefaultMaxDetections;

    /// <summary>Area ranges (<c>areaRng</c> / <c>areaRngLbl</c>); default all [0, 1e10], small [0, 32²],
    /// medium [32², 96²], large [96², 1e10].</summary>
    public IReadOnlyList<CocoAreaRange> AreaRanges { get; init; } = DefaultAreaRanges;

    /// <summary>
    /// When true (default, <c>useCats=1</c>) objects only match objects of their category and AP is averaged over
    /// categories; when false categories are ignored (as in proposal scoring).
    /// </summary>
    public bool UseCategories { get; init; } = true;

    /// <summary>
    /// Categories to evaluate (<c>catIds</c>); null for every category of the ground truth. Objects of other
    /// categories are left out. pycocotools takes the dataset's category list, which can also hold categories
    /// without annotations; such categories get AP −1 and do not change the means.
    /// </summary>
    public IReadOnlyList<int>? CategoryIds { get; init; }

    /// <summary>
    /// NumPy's <c>linspace(start, stop, count)</c> (endpoint included) bit for bit: <c>i · step + start</c> with
    /// <c>step = (stop − start) / (count − 1)</c>, and the last value set to <paramref name="stop"/>.
    /// </summary>
    public static double[] Linspace(double start, double stop, int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        var result = new double[count];
        if (count == 0)
        {
            return result;
        }

        var div = count - 1;
        var delta = stop - start;
        var step = div > 0 ? delta / div : double.NaN;
        for (var i = 0; i < count; i++)
        {
            result[i] = div == 0 ? start : step == 0 ? i / (double)div * delta + start : i * step + start;
        }

        if (div > 0)
        {
            result[div] = stop;
        }

        return result;
    }

    internal void Validate()
    {
        Check(IouThresholds, nameof(IouThresholds));
        Check(RecallThresholds, nameof(RecallThresholds));
        if (MaxDetections is null || MaxDetections.Count == 0 || MaxDetections.Any(m => m <= 0))
        {
            throw new ArgumentException("MaxDetections must hold at least one positive limit", nameof(MaxDetections));
        }

        if (AreaRanges is null || AreaRanges.Count == 0 || AreaRanges.Any(r => r is null || r.Label is null))
        {
            throw new ArgumentException("AreaRanges must hold at least one labelled range", nameof(AreaRanges));
        }

        static void Check(IReadOnlyList<double> values, string name)
        {
            if (values is null || values.Count == 0 || values.Any(v => !double.IsFinite(v)))
            {
                throw new ArgumentException($"{name} must hold at least one finite value", name);
            }
        }
    }
}
