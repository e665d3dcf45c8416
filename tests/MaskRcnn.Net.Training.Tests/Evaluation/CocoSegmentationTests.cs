using MaskRcnn.Net.Core.Masks;
using MaskRcnn.Net.Training.Evaluation;
using static MaskRcnn.Net.Training.Tests.Evaluation.CocoTestData;

namespace MaskRcnn.Net.Training.Tests.Evaluation;

/// <summary>Mask ("segm") evaluation; expectations derived by hand as in <see cref="CocoEvaluatorTests"/>.</summary>
public sealed class CocoSegmentationTests
{
    private const double U = -1;

    private static GroundTruthObject MaskGt(BinaryMask mask, bool crowd = false, int category = 1) =>
        new(category, CocoBox.FromMaskBoundingBox(mask.GetBoundingBox()), mask, crowd);

    private static DetectedObject MaskDt(BinaryMask mask, double score, CocoBox? box = null) =>
        new(1, score, box ?? CocoBox.FromMaskBoundingBox(mask.GetBoundingBox()), mask);

    [Fact]
    public void MaskIouDecidesTheMatches()
    {
        // gt: 10x10 square (100 px); dt: its left 6 columns (60 px) → mask IoU 60 / 100 = 0.6, matched at
        // .5, .55, .6 → AP = 0.3·P1, AR = 0.3; both masks are small.
        var gt = new[] { new GroundTruthImage(1, 20, 20, [MaskGt(Rect(20, 20, 0, 0, 10, 10))]) };
        var dt = new[] { Dets(1, MaskDt(Rect(20, 20, 0, 0, 6, 10), 0.9)) };
        var result = CocoEvaluator.Evaluate(gt, dt, CocoIouType.Segmentation);
        result.IouType.Should().Be(CocoIouType.Segmentation);
        StatsShouldBe(result, Tight, 0.3, 1, 0, 0.3, U, U, 0.3, 0.3, 0.3, 0.3, U, U);
    }

    [Fact]
    public void MaskIouIgnoresTheBoxes()
    {
        // Same masks, but the detection's box is far away: segm still sees IoU 0.6; bbox sees 0.
        var gt = new[] { new GroundTruthImage(1, 20, 20, [MaskGt(Rect(20, 20, 0, 0, 10, 10))]) };
        var dt = new[] { Dets(1, MaskDt(Rect(20, 20, 0, 0, 6, 10), 0.9, new CocoBox(15, 15, 5, 5))) };
        CocoEvaluator.Evaluate(gt, dt, CocoIouType.Segmentation).AP.Should().BeApproximately(0.3, Tight);
        CocoEvaluator.Evaluate(gt, dt, CocoIouType.BoundingBox).AP.Should().Be(0);
    }

    [Fact]
    public void CrowdMaskAbsorbsDetectionsInsideIt()
    {
        // Crowd 10x10 at (10, 10); the 4x4 detection inside it has crowd-IoU 16 / 16 = 1 → matched to the crowd,
        // ignored. Ranked: crowd dt (ignored), exact dt (tp): rc = [0, 1], pr = [0, P1] → envelope P1 → AP ≈ 1.
        var gt = new[]
        {
            new GroundTruthImage(1, 20, 20, [MaskGt(Rect(20, 20, 0, 0, 5, 5)), MaskGt(Rect(20, 20, 10, 10, 10, 10), crowd: true)]),
        };
        var dt = new[] { Dets(1, MaskDt(Rect(20, 20, 12, 12, 4, 4), 0.95), MaskDt(Rect(20, 20, 0, 0, 5, 5), 0.9)) };
        var result = CocoEvaluator.Evaluate(gt, dt, CocoIouType.Segmentation);
        result.AP.Should().BeApproximately(1, Tight);
        result.AR100.Should().Be(1);
    }

    [Fact]
    public void DetectionAreaIsTheMaskAreaForSegmAndTheBoxAreaForBbox()
    {
        // One large object (100x100 mask and box), found exactly (score .8). A false positive (score .9) has a
        // 2x2 mask (area 4) but a 100x100 box elsewhere (area 10000).
        // segm, large range: the fp is unmatched and its area 4 is outside [96², 1e10] → ignored → APl = P1.
        // bbox, large range: its area 10000 is inside → counted fp, ranked first: pr = [0, .5] → APl = .5.
        var gt = new[] { new GroundTruthImage(1, 200, 200, [MaskGt(Rect(200, 200, 0, 0, 100, 100))]) };
        var dt = new[]
        {
            Dets(1,
                MaskDt(Rect(200, 200, 150, 150, 2, 2), 0.9, new CocoBox(100, 100, 100, 100)),
                MaskDt(Rect(200, 200, 0, 0, 100, 100), 0.8)),
        };

        var segm = CocoEvaluator.Evaluate(gt, dt, CocoIouType.Segmentation);
        segm.APLarge.Should().BeApproximately(1, Tight);
        segm.AP.Should().Be(0.5); // "all" includes area 4: ranked fp, tp → .5 as for boxes
        segm.APSmall.Should().Be(-1);

        var bbox = CocoEvaluator.Evaluate(gt, dt, CocoIouType.BoundingBox);
        bbox.APLarge.Should().Be(0.5);
    }

    [Fact]
    public void GroundTruthAreaFallsBackToTheMaskThenTheBox()
    {
        var mask = Rect(20, 20, 0, 0, 10, 10);
        new GroundTruthObject(1, new CocoBox(0, 0, 50, 50), mask).EffectiveArea.Should().Be(100);
        new GroundTruthObject(1, new CocoBox(0, 0, 50, 50)).EffectiveArea.Should().Be(2500);
        new GroundTruthObject(1, new CocoBox(0, 0, 50, 50), mask, area: 7).EffectiveArea.Should().Be(7);
    }

    [Fact]
    public void MasksMustHaveTheImageSize()
    {
        var gt = new[] { new GroundTruthImage(1, 20, 20, [MaskGt(Rect(20, 20, 0, 0, 10, 10))]) };
        var dt = new[] { Dets(1, MaskDt(Rect(10, 20, 0, 0, 6, 10), 0.9)) };
        FluentActions.Invoking(() => CocoEvaluator.Evaluate(gt, dt, CocoIouType.Segmentation))
            .Should().Throw<ArgumentException>().WithMessage("*10x20 mask*20x20*");
    }
}
