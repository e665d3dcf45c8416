using MaskRcnn.Net.Core.Checkpoints;
using MaskRcnn.Net.Heads;
using MaskRcnn.Net.RoIAlign;

namespace MaskRcnn.Net.Export;

/// <summary>
/// Emits the box branch of <see cref="RoIHeads"/> in test mode as ONNX nodes: multi-scale RoIAlign of the proposals
/// (level mapping and per-level scales as <see cref="MultiScaleRoIAlign"/>, RoIAlign with aligned = false, i.e. ONNX
/// <c>RoiAlign</c> opset 16 with <c>coordinate_transformation_mode=output_half_pixel</c>, or <c>half_pixel</c> for an aligned pooler), the box head and predictor,
/// softmax, per-class decoding with the coder's weights (10, 10, 5, 5 by default), clipping, dropping the background,
/// the score threshold (strictly greater), removal of boxes with a side below 1e-2, NMS per class and the
/// <see cref="RoIHeadsOptions.DetectionsPerImage"/> best detections by score.
/// </summary>
internal static class RoIHeadsExport
{
    /// <summary>
    /// The exporter's stage: the box branch of <paramref name="model"/> on its pooler levels; returns the detections
    /// in the resized image's pixels, sorted by decreasing score: boxes float [N, 4], scores float [N], labels int64 [N].
    /// </summary>
    /// <exception cref="NotSupportedException">A part is custom code or an option the graph cannot express.</exception>
    public static (string Boxes, string Scores, string Labels) Emit(OnnxGraphBuilder g, MaskRcnnModel model, OnnxFeatureValues f, OnnxImageSizes s,
        string proposals)
    {
        ArgumentNullException.ThrowIfNull(g);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(f);
        ArgumentNullException.ThrowIfNull(s);
        return Emit(g, model.RoIHeads, PoolerValues(f), proposals, s.ResizedSize(g));
    }

    /// <summary>The value names of the levels the RoI poolers read, finest first.</summary>
    internal static IReadOnlyList<string> PoolerValues(OnnxFeatureValues f) => [.. f.PoolerNames.Select(n => f[n])];

    /// <summary>
    /// Emits the box branch; returns the names of the detections in the resized image's frame, sorted by decreasing
    /// score: boxes float [D, 4], scores float [D], labels int64 [D] (D may be 0).
    /// </summary>
    /// <param name="g">The graph builder.</param>
    /// <param name="heads">The model's RoI heads (standard box pooler, <see cref="TwoMlpHead"/>, <see cref="FastRcnnPredictor"/>).</param>
    /// <param name="features">The feature maps the poolers use ([1, C, hᵢ, wᵢ], finest first; FPN levels without <c>pool</c>).</param>
    /// <param name="proposals">float [P, 4] proposals (x1, y1, x2, y2).</param>
    /// <param name="imageSize">int64 [2]: the resized, unpadded image's (height, width).</param>
    /// <exception cref="NotSupportedException">A part is custom code or an option the graph cannot express.</exception>
    public static (string Boxes, string Scores, string Labels) Emit(OnnxGraphBuilder g, RoIHeads heads, IReadOnlyList<string> features, string proposals, string imageSize)
    {
        ArgumentNullException.ThrowIfNull(g);
        ArgumentNullException.ThrowIfNull(heads);
        ArgumentNullException.ThrowIfNull(features);
        if (heads.BoxHead is not TwoMlpHead boxHead)
        {
            throw new NotSupportedException($"ONNX export: the box head {heads.BoxHead.GetType().FullName} is a custom part; only {nameof(TwoMlpHead)} is exported");
        }

        if (heads.BoxPredictor is not FastRcnnPredictor predictor)
        {
            throw new NotSupportedException(
                $"ONNX export: the box predictor {heads.BoxPredictor.GetType().FullName} is a custom part; only {nameof(FastRcnnPredictor)} is exported");
        }

        var options = heads.Options;
        var numClasses = predictor.NumClasses;
        using var scope = g.Scope("roi_heads");
        var pooled = EmitPooler(g, heads.BoxPooler, features, proposals, imageSize, "box_roi_pool");
        var x = g.Flatten(pooled, 1);
        x = g.Relu(g.Linear(x, "box_head.fc6", boxHead.Fc6));
        x = g.Relu(g.Linear(x, "box_head.fc7", boxHead.Fc7));
        var classLogits = g.Linear(x, "box_predictor.cls_score", predictor.ClsScore);
        var boxDeltas = g.Linear(x, "box_predictor.bbox_pred", predictor.BboxPred);

        var weights = options.BoxRegressionWeights ?? (10, 10, 5, 5);
        var probabilities = g.Softmax(classLogits, -1);
        var decoded = g.DecodeBoxes(g.Reshape(boxDeltas, 0, numClasses, 4), g.Unsqueeze(proposals, 1), weights, Core.Detection.BoxCoder.DefaultScaleClamp);
        var clipped = g.ClipBoxes(decoded, imageSize);

        // Foreground classes only: [P, C-1, 4] boxes and [P, C-1] scores; candidate (p, c) is flat index p·(C-1)+c.
        var boxes = g.Slice(clipped, [1], [numClasses], [1]);
        var scores = g.Slice(probabilities, [1], [numClasses], [1]);
        var (widths, heights) = g.BoxSides(boxes);
        var minSide = g.Constant(1e-2f);
        var valid = g.And(g.Greater(scores, g.Constant((float)options.ScoreThreshold)),
            g.And(g.GreaterOrEqual(widths, minSide), g.GreaterOrEqual(heights, minSide)));
        var rank = g.Reshape(g.RankScores(g.Reshape(scores, -1), g.Reshape(valid, -1)), g.Shape(scores));

        // NMS per class: NonMaxSuppression's batches are the classes, each with its own decoded boxes.
        var nmsBoxes = g.Transpose(boxes, 1, 0, 2);
        var nmsScores = g.Unsqueeze(g.Transpose(rank, 1, 0), 1);
        var selected = g.NonMaxSuppression(nmsBoxes, nmsScores, g.Constant((long)options.DetectionsPerImage),
            g.Constant((float)options.NmsThreshold), g.Constant(0.5f));
        var classIndex = g.Slice(selected, [0], [1], [1]);
        var boxIndex = g.Slice(selected, [2], [3], [1]);
        var candidates = g.Concat(1, boxIndex, classIndex);
        var kept = g.TopByRank(candidates, g.GatherND(rank, candidates), options.DetectionsPerImage);
        var outBoxes = g.Identity(g.GatherND(boxes, kept));
        var outScores = g.Identity(g.GatherND(scores, kept));
        var outLabels = g.Add(g.Reshape(g.Slice(kept, [1], [2], [1]), -1), g.Constant(1L));
        return (outBoxes, outScores, outLabels);
    }

    /// <summary>
    /// Emits <see cref="MultiScaleRoIAlign"/> for one image: every level's scale is 2^round(log2(feature height /
    /// image height)) as torchvision infers it (computed in the graph, so any image size works), each box goes to
    /// level floor(4 + log2(√area / 224) + 1e-6) clamped to the pyramid, and is pooled there by ONNX <c>RoiAlign</c>
    /// (the box pre-multiplied by the level's scale, spatial_scale 1, which is the same product). Returns the float
    /// [K, C, out, out] pooled features in the boxes' order.
    /// </summary>
    /// <exception cref="NotSupportedException">The pooler is custom code or uses RoIPool.</exception>
    public static string EmitPooler(OnnxGraphBuilder g, IRoIPooler pooler, IReadOnlyList<string> features, string boxes, string imageSize, string name)
    {
        ArgumentNullException.ThrowIfNull(g);
        ArgumentNullException.ThrowIfNull(features);
        if (pooler is not MultiScaleRoIAlign msra)
        {
            throw new NotSupportedException($"ONNX export: the RoI pooler {pooler.GetType().FullName} is a custom part; only {nameof(MultiScaleRoIAlign)} is exported");
        }

        if (msra.Kernel != PoolingKernel.RoIAlign)
        {
            throw new NotSupportedException($"ONNX export: RoIPoolerOptions.Kernel {msra.Kernel} is not exported (only RoIAlign)");
        }

        if (features.Count == 0)
        {
            throw new NotSupportedException("ONNX export: the RoI pooler needs at least one feature map");
        }

        using var scope = g.Scope(name);
        var (outH, outW) = msra.OutputSize;
        var imageHeight = g.Cast(g.Slice(imageSize, [0], [1], [0]), OnnxElementType.Float);
        var ln2 = g.Constant((float)Math.Log(2));
        var logScales = features
            .Select(f => g.Round(g.Div(g.Log(g.Div(g.Cast(g.Shape(f, 2, 3), OnnxElementType.Float), imageHeight)), ln2)))
            .ToArray();
        var two = g.Constant(2f);
        string Pool(int level, string rois)
        {
            var scaled = g.Mul(rois, g.Pow(two, logScales[level]));
            var batch = g.ConstantOfShape(g.Shape(rois, 0, 1), 0L);
            // torchvision's roi_align(aligned=False) is ONNX's output_half_pixel; aligned=True (ROIAlignV2) is half_pixel.
            return g.RoiAlign(features[level], scaled, batch, outH, outW, msra.SamplingRatio, 1f, msra.Aligned ? "half_pixel" : "output_half_pixel");
        }

        if (features.Count == 1)
        {
            return Pool(0, boxes);
        }

        // LevelMapper: k_min/k_max from the first and last scales.
        var kMin = g.Neg(logScales[0]);
        var kMax = g.Neg(logScales[^1]);
        var (widths, heights) = g.BoxSides(boxes);
        var side = g.Sqrt(g.Mul(widths, heights));
        var log2 = g.Div(g.Log(g.Div(side, g.Constant((float)msra.CanonicalScale))), ln2);
        var level = g.Floor(g.Add(g.Add(log2, g.Constant((float)msra.CanonicalLevel)), g.Constant(1e-6f)));
        var levelIndex = g.Cast(g.Sub(g.Min(g.Max(level, kMin), kMax), kMin), OnnxElementType.Int64);

        var pooled = new List<string>();
        var indices = new List<string>();
        for (var i = 0; i < features.Count; i++)
        {
            var index = g.Reshape(g.NonZero(g.Equal(levelIndex, g.Constant((long)i))), -1);
            pooled.Add(Pool(i, g.Gather(boxes, index)));
            indices.Add(index);
        }

        // Back to the boxes' order: position[j] is the box of the j-th pooled row; inverse[position[j]] = j.
        var position = g.Concat(0, [.. indices]);
        var count = g.Shape(position);
        var inverse = g.ScatterElements(position, position, g.Range(g.Constant(0L), g.Squeeze(count, 0), g.Constant(1L)));
        return g.Gather(g.Concat(0, [.. pooled]), inverse);
    }
}

/// <summary>The heads hook of <see cref="OnnxExporter"/>: RPN, box branch and (when the model has one) mask branch.</summary>
internal static partial class OnnxExporter
{
    static partial void EmitHeads(OnnxGraphBuilder g, MaskRcnnModel model, OnnxFeatureValues f, OnnxImageSizes s, ref OnnxDetectionValues? detections)
    {
        var (proposals, _) = RpnExport.Emit(g, model, f, s);
        var (boxes, scores, labels) = RoIHeadsExport.Emit(g, model, f, s, proposals);
        var masks = model.RoIHeads.MaskPredictor is null ? null : MaskHeadExport.Emit(g, model, f, s, boxes, labels);
        detections = new OnnxDetectionValues(boxes, scores, labels, masks);
    }
}
