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

    /// <summary>
    /// <c>norm(conv(input))</c>. A frozen batch norm (or a batch norm in evaluation mode) is an affine map per channel,
    /// so it is folded into the convolution — weight·scale and a bias — sparing two passes over the output (the same
    /// function, up to float rounding, and differentiable in the convolution weight).
    /// </summary>
    public static Tensor ConvNorm(Conv2d conv, Module norm, Tensor input)
    {
        var affine = norm switch
        {
            FrozenBatchNorm2d f => (f.Weight, f.Bias, f.RunningMean, f.RunningVar, f.Eps),
            BatchNorm2d b when !b.IsTraining => (b.Weight, b.Bias, b.RunningMean, b.RunningVar, b.Eps),
            _ => default((Tensor, Tensor, Tensor, Tensor, double)?),
        };
        if (affine is not { } a)
        {
            return Forward(norm, conv.Forward(input));
        }

        using var scope = Torch.NewDisposeScope();
        var scale = a.Item1 * (a.Item4 + a.Item5).Rsqrt();
        var shift = a.Item2 - a.Item3 * scale;
        var weight = conv.Weight * scale.Reshape(-1, 1, 1, 1);
        var bias = conv.Bias is { } cb ? shift + cb * scale : shift;
        return scope.MoveToOuter(Functional.Conv2d(input, weight, bias, conv.Stride, conv.Padding, conv.Dilation, conv.Groups));
    }

    /// <summary>Applies a layer made by <see cref="Create"/> to [N, C, H, W].</summary>
    public static Tensor Forward(Module norm, Tensor input) => norm switch
    {
        FrozenBatchNorm2d f => f.Forward(input),
        BatchNorm2d b => b.Forward(input),
        GroupNorm g => g.Forward(input),
        _ => throw new InvalidOperationException($"{norm.GetType().Name} is not a supported norm layer"),
    };
}
