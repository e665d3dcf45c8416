using MaskRcnn.Net.Core.Detection;
using MaskRcnn.Net.Core.Tests.TestSupport;

namespace MaskRcnn.Net.Core.Tests.Detection;

public class MaskPasterTests
{
    [Fact]
    public void Paste_matches_torchvision_paste_masks_in_image()
    {
        using var scope = Torch.NewDisposeScope();
        Torch.ManualSeed(11);
        var masks = Tensor.Rand([6, 1, 28, 28]);
        // Inside, touching the border, partly outside, tiny (< 1 px), and fully outside the 50x70 image.
        var boxes = Tensor.FromArray(new float[]
        {
            10.3f, 5.7f, 40.2f, 30.9f,
            0, 0, 69.9f, 49.9f,
            -10, -5, 20, 12,
            30, 30, 30.4f, 30.2f,
            60.5f, 40.1f, 90, 80,
            100, 100, 120, 130,
        }, 6, 4);
        var expected = PythonOracle.Compute("""
            from torchvision.models.detection.roi_heads import paste_masks_in_image
            out['p'] = paste_masks_in_image(inp['m'].float(), inp['b'].float(), (50, 70), padding=1)
            out['p0'] = paste_masks_in_image(inp['m'][:3].float(), inp['b'][:3].float(), (50, 70), padding=0)
            """, new Dictionary<string, Tensor> { ["m"] = masks.Slice(0, 0, 5), ["b"] = boxes.Slice(0, 0, 5) });
        Assertions.AllClose(MaskPaster.Paste(masks.Slice(0, 0, 5), boxes.Slice(0, 0, 5), 50, 70), expected["p"], atol: 1e-6, what: "pasted");
        Assertions.AllClose(MaskPaster.Paste(masks.Slice(0, 0, 3), boxes.Slice(0, 0, 3), 50, 70, padding: 0), expected["p0"], atol: 1e-6, what: "pasted, no padding");
        MaskPaster.Paste(masks.Slice(0, 5, 6), boxes.Slice(0, 5, 6), 50, 70).Sum().ItemDouble().Should().Be(0, "a box outside the image pastes nothing");
        MaskPaster.Paste(Tensor.Zeros([0, 1, 28, 28]), Tensor.Zeros([0, 4]), 50, 70).Shape.Should().Equal(0, 1, 50, 70);
    }

    [Fact]
    public void Aligned_paste_matches_detectron2s_grid_sample_paste_on_tensors_and_arrays()
    {
        using var scope = Torch.NewDisposeScope();
        Torch.ManualSeed(12);
        var masks = Tensor.Rand([7, 1, 28, 28]);
        // Inside, touching the border, partly outside, tiny (< 1 px), partly outside on the far side, fully outside,
        // and inverted (no pixel).
        float[] values =
        [
            10.3f, 5.7f, 40.2f, 30.9f,
            0, 0, 70, 50,
            -10, -5, 20, 12,
            30, 30, 30.4f, 30.2f,
            60.5f, 40.1f, 90, 80,
            100, 100, 120, 130,
            20, 20, 10, 25,
        ];
        var boxes = Tensor.FromArray(values, 7, 4);

        // detectron2's _do_paste_mask: pixel centres (k + 0.5) normalised to the box, grid_sample(align_corners=False)
        // with zero padding, evaluated over the whole image.
        var expected = PythonOracle.Compute("""
            import torch.nn.functional as F
            m, b = inp['m'].float(), inp['b'].float()
            H, W = 50, 70
            res = []
            for i in range(m.shape[0]):
                x0, y0, x1, y1 = b[i].tolist()
                if x1 <= x0 or y1 <= y0:
                    res.append(torch.zeros(1, H, W)); continue
                ys = (torch.arange(H, dtype=torch.float32) + 0.5 - y0) / (y1 - y0) * 2 - 1
                xs = (torch.arange(W, dtype=torch.float32) + 0.5 - x0) / (x1 - x0) * 2 - 1
                gy, gx = torch.meshgrid(ys, xs, indexing='ij')
                grid = torch.stack([gx, gy], dim=-1)[None]
                res.append(F.grid_sample(m[i:i + 1], grid, align_corners=False)[0])
            out['p'] = torch.stack(res)
            """, new Dictionary<string, Tensor> { ["m"] = masks, ["b"] = boxes });

        var pasted = MaskPaster.PasteAligned(masks, boxes, 50, 70);
        Assertions.AllClose(pasted, expected["p"], atol: 1e-5, what: "aligned paste (tensors)");
        for (var i = 0; i < 7; i++)
        {
            var box = new BoundingBox(values[4 * i], values[4 * i + 1], values[4 * i + 2], values[4 * i + 3]);
            var plane = MaskRcnn.Net.Core.Masks.MaskPasting.PasteAligned(masks.Select(0, i).Contiguous().ToArray<float>(), box, 70, 50);
            Assertions.AllClose(Tensor.FromArray(plane, 1, 1, 50, 70), Slice(expected["p"], i), atol: 1e-5, what: $"aligned paste (arrays), box {i}");
        }

        pasted.Slice(0, 5, 7).Sum().ItemDouble().Should().Be(0, "a box outside the image or inverted pastes nothing");
        MaskPaster.PasteAligned(Tensor.Zeros([0, 1, 28, 28]), Tensor.Zeros([0, 4]), 50, 70).Shape.Should().Equal(0, 1, 50, 70);
    }

    private static (double[] Data, long[] Shape) Slice((double[] Data, long[] Shape) all, int i)
    {
        var plane = (int)(all.Shape[1] * all.Shape[2] * all.Shape[3]);
        return (all.Data.Skip(i * plane).Take(plane).ToArray(), [1, all.Shape[1], all.Shape[2], all.Shape[3]]);
    }

    [Fact]
    public void Aligned_paste_puts_each_cell_on_the_pixel_it_covers()
    {
        // A 6x6 mask in a box covering exactly pixels 3..8 x 2..7: every pixel centre is a cell centre, so the pasted
        // pixels are the mask's values and every other pixel is 0.
        var values = Enumerable.Range(0, 36).Select(v => (v + 1) / 36f).ToArray();
        var plane = MaskRcnn.Net.Core.Masks.MaskPasting.PasteAligned(values, new BoundingBox(3, 2, 9, 8), 12, 10);
        for (var y = 0; y < 10; y++)
        {
            for (var x = 0; x < 12; x++)
            {
                var expected = x is >= 3 and < 9 && y is >= 2 and < 8 ? values[(y - 2) * 6 + (x - 3)] : 0f;
                plane[y * 12 + x].Should().BeApproximately(expected, 1e-6f, $"pixel ({y}, {x})");
            }
        }

        // Three cells over six pixels [3, 9): pixel centres fall at cell coordinates -0.75, -0.25, 0.25, … 2.75 (cell
        // centres at 0, 1, 2, zero beyond), so pixels 2..9 get these weights, by hand.
        var (first, count, weights) = MaskRcnn.Net.Core.Masks.MaskPasting.AlignedWeights(3, 9, 3, 20);
        (first, count).Should().Be((2, 8));
        weights.Should().Equal(
            0.25f, 0, 0,
            0.75f, 0, 0,
            0.75f, 0.25f, 0,
            0.25f, 0.75f, 0,
            0, 0.75f, 0.25f,
            0, 0.25f, 0.75f,
            0, 0, 0.75f,
            0, 0, 0.25f);
        MaskRcnn.Net.Core.Masks.MaskPasting.AlignedWeights(-8, -2, 3, 20).Count.Should().Be(0, "a span left of the image reaches no pixel");
        MaskRcnn.Net.Core.Masks.MaskPasting.AlignedWeights(5, 5, 3, 20).Count.Should().Be(0, "an empty span reaches no pixel");

        // torchvision's paste of the same mask rounds and stretches the box: it does not reproduce the cells.
        var tv = MaskRcnn.Net.Core.Masks.MaskPasting.Paste(values, new BoundingBox(3, 2, 9, 8), 12, 10);
        Enumerable.Range(0, 120).Max(k => Math.Abs(tv[k] - plane[k])).Should().BeGreaterThan(0.05f);
    }

    [Fact]
    public void Bad_arguments_are_rejected()
    {
        using var scope = Torch.NewDisposeScope();
        FluentActions.Invoking(() => MaskPaster.Paste(Tensor.Zeros([2, 1, 28, 14]), Tensor.Zeros([2, 4]), 10, 10)).Should().Throw<ArgumentException>().WithParameterName("masks");
        FluentActions.Invoking(() => MaskPaster.Paste(Tensor.Zeros([2, 28, 28]), Tensor.Zeros([3, 4]), 10, 10)).Should().Throw<ArgumentException>().WithParameterName("boxes");
        FluentActions.Invoking(() => MaskPaster.Paste(Tensor.Zeros([1, 28, 28]), Tensor.FromArray(new float[] { 0, 0, float.PositiveInfinity, 1 }, 1, 4), 10, 10)).Should().Throw<ArgumentException>().WithParameterName("boxes");
        FluentActions.Invoking(() => MaskPaster.PasteAligned(Tensor.Zeros([2, 1, 28, 14]), Tensor.Zeros([2, 4]), 10, 10)).Should().Throw<ArgumentException>().WithParameterName("masks");
        FluentActions.Invoking(() => MaskPaster.PasteAligned(Tensor.Zeros([2, 28, 28]), Tensor.Zeros([3, 4]), 10, 10)).Should().Throw<ArgumentException>().WithParameterName("boxes");
        FluentActions.Invoking(() => MaskPaster.PasteAligned(Tensor.Zeros([1, 28, 28]), Tensor.FromArray(new float[] { 0, float.NaN, 4, 1 }, 1, 4), 10, 10)).Should().Throw<ArgumentException>().WithParameterName("boxes");
        FluentActions.Invoking(() => MaskRcnn.Net.Core.Masks.MaskPasting.PasteAligned(new float[27], new BoundingBox(0, 0, 4, 4), 10, 10)).Should().Throw<ArgumentException>().WithParameterName("mask");
        FluentActions.Invoking(() => MaskRcnn.Net.Core.Masks.MaskPasting.PasteAligned(new float[4], new BoundingBox(0, 0, float.NaN, 4), 10, 10)).Should().Throw<ArgumentException>().WithParameterName("box");
    }
}
