using MaskRcnn.Net.Core.Detection;

namespace MaskRcnn.Net.Abstractions.Tests;

/// <summary>
/// The shared post-processing on hand-computed cases: a constant mask pasted without padding covers exactly the
/// truncated box (plus one pixel, as paste_masks_in_image), the threshold is strict, names and suppression follow the
/// options, and inconsistent lengths are refused naming the array.
/// </summary>
public class DetectionPostprocessingTests
{
    private static float[] Constant(float value, int m = 4, int count = 1) => Enumerable.Repeat(value, m * m * count).ToArray();

    [Fact]
    public void A_constant_mask_covers_the_truncated_box_when_above_the_threshold()
    {
        var options = new PostprocessingOptions { ClassNames = ["bg", "tumor"], MaskPadding = 0 };
        var result = DetectionPostprocessing.ToImageDetections(8, 6, [2.5f, 1.2f, 5.9f, 4.0f], [1], [0.9f], Constant(0.8f), options);
        (result.Width, result.Height).Should().Be((8, 6));
        var d = result.Detections.Should().ContainSingle().Subject;
        (d.Label, d.ClassName, d.Score).Should().Be((1, "tumor", 0.9f));
        d.Box.Should().Be(new BoundingBox(2.5f, 1.2f, 5.9f, 4.0f));
        var mask = d.Mask!;
        (mask.Width, mask.Height).Should().Be((8, 6));
        for (var y = 0; y < 6; y++)
        {
            for (var x = 0; x < 8; x++)
            {
                // x1 = trunc(2.5) = 2, x2 = trunc(5.9) = 5, y1 = 1, y2 = 4: columns 2..5 and rows 1..4 inclusive.
                mask[y, x].Should().Be(x is >= 2 and <= 5 && y is >= 1 and <= 4, $"pixel ({x}, {y})");
            }
        }

        DetectionPostprocessing.ToImageDetections(8, 6, [2.5f, 1.2f, 5.9f, 4.0f], [1], [0.9f], Constant(0.5f), options)
            .Detections[0].Mask!.Area.Should().Be(0, "the threshold is strict: 0.5 is not above 0.5");
        DetectionPostprocessing.ToImageDetections(8, 6, [2.5f, 1.2f, 5.9f, 4.0f], [1], [0.9f], Constant(0.5f), options with { MaskThreshold = 0.3 })
            .Detections[0].Mask!.Area.Should().Be(16);
    }

    [Fact]
    public void Names_missing_masks_and_empty_outputs()
    {
        var noNames = DetectionPostprocessing.ToImageDetections(10, 10, [0, 0, 5, 5, 1, 1, 3, 3], [3, 1], [0.7f, 0.6f], []);
        noNames.Detections.Select(d => d.ClassName).Should().Equal("3", "1");
        noNames.Detections.Should().OnlyContain(d => d.Mask == null, "a model without a mask head gives no masks");
        DetectionPostprocessing.ToImageDetections(10, 10, [], [], [], []).Detections.Should().BeEmpty();
    }

    [Fact]
    public void Nested_duplicates_of_the_same_class_are_suppressed_when_asked()
    {
        float[] boxes = [0, 0, 9.5f, 9.5f, 2, 2, 5, 5, 2, 2, 5, 5];
        long[] labels = [1, 1, 2];
        float[] scores = [0.9f, 0.8f, 0.7f];
        var masks = Constant(0.9f, count: 3);
        var off = DetectionPostprocessing.ToImageDetections(12, 12, boxes, labels, scores, masks, new PostprocessingOptions { MaskPadding = 0 });
        off.Detections.Select(d => d.Score).Should().Equal(0.9f, 0.8f, 0.7f);
        var on = DetectionPostprocessing.ToImageDetections(12, 12, boxes, labels, scores, masks, new PostprocessingOptions { MaskPadding = 0, SuppressContained = 0.8 });
        on.Detections.Select(d => d.Score).Should().Equal([0.9f, 0.7f], "the second lies inside the first (same class); the third is another class");
    }

    [Fact]
    public void Inconsistent_lengths_are_refused_naming_the_array()
    {
        FluentActions.Invoking(() => DetectionPostprocessing.ToImageDetections(10, 10, [0, 0, 5], [1], [0.5f], [])).Should().Throw<ArgumentException>()
            .WithParameterName("boxes").WithMessage("*1 labels but 3 box values*");
        FluentActions.Invoking(() => DetectionPostprocessing.ToImageDetections(10, 10, [0, 0, 5, 5], [1], [], [])).Should().Throw<ArgumentException>()
            .WithParameterName("scores");
        FluentActions.Invoking(() => DetectionPostprocessing.ToImageDetections(10, 10, [0, 0, 5, 5], [1], [0.5f], new float[15])).Should().Throw<ArgumentException>()
            .WithParameterName("masks").WithMessage("*15 mask values*");
        FluentActions.Invoking(() => DetectionPostprocessing.ToImageDetections(0, 10, [], [], [], [])).Should().Throw<ArgumentException>()
            .WithMessage("*0x10*");
        FluentActions.Invoking(() => DetectionPostprocessing.ToImageDetections(10, 10, [], [], [], [], new PostprocessingOptions { MaskThreshold = -1 }))
            .Should().Throw<ArgumentException>().WithParameterName("MaskThreshold");
    }
}
