using MaskRcnn.Net.Core;
using MaskRcnn.Net.Core.NN;

namespace MaskRcnn.Net.Backbones;

/// <summary>
/// Batch normalisation with fixed statistics and affine parameters (torchvision's <c>ops.misc.FrozenBatchNorm2d</c>).
/// All four tensors are buffers, so nothing here is trained and the state-dict keys are <c>weight</c>, <c>bias</c>,
/// <c>running_mean</c> and <c>running_var</c> (no <c>num_batches_tracked</c>; <see cref="TorchvisionKeys"/> drops
/// that key when a checkpoint written with a trainable BatchNorm is loaded into a frozen one).
/// </summary>
public sealed class FrozenBatchNorm2d : Module
{
    /// <summary>Creates the layer: weight 1, bias 0, running mean 0, running var 1.</summary>
    /// <param name="channels">Number of channels C of the [N, C, H, W] input.</param>
    /// <param name="eps">
    /// Added to the variance. torchvision's default is 1e-5; its v1 COCO Mask R-CNN checkpoint was trained with 0.
    /// </param>
    public FrozenBatchNorm2d(int channels, double eps = 1e-5)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(channels, 1);
        if (!(eps >= 0) || double.IsInfinity(eps))
        {
            throw new ArgumentOutOfRangeException(nameof(eps), eps, "eps must be finite and non-negative");
        }

        Eps = eps;
        Weight = RegisterBuffer("weight", Tensor.Ones([channels]));
        Bias = RegisterBuffer("bias", Tensor.Zeros([channels]));
        RunningMean = RegisterBuffer("running_mean", Tensor.Zeros([channels]));
        RunningVar = RegisterBuffer("running_var", Tensor.Ones([channels]));
    }

    /// <summary>Added to the running variance before the reciprocal square root.</summary>
    public double Eps { get; }

    /// <summary>Scale γ [C] (a buffer).</summary>
    public Tensor Weight { get; }

    /// <summary>Shift β [C] (a buffer).</summary>
    public Tensor Bias { get; }

    /// <summary>Running mean [C].</summary>
    public Tensor RunningMean { get; }

    /// <summary>Running variance [C].</summary>
    public Tensor RunningVar { get; }

    /// <summary>
    /// y = x·s + (β − μ·s) with s = γ / sqrt(σ² + eps), computed as torchvision does (same operation order), in
    /// training and evaluation mode alike.
    /// </summary>
    /// <param name="input">[N, C, H, W].</param>
    /// <returns>[N, C, H, W].</returns>
    public Tensor Forward(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        using var scope = Torch.NewDisposeScope();
        var w = Weight.Reshape(1, -1, 1, 1);
        var b = Bias.Reshape(1, -1, 1, 1);
        var rv = RunningVar.Reshape(1, -1, 1, 1);
        var rm = RunningMean.Reshape(1, -1, 1, 1);
        var scale = w * (rv + Eps).Rsqrt();
        var shift = b - rm * scale;
        return scope.MoveToOuter(input * scale + shift);
    }
}
