using MaskRcnn.Net.Core;
using MaskRcnn.Net.Core.NN;

namespace MaskRcnn.Net.Backbones;

/// <summary>
/// The projection shortcut of a residual block: a 1×1 strided convolution (<c>0</c>) followed by a norm layer
/// (<c>1</c>), giving torchvision's <c>downsample.0.weight</c> / <c>downsample.1.*</c> keys.
/// </summary>
public sealed class Downsample : Module
{
    private readonly Module norm;

    /// <summary>Creates the shortcut.</summary>
    /// <param name="inChannels">Input channels.</param>
    /// <param name="outChannels">Output channels.</param>
    /// <param name="stride">Spatial stride.</param>
    /// <param name="options">Norm settings.</param>
    public Downsample(int inChannels, int outChannels, int stride, ResNetOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        Conv = RegisterModule("0", ResidualBlock.NewConv(inChannels, outChannels, 1, stride, 0));
        norm = RegisterModule("1", NormLayers.Create(options.Norm, outChannels, options.NormEps, options.GroupNormGroups));
    }

    /// <summary>The 1×1 convolution (no bias).</summary>
    public Conv2d Conv { get; }

    /// <summary>The norm layer after the convolution.</summary>
    public Module Norm => norm;

    /// <summary>Projects [N, Cin, H, W] to [N, Cout, H/stride, W/stride].</summary>
    public Tensor Forward(Tensor input)
    {
        using var scope = Torch.NewDisposeScope();
        return scope.MoveToOuter(NormLayers.ConvNorm(Conv, norm, input));
    }
}

/// <summary>A residual block of a <see cref="ResNet"/> stage.</summary>
public abstract class ResidualBlock : Module
{
    /// <summary>Channels of the block's output.</summary>
    public abstract int OutChannels { get; }

    /// <summary>The projection shortcut, or null for the identity.</summary>
    public abstract Downsample? Downsample { get; }

    /// <summary>Applies the block: relu(residual(x) + shortcut(x)).</summary>
    /// <param name="input">[N, Cin, H, W].</param>
    /// <returns>[N, <see cref="OutChannels"/>, H/stride, W/stride].</returns>
    public abstract Tensor Forward(Tensor input);

    /// <summary>A bias-free convolution with torchvision's ResNet init (Kaiming normal, fan_out, ReLU gain).</summary>
    internal static Conv2d NewConv(int inChannels, int outChannels, int kernelSize, int stride, int padding)
    {
        var conv = new Conv2d(inChannels, outChannels, kernelSize, stride, padding, bias: false);
        Init.KaimingNormalFanOut(conv.Weight);
        return conv;
    }

    /// <summary>A norm layer per the options.</summary>
    internal static Module NewNorm(ResNetOptions options, int channels) =>
        NormLayers.Create(options.Norm, channels, options.NormEps, options.GroupNormGroups);

    /// <summary>Adds the shortcut to the residual branch output in place and applies ReLU in place (as torchvision).</summary>
    internal Tensor FinishResidual(Tensor residual, Tensor input)
    {
        var identity = Downsample is { } d ? d.Forward(input) : input;
        return residual.AddInPlace(identity).ReluInPlace();
    }
}

/// <summary>
/// ResNet-18/34 block: 3×3 conv (stride) → norm → ReLU → 3×3 conv → norm, plus the shortcut, then ReLU.
/// Keys: <c>conv1</c>, <c>bn1</c>, <c>conv2</c>, <c>bn2</c>, optional <c>downsample.0</c>/<c>downsample.1</c>.
/// </summary>
public sealed class BasicBlock : ResidualBlock
{
    private readonly Module bn1;
    private readonly Module bn2;

    /// <summary>Channel expansion of the block output relative to <c>planes</c>.</summary>
    public const int Expansion = 1;

    /// <summary>Creates the block.</summary>
    /// <param name="inChannels">Input channels.</param>
    /// <param name="planes">Output channels.</param>
    /// <param name="stride">Stride of the first 3×3 convolution (and of the shortcut).</param>
    /// <param name="downsample">Projection shortcut, required when the stride or channel count changes.</param>
    /// <param name="options">Norm settings.</param>
    public BasicBlock(int inChannels, int planes, int stride, Downsample? downsample, ResNetOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        OutChannels = planes * Expansion;
        Conv1 = RegisterModule("conv1", NewConv(inChannels, planes, 3, stride, 1));
        bn1 = RegisterModule("bn1", NewNorm(options, planes));
        Conv2 = RegisterModule("conv2", NewConv(planes, planes, 3, 1, 1));
        bn2 = RegisterModule("bn2", NewNorm(options, planes));
        Downsample = downsample is null ? null : RegisterModule("downsample", downsample);
    }

    /// <inheritdoc />
    public override int OutChannels { get; }

    /// <inheritdoc />
    public override Downsample? Downsample { get; }

    /// <summary>First 3×3 convolution (carries the stride).</summary>
    public Conv2d Conv1 { get; }

    /// <summary>Second 3×3 convolution.</summary>
    public Conv2d Conv2 { get; }

    /// <summary>Norm after <see cref="Conv1"/>.</summary>
    public Module Bn1 => bn1;

    /// <summary>Norm after <see cref="Conv2"/>.</summary>
    public Module Bn2 => bn2;

    /// <inheritdoc />
    public override Tensor Forward(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        using var scope = Torch.NewDisposeScope();
        var x = NormLayers.ConvNorm(Conv1, bn1, input).ReluInPlace();
        x = NormLayers.ConvNorm(Conv2, bn2, x);
        return scope.MoveToOuter(FinishResidual(x, input));
    }
}

/// <summary>
/// ResNet-50/101/152 block in torchvision's v1.5 layout (stride on the 3×3 convolution): 1×1 → norm → ReLU →
/// 3×3 (stride) → norm → ReLU → 1×1 (×4 channels) → norm, plus the shortcut, then ReLU.
/// Keys: <c>conv1</c>, <c>bn1</c>, <c>conv2</c>, <c>bn2</c>, <c>conv3</c>, <c>bn3</c>, optional <c>downsample.*</c>.
/// </summary>
public sealed class Bottleneck : ResidualBlock
{
    private readonly Module bn1;
    private readonly Module bn2;
    private readonly Module bn3;

    /// <summary>Channel expansion of the block output relative to <c>planes</c>.</summary>
    public const int Expansion = 4;

    /// <summary>Creates the block.</summary>
    /// <param name="inChannels">Input channels.</param>
    /// <param name="planes">Width of the inner convolutions; the output has 4×planes channels.</param>
    /// <param name="stride">Stride of the 3×3 convolution (and of the shortcut).</param>
    /// <param name="downsample">Projection shortcut, required when the stride or channel count changes.</param>
    /// <param name="options">Norm settings.</param>
    public Bottleneck(int inChannels, int planes, int stride, Downsample? downsample, ResNetOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        OutChannels = planes * Expansion;
        Conv1 = RegisterModule("conv1", NewConv(inChannels, planes, 1, 1, 0));
        bn1 = RegisterModule("bn1", NewNorm(options, planes));
        Conv2 = RegisterModule("conv2", NewConv(planes, planes, 3, stride, 1));
        bn2 = RegisterModule("bn2", NewNorm(options, planes));
        Conv3 = RegisterModule("conv3", NewConv(planes, OutChannels, 1, 1, 0));
        bn3 = RegisterModule("bn3", NewNorm(options, OutChannels));
        Downsample = downsample is null ? null : RegisterModule("downsample", downsample);
    }

    /// <inheritdoc />
    public override int OutChannels { get; }

    /// <inheritdoc />
    public override Downsample? Downsample { get; }

    /// <summary>1×1 reduction convolution.</summary>
    public Conv2d Conv1 { get; }

    /// <summary>3×3 convolution (carries the stride).</summary>
    public Conv2d Conv2 { get; }

    /// <summary>1×1 expansion convolution.</summary>
    public Conv2d Conv3 { get; }

    /// <summary>Norm after <see cref="Conv1"/>.</summary>
    public Module Bn1 => bn1;

    /// <summary>Norm after <see cref="Conv2"/>.</summary>
    public Module Bn2 => bn2;

    /// <summary>Norm after <see cref="Conv3"/>.</summary>
    public Module Bn3 => bn3;

    /// <inheritdoc />
    public override Tensor Forward(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        using var scope = Torch.NewDisposeScope();
        var x = NormLayers.ConvNorm(Conv1, bn1, input).ReluInPlace();
        x = NormLayers.ConvNorm(Conv2, bn2, x).ReluInPlace();
        x = NormLayers.ConvNorm(Conv3, bn3, x);
        return scope.MoveToOuter(FinishResidual(x, input));
    }
}
