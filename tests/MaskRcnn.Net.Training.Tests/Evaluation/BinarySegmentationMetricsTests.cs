using MaskRcnn.Net.Core.Masks;
using MaskRcnn.Net.Training.Evaluation;

namespace MaskRcnn.Net.Training.Tests.Evaluation;

public class BinarySegmentationMetricsTests
{
    private static BinaryMask Rect(int h, int w, int y0, int x0, int y1, int x1)
    {
        var bits = new bool[h * w];
        for (var y = y0; y < y1; y++)
        {
            for (var x = x0; x < x1; x++)
            {
                bits[y * w + x] = true;
            }
        }

        return BinaryMask.FromBools(bits, h, w);
    }

    [Fact]
    public void Overlap_of_unions_matches_hand_computed_iou_and_dice()
    {
        // Truth: two 4x4 squares (rows 0-3, cols 0-3 and cols 6-9) = 32 px. Prediction: rows 0-3, cols 2-7 = 24 px,
        // overlapping 2 columns of each square = 16 px. Union = 32 + 24 - 16 = 40.
        var truth = new[] { Rect(10, 10, 0, 0, 4, 4), Rect(10, 10, 0, 6, 4, 10) };
        var predicted = new[] { Rect(10, 10, 0, 2, 4, 6), Rect(10, 10, 0, 4, 4, 8) }; // overlapping predictions count once
        var o = BinarySegmentationMetrics.Compare(7, 10, 10, predicted, truth);
        o.Should().Be(new ImageOverlap(7, 16, 24, 32));
        o.Iou.Should().BeApproximately(16.0 / 40, 1e-12);
        o.Dice.Should().BeApproximately(32.0 / 56, 1e-12);
    }

    [Fact]
    public void Empty_prediction_on_an_empty_image_is_perfect_and_a_miss_is_zero()
    {
        var none = BinarySegmentationMetrics.Compare(1, 5, 5, [], []);
        none.Iou.Should().Be(1);
        none.Dice.Should().Be(1);
        var miss = BinarySegmentationMetrics.Compare(2, 5, 5, [], [Rect(5, 5, 1, 1, 3, 3)]);
        miss.Iou.Should().Be(0);
        miss.Dice.Should().Be(0);

        var result = new BinarySegmentationResult([none, miss, new ImageOverlap(3, 3, 4, 5)]);
        result.MeanIou.Should().BeApproximately((1 + 0 + 0.5) / 3, 1e-12);
        result.MeanDice.Should().BeApproximately((1 + 0 + 6.0 / 9) / 3, 1e-12);
        result.PooledIou.Should().BeApproximately(3.0 / (4 + 4 + 5 - 3), 1e-12);
        result.PooledDice.Should().BeApproximately(6.0 / 13, 1e-12);
    }

    [Fact]
    public void A_mask_of_the_wrong_size_is_rejected_with_both_sizes()
    {
        var act = () => BinarySegmentationMetrics.Compare(1, 5, 5, [Rect(4, 5, 0, 0, 1, 1)], []);
        act.Should().Throw<ArgumentException>().WithMessage("*predicted mask 0 is 4x5*5x5*");
    }
}
