using System.Text.Json.Serialization;

namespace MaskRcnn.Net.Backbones;

/// <summary>Configuration of a <see cref="ResNet"/> body.</summary>
/// <param name="Depth">18 or 34 (basic blocks), 50, 101 or 152 (bottleneck blocks).</param>
/// <param name="Norm">The normalisation layer after each convolution (torchvision's detection default is frozen BN).</param>
public sealed record ResNetOptions(int Depth = 50, NormKind Norm = NormKind.FrozenBatchNorm)
{
    /// <summary>
    /// Epsilon of every norm layer (default 1e-5). torchvision's v1 COCO Mask R-CNN checkpoint
    /// (<c>maskrcnn_resnet50_fpn_coco-bf2d0c1e</c>) needs 0 with <see cref="NormKind.FrozenBatchNorm"/>.
    /// </summary>
    public double NormEps { get; init; } = 1e-5;

    /// <summary>Number of groups when <see cref="Norm"/> is <see cref="NormKind.GroupNorm"/> (default 32).</summary>
    public int GroupNormGroups { get; init; } = 32;

    /// <inheritdoc/>
    public bool Equals(ResNetOptions? other) =>
        other is not null && Depth == other.Depth && Norm == other.Norm && NormEps.Equals(other.NormEps) &&
        GroupNormGroups == other.GroupNormGroups &&
        (StageBlocks is null ? other.StageBlocks is null : other.StageBlocks is not null && StageBlocks.SequenceEqual(other.StageBlocks));

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Depth, Norm, NormEps, GroupNormGroups, StageBlocks?.Count);

    /// <summary>The depths <see cref="ResNet"/> supports.</summary>
    public static IReadOnlyList<int> SupportedDepths { get; } = [18, 34, 50, 101, 152];

    /// <summary>
    /// Residual blocks per stage (layer1..layer4) when they differ from <see cref="Depth"/>'s standard layout, or null
    /// (default). The ImageNet ResNet-18 that ML.NET ships (CNTK's) has [2, 2, 2, 3]; the block type still follows
    /// <see cref="Depth"/> (basic blocks below 50).
    /// </summary>
    public IReadOnlyList<int>? StageBlocks { get; init; }

    /// <summary>Residual blocks per stage (layer1..layer4): <see cref="StageBlocks"/>, or the standard layout of <see cref="Depth"/>.</summary>
    [JsonIgnore]
    public IReadOnlyList<int> BlocksPerStage => StageBlocks ?? StandardBlocks(Depth);

    /// <summary>The standard (torchvision) blocks per stage of a ResNet of depth <paramref name="depth"/>.</summary>
    public static IReadOnlyList<int> StandardBlocks(int depth) => depth switch
    {
        18 => [2, 2, 2, 2],
        34 => [3, 4, 6, 3],
        50 => [3, 4, 6, 3],
        101 => [3, 4, 23, 3],
        152 => [3, 8, 36, 3],
        _ => throw new ArgumentOutOfRangeException(nameof(Depth), depth,
            $"ResNet depth must be one of {string.Join(", ", SupportedDepths)}"),
    };

    /// <summary>True when the stages use <see cref="Bottleneck"/> blocks (depth 50 and deeper).</summary>
    [JsonIgnore]
    public bool UsesBottleneck => Depth >= 50;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid setting.</summary>
    public void Validate()
    {
        _ = StandardBlocks(Depth);
        if (StageBlocks is { } blocks && (blocks.Count != 4 || blocks.Any(b => b < 1)))
        {
            throw new ArgumentOutOfRangeException(nameof(StageBlocks), $"[{string.Join(", ", blocks)}]",
                "StageBlocks must give four positive block counts (layer1..layer4)");
        }

        if (!Enum.IsDefined(Norm))
        {
            throw new ArgumentOutOfRangeException(nameof(Norm), Norm, "unknown norm kind");
        }

        if (!(NormEps >= 0) || double.IsInfinity(NormEps))
        {
            throw new ArgumentOutOfRangeException(nameof(NormEps), NormEps, "norm epsilon must be finite and non-negative");
        }

        if (Norm == NormKind.GroupNorm && GroupNormGroups < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(GroupNormGroups), GroupNormGroups, "group count must be positive");
        }

        // Every normalised layer of the body has a multiple of 64 channels (the stem has exactly 64).
        if (Norm == NormKind.GroupNorm && 64 % GroupNormGroups != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(GroupNormGroups), GroupNormGroups,
                "group count must divide 64, the channels of the body's first norm layer (1, 2, 4, 8, 16, 32 or 64)");
        }
    }
}
