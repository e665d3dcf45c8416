using MaskRcnn.Net.Core.Masks;
using MaskRcnn.Net.Training.Evaluation;

namespace MaskRcnn.Net.Training.Tests.Evaluation;

public sealed class CocoBoxTests
{
    [Fact]
    public void IouIsIntersectionOverUnion()
    {
        // [0,10]x[0,10] and [2,12]x[0,10]: intersection 8·10 = 80, union 100 + 100 − 80 = 120.
        CocoBox.Iou(new CocoBox(2, 0, 10, 10), new CocoBox(0, 0, 10, 10), isCrowd: false).Should().Be(80.0 / 120.0);
    }

    [Fact]
    public void CrowdIouDividesByTheDetectionArea()
    {
        // Detection [10,20]x[10,20] (area 100) inside the crowd box [0,50]x[0,50]: 100 / 100 = 1, not 100 / 2500.
        var detection = new CocoBox(10, 10, 10, 10);
        var crowd = new CocoBox(0, 0, 50, 50);
        CocoBox.Iou(detection, crowd, isCrowd: true).Should().Be(1.0);
        CocoBox.Iou(detection, crowd, isCrowd: false).Should().Be(100.0 / 2500.0);

        // Half outside: intersection 5·10 = 50 over the detection's 100.
        CocoBox.Iou(new CocoBox(45, 0, 10, 10), crowd, isCrowd: true).Should().Be(0.5);
    }

    [Fact]
    public void TouchingOrDisjointBoxesHaveZeroIou()
    {
        CocoBox.Iou(new CocoBox(10, 0, 10, 10), new CocoBox(0, 0, 10, 10), false).Should().Be(0);
        CocoBox.Iou(new CocoBox(0, 20, 10, 10), new CocoBox(0, 0, 10, 10), true).Should().Be(0);
    }

    [Fact]
    public void ConversionsAndArea()
    {
        CocoBox.FromCorners(1, 2, 11, 7).Should().Be(new CocoBox(1, 2, 10, 5));
        new CocoBox(1, 2, 10, 5).Area.Should().Be(50);
        CocoBox.FromMaskBoundingBox(new MaskBoundingBox(3, 4, 5, 6)).Should().Be(new CocoBox(3, 4, 5, 6));
    }
}
