namespace MaskRcnn.Net.Core.Detection;

/// <summary>
/// Samples a fixed-size training batch of positives and negatives per image (torchvision's
/// <c>BalancedPositiveNegativeSampler</c>). Uses libtorch's global generator, so <see cref="Torch.ManualSeed"/>
/// makes it reproducible — and picks the same elements as torchvision after the same seed.
/// </summary>
public sealed class BalancedPositiveNegativeSampler
{
    /// <summary>Creates the sampler.</summary>
    public BalancedPositiveNegativeSampler(int batchSizePerImage, double positiveFraction)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSizePerImage, 1);
        if (positiveFraction is < 0 or > 1 || double.IsNaN(positiveFraction))
        {
            throw new ArgumentOutOfRangeException(nameof(positiveFraction), positiveFraction, "must be in [0, 1]");
        }

        (BatchSizePerImage, PositiveFraction) = (batchSizePerImage, positiveFraction);
    }

    /// <summary>Elements sampled per image (at most).</summary>
    public int BatchSizePerImage { get; }

    /// <summary>Target fraction of positives.</summary>
    public double PositiveFraction { get; }

    /// <summary>
    /// For each image's labels [N] (≥ 1 positive, 0 negative, −1 ignored) returns uint8 masks [N] of the sampled
    /// positives and negatives.
    /// </summary>
    public IReadOnlyList<(Tensor Positive, Tensor Negative)> Sample(IReadOnlyList<Tensor> labelsPerImage)
    {
        ArgumentNullException.ThrowIfNull(labelsPerImage);
        var result = new List<(Tensor, Tensor)>();
        foreach (var labels in labelsPerImage)
        {
            if (labels.Dim != 1)
            {
                throw new ArgumentException($"labels must be 1-D, got [{string.Join(", ", labels.Shape)}]", nameof(labelsPerImage));
            }

            using var scope = Torch.NewDisposeScope();
            var positive = labels.Ge(1L).Nonzero().Select(1, 0);
            var negative = labels.Eq(0L).Nonzero().Select(1, 0);
            var numPos = Math.Min(positive.NumEl, (long)(BatchSizePerImage * PositiveFraction));
            var numNeg = Math.Min(negative.NumEl, BatchSizePerImage - numPos);
            var perm1 = Tensor.RandPerm(positive.NumEl, labels.Device).Slice(0, 0, numPos);
            var perm2 = Tensor.RandPerm(negative.NumEl, labels.Device).Slice(0, 0, numNeg);
            var posMask = Tensor.Zeros(labels.Shape, DType.UInt8, labels.Device);
            var negMask = Tensor.Zeros(labels.Shape, DType.UInt8, labels.Device);
            posMask.IndexPutInPlace([positive.Index(perm1)], Tensor.Scalar(1L, DType.UInt8, labels.Device));
            negMask.IndexPutInPlace([negative.Index(perm2)], Tensor.Scalar(1L, DType.UInt8, labels.Device));
            result.Add((posMask.MoveToOuterDisposeScope(), negMask.MoveToOuterDisposeScope()));
        }

        return result;
    }
}
