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
    public void Bad_arguments_are_rejected()
    {
        using var scope = Torch.NewDisposeScope();
        FluentActions.Invoking(() => MaskPaster.Paste(Tensor.Zeros([2, 1, 28, 14]), Tensor.Zeros([2, 4]), 10, 10)).Should().Throw<ArgumentException>().WithParameterName("masks");
        FluentActions.Invoking(() => MaskPaster.Paste(Tensor.Zeros([2, 28, 28]), Tensor.Zeros([3, 4]), 10, 10)).Should().Throw<ArgumentException>().WithParameterName("boxes");
        FluentActions.Invoking(() => MaskPaster.Paste(Tensor.Zeros([1, 28, 28]), Tensor.FromArray(new float[] { 0, 0, float.PositiveInfinity, 1 }, 1, 4), 10, 10)).Should().Throw<ArgumentException>().WithParameterName("boxes");
    }
}
