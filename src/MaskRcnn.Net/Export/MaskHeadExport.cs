using MaskRcnn.Net.Core.NN;
using MaskRcnn.Net.Heads;

namespace MaskRcnn.Net.Export;

/// <summary>
/// Emits the mask branch of <see cref="RoIHeads"/> in test mode as ONNX nodes: multi-scale RoIAlign (14×14 by
/// default) of the detected boxes, the <see cref="MaskRcnnHead"/> convolutions, the <see cref="MaskRcnnPredictor"/>
/// (2× transposed convolution, 1×1 logits) and the sigmoid of each detection's own class channel.
/// </summary>
internal static class MaskHeadExport
{
    /// <summary>
    /// The exporter's stage: the mask branch of <paramref name="model"/> for the detections
    /// (<paramref name="boxes"/> float [N, 4] in the resized image's pixels, <paramref name="labels"/> int64 [N]);
    /// returns the float [N, 1, M, M] probabilities of each detection's own class.
    /// </summary>
    /// <exception cref="NotSupportedException">The model has no mask branch, or a part of it is custom code.</exception>
    public static string Emit(OnnxGraphBuilder g, MaskRcnnModel model, OnnxFeatureValues f, OnnxImageSizes s, string boxes, string labels)
    {
        ArgumentNullException.ThrowIfNull(g);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(f);
        ArgumentNullException.ThrowIfNull(s);
        return Emit(g, model.RoIHeads, RoIHeadsExport.PoolerValues(f), boxes, labels, s.ResizedSize(g));
    }

    /// <summary>
    /// Emits the mask branch; returns the name of the float [D, 1, M, M] mask probabilities (not pasted), in the
    /// detections' order.
    /// </summary>
    /// <param name="g">The graph builder.</param>
    /// <param name="heads">The model's RoI heads; must have a mask branch.</param>
    /// <param name="features">The feature maps the poolers use ([1, C, hᵢ, wᵢ], finest first).</param>
    /// <param name="boxes">float [D, 4] detected boxes in the resized image's frame.</param>
    /// <param name="labels">int64 [D] their labels.</param>
    /// <param name="imageSize">int64 [2]: the resized, unpadded image's (height, width).</param>
    /// <exception cref="NotSupportedException">The model has no mask branch, or a part of it is custom code.</exception>
    public static string Emit(OnnxGraphBuilder g, RoIHeads heads, IReadOnlyList<string> features, string boxes, string labels, string imageSize)
    {
        ArgumentNullException.ThrowIfNull(g);
        ArgumentNullException.ThrowIfNull(heads);
        if (heads.MaskPooler is null || heads.MaskHead is null || heads.MaskPredictor is null)
        {
            throw new NotSupportedException("ONNX export: the model has no mask branch");
        }

        if (heads.MaskHead is not MaskRcnnHead maskHead)
        {
            throw new NotSupportedException($"ONNX export: the mask head {heads.MaskHead.GetType().FullName} is a custom part; only {nameof(MaskRcnnHead)} is exported");
        }

        if (heads.MaskPredictor is not MaskRcnnPredictor predictor)
        {
            throw new NotSupportedException(
                $"ONNX export: the mask predictor {heads.MaskPredictor.GetType().FullName} is a custom part; only {nameof(MaskRcnnPredictor)} is exported");
        }

        using var scope = g.Scope("roi_heads");
        var x = RoIHeadsExport.EmitPooler(g, heads.MaskPooler, features, boxes, imageSize, "mask_roi_pool");
        var convs = maskHead.NamedModules().Where(m => m.Module is Conv2d).ToList();
        foreach (var (name, module) in convs)
        {
            var conv = (Conv2d)module;
            var (w, b) = g.ConvWeights("mask_head." + name, conv);
            x = g.Relu(g.Conv2d(x, w, b, conv));
        }

        var up = predictor.Conv5Mask;
        var k = up.Weight.Shape;
        var upW = g.Initializer("mask_predictor.conv5_mask.weight", up.Weight);
        var upB = up.Bias is null ? null : g.Initializer("mask_predictor.conv5_mask.bias", up.Bias);
        x = g.Relu(g.ConvTranspose(x, upW, upB, [k[2], k[3]], [up.Stride, up.Stride], [up.Padding, up.Padding, up.Padding, up.Padding],
            up.OutputPadding == 0 ? null : [up.OutputPadding, up.OutputPadding]));
        var (lw, lb) = g.ConvWeights("mask_predictor.mask_fcn_logits", predictor.MaskFcnLogits);
        var probabilities = g.Sigmoid(g.Conv2d(x, lw, lb, predictor.MaskFcnLogits));

        // Each detection's own class: GatherND with (row, label) pairs.
        var count = g.Shape(labels);
        var rows = g.Range(g.Constant(0L), g.Squeeze(count, 0), g.Constant(1L));
        var pairs = g.Concat(1, g.Unsqueeze(rows, 1), g.Unsqueeze(labels, 1));
        return g.Unsqueeze(g.GatherND(probabilities, pairs), 1);
    }
}
