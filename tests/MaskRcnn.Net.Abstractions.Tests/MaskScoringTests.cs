namespace MaskRcnn.Net.Abstractions.Tests;

/// <summary>Mask scoring on hand-computed masks: the confidence, the rescored order, and the off default.</summary>
public class MaskScoringTests
{
    [Fact]
    public void The_confidence_is_the_mean_probability_above_the_threshold()
    {
        MaskScoring.Confidence([0.9f, 0.7f, 0.2f, 0.5f], 0.5).Should().BeApproximately(0.8f, 1e-6f, "(0.9 + 0.7) / 2; 0.5 is not above 0.5");
        MaskScoring.Confidence([0.9f, 0.7f, 0.2f, 0.5f], 0.3).Should().BeApproximately(0.7f, 1e-6f, "(0.9 + 0.7 + 0.5) / 3");
        MaskScoring.Confidence([0.1f, 0.4f], 0.5).Should().Be(0f, "an empty mask has no confidence");
        MaskScoring.Confidence([], 0.5).Should().Be(0f);
    }

    [Fact]
    public void Scores_are_multiplied_by_the_mask_confidence_and_sorted_by_the_result()
    {
        // Three 2×2 masks filling their boxes: a doubtful mask (0.55 everywhere) under the best box score, a crisp one
        // (0.95) under a lower score, and a mask with one pixel below the threshold.
        float[] boxes = [0, 0, 4, 4, 5, 5, 9, 9, 1, 6, 3, 9];
        long[] labels = [1, 1, 2];
        float[] scores = [0.9f, 0.8f, 0.7f];
        float[] masks = [0.55f, 0.55f, 0.55f, 0.55f, 0.95f, 0.95f, 0.95f, 0.95f, 0.9f, 0.8f, 0.7f, 0.1f];
        var options = new PostprocessingOptions { MaskPadding = 0 };
        var off = DetectionPostprocessing.ToImageDetections(10, 10, boxes, labels, scores, masks, options);
        off.Detections.Select(d => d.Score).Should().Equal([0.9f, 0.8f, 0.7f], "off by default: the network's scores");

        var on = DetectionPostprocessing.ToImageDetections(10, 10, boxes, labels, scores, masks, options with { MaskScoring = true });
        var expected = new[] { (0.8f * 0.95f, 1), (0.7f * 0.8f, 2), (0.9f * 0.55f, 1) };   // 0.76, 0.56, 0.495
        on.Detections.Select(d => (d.Score, d.Label)).Should().HaveCount(3);
        for (var i = 0; i < 3; i++)
        {
            on.Detections[i].Score.Should().BeApproximately(expected[i].Item1, 1e-6f);
            on.Detections[i].Label.Should().Be(expected[i].Item2);
        }

        on.Detections[0].Mask.Should().Be(off.Detections[1].Mask, "each detection keeps its own box and mask");
        on.Detections[2].Box.Should().Be(off.Detections[0].Box);
    }

    [Fact]
    public void Equal_rescored_scores_keep_their_order_and_counts_must_match()
    {
        var a = new Detection(new Core.Detection.BoundingBox(0, 0, 1, 1), 1, "a", 0.5f, null);
        var b = a with { ClassName = "b" };
        MaskScoring.Rescore([a, b], [1f, 1f]).Select(d => d.ClassName).Should().Equal("a", "b");
        FluentActions.Invoking(() => MaskScoring.Rescore([a, b], [1f])).Should().Throw<ArgumentException>().WithMessage("*2 detections but 1 confidences*");
    }

    [Fact]
    public void The_option_takes_part_in_equality() =>
        new PostprocessingOptions { MaskScoring = true }.Should().NotBe(new PostprocessingOptions());
}
