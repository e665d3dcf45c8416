using MaskRcnn.Net.Training.Evaluation;

namespace MaskRcnn.Net.Training.Tests.Evaluation;

public sealed class CocoEvaluationOptionsTests
{
    [Fact]
    public void DefaultIouThresholdsAreNumPysLinspaceValues()
    {
        // np.linspace(.5, 0.95, 10): i * (0.45 / 9) + 0.5 with step 0.049999999999999996 and the last set to 0.95.
        // The expected literals were printed by CPython with the same double arithmetic (repr of each value).
        CocoEvaluationOptions.Default.IouThresholds.Should().Equal(
            0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.8999999999999999, 0.95);
    }

    [Fact]
    public void DefaultRecallThresholdsAreNumPysLinspaceValues()
    {
        var thresholds = CocoEvaluationOptions.Default.RecallThresholds;
        thresholds.Should().HaveCount(101);
        thresholds[0].Should().Be(0.0);
        thresholds[50].Should().Be(0.5);
        thresholds[100].Should().Be(1.0);

        // i * 0.01 differs from i / 100 for these indices (CPython: repr(i * 0.01 + 0.0)).
        thresholds[35].Should().Be(0.35000000000000003);
        thresholds[57].Should().Be(0.5700000000000001);
        thresholds[95].Should().Be(0.9500000000000001);
        thresholds[33].Should().Be(0.33);
    }

    [Fact]
    public void DefaultsAreCocos()
    {
        var options = CocoEvaluationOptions.Default;
        options.MaxDetections.Should().Equal(1, 10, 100);
        options.UseCategories.Should().BeTrue();
        options.CategoryIds.Should().BeNull();
        options.AreaRanges.Should().Equal(
            new CocoAreaRange("all", 0, 1e10),
            new CocoAreaRange("small", 0, 1024),
            new CocoAreaRange("medium", 1024, 9216),
            new CocoAreaRange("large", 9216, 1e10));
    }

    [Fact]
    public void LinspaceHandlesOneAndZeroPoints()
    {
        CocoEvaluationOptions.Linspace(0.3, 0.9, 1).Should().Equal(0.3);
        CocoEvaluationOptions.Linspace(0.3, 0.9, 0).Should().BeEmpty();
        CocoEvaluationOptions.Linspace(0, 1, 3).Should().Equal(0.0, 0.5, 1.0);
    }

    [Fact]
    public void AreaRangesAreInclusive()
    {
        var medium = new CocoAreaRange("medium", 1024, 9216);
        medium.Contains(1024).Should().BeTrue();
        medium.Contains(9216).Should().BeTrue();
        medium.Contains(1023.999).Should().BeFalse();
        medium.Contains(9216.001).Should().BeFalse();
    }

    [Fact]
    public void InvalidOptionsAreRejected()
    {
        var gt = new[] { CocoTestData.Image(1, CocoTestData.Gt(0, 0, 10, 10)) };
        var act = () => CocoTestData.EvaluateBoxes(gt, [], new CocoEvaluationOptions { MaxDetections = [] });
        act.Should().Throw<ArgumentException>();
        act = () => CocoTestData.EvaluateBoxes(gt, [], new CocoEvaluationOptions { IouThresholds = [double.NaN] });
        act.Should().Throw<ArgumentException>();
        act = () => CocoTestData.EvaluateBoxes(gt, [], new CocoEvaluationOptions { AreaRanges = [] });
        act.Should().Throw<ArgumentException>();
    }
}
