using MaskRcnn.Net.Core.Detection;
using MaskRcnn.Net.Core.Masks;

namespace MaskRcnn.Net.Core.Tests.Masks;

/// <summary>
/// The plain-array paste (for ONNX Runtime) against the tensor paste (libtorch's bilinear interpolate; itself checked
/// against torchvision's paste_masks_in_image by the parity tests): same probabilities, same thresholded pixels.
/// </summary>
public class MaskPastingTests
{
    public static TheoryData<float, float, float, float, int> Boxes => new()
    {
        { 10.3f, 12.7f, 40.9f, 33.1f, 28 },   // inside, fractional corners
        { -15.5f, -3.2f, 20.4f, 18.8f, 28 },  // over the top-left border
        { 50.2f, 40.6f, 130.0f, 95.5f, 28 },  // over the bottom-right border
        { 30.0f, 30.0f, 30.4f, 30.6f, 28 },   // smaller than a pixel
        { -40f, -40f, 140f, 110f, 14 },       // larger than the image, other mask size
        { 200f, 200f, 260f, 240f, 28 },       // entirely outside
        { 5.0f, 7.0f, 70.0f, 12.0f, 7 },      // thin and wide
    };

    [Theory]
    [MemberData(nameof(Boxes))]
    public void Array_paste_equals_the_tensor_paste(float x1, float y1, float x2, float y2, int m)
    {
        const int Width = 97, Height = 71;
        using var scope = Torch.NewDisposeScope();
        var random = new Random(m * 1000 + (int)x1);
        var probabilities = Enumerable.Range(0, m * m).Select(_ => (float)random.NextDouble()).ToArray();
        var box = new BoundingBox(x1, y1, x2, y2);

        var expected = MaskPaster.Paste(Tensor.FromArray(probabilities, 1, 1, m, m), Tensor.FromArray(new[] { x1, y1, x2, y2 }, 1, 4), Height, Width)
            .ToArray<float>();
        var actual = MaskPasting.Paste(probabilities, box, Width, Height);
        actual.Should().HaveCount(Width * Height);
        var worst = actual.Zip(expected, (a, e) => Math.Abs(a - e)).Max();
        worst.Should().BeLessThan(1e-5f);
        actual.Count(v => v != 0).Should().Be(expected.Count(v => v != 0), "the same pixels are covered");

        var binary = MaskPasting.PasteBinary(probabilities, box, Width, Height, 0.5f);
        var bits = binary.ToBytes();
        for (var i = 0; i < bits.Length; i++)
        {
            if (Math.Abs(expected[i] - 0.5f) > 1e-5f)
            {
                bits[i].Should().Be(expected[i] > 0.5f ? (byte)1 : (byte)0, $"pixel {i}");
            }
        }
    }

    [Fact]
    public void Bad_arguments_are_refused()
    {
        var box = new BoundingBox(1, 1, 5, 5);
        FluentActions.Invoking(() => MaskPasting.Paste(new float[27], box, 10, 10)).Should().Throw<ArgumentException>().WithMessage("*M×M*27*");
        FluentActions.Invoking(() => MaskPasting.Paste([], box, 10, 10)).Should().Throw<ArgumentException>();
        FluentActions.Invoking(() => MaskPasting.Paste(new float[4], box, 0, 10)).Should().Throw<ArgumentException>().WithMessage("*0x10*");
        FluentActions.Invoking(() => MaskPasting.Paste(new float[4], new BoundingBox(float.NaN, 1, 5, 5), 10, 10)).Should().Throw<ArgumentException>().WithMessage("*not finite*");
    }
}
