using MaskRcnn.Net.Core;
using MaskRcnn.Net.Core.NN;

namespace MaskRcnn.Net.Backbones;

/// <summary>
/// Convolution, optional norm layer and optional ReLU (torchvision 0.14's <c>ops.misc.Conv2dNormActivation</c>).
/// The convolution is child <c>0</c> and the norm child <c>1</c>, giving keys <c>0.weight</c>, <c>0.bias</c> (only
/// without a norm) and <c>1.*</c>; the activation has no state.
/// </summary>
public sealed class Conv2dNormActivation : Module
{
    private readonly Module? norm;

    /// <summary>Creates the block.</summary>
    /// <param name="inChannels">Input channels.</param>
    /// <param name="outChannels">Output channels.</param>
    /// <param name="kernelSize">Square kernel size.</param>
    /// <param name="stride">Stride.</param>
    /// <param name="padding">Zero padding; null means (kernelSize − 1) / 2 · dilation, as torchvision.</param>
    /// <param name="dilation">Dilation.</param>
    /// <param name="norm">Norm layer kind, or null for none (then the convolution has a bias).</param>
    /// <param name="relu">Apply ReLU after the norm.</param>
    /// <param name="normEps">Epsilon of the norm layer.</param>
    /// <param name="groupNormGroups">Groups when <paramref name="norm"/> is <see cref="NormKind.GroupNorm"/>.</param>
    public Conv2dNormActivation(int inChannels, int outChannels, int kernelSize, int stride = 1, int? padding = null,
        int dilation = 1, NormKind? norm = null, bool relu = true, double normEps = 1e-5, int groupNormGroups = 32)
    {
        Conv = RegisterModule("0", new Conv2d(inChannels, outChannels, kernelSize, stride,
            padding ?? (kernelSize - 1) / 2 * dilation, dilation, bias: norm is null));
        if (norm is { } kind)
        {
            this.norm = RegisterModule("1", NormLayers.Create(kind, outChannels, normEps, groupNormGroups));
        }

        Relu = relu;
    }

    /// <summary>The convolution (child <c>0</c>).</summary>
    public Conv2d Conv { get; }

    /// <summary>The norm layer (child <c>1</c>), or null.</summary>
    public Module? Norm => norm;

    /// <summary>Whether ReLU follows.</summary>
    public bool Relu { get; }

    /// <summary>Applies conv → norm → ReLU.</summary>
    /// <param name="input">[N, Cin, H, W].</param>
    /// <returns>[N, Cout, H', W'] with the convolution's output size.</returns>
    public Tensor Forward(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        using var scope = Torch.NewDisposeScope();
        var x = Conv.Forward(input);
        if (norm is not null)
        {
            x = NormLayers.Forward(norm, x);
        }

        if (Relu)
        {
            x = x.ReluInPlace();
        }

        return scope.MoveToOuter(x);
    }
}
