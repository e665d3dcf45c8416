namespace MaskRcnn.Net.Core.Detection;

/// <summary>
/// Encodes boxes as (dx, dy, dw, dh) regression targets relative to reference boxes and decodes them back, with
/// torchvision's conventions (<c>models/detection/_utils.py</c>): per-coordinate weights and dw/dh clamped to
/// log(1000/16) before exponentiation.
/// </summary>
public sealed class BoxCoder
{
    /// <summary>torchvision's default clamp of dw/dh: log(1000 / 16).</summary>
    public static readonly double DefaultScaleClamp = Math.Log(1000.0 / 16);

    /// <summary>Creates a coder with weights (wx, wy, ww, wh): (1,1,1,1) for the RPN, (10,10,5,5) for the box head.</summary>
    public BoxCoder((double X, double Y, double W, double H) weights, double? scaleClamp = null)
    {
        Weights = weights;
        ScaleClamp = scaleClamp ?? DefaultScaleClamp;
    }

    /// <summary>Weights of dx, dy, dw, dh.</summary>
    public (double X, double Y, double W, double H) Weights { get; }

    /// <summary>Upper clamp of dw and dh.</summary>
    public double ScaleClamp { get; }

    /// <summary>Regression targets [N, 4] that turn <paramref name="proposals"/> into <paramref name="targets"/> (both [N, 4] xyxy).</summary>
    public Tensor Encode(Tensor targets, Tensor proposals)
    {
        Boxes.Check(targets, nameof(targets));
        Boxes.Check(proposals, nameof(proposals));
        using var scope = Torch.NewDisposeScope();
        var p = proposals.Unbind(1);
        var g = targets.Unbind(1);
        var exW = p[2] - p[0];
        var exH = p[3] - p[1];
        var exX = p[0] + 0.5 * exW;
        var exY = p[1] + 0.5 * exH;
        var gtW = g[2] - g[0];
        var gtH = g[3] - g[1];
        var gtX = g[0] + 0.5 * gtW;
        var gtY = g[1] + 0.5 * gtH;
        var dx = Weights.X * (gtX - exX) / exW;
        var dy = Weights.Y * (gtY - exY) / exH;
        var dw = Weights.W * (gtW / exW).Log();
        var dh = Weights.H * (gtH / exH).Log();
        return Tensor.Stack([dx, dy, dw, dh], 1).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Applies regression codes [N, 4·k] to reference boxes [N, 4]; returns [N, k, 4] boxes (xyxy) in the codes'
    /// dtype.
    /// </summary>
    public Tensor Decode(Tensor codes, Tensor boxes)
    {
        ArgumentNullException.ThrowIfNull(codes);
        Boxes.Check(boxes, nameof(boxes));
        var cs = codes.Shape;
        var n = boxes.Size(0);
        if (cs.Length != 2 || cs[1] % 4 != 0 || cs[0] != n)
        {
            throw new ArgumentException($"codes must be [{n}, 4·k] for {n} boxes, got [{string.Join(", ", cs)}]", nameof(codes));
        }

        using var scope = Torch.NewDisposeScope();
        var b = boxes.To(codes.DType).Unbind(1);
        var widths = b[2] - b[0];
        var heights = b[3] - b[1];
        var ctrX = (b[0] + 0.5 * widths).Unsqueeze(1);
        var ctrY = (b[1] + 0.5 * heights).Unsqueeze(1);
        widths = widths.Unsqueeze(1);
        heights = heights.Unsqueeze(1);
        var dx = codes.Slice(1, 0, cs[1], 4) / Weights.X;
        var dy = codes.Slice(1, 1, cs[1], 4) / Weights.Y;
        var dw = (codes.Slice(1, 2, cs[1], 4) / Weights.W).Clamp(max: ScaleClamp);
        var dh = (codes.Slice(1, 3, cs[1], 4) / Weights.H).Clamp(max: ScaleClamp);
        var predX = dx * widths + ctrX;
        var predY = dy * heights + ctrY;
        var halfW = dw.Exp() * widths * 0.5;
        var halfH = dh.Exp() * heights * 0.5;
        var result = Tensor.Stack([predX - halfW, predY - halfH, predX + halfW, predY + halfH], 2);
        return result.MoveToOuterDisposeScope();
    }
}
