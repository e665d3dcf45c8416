using MaskRcnn.Net.Backbones;
using MaskRcnn.Net.Core;
using MaskRcnn.Net.Core.NN;

namespace MaskRcnn.Net.Export;

/// <summary>The graph values of the backbone's feature maps, in the backbone's order (FPN levels, then <c>pool</c>).</summary>
/// <param name="Names">The level names (<c>0</c>, <c>1</c>, <c>2</c>, <c>3</c>, <c>pool</c>), as <see cref="BackboneWithFpn.FeatureNames"/>.</param>
/// <param name="Values">The value name of each level's map, float32 [1, C, h, w].</param>
/// <param name="PoolerNames">The levels the RoI poolers read (the FPN levels without <c>pool</c>).</param>
internal sealed record OnnxFeatureValues(IReadOnlyList<string> Names, IReadOnlyList<string> Values, IReadOnlyList<string> PoolerNames)
{
    /// <summary>The value holding level <paramref name="name"/>.</summary>
    public string this[string name]
    {
        get
        {
            for (var i = 0; i < Names.Count; i++)
            {
                if (Names[i] == name)
                {
                    return Values[i];
                }
            }

            throw new KeyNotFoundException($"no feature level '{name}' (have {string.Join(", ", Names)})");
        }
    }
}

/// <summary>
/// Emits our ResNet body and FPN (<see cref="BackboneWithFpn"/>) with the model's own weights: frozen and eval batch
/// norms folded into the convolutions exactly as the libtorch forward folds them, group norm through
/// per-group statistics (reshape, two-pass mean and biased variance), nearest top-down upsampling to each lateral's size, and the
/// <see cref="LastLevelMaxPool"/> <c>pool</c> level.
/// </summary>
internal static class BackboneExport
{
    /// <summary>Emits the backbone on the padded batch <paramref name="images"/> (float32 [1, 3, H, W]).</summary>
    /// <exception cref="NotSupportedException">The backbone or one of its layers is not one the exporter knows.</exception>
    public static OnnxFeatureValues Emit(OnnxGraphBuilder g, IBackbone backbone, string images)
    {
        ArgumentNullException.ThrowIfNull(g);
        ArgumentNullException.ThrowIfNull(backbone);
        if (backbone is not BackboneWithFpn withFpn)
        {
            throw new NotSupportedException(
                $"ONNX export: the backbone is a {backbone.GetType().FullName}; only the built-in ResNet + FPN ({nameof(BackboneWithFpn)}) is exported");
        }

        using var noGrad = Torch.NoGrad();
        using var scope = Torch.NewDisposeScope();
        using var _ = g.Scope("backbone");
        var stages = EmitBody(g, withFpn.Body, images);
        var (names, values) = EmitFpn(g, withFpn.Fpn, withFpn.LevelNames, stages);
        return new OnnxFeatureValues(names, values, withFpn.LevelNames);
    }

    private static IReadOnlyList<string> EmitBody(OnnxGraphBuilder g, ResNet body, string images)
    {
        using var _ = g.Scope("body");
        var x = g.Relu(ConvNorm(g, "conv1", body.Conv1, body.Bn1, images));
        x = g.MaxPool(x, [3, 3], [2, 2], [1, 1, 1, 1]);
        var outputs = new string[body.Stages.Count];
        for (var s = 0; s < body.Stages.Count; s++)
        {
            using var layer = g.Scope($"layer{s + 1}");
            var blocks = body.Stages[s].Items;
            for (var b = 0; b < blocks.Count; b++)
            {
                using var blockScope = g.Scope(b.ToString(System.Globalization.CultureInfo.InvariantCulture));
                x = EmitBlock(g, blocks[b], x);
            }

            outputs[s] = x;
        }

        return outputs;
    }

    private static string EmitBlock(OnnxGraphBuilder g, ResidualBlock block, string input)
    {
        string y;
        switch (block)
        {
            case BasicBlock basic:
                y = g.Relu(ConvNorm(g, "conv1", basic.Conv1, basic.Bn1, input));
                y = ConvNorm(g, "conv2", basic.Conv2, basic.Bn2, y);
                break;
            case Bottleneck bottleneck:
                y = g.Relu(ConvNorm(g, "conv1", bottleneck.Conv1, bottleneck.Bn1, input));
                y = g.Relu(ConvNorm(g, "conv2", bottleneck.Conv2, bottleneck.Bn2, y));
                y = ConvNorm(g, "conv3", bottleneck.Conv3, bottleneck.Bn3, y);
                break;
            default:
                throw new NotSupportedException($"ONNX export: residual block {block.GetType().FullName} is not exported");
        }

        var identity = block.Downsample is { } d ? ConvNorm(g, "downsample", d.Conv, d.Norm, input) : input;
        return g.Relu(g.Add(y, identity));
    }

    private static (IReadOnlyList<string> Names, IReadOnlyList<string> Values) EmitFpn(OnnxGraphBuilder g, FeaturePyramidNetwork fpn,
        IReadOnlyList<string> levelNames, IReadOnlyList<string> stages)
    {
        using var _ = g.Scope("fpn");
        if (stages.Count != fpn.InnerBlocks.Count)
        {
            throw new NotSupportedException($"ONNX export: the FPN has {fpn.InnerBlocks.Count} levels but the body gives {stages.Count}");
        }

        var last = stages.Count - 1;
        var lastInner = ConvNormActivation(g, $"inner_blocks.{last}", fpn.InnerBlocks[last], stages[last]);
        var results = new string[stages.Count];
        results[last] = ConvNormActivation(g, $"layer_blocks.{last}", fpn.LayerBlocks[last], lastInner);
        for (var i = last - 1; i >= 0; i--)
        {
            var lateral = ConvNormActivation(g, $"inner_blocks.{i}", fpn.InnerBlocks[i], stages[i]);
            // F.interpolate(mode="nearest", size=lateral's): source index floor(dst · in/out) = ONNX asymmetric + floor.
            var topDown = g.ResizeToSizes(lastInner, g.Shape(lateral), "nearest", "asymmetric", "floor");
            lastInner = g.Add(lateral, topDown);
            results[i] = ConvNormActivation(g, $"layer_blocks.{i}", fpn.LayerBlocks[i], lastInner);
        }

        var names = new List<string>(levelNames);
        var values = new List<string>(results);
        switch (fpn.ExtraBlock)
        {
            case null:
                break;
            case LastLevelMaxPool pool:
                names.AddRange(pool.Names);
                values.Add(g.MaxPool(results[^1], [1, 1], [2, 2], [0, 0, 0, 0]));
                break;
            default:
                throw new NotSupportedException($"ONNX export: the FPN extra block {fpn.ExtraBlock.GetType().FullName} is not exported");
        }

        return (names, values);
    }

    private static string ConvNormActivation(OnnxGraphBuilder g, string name, Conv2dNormActivation block, string input)
    {
        var y = block.Norm is null ? Conv(g, name, block.Conv, block.Conv.Weight, block.Conv.Bias, input) : ConvNorm(g, name, block.Conv, block.Norm, input);
        return block.Relu ? g.Relu(y) : y;
    }

    /// <summary>
    /// A convolution followed by a norm layer. Frozen and (evaluation) batch norms are folded into the convolution's
    /// weight and bias with libtorch, with the same operations as the libtorch forward (<c>NormLayers.ConvNorm</c>):
    /// scale = γ · rsqrt(var + eps), shift = β − mean · scale. Batch norm is always exported with its running
    /// statistics (inference semantics).
    /// </summary>
    private static string ConvNorm(OnnxGraphBuilder g, string name, Conv2d conv, Module norm, string input)
    {
        (Tensor Weight, Tensor Bias, Tensor Mean, Tensor Var, double Eps)? affine = norm switch
        {
            FrozenBatchNorm2d f => (f.Weight, f.Bias, f.RunningMean, f.RunningVar, f.Eps),
            BatchNorm2d b => (b.Weight, b.Bias, b.RunningMean, b.RunningVar, b.Eps),
            _ => null,
        };
        if (affine is { } a)
        {
            using var scope = Torch.NewDisposeScope();
            var scale = a.Weight * (a.Var + a.Eps).Rsqrt();
            var shift = a.Bias - a.Mean * scale;
            var weight = conv.Weight * scale.Reshape(-1, 1, 1, 1);
            var bias = conv.Bias is { } cb ? shift + cb * scale : shift;
            return Conv(g, name, conv, weight, bias, input);
        }

        if (norm is GroupNorm gn)
        {
            var y = Conv(g, name, conv, conv.Weight, conv.Bias, input);
            return GroupNormalization(g, name, gn, y);
        }

        throw new NotSupportedException($"ONNX export: the norm layer {norm.GetType().FullName} after '{name}' is not exported");
    }

    private static string Conv(OnnxGraphBuilder g, string name, Conv2d conv, Tensor weight, Tensor? bias, string input)
    {
        var shape = conv.Weight.Shape;
        var w = g.Initializer(name + ".weight", weight);
        var b = bias is null ? null : g.Initializer(name + ".bias", bias);
        long k0 = shape[2], k1 = shape[3], s = conv.Stride, p = conv.Padding, d = conv.Dilation;
        return g.Conv(input, w, b, [k0, k1], [s, s], [p, p, p, p], [d, d], conv.Groups);
    }

    /// <summary>
    /// GroupNorm(G) on [1, C, h, w]: reshape to [1, G, C/G·h·w]; two-pass statistics per group (mean, then the mean of
    /// squared deviations: the biased variance); (x − mean) · 1/sqrt(var + eps); reshape back; per-channel γ·x + β.
    /// </summary>
    private static string GroupNormalization(OnnxGraphBuilder g, string name, GroupNorm gn, string x)
    {
        var grouped = g.Reshape(x, 0, gn.Groups, -1);
        var mean = g.ReduceMean(grouped, [2]);
        var centered = g.Sub(grouped, mean);
        var variance = g.ReduceMean(g.Mul(centered, centered), [2]);
        var rstd = g.Reciprocal(g.Sqrt(g.Add(variance, g.Constant((float)gn.Eps))));
        var back = g.Reshape(g.Mul(centered, rstd), g.Shape(x));
        using var scope = Torch.NewDisposeScope();
        var gamma = g.Initializer(name + ".gn_weight", gn.Weight.Reshape(-1, 1, 1));
        var beta = g.Initializer(name + ".gn_bias", gn.Bias.Reshape(-1, 1, 1));
        return g.Add(g.Mul(back, gamma), beta);
    }
}
