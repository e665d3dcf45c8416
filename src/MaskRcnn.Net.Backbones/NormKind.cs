using MaskRcnn.Net.Core;
using MaskRcnn.Net.Core.NN;

namespace MaskRcnn.Net.Backbones;

/// <summary>The normalisation layer a backbone uses after each convolution.</summary>
public enum NormKind
{
    /// <summary>Trainable <see cref="BatchNorm2d"/> (batch statistics in training mode, running ones in eval).</summary>
    BatchNorm = 0,

    /// <summary><see cref="FrozenBatchNorm2d"/>: fixed statistics and affine parameters (torchvision's detection default).</summary>
    FrozenBatchNorm = 1,

    /// <summary><see cref="Core.NN.GroupNorm"/> with a fixed number of groups (keys <c>weight</c>, <c>bias</c>).</summary>
    GroupNorm = 2,
}

/// <summary>Creates and applies the normalisation layers of <see cref="NormKind"/>.</summary>
internal static class NormLayers
{
    /// <summary>A new norm layer over <paramref name="channels"/> channels.</summary>
    public static Module Create(NormKind kind, int channels, double eps, int groups) => kind switch
    {
        NormKind.BatchNorm => new BatchNorm2d(channels, eps),
        NormKind.FrozenBatchNorm => new FrozenBatchNorm2d(channels, eps),
        NormKind.GroupNorm => new GroupNorm(groups, channels, eps),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown norm kind"),
    };

    /// <summary>Applies a layer made by <see cref="Create"/> to [N, C, H, W].</summary>
    public static Tensor Forward(Module norm, Tensor input) => norm switch
    {
        FrozenBatchNorm2d f => f.Forward(input),
        BatchNorm2d b => b.Forward(input),
        GroupNorm g => g.Forward(input),
        _ => throw new InvalidOperationException($"{norm.GetType().Name} is not a supported norm layer"),
    };
}
