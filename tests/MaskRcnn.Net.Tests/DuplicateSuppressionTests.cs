using MaskRcnn.Net.Core.Detection;
using MaskRcnn.Net.Core.Masks;

namespace MaskRcnn.Net.Tests;

/// <summary>Nested-duplicate removal on hand-made masks (areas and overlaps counted by hand).</summary>
public class DuplicateSuppressionTests
{
    private const int Size = 20;

    private static Detection Square(int x1, int y1, int side, int label, float score)
    {
        var bytes = new byte[Size * Size];
        for (var y = y1; y < y1 + side; y++)
        {
            for (var x = x1; x < x1 + side; x++)
            {
                bytes[y * Size + x] = 1;
            }
        }

        return new Detection(new BoundingBox(x1, y1, x1 + side, y1 + side), label, $"c{label}", score, BinaryMask.FromBytes(bytes, Size, Size));
    }

    [Fact]
    public void A_detection_mostly_inside_a_better_one_of_its_class_is_dropped()
    {
        var big = Square(0, 0, 10, 1, 0.9f);         // 100 px
        var inside = Square(2, 2, 4, 1, 0.8f);       // 16 px, all inside big: containment 1
        var half = Square(8, 2, 4, 1, 0.7f);         // 16 px, columns 8-9 inside big: 8 of 16 = 0.5
        var otherClass = Square(3, 3, 4, 2, 0.6f);   // inside big but class 2
        var inInside = Square(3, 3, 2, 1, 0.5f);     // inside `inside` (dropped) and inside big: dropped by big
        var outside = Square(12, 12, 5, 1, 0.4f);    // no overlap
        var all = new[] { big, inside, half, otherClass, inInside, outside };

        DuplicateSuppression.Apply(all, 0.8).Should().Equal(big, half, otherClass, outside);
        DuplicateSuppression.Apply(all, 0.5).Should().Equal([big, otherClass, outside], "at 0.5 the half-inside square goes too");
        DuplicateSuppression.Apply(all, 1.0).Should().Equal([big, half, otherClass, outside], "fully inside is containment 1");
        DuplicateSuppression.Apply([], 0.8).Should().BeEmpty();
    }

    [Fact]
    public void A_lower_scoring_detection_that_holds_a_better_one_is_dropped_too()
    {
        var small = Square(4, 4, 4, 1, 0.95f);      // 16 px
        var enclosing = Square(2, 2, 10, 1, 0.6f);  // 100 px holding all of `small`: overlap / smaller area = 1
        var wide = Square(6, 6, 10, 1, 0.5f);       // 100 px holding 4 of small's 16 px: 0.25
        DuplicateSuppression.Apply([small, enclosing, wide], 0.8).Should().Equal(small, wide);
    }

    [Fact]
    public void Without_masks_boxes_are_compared()
    {
        var big = new Detection(new BoundingBox(0, 0, 10, 10), 1, "a", 0.9f, null);
        var inside = new Detection(new BoundingBox(1, 1, 5, 5), 1, "a", 0.8f, null);
        var straddling = new Detection(new BoundingBox(8, 0, 12, 4), 1, "a", 0.7f, null); // 8 of 16 inside
        DuplicateSuppression.Apply([big, inside, straddling], 0.8).Should().Equal(big, straddling);
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(1.5)]
    [InlineData(double.NaN)]
    public void Out_of_range_containment_is_refused(double value)
    {
        FluentActions.Invoking(() => DuplicateSuppression.Apply([], value)).Should().Throw<ArgumentOutOfRangeException>();
        FluentActions.Invoking(() => new MaskRcnnBuilder().WithDuplicateSuppression(value).Config.Validate())
            .Should().Throw<ArgumentException>().WithMessage("*SuppressContained*");
    }
}
