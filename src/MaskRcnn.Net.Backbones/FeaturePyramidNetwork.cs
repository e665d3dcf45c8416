using MaskRcnn.Net.Core;
using MaskRcnn.Net.Core.NN;
using MaskRcnn.Net.Core.Structures;

namespace MaskRcnn.Net.Backbones;

/// <summary>
/// An extra step appended to the FPN outputs (torchvision's <c>ExtraFPNBlock</c>), registered as the FPN's child
/// <c>extra_blocks</c>.
/// </summary>
public abstract class FpnExtraBlock : Module
{
    /// <summary>Names of the maps this block appends, in order.</summary>
    public abstract IReadOnlyList<string> Names { get; }

    /// <summary>Computes the extra maps.</summary>
    /// <param name="results">The FPN outputs so far, finest first.</param>
    /// <param name="inputs">The FPN's input maps (e.g. C2..C5).</param>
    /// <returns>One tensor per entry of <see cref="Names"/>.</returns>
    public abstract IReadOnlyList<Tensor> Forward(IReadOnlyList<Tensor> results, FeatureMaps inputs);
}

/// <summary>
/// torchvision's <c>LastLevelMaxPool</c>: appends "pool" = max_pool2d(last output, kernel 1, stride 2, padding 0),
/// i.e. [N, C, ⌈h/2⌉, ⌈w/2⌉]. Has no parameters.
/// </summary>
public sealed class LastLevelMaxPool : FpnExtraBlock
{
    /// <inheritdoc />
    public override IReadOnlyList<string> Names { get; } = ["pool"];

    /// <inheritdoc />
    public override IReadOnlyList<Tensor> Forward(IReadOnlyList<Tensor> results, FeatureMaps inputs)
    {
        ArgumentNullException.ThrowIfNull(results);
        if (results.Count == 0)
        {
            throw new ArgumentException("LastLevelMaxPool needs at least one FPN output", nameof(results));
        }

        return [Functional.MaxPool2d(results[^1], 1, 2, 0)];
    }
}

/// <summary>
/// Feature Pyramid Network (torchvision 0.14's <c>ops.FeaturePyramidNetwork</c>): a 1×1 lateral convolution per input
/// level (<c>inner_blocks.{i}.0</c>), a top-down pathway that adds the nearest-neighbour upsampled coarser level, and a
/// 3×3 output convolution per level (<c>layer_blocks.{i}.0</c>); then the optional extra block.
/// </summary>
public sealed class FeaturePyramidNetwork : Module
{
    /// <summary>Creates the FPN; convolution weights get Kaiming-uniform (a = 1) and biases 0, as torchvision.</summary>
    /// <param name="inChannels">Channels of each input level, finest first (e.g. [256, 512, 1024, 2048]).</param>
    /// <param name="outChannels">Channels of every output (256 in Mask R-CNN).</param>
    /// <param name="extraBlock">Appended maps (e.g. <see cref="LastLevelMaxPool"/>), or null.</param>
    /// <param name="norm">Optional norm after each convolution (torchvision's <c>norm_layer</c>; none by default).</param>
    public FeaturePyramidNetwork(IReadOnlyList<int> inChannels, int outChannels, FpnExtraBlock? extraBlock = null,
        NormKind? norm = null)
    {
        ArgumentNullException.ThrowIfNull(inChannels);
        if (inChannels.Count == 0)
        {
            throw new ArgumentException("the FPN needs at least one input level", nameof(inChannels));
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(outChannels, 1);
        InChannels = inChannels.ToArray();
        OutChannels = outChannels;
        InnerBlocks = RegisterModule("inner_blocks", new ModuleList<Conv2dNormActivation>());
        LayerBlocks = RegisterModule("layer_blocks", new ModuleList<Conv2dNormActivation>());
        foreach (var c in InChannels)
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(c, 1, nameof(inChannels));
            InnerBlocks.Add(new Conv2dNormActivation(c, outChannels, 1, padding: 0, norm: norm, relu: false));
            LayerBlocks.Add(new Conv2dNormActivation(outChannels, outChannels, 3, norm: norm, relu: false));
        }

        foreach (var block in InnerBlocks.Items.Concat(LayerBlocks.Items))
        {
            Init.KaimingUniformA1(block.Conv.Weight);
            if (block.Conv.Bias is { } bias)
            {
                using var _ = Torch.NoGrad();
                bias.ZeroInPlace();
            }
        }

        ExtraBlock = extraBlock is null ? null : RegisterModule("extra_blocks", extraBlock);
    }

    /// <summary>Channels of each input level.</summary>
    public IReadOnlyList<int> InChannels { get; }

    /// <summary>Channels of every output map.</summary>
    public int OutChannels { get; }

    /// <summary>Lateral 1×1 convolutions, one per input level.</summary>
    public ModuleList<Conv2dNormActivation> InnerBlocks { get; }

    /// <summary>Output 3×3 convolutions, one per input level.</summary>
    public ModuleList<Conv2dNormActivation> LayerBlocks { get; }

    /// <summary>The extra block, or null.</summary>
    public FpnExtraBlock? ExtraBlock { get; }

    /// <summary>Computes the pyramid.</summary>
    /// <param name="inputs">One map per level, finest first: level i is [N, InChannels[i], h_i, w_i].</param>
    /// <returns>
    /// The outputs under the input names, each [N, OutChannels, h_i, w_i], followed by the extra block's maps.
    /// </returns>
    public FeatureMaps Forward(FeatureMaps inputs)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        if (inputs.Count != InnerBlocks.Count)
        {
            throw new ArgumentException($"the FPN has {InnerBlocks.Count} levels but got {inputs.Count} feature maps", nameof(inputs));
        }

        using var scope = Torch.NewDisposeScope();
        var last = inputs.Count - 1;
        var lastInner = InnerBlocks[last].Forward(inputs[last].Map);
        var results = new Tensor[inputs.Count];
        results[last] = LayerBlocks[last].Forward(lastInner);
        for (var i = last - 1; i >= 0; i--)
        {
            var lateral = InnerBlocks[i].Forward(inputs[i].Map);
            var shape = lateral.Shape;
            var topDown = Functional.Interpolate(lastInner, shape[^2], shape[^1], InterpolationMode.Nearest);
            lastInner = lateral + topDown;
            results[i] = LayerBlocks[i].Forward(lastInner);
        }

        var named = inputs.Names.Zip(results, (n, t) => (n, t)).ToList();
        if (ExtraBlock is { } extra)
        {
            var extraMaps = extra.Forward(results, inputs);
            if (extraMaps.Count != extra.Names.Count)
            {
                throw new InvalidOperationException(
                    $"{extra.GetType().Name} returned {extraMaps.Count} maps but names {extra.Names.Count}");
            }

            named.AddRange(extra.Names.Zip(extraMaps, (n, t) => (n, t)));
        }

        foreach (var (_, t) in named)
        {
            scope.MoveToOuter(t);
        }

        return new FeatureMaps(named);
    }
}
