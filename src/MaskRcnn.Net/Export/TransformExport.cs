using MaskRcnn.Net.Core.Checkpoints;
using MaskRcnn.Net.Heads;

namespace MaskRcnn.Net.Export;

/// <summary>
/// The graph values describing the image sizes of one run (all computed in the graph from the input's shape).
/// Integer sizes are int64 tensors of shape [1]; float sizes float32 tensors of shape [1].
/// </summary>
/// <param name="Images">The normalised, resized and zero-padded batch, float32 [1, 3, PaddedHeight, PaddedWidth].</param>
/// <param name="InputHeight">The input image's height (int64 [1]).</param>
/// <param name="InputWidth">The input image's width (int64 [1]).</param>
/// <param name="ResizedHeight">The height after the resize, before padding (int64 [1]) — torchvision's image_sizes.</param>
/// <param name="ResizedWidth">The width after the resize, before padding (int64 [1]).</param>
/// <param name="PaddedHeight">The padded height, a multiple of SizeDivisible (int64 [1]).</param>
/// <param name="PaddedWidth">The padded width (int64 [1]).</param>
/// <param name="ResizedHeightFloat">ResizedHeight as float32 [1].</param>
/// <param name="ResizedWidthFloat">ResizedWidth as float32 [1].</param>
internal sealed record OnnxImageSizes(
    string Images,
    string InputHeight,
    string InputWidth,
    string ResizedHeight,
    string ResizedWidth,
    string PaddedHeight,
    string PaddedWidth,
    string ResizedHeightFloat,
    string ResizedWidthFloat);

/// <summary>
/// Emits torchvision's <c>GeneralizedRCNNTransform</c> as our <see cref="ImageTransform"/> runs it at inference: uint8
/// [3, H, W] → float /255 → (x − mean) / std → bilinear resize (align_corners false, the output size floor(size ·
/// scale) with torchvision's float32 scale arithmetic) → zero padding bottom/right to a multiple of SizeDivisible; and
/// the postprocess rescale of boxes back to the input size.
/// </summary>
internal static class TransformExport
{
    /// <summary>
    /// Emits the transform of the graph input <paramref name="image"/> (uint8 [3, height, width]) under
    /// <paramref name="options"/> at inference (the last MinSizes entry).
    /// </summary>
    public static OnnxImageSizes Emit(OnnxGraphBuilder g, string image, TransformOptions options)
    {
        ArgumentNullException.ThrowIfNull(g);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var mean = (options.Mean ?? TransformOptions.ImageNetMean).Select(v => (float)v).ToArray();
        var std = (options.Std ?? TransformOptions.ImageNetStd).Select(v => (float)v).ToArray();
        if (mean.Length != 3)
        {
            throw new NotSupportedException($"ONNX export: the transform has {mean.Length} channel means; the exported graph takes RGB (3 channels)");
        }

        using var _ = g.Scope("transform");

        // Pixels: as MaskRcnnModel.Predict (uint8 → float32, / 255) and ImageTransform.Normalize ((x − m) / s in float32).
        var x = g.Cast(image, OnnxElementType.Float);
        x = g.Div(x, g.Constant(255f));
        x = g.Sub(x, g.FloatsTensor("mean", mean, 3, 1, 1));
        x = g.Div(x, g.FloatsTensor("std", std, 3, 1, 1));

        // Sizes: ImageTransform.ScaleFor — float32 shorter/longer, reciprocal then multiply (two float32 roundings, as
        // PyTorch's number / tensor), min; the output size is floor(size · scale) in double (Functional.Interpolate).
        var height = g.Dim(image, 1);
        var width = g.Dim(image, 2);
        var heightF = g.Cast(height, OnnxElementType.Float);
        var widthF = g.Cast(width, OnnxElementType.Float);
        var shorter = g.Min(heightF, widthF);
        var longer = g.Max(heightF, widthF);
        var s1 = g.Mul(g.Reciprocal(shorter), g.Constant((float)options.MinSizes[^1]));
        var s2 = g.Mul(g.Reciprocal(longer), g.Constant((float)options.MaxSize));
        var scale = g.Cast(g.Min(s1, s2), OnnxElementType.Double);
        var resizedHeight = g.Cast(g.Floor(g.Mul(g.Cast(height, OnnxElementType.Double), scale)), OnnxElementType.Int64);
        var resizedWidth = g.Cast(g.Floor(g.Mul(g.Cast(width, OnnxElementType.Double), scale)), OnnxElementType.Int64);

        // Bilinear, align_corners=False, recompute_scale_factor=True, written out as PyTorch's CPU kernel computes it
        // (ONNX Resize rounds its source coordinates differently: up to 2e-4 apart on large images).
        var resized = Bilinear(g, g.Unsqueeze(x, 0), height, width, resizedHeight, resizedWidth);

        // Pad bottom/right with zeros to a multiple of SizeDivisible (ceil(h / d) · d).
        var d = (long)options.SizeDivisible;
        var paddedHeight = RoundUp(g, resizedHeight, d);
        var paddedWidth = RoundUp(g, resizedWidth, d);
        var padH = g.Sub(paddedHeight, resizedHeight);
        var padW = g.Sub(paddedWidth, resizedWidth);
        var pads = g.Concat(0, g.Ints(0, 0, 0, 0, 0, 0), padH, padW);
        var padded = g.Pad(resized, pads, g.Constant(0f));

        return new OnnxImageSizes(padded, height, width, resizedHeight, resizedWidth, paddedHeight, paddedWidth,
            g.Cast(resizedHeight, OnnxElementType.Float), g.Cast(resizedWidth, OnnxElementType.Float));
    }

    /// <summary>
    /// Maps [N, 4] boxes (x1, y1, x2, y2) from the resized image back to the input image: x·(W/W'), y·(H/H') with the
    /// ratios in float32, as <see cref="ImageTransform.ResizeBoxes"/>.
    /// </summary>
    public static string RescaleBoxes(OnnxGraphBuilder g, OnnxImageSizes sizes, string boxes)
    {
        ArgumentNullException.ThrowIfNull(g);
        ArgumentNullException.ThrowIfNull(sizes);
        using var _ = g.Scope("postprocess");
        var ratioH = g.Div(g.Cast(sizes.InputHeight, OnnxElementType.Float), sizes.ResizedHeightFloat);
        var ratioW = g.Div(g.Cast(sizes.InputWidth, OnnxElementType.Float), sizes.ResizedWidthFloat);
        var ratios = g.Concat(0, ratioW, ratioH, ratioW, ratioH); // [4], broadcast over [N, 4]
        return g.Mul(boxes, ratios);
    }

    /// <summary>
    /// Bilinear resize of NCHW <paramref name="x"/> from (inH, inW) to (outH, outW) as libtorch's CPU
    /// upsample_bilinear2d (align_corners false, no explicit scales): per axis ratio = float32(in) / out; in double,
    /// source = max(ratio · (i + 0.5) − 0.5, 0), i0 = min(floor(source), in − 1), λ1 = float32(source − i0);
    /// i1 = i0 + (i0 &lt; in − 1), λ0 = 1 − λ1; along x then y, v = fma(v0, λ0, v1·λ1) — the fused multiply-add the
    /// AVX2 kernel compiles to, computed in double (exact product, one rounding to float32 but for ties of
    /// probability ~2⁻²⁹). Bit-identical to libtorch on real images (verified against torch 1.13 on random and constant
    /// images); ONNX Resize computes its source coordinates in float32 and differs by up to 2e-4 on large images.
    /// </summary>
    private static string Bilinear(OnnxGraphBuilder g, string x, string inH, string inW, string outH, string outW)
    {
        using var _ = g.Scope("bilinear");
        var (y0, y1, ly0, ly1) = Axis(g, inH, outH);
        var (x0, x1, lx0, lx1) = Axis(g, inW, outW);
        var rows0 = g.Gather(x, y0, 2);
        var rows1 = g.Gather(x, y1, 2);
        var top = Lerp(g, g.Gather(rows0, x0, 3), lx0, g.Gather(rows0, x1, 3), lx1);
        var bottom = Lerp(g, g.Gather(rows1, x0, 3), lx0, g.Gather(rows1, x1, 3), lx1);
        return Lerp(g, top, g.Unsqueeze(ly0, 1), bottom, g.Unsqueeze(ly1, 1));
    }

    /// <summary>float32 fma(v0, w0, v1·w1): the product v1·w1 rounded to float32, then v0·w0 + it with one rounding.</summary>
    private static string Lerp(OnnxGraphBuilder g, string v0, string w0, string v1, string w1)
    {
        var second = g.Cast(g.Mul(v1, w1), OnnxElementType.Double);
        var first = g.Mul(g.Cast(v0, OnnxElementType.Double), g.Cast(w0, OnnxElementType.Double));
        return g.Cast(g.Add(first, second), OnnxElementType.Float);
    }

    private static (string I0, string I1, string L0, string L1) Axis(OnnxGraphBuilder g, string input, string output)
    {
        var ratio = g.Cast(g.Div(g.Cast(input, OnnxElementType.Float), g.Cast(output, OnnxElementType.Float)), OnnxElementType.Double);
        var index = g.Cast(g.Range(g.Constant(0L), g.Squeeze(output, 0), g.Constant(1L)), OnnxElementType.Double);
        var half = g.Constant(0.5);
        var source = g.Max(g.Sub(g.Mul(ratio, g.Add(index, half)), half), g.Constant(0.0));
        var last = g.Sub(input, g.Constant(1L));
        var i0 = g.Min(g.Cast(g.Floor(source), OnnxElementType.Int64), last);
        var i1 = g.Add(i0, g.Cast(g.Less(i0, last), OnnxElementType.Int64));
        var l1 = g.Cast(g.Sub(source, g.Cast(i0, OnnxElementType.Double)), OnnxElementType.Float);
        var l0 = g.Sub(g.Constant(1f), l1);
        return (i0, i1, l0, l1);
    }

    private static string RoundUp(OnnxGraphBuilder g, string size, long divisor)
    {
        if (divisor == 1)
        {
            return size;
        }

        var d = g.Constant(divisor);
        return g.Mul(g.Div(g.Add(size, g.Constant(divisor - 1)), d), d);
    }
}
