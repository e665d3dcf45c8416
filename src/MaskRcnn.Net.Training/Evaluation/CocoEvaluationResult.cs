using System.Globalization;
using System.Text;

namespace MaskRcnn.Net.Training.Evaluation;

/// <summary>The AP and AR of one category (over all areas, at the largest detection limit).</summary>
/// <param name="CategoryId">Category.</param>
/// <param name="AveragePrecision">Mean precision over the IoU and recall thresholds; −1 when the category has no
/// ground truth that counts.</param>
/// <param name="AverageRecall">Mean recall over the IoU thresholds; −1 when undefined.</param>
public sealed record CocoCategoryResult(int CategoryId, double AveragePrecision, double AverageRecall);

/// <summary>
/// The outcome of <see cref="CocoEvaluator.Evaluate"/>: pycocotools' accumulated <c>precision</c> and <c>recall</c>
/// arrays, the 12 summary numbers of <c>COCOeval.summarize()</c> and the per-category AP.
/// </summary>
public sealed class CocoEvaluationResult
{
    /// <summary>Names of <see cref="Stats"/>, in order.</summary>
    public static IReadOnlyList<string> StatNames { get; } = Array.AsReadOnly(new[]
    {
        "AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl",
    });

    private readonly double[] precision;
    private readonly double[] recall;
    private readonly int t, r, k, a, m;

    internal CocoEvaluationResult(
        CocoIouType iouType,
        CocoEvaluationOptions options,
        IReadOnlyList<long> imageIds,
        IReadOnlyList<int> categoryIds,
        int categoryCount,
        double[] precision,
        double[] recall)
    {
        IouType = iouType;
        Options = options;
        ImageIds = imageIds;
        CategoryIds = categoryIds;
        this.precision = precision;
        this.recall = recall;
        t = options.IouThresholds.Count;
        r = options.RecallThresholds.Count;
        k = categoryCount;
        a = options.AreaRanges.Count;
        m = options.MaxDetections.Count;

        var maxDets = options.MaxDetections;
        double Max(int index) => index < maxDets.Count ? maxDets[index] : double.NaN;
        var rows = new (bool Ap, double? Iou, string Area, double MaxDets)[]
        {
            (true, null, "all", 100),
            (true, 0.5, "all", Max(2)),
            (true, 0.75, "all", Max(2)),
            (true, null, "small", Max(2)),
            (true, null, "medium", Max(2)),
            (true, null, "large", Max(2)),
            (false, null, "all", Max(0)),
            (false, null, "all", Max(1)),
            (false, null, "all", Max(2)),
            (false, null, "small", Max(2)),
            (false, null, "medium", Max(2)),
            (false, null, "large", Max(2)),
        };

        var stats = new double[rows.Length];
        var text = new StringBuilder();
        for (var i = 0; i < rows.Length; i++)
        {
            var row = rows[i];
            stats[i] = Summarize(row.Ap, row.Iou, row.Area, row.MaxDets);
            text.Append(FormatLine(row.Ap, row.Iou, row.Area, row.MaxDets, stats[i])).Append('\n');
        }

        Stats = Array.AsReadOnly(stats);
        Summary = text.ToString();

        var categories = new List<CocoCategoryResult>();
        if (options.UseCategories)
        {
            for (var c = 0; c < categoryIds.Count; c++)
            {
                categories.Add(new CocoCategoryResult(categoryIds[c], CategoryMean(true, c), CategoryMean(false, c)));
            }
        }

        Categories = categories.AsReadOnly();
    }

    /// <summary>What the overlaps were measured on.</summary>
    public CocoIouType IouType { get; }

    /// <summary>The parameters used (with <see cref="CocoEvaluationOptions.MaxDetections"/> in increasing order).</summary>
    public CocoEvaluationOptions Options { get; }

    /// <summary>The evaluated images, in increasing id order.</summary>
    public IReadOnlyList<long> ImageIds { get; }

    /// <summary>
    /// The evaluated categories, in increasing order. With categories in use they index the category axis of
    /// <see cref="GetPrecision"/>; otherwise that axis has the single index 0 for all of them together.
    /// </summary>
    public IReadOnlyList<int> CategoryIds { get; }

    /// <summary>
    /// The 12 numbers of <c>COCOeval.summarize()</c> (<c>stats</c>), named by <see cref="StatNames"/>; −1 where
    /// undefined (no ground truth in the range).
    /// </summary>
    public IReadOnlyList<double> Stats { get; }

    /// <summary>AP at IoU 0.50:0.95, all areas, 100 detections.</summary>
    public double AP => Stats[0];

    /// <summary>AP at IoU 0.50.</summary>
    public double AP50 => Stats[1];

    /// <summary>AP at IoU 0.75.</summary>
    public double AP75 => Stats[2];

    /// <summary>AP of small objects (area ≤ 32²).</summary>
    public double APSmall => Stats[3];

    /// <summary>AP of medium objects (32² ≤ area ≤ 96²).</summary>
    public double APMedium => Stats[4];

    /// <summary>AP of large objects (area ≥ 96²).</summary>
    public double APLarge => Stats[5];

    /// <summary>AR with 1 detection per image and category.</summary>
    public double AR1 => Stats[6];

    /// <summary>AR with 10 detections per image and category.</summary>
    public double AR10 => Stats[7];

    /// <summary>AR with 100 detections per image and category.</summary>
    public double AR100 => Stats[8];

    /// <summary>AR of small objects.</summary>
    public double ARSmall => Stats[9];

    /// <summary>AR of medium objects.</summary>
    public double ARMedium => Stats[10];

    /// <summary>AR of large objects.</summary>
    public double ARLarge => Stats[11];

    /// <summary>
    /// AP and AR per category (like detectron2's per-category table: area range 0, largest detection limit); empty
    /// when categories are not used.
    /// </summary>
    public IReadOnlyList<CocoCategoryResult> Categories { get; }

    /// <summary>The 12 lines <c>COCOeval.summarize()</c> prints, each ending with a line feed.</summary>
    public string Summary { get; }

    /// <summary>
    /// pycocotools' <c>precision[t, r, k, a, m]</c>: the interpolated precision at recall threshold
    /// <paramref name="recallIndex"/>; 0 past the highest recall reached and −1 when the category has no ground
    /// truth that counts in the area range.
    /// </summary>
    public double GetPrecision(int iouIndex, int recallIndex, int categoryIndex, int areaIndex, int maxDetectionsIndex)
    {
        CheckIndex(iouIndex, t, nameof(iouIndex));
        CheckIndex(recallIndex, r, nameof(recallIndex));
        CheckIndex(categoryIndex, k, nameof(categoryIndex));
        CheckIndex(areaIndex, a, nameof(areaIndex));
        CheckIndex(maxDetectionsIndex, m, nameof(maxDetectionsIndex));
        return precision[PrecisionIndex(iouIndex, recallIndex, categoryIndex, areaIndex, maxDetectionsIndex)];
    }

    /// <summary>pycocotools' <c>recall[t, k, a, m]</c>: the recall reached; −1 when undefined.</summary>
    public double GetRecall(int iouIndex, int categoryIndex, int areaIndex, int maxDetectionsIndex)
    {
        CheckIndex(iouIndex, t, nameof(iouIndex));
        CheckIndex(categoryIndex, k, nameof(categoryIndex));
        CheckIndex(areaIndex, a, nameof(areaIndex));
        CheckIndex(maxDetectionsIndex, m, nameof(maxDetectionsIndex));
        return recall[RecallIndex(iouIndex, categoryIndex, areaIndex, maxDetectionsIndex)];
    }

    /// <summary>The summary table (<see cref="Summary"/>).</summary>
    public override string ToString() => Summary;

    // ---- internals -----------------------------------------------------------------------------------------

    internal int PrecisionIndex(int ti, int ri, int ki, int ai, int mi) => (((ti * r + ri) * k + ki) * a + ai) * m + mi;

    internal int RecallIndex(int ti, int ki, int ai, int mi) => ((ti * k + ki) * a + ai) * m + mi;

    /// <summary><c>_summarize</c>: mean of the defined entries of the selected slice, −1 when there are none.</summary>
    private double Summarize(bool ap, double? iouThreshold, string areaLabel, double maxDets)
    {
        var thresholds = Enumerable.Range(0, t)
            .Where(i => iouThreshold is null || Options.IouThresholds[i] == iouThreshold.Value).ToArray();
        var areas = Enumerable.Range(0, a).Where(i => Options.AreaRanges[i].Label == areaLabel).ToArray();
        var limits = Enumerable.Range(0, m).Where(i => Options.MaxDetections[i] == maxDets).ToArray();
        var values = new List<double>();
        foreach (var ti in thresholds)
        {
            for (var ri = 0; ri < (ap ? r : 1); ri++)
            {
                for (var ki = 0; ki < k; ki++)
                {
                    foreach (var ai in areas)
                    {
                        foreach (var mi in limits)
                        {
                            var v = ap ? precision[PrecisionIndex(ti, ri, ki, ai, mi)] : recall[RecallIndex(ti, ki, ai, mi)];
                            if (v > -1)
                            {
                                values.Add(v);
                            }
                        }
                    }
                }
            }
        }

        return NumPy.MeanOrMinusOne(values);
    }

    private double CategoryMean(bool ap, int categoryIndex)
    {
        var values = new List<double>();
        for (var ti = 0; ti < t; ti++)
        {
            if (ap)
            {
                for (var ri = 0; ri < r; ri++)
                {
                    var v = precision[PrecisionIndex(ti, ri, categoryIndex, 0, m - 1)];
                    if (v > -1)
                    {
                        values.Add(v);
                    }
                }
            }
            else
            {
                var v = recall[RecallIndex(ti, categoryIndex, 0, m - 1)];
                if (v > -1)
                {
                    values.Add(v);
                }
            }
        }

        return NumPy.MeanOrMinusOne(values);
    }

    private string FormatLine(bool ap, double? iouThreshold, string areaLabel, double maxDets, double value)
    {
        var inv = CultureInfo.InvariantCulture;
        var title = ap ? "Average Precision" : "Average Recall";
        var kind = ap ? "(AP)" : "(AR)";
        var iou = iouThreshold is { } v
            ? NumPy.FormatFixed(v, 2)
            : $"{NumPy.FormatFixed(Options.IouThresholds[0], 2)}:{NumPy.FormatFixed(Options.IouThresholds[^1], 2)}";
        var limit = double.IsNaN(maxDets) ? "?" : ((int)maxDets).ToString(inv);
        return $" {title,-18} {kind} @[ IoU={iou,-9} | area={areaLabel,6} | maxDets={limit,3} ] = {NumPy.FormatFixed(value, 3)}";
    }

    private static void CheckIndex(int index, int count, string name)
    {
        if ((uint)index >= (uint)count)
        {
            throw new ArgumentOutOfRangeException(name, index, $"must be in [0, {count})");
        }
    }
}
