using MaskRcnn.Net.Core;
using MaskRcnn.Net.Core.NN;

namespace MaskRcnn.Net.Backbones;

/// <summary>
/// The convolutional body of torchvision's ResNet (no average pool or classifier): stem <c>conv1</c> (7×7, stride 2)
/// → <c>bn1</c> → ReLU → 3×3 max pool (stride 2), then stages <c>layer1</c>..<c>layer4</c> of residual blocks named
/// <c>0</c>, <c>1</c>, …. Parameter names, and so state-dict keys, equal torchvision's (<c>layer2.0.downsample.1.running_var</c>).
/// </summary>
public sealed class ResNet : Module
{
    private static readonly string[] TrainableOrder = ["layer4", "layer3", "layer2", "layer1", "conv1"];
    private readonly Module bn1;

    /// <summary>Builds the body with torchvision's initialisation (Kaiming-normal convolutions, norm weight 1 / bias 0).</summary>
    /// <param name="options">Depth and norm layer.</param>
    public ResNet(ResNetOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        Options = options;
        Conv1 = RegisterModule("conv1", ResidualBlock.NewConv(3, 64, 7, 2, 3));
        bn1 = RegisterModule("bn1", ResidualBlock.NewNorm(options, 64));
        var blocks = options.BlocksPerStage;
        var inChannels = 64;
        var stages = new ModuleList<ResidualBlock>[4];
        for (var s = 0; s < 4; s++)
        {
            var planes = 64 << s;
            var stride = s == 0 ? 1 : 2;
            stages[s] = RegisterModule($"layer{s + 1}", MakeStage(options, ref inChannels, planes, blocks[s], stride));
        }

        Stages = stages;
        StageChannels = stages.Select(l => l[l.Count - 1].OutChannels).ToArray();
    }

    /// <summary>The configuration this body was built with.</summary>
    public ResNetOptions Options { get; }

    /// <summary>Stem 7×7 convolution, 3 → 64 channels, stride 2 (no bias).</summary>
    public Conv2d Conv1 { get; }

    /// <summary>Norm after the stem convolution.</summary>
    public Module Bn1 => bn1;

    /// <summary>The four stages <c>layer1</c>..<c>layer4</c> (strides 4, 8, 16, 32 relative to the input).</summary>
    public IReadOnlyList<ModuleList<ResidualBlock>> Stages { get; }

    /// <summary>
    /// Output channels of C2..C5: [64, 128, 256, 512] for depth 18/34, [256, 512, 1024, 2048] for 50 and deeper.
    /// </summary>
    public IReadOnlyList<int> StageChannels { get; }

    private static ModuleList<ResidualBlock> MakeStage(ResNetOptions options, ref int inChannels, int planes, int count, int stride)
    {
        var expansion = options.UsesBottleneck ? Bottleneck.Expansion : BasicBlock.Expansion;
        var outChannels = planes * expansion;
        var downsample = stride != 1 || inChannels != outChannels ? new Downsample(inChannels, outChannels, stride, options) : null;
        var stage = new ModuleList<ResidualBlock>();
        for (var b = 0; b < count; b++)
        {
            var (cin, st, ds) = b == 0 ? (inChannels, stride, downsample) : (outChannels, 1, null);
            stage.Add(options.UsesBottleneck
                ? new Bottleneck(cin, planes, st, ds, options)
                : new BasicBlock(cin, planes, st, ds, options));
        }

        inChannels = outChannels;
        return stage;
    }

    /// <summary>
    /// Run on CPU in the channels-last layout (default true: faster with oneDNN; results equal up to float rounding).
    /// </summary>
    public bool UseChannelsLast { get; set; } = true;

    /// <summary>Runs the body and returns the outputs of the four stages.</summary>
    /// <param name="images">[N, 3, H, W] normalised images.</param>
    /// <returns>
    /// [C2, C3, C4, C5]: C2 [N, StageChannels[0], ⌈H/4⌉, ⌈W/4⌉] … C5 [N, StageChannels[3], H/32, W/32] (sizes follow
    /// the convolution arithmetic of each stride-2 step).
    /// </returns>
    public IReadOnlyList<Tensor> Forward(Tensor images)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.Dim != 4)
        {
            throw new ArgumentException($"images must be [N, 3, H, W], got [{string.Join(", ", images.Shape)}]", nameof(images));
        }

        using var scope = Torch.NewDisposeScope();
        // On CPU the whole network runs channels-last: oneDNN convolutions then need no layout conversions, and the
        // layout carries through the FPN and the RPN head (RoIAlign reads it directly).
        var input = UseChannelsLast && images.Device.Type == DeviceType.Cpu ? images.Contiguous(MemoryFormat.ChannelsLast) : images;
        var x = NormLayers.ConvNorm(Conv1, bn1, input).ReluInPlace();
        x = Functional.MaxPool2d(x, 3, 2, 1);
        var outputs = new Tensor[Stages.Count];
        for (var s = 0; s < Stages.Count; s++)
        {
            x = outputs[s] = RunStage(Stages[s], x);
        }

        scope.MoveToOuter(outputs);
        return outputs;
    }

    private static Tensor RunStage(ModuleList<ResidualBlock> stage, Tensor input)
    {
        using var scope = Torch.NewDisposeScope();
        var x = input;
        foreach (var block in stage.Items)
        {
            var y = block.Forward(x);
            if (!ReferenceEquals(x, input))
            {
                x.Dispose();
            }

            x = y;
        }

        return scope.MoveToOuter(x);
    }

    /// <summary>
    /// Chooses which parameters are trained, as torchvision's <c>_resnet_fpn_extractor</c>: the last
    /// <paramref name="count"/> of <c>layer4</c>, <c>layer3</c>, <c>layer2</c>, <c>layer1</c>, <c>conv1</c> (with 5, also
    /// <c>bn1</c>) keep gradients; every other parameter gets <c>RequiresGrad = false</c>. Unlike torchvision, the
    /// selected parameters are switched back on, so calling this again with a larger count unfreezes. Frozen
    /// batch-norm layers have no parameters and stay fixed either way.
    /// </summary>
    /// <param name="count">0 (everything frozen) to 5 (everything trainable).</param>
    public void SetTrainableLayers(int count)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 0);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(count, 5);
        var prefixes = TrainablePrefixes(count);
        foreach (var (name, p) in NamedParameters())
        {
            p.RequiresGrad = p.DType.IsFloatingPoint() && prefixes.Any(prefix => name.StartsWith(prefix, StringComparison.Ordinal));
        }
    }

    /// <summary>
    /// The parameter-name prefixes that stay trainable for a trainable-layers count (torchvision's
    /// <c>layers_to_train</c>, plus <c>bn1</c> for 5). Matching is a plain string prefix test, as in torchvision.
    /// </summary>
    public static IReadOnlyList<string> TrainablePrefixes(int count)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 0);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(count, 5);
        var list = TrainableOrder.Take(count).ToList();
        if (count == 5)
        {
            list.Add("bn1");
        }

        return list;
    }
}
