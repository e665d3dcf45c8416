using MaskRcnn.Net.Core.Tests.TestSupport;
using MaskRcnn.Net.Heads;

namespace MaskRcnn.Net.Tests;

/// <summary>
/// The mask head's targets (<see cref="RoIHeads.ProjectMasksOnBoxes"/>): torchvision's project_masks_on_boxes, and
/// the half-pixel-corrected crop of <see cref="RoIHeadsOptions.AlignedMaskTargets"/>.
/// </summary>
public class MaskTargetTests
{
    [Fact]
    public void Aligned_targets_sample_the_pixels_a_box_covers_and_unaligned_ones_half_a_pixel_further()
    {
        using var scope = Torch.NewDisposeScope();
        // A 16x16 mask whose pixels 4..11 (rows and columns) are set; the proposal covers exactly those pixels,
        // [4, 12) in continuous coordinates, and M = 8: one target cell per pixel.
        var mask = new float[16 * 16];
        for (var y = 4; y < 12; y++)
        {
            for (var x = 4; x < 12; x++)
            {
                mask[y * 16 + x] = 1;
            }
        }

        var gt = Tensor.FromArray(mask, 1, 16, 16);
        var box = Tensor.FromArray(new float[] { 4, 4, 12, 12 }, 1, 4);
        var matched = Tensor.FromArray(new long[] { 0 });

        // Aligned: cell i samples pixel 4 + i, all inside the square.
        RoIHeads.ProjectMasksOnBoxes(gt, box, matched, 8, aligned: true).ToArray<float>().Should().AllSatisfy(v => v.Should().Be(1f));

        // Unaligned (torchvision): cell i samples at 4.5 + i, so the last row and column straddle the edge (0.5)
        // and the last cell is a quarter inside.
        var plain = RoIHeads.ProjectMasksOnBoxes(gt, box, matched, 8).ToArray<float>();
        for (var y = 0; y < 8; y++)
        {
            for (var x = 0; x < 8; x++)
            {
                var expected = (y == 7 ? 0.5f : 1f) * (x == 7 ? 0.5f : 1f);
                plain[y * 8 + x].Should().Be(expected, $"cell ({y}, {x})");
            }
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Targets_match_torchvision(bool aligned)
    {
        using var scope = Torch.NewDisposeScope();
        Torch.ManualSeed(5);
        var gt = Tensor.Rand([3, 40, 52]).Gt(0.5).To(DType.Float32);
        var xy = Tensor.Rand([9, 2]) * 40;
        var wh = Tensor.Rand([9, 2]) * 20 + 0.5;
        var boxes = Tensor.Cat([xy, xy + wh], 1);
        var matched = Tensor.FromArray(new long[] { 0, 2, 1, 1, 0, 2, 2, 0, 1 });
        var expected = PythonOracle.Compute($$"""
            from torchvision.models.detection.roi_heads import project_masks_on_boxes
            from torchvision.ops import roi_align
            gt, boxes, matched = inp['gt'].float(), inp['boxes'].float(), inp['matched'].long()
            if {{(aligned ? "True" : "False")}}:
                rois = torch.cat([matched[:, None].float(), boxes], dim=1)
                out['t'] = roi_align(gt[:, None], rois, (28, 28), 1.0, aligned=True)[:, 0]
            else:
                out['t'] = project_masks_on_boxes(gt, boxes, matched, 28)
            """, new Dictionary<string, Tensor> { ["gt"] = gt, ["boxes"] = boxes, ["matched"] = matched.To(DType.Float64) });
        var targets = RoIHeads.ProjectMasksOnBoxes(gt, boxes, matched, 28, aligned);
        Assertions.AllClose(targets, expected["t"], atol: 1e-6, what: $"mask targets (aligned={aligned})");
    }
}
