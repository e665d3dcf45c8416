namespace MaskRcnn.Net.Core.Detection;

/// <summary>
/// Assigns each prediction (anchor or proposal) to the ground-truth box it overlaps most, with torchvision's
/// <c>Matcher</c> semantics: quality below <see cref="LowThreshold"/> → <see cref="BelowLowThreshold"/> (−1),
/// between the thresholds → <see cref="BetweenThresholds"/> (−2), and optionally each ground truth keeps the
/// predictions that overlap it best even below the thresholds.
/// </summary>
public sealed class Matcher
{
    /// <summary>Label of predictions whose best quality is below the low threshold (background).</summary>
    public const long BelowLowThreshold = -1;

    /// <summary>Label of predictions between the thresholds (ignored in training).</summary>
    public const long BetweenThresholds = -2;

    /// <summary>Creates the matcher; requires <paramref name="lowThreshold"/> ≤ <paramref name="highThreshold"/>.</summary>
    public Matcher(double highThreshold, double lowThreshold, bool allowLowQualityMatches = false)
    {
        if (!(lowThreshold <= highThreshold))
        {
            throw new ArgumentException($"lowThreshold {lowThreshold} must not exceed highThreshold {highThreshold}", nameof(lowThreshold));
        }

        (HighThreshold, LowThreshold, AllowLowQualityMatches) = (highThreshold, lowThreshold, allowLowQualityMatches);
    }

    /// <summary>Quality at or above which a match is kept.</summary>
    public double HighThreshold { get; }

    /// <summary>Quality below which a prediction is background.</summary>
    public double LowThreshold { get; }

    /// <summary>Whether every ground truth keeps its best-overlapping predictions.</summary>
    public bool AllowLowQualityMatches { get; }

    /// <summary>
    /// For a quality matrix [M ground truths, N predictions] returns [N] int64: the matched ground-truth index, or
    /// −1 / −2. With no ground truth (M = 0) every prediction is background (−1), which is what torchvision's RPN
    /// and RoI heads do for images without objects.
    /// </summary>
    public Tensor Match(Tensor qualityMatrix)
    {
        ArgumentNullException.ThrowIfNull(qualityMatrix);
        var s = qualityMatrix.Shape;
        if (s.Length != 2)
        {
            throw new ArgumentException($"qualityMatrix must be [M, N], got [{string.Join(", ", s)}]", nameof(qualityMatrix));
        }

        if (s[0] == 0)
        {
            return Tensor.Full([s[1]], BelowLowThreshold, DType.Int64, qualityMatrix.Device);
        }

        if (s[1] == 0)
        {
            return Tensor.Empty([0], DType.Int64, qualityMatrix.Device);
        }

        using var scope = Torch.NewDisposeScope();
        var (values, matches) = qualityMatrix.Max(0);
        var all = AllowLowQualityMatches ? matches.Clone() : null;
        var below = values.Lt(LowThreshold);
        var between = values.Ge(LowThreshold) & values.Lt(HighThreshold);
        matches.MaskedFillInPlace(below, BelowLowThreshold);
        matches.MaskedFillInPlace(between, BetweenThresholds);
        if (all is not null)
        {
            // Predictions tied for the highest quality of some ground truth get their original match back.
            var best = qualityMatrix.Amax([1]);
            var pairs = qualityMatrix.Eq(best.Unsqueeze(1)).Nonzero();
            var predIdx = pairs.Select(1, 1);
            matches.IndexPutInPlace([predIdx], all.Index(predIdx));
        }

        return matches.MoveToOuterDisposeScope();
    }
}
