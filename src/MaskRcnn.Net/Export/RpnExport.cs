using MaskRcnn.Net.Core.Checkpoints;
using MaskRcnn.Net.Core.NN;
using MaskRcnn.Net.Heads;

namespace MaskRcnn.Net.Export;

/// <summary>
/// Emits the region proposal network as ONNX nodes with the test-mode semantics of
/// <see cref="RegionProposalNetwork"/>: the shared RPN head on every level, anchors generated in the graph from the
/// padded image size and each feature map's size (stride = padded size / feature size, integer division), per-level
/// top-k of the objectness logits (<see cref="RpnOptions.PreNmsTopNTest"/>), decoding with weights (1, 1, 1, 1) and
/// the log(1000/16) clamp, clipping to the resized image, removal of boxes with a side below
/// <see cref="RpnOptions.MinSize"/>, the objectness threshold on the sigmoid, per-level NMS and the
/// <see cref="RpnOptions.PostNmsTopNTest"/> best proposals by objectness.
/// </summary>
internal static class RpnExport
{
    /// <summary>
    /// The exporter's stage: the RPN of <paramref name="model"/> on all its feature maps (FPN levels and <c>pool</c>);
    /// returns the proposals float [P, 4] (x1, y1, x2, y2 in the resized image's pixels, clipped to it, sorted by
    /// decreasing objectness) and their objectness probabilities float [P].
    /// </summary>
    /// <exception cref="NotSupportedException">The RPN head is a custom part.</exception>
    public static (string Boxes, string Scores) Emit(OnnxGraphBuilder g, MaskRcnnModel model, OnnxFeatureValues f, OnnxImageSizes s)
    {
        ArgumentNullException.ThrowIfNull(g);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(f);
        ArgumentNullException.ThrowIfNull(s);
        return Emit(g, model.Rpn, f.Values, g.Concat(0, s.PaddedHeight, s.PaddedWidth), s.ResizedSize(g));
    }

    /// <summary>
    /// Emits the RPN and returns the names of the float [P, 4] proposals (x1, y1, x2, y2 in the padded batch's pixel
    /// frame, sorted by decreasing objectness; P may be 0) and of their objectness probabilities float [P].
    /// </summary>
    /// <param name="g">The graph builder.</param>
    /// <param name="rpn">The model's RPN (its head must be the standard <see cref="RpnHead"/>).</param>
    /// <param name="features">The feature maps the RPN uses, [1, C, hᵢ, wᵢ] each, finest first (all FPN levels incl. <c>pool</c>).</param>
    /// <param name="paddedSize">int64 [2]: the padded batch's (height, width).</param>
    /// <param name="imageSize">int64 [2]: the resized, unpadded image's (height, width).</param>
    /// <exception cref="NotSupportedException">The RPN head is a custom part, or the level counts disagree.</exception>
    public static (string Boxes, string Scores) Emit(OnnxGraphBuilder g, RegionProposalNetwork rpn, IReadOnlyList<string> features, string paddedSize, string imageSize)
    {
        ArgumentNullException.ThrowIfNull(g);
        ArgumentNullException.ThrowIfNull(rpn);
        ArgumentNullException.ThrowIfNull(features);
        if (rpn.Head is not RpnHead head)
        {
            throw new NotSupportedException($"ONNX export: the RPN head {rpn.Head.GetType().FullName} is a custom part; only {nameof(RpnHead)} is exported");
        }

        var generator = rpn.AnchorGenerator;
        if (features.Count != generator.CellAnchorsPerLevel.Count)
        {
            throw new NotSupportedException(
                $"ONNX export: the RPN gets {features.Count} feature maps but its anchor generator has {generator.CellAnchorsPerLevel.Count} levels");
        }

        var options = rpn.Options;
        using var scope = g.Scope("rpn");
        var convs = ((Module)head).NamedModules().Select(m => m.Module).OfType<Conv2d>().ToList();
        var conv = convs.Single(c => !ReferenceEquals(c, head.ClsLogits) && !ReferenceEquals(c, head.BboxPred));
        var (convW, convB) = g.ConvWeights("head.conv", conv);
        var (clsW, clsB) = g.ConvWeights("head.cls_logits", head.ClsLogits);
        var (boxW, boxB) = g.ConvWeights("head.bbox_pred", head.BboxPred);
        var anchorsPerCell = head.ClsLogits.Weight.Size(0);

        var paddedH = g.Slice(paddedSize, [0], [1], [0]);
        var paddedW = g.Slice(paddedSize, [1], [2], [0]);
        var logits = new List<string>();
        var deltas = new List<string>();
        var anchors = new List<string>();
        var levels = new List<string>();
        for (var i = 0; i < features.Count; i++)
        {
            using var level = g.Scope($"level{i}");
            var cellAnchors = generator.CellAnchorsPerLevel[i];
            if (cellAnchors.Size(0) != anchorsPerCell)
            {
                throw new NotSupportedException(
                    $"ONNX export: level {i} has {cellAnchors.Size(0)} anchors per cell but the RPN head predicts {anchorsPerCell}");
            }

            var f = features[i];
            var t = g.Relu(g.Conv2d(f, convW, convB, conv));
            var objectness = g.Conv2d(t, clsW, clsB, head.ClsLogits);
            var boxDeltas = g.Conv2d(t, boxW, boxB, head.BboxPred);

            // torchvision's permute_and_flatten: (h, w, anchor) order.
            var flatLogits = g.Reshape(g.Transpose(objectness, 0, 2, 3, 1), -1);
            var deltaShape = g.Concat(0, g.Ints(1, anchorsPerCell, 4), g.Shape(boxDeltas, 2, 4));
            var flatDeltas = g.Reshape(g.Transpose(g.Reshape(boxDeltas, deltaShape), 0, 3, 4, 1, 2), -1, 4);
            var levelAnchors = EmitAnchors(g, f, paddedH, paddedW, cellAnchors.ToArray<float>(), anchorsPerCell);

            var k = g.Min(g.Ints(options.PreNmsTopNTest), g.Shape(flatLogits));
            var (topLogits, topIndex) = g.TopK(flatLogits, k, axis: 0);
            logits.Add(topLogits);
            deltas.Add(g.Gather(flatDeltas, topIndex));
            anchors.Add(g.Gather(levelAnchors, topIndex));
            levels.Add(g.ConstantOfShape(g.Shape(topIndex), (long)i));
        }

        var allLogits = g.Concat(0, [.. logits]);
        var allDeltas = g.Concat(0, [.. deltas]);
        var allAnchors = g.Concat(0, [.. anchors]);
        var allLevels = g.Concat(0, [.. levels]);

        var decoded = g.DecodeBoxes(allDeltas, allAnchors, (1, 1, 1, 1), Core.Detection.BoxCoder.DefaultScaleClamp);
        var boxes = g.ClipBoxes(decoded, imageSize);
        var probability = g.Sigmoid(allLogits);
        var (widths, heights) = g.BoxSides(boxes);
        var minSize = g.Constant((float)options.MinSize);
        var valid = g.And(
            g.And(g.GreaterOrEqual(widths, minSize), g.GreaterOrEqual(heights, minSize)),
            g.GreaterOrEqual(probability, g.Constant((float)options.ScoreThreshold)));

        // Batched NMS over levels: NonMaxSuppression's classes are the levels (a box scores only in its own level).
        var rank = g.RankScores(probability, valid);
        var levelIds = g.Initializer("level_ids", Enumerable.Range(0, features.Count).Select(l => (long)l).ToArray(), features.Count, 1);
        var inLevel = g.Equal(g.Unsqueeze(allLevels, 0), levelIds);
        var nmsScores = g.Unsqueeze(g.Where(inLevel, g.Unsqueeze(rank, 0), g.Constant(0f)), 0);
        var selected = g.NonMaxSuppression(g.Unsqueeze(boxes, 0), nmsScores, g.Constant((long)options.PostNmsTopNTest),
            g.Constant((float)options.NmsThreshold), g.Constant(0.5f));
        var keep = g.Reshape(g.Slice(selected, [2], [3], [1]), -1);
        var ordered = g.TopByRank(keep, g.Gather(rank, keep), options.PostNmsTopNTest);
        return (g.Identity(g.Gather(boxes, ordered)), g.Identity(g.Gather(probability, ordered)));
    }

    /// <summary>
    /// Anchors [hᵢ·wᵢ·A, 4] of one level: cell anchors shifted by (x·strideW, y·strideH) for every cell, row-major,
    /// the anchors of a cell contiguous (as <see cref="Core.Detection.AnchorGenerator"/>).
    /// </summary>
    private static string EmitAnchors(OnnxGraphBuilder g, string feature, string paddedH, string paddedW, float[] cellAnchors, long anchorsPerCell)
    {
        var gh = g.Shape(feature, 2, 3);
        var gw = g.Shape(feature, 3, 4);
        var strideH = g.Div(paddedH, gh);
        var strideW = g.Div(paddedW, gw);
        var zero = g.Constant(0L);
        var one = g.Constant(1L);
        var shiftsX = g.Cast(g.Mul(g.Range(zero, g.Squeeze(gw, 0), one), strideW), OnnxElementType.Float);
        var shiftsY = g.Cast(g.Mul(g.Range(zero, g.Squeeze(gh, 0), one), strideH), OnnxElementType.Float);
        var grid = g.Concat(0, gh, gw);
        var sx = g.Unsqueeze(g.Expand(g.Unsqueeze(shiftsX, 0), grid), 2);
        var sy = g.Unsqueeze(g.Expand(g.Unsqueeze(shiftsY, 1), grid), 2);
        var shifts = g.Reshape(g.Concat(2, sx, sy, sx, sy), -1, 1, 4);
        var baseAnchors = g.Initializer("cell_anchors", cellAnchors, 1, anchorsPerCell, 4);
        return g.Reshape(g.Add(shifts, baseAnchors), -1, 4);
    }
}

/// <summary>
/// Builder additions used by the heads' emitters (proposed here rather than in <see cref="OnnxGraphBuilder"/>):
/// weights of layers, box decoding and clipping, and the rank-score trick that makes ONNX
/// <c>NonMaxSuppression</c> visit equal scores in index order.
/// </summary>
internal static class OnnxGraphBuilderExtensions
{
    /// <summary>int64 [2]: the resized, unpadded image's (height, width).</summary>
    public static string ResizedSize(this OnnxImageSizes s, OnnxGraphBuilder g)
    {
        ArgumentNullException.ThrowIfNull(s);
        ArgumentNullException.ThrowIfNull(g);
        return g.Concat(0, s.ResizedHeight, s.ResizedWidth);
    }

    /// <summary>Initializers for a convolution's weight and bias (null when it has none).</summary>
    public static (string Weight, string? Bias) ConvWeights(this OnnxGraphBuilder g, string name, Conv2d conv)
    {
        ArgumentNullException.ThrowIfNull(conv);
        var w = g.Initializer(name + ".weight", conv.Weight);
        var b = conv.Bias is null ? null : g.Initializer(name + ".bias", conv.Bias);
        return (w, b);
    }

    /// <summary>A <c>Conv</c> with the stride, padding, dilation and groups of <paramref name="conv"/>.</summary>
    public static string Conv2d(this OnnxGraphBuilder g, string x, string weight, string? bias, Conv2d conv)
    {
        ArgumentNullException.ThrowIfNull(conv);
        var k = conv.Weight.Shape;
        return g.Conv(x, weight, bias, [k[2], k[3]], [conv.Stride, conv.Stride], [conv.Padding, conv.Padding, conv.Padding, conv.Padding],
            [conv.Dilation, conv.Dilation], conv.Groups);
    }

    /// <summary>A <c>Gemm</c> computing x·Wᵀ + b for a <see cref="Linear"/> layer's weights.</summary>
    public static string Linear(this OnnxGraphBuilder g, string x, string name, Linear linear)
    {
        ArgumentNullException.ThrowIfNull(linear);
        var w = g.Initializer(name + ".weight", linear.Weight);
        var b = linear.Bias is null ? null : g.Initializer(name + ".bias", linear.Bias);
        return g.Gemm(x, w, b, transB: true);
    }

    /// <summary>Widths and heights (x2 − x1, y2 − y1) of [..., 4] boxes, each [...].</summary>
    public static (string Widths, string Heights) BoxSides(this OnnxGraphBuilder g, string boxes)
    {
        var c = g.Split(boxes, -1, 1, 1, 1, 1);
        return (g.Squeeze(g.Sub(c[2], c[0]), -1), g.Squeeze(g.Sub(c[3], c[1]), -1));
    }

    /// <summary>
    /// torchvision's <c>BoxCoder.decode_single</c>: applies [..., 4] deltas to broadcastable [..., 4] reference boxes
    /// with weights (wx, wy, ww, wh), dw/dh clamped above at <paramref name="scaleClamp"/>.
    /// </summary>
    public static string DecodeBoxes(this OnnxGraphBuilder g, string deltas, string reference, (double X, double Y, double W, double H) weights, double scaleClamp)
    {
        var r = g.Split(reference, -1, 1, 1, 1, 1);
        var d = g.Split(deltas, -1, 1, 1, 1, 1);
        var widths = g.Sub(r[2], r[0]);
        var heights = g.Sub(r[3], r[1]);
        var half = g.Constant(0.5f);
        var ctrX = g.Add(r[0], g.Mul(widths, half));
        var ctrY = g.Add(r[1], g.Mul(heights, half));
        string Scaled(string v, double w) => w == 1 ? v : g.Div(v, g.Constant((float)w));
        var dx = Scaled(d[0], weights.X);
        var dy = Scaled(d[1], weights.Y);
        var clamp = g.Constant((float)scaleClamp);
        var dw = g.Min(Scaled(d[2], weights.W), clamp);
        var dh = g.Min(Scaled(d[3], weights.H), clamp);
        var predX = g.Add(g.Mul(dx, widths), ctrX);
        var predY = g.Add(g.Mul(dy, heights), ctrY);
        var halfW = g.Mul(g.Mul(g.Exp(dw), widths), half);
        var halfH = g.Mul(g.Mul(g.Exp(dh), heights), half);
        return g.Concat(-1, g.Sub(predX, halfW), g.Sub(predY, halfH), g.Add(predX, halfW), g.Add(predY, halfH));
    }

    /// <summary>Clamps [..., 4] boxes' x to [0, width] and y to [0, height] of the int64 [2] (height, width) <paramref name="imageSize"/>.</summary>
    public static string ClipBoxes(this OnnxGraphBuilder g, string boxes, string imageSize)
    {
        var size = g.Cast(imageSize, OnnxElementType.Float);
        var height = g.Slice(size, [0], [1], [0]);
        var width = g.Slice(size, [1], [2], [0]);
        var zero = g.Constant(0f);
        var c = g.Split(boxes, -1, 1, 1, 1, 1);
        string ClampTo(string v, string max) => g.Min(g.Max(v, zero), max);
        return g.Concat(-1, ClampTo(c[0], width), ClampTo(c[1], height), ClampTo(c[2], width), ClampTo(c[3], height));
    }

    /// <summary>
    /// Rank scores [n] for <c>NonMaxSuppression</c>: the valid entries of the 1-D <paramref name="scores"/> get n − r
    /// where r is their position in a descending sort that keeps equal scores in index order (TopK's tie rule);
    /// invalid ones get 0. ONNX Runtime's NMS visits boxes through a heap that leaves equal scores in no particular
    /// order; distinct integer ranks make it visit them as torchvision does (by score, then by index), and a score
    /// threshold of 0.5 drops the invalid ones.
    /// </summary>
    public static string RankScores(this OnnxGraphBuilder g, string scores, string valid)
    {
        var n = g.Shape(scores);
        var masked = g.Where(valid, scores, g.Constant(-1f));
        var (_, order) = g.TopK(masked, n, axis: 0);
        var descending = g.Cast(g.Sub(n, g.Range(g.Constant(0L), g.Squeeze(n, 0), g.Constant(1L))), OnnxElementType.Float);
        var rank = g.ScatterElements(g.ConstantOfShape(n, 0f), order, descending);
        return g.Where(valid, rank, g.Constant(0f));
    }

    /// <summary>
    /// The entries of 1-D <paramref name="values"/> ordered by decreasing 1-D <paramref name="rank"/>, at most
    /// <paramref name="limit"/> of them.
    /// </summary>
    public static string TopByRank(this OnnxGraphBuilder g, string values, string rank, long limit)
    {
        var k = g.Min(g.Ints(limit), g.Shape(rank));
        var (_, order) = g.TopK(rank, k, axis: 0);
        return g.Gather(values, order);
    }
}
