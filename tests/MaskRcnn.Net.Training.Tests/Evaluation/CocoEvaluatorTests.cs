using MaskRcnn.Net.Training.Evaluation;
using static MaskRcnn.Net.Training.Tests.Evaluation.CocoTestData;

namespace MaskRcnn.Net.Training.Tests.Evaluation;

/// <summary>
/// pycocotools is not available here, so every expectation is derived by hand from the COCOeval algorithm
/// (evaluateImg → accumulate → summarize); the derivations are in the comments. Notation: T = the 10 IoU
/// thresholds, rc / pr = the cumulative recall / precision over the score-ranked detections, P1 = 1 / (1 + 2⁻⁵²).
/// </summary>
public sealed class CocoEvaluatorTests
{
    private const double U = -1; // undefined stat

    [Fact]
    public void PerfectDetectionsScoreOneInPresentAreaRangesAndMinusOneInAbsentOnes()
    {
        // One small (10·10 = 100) and one large (100·100 = 10000) object, no medium one, both found exactly.
        var gt = new[] { Image(1, Gt(0, 0, 10, 10), Gt(200, 200, 100, 100)) };
        var dt = new[] { Dets(1, Dt(0, 0, 10, 10, 0.9), Dt(200, 200, 100, 100, 0.8)) };
        var result = EvaluateBoxes(gt, dt);

        // all: tp = [1, 2], fp = [0, 0], rc = [.5, 1], pr = [P1, 2 / (2 + 2⁻⁵²) = 1.0]; the envelope makes both 1.0,
        //      so every precision sample is exactly 1 and AP = 1.
        // small: the large gt is ignored and the large dt matched to it is ignored: pr = [P1, P1] → AP = P1.
        // medium: no gt counts (npig = 0) → −1. large: symmetric to small → P1.
        // AR1: one detection per image and category → recall .5 at every threshold.
        StatsShouldBe(result, Tight, 1, 1, 1, OneOverOnePlusEps, U, OneOverOnePlusEps, 0.5, 1, 1, 1, U, 1);
        result.AP.Should().Be(1.0);
        result.APMedium.Should().Be(-1);
        result.ARMedium.Should().Be(-1);
    }

    [Fact]
    public void IouExactlyAtAThresholdMatches()
    {
        // dt [0,6]x[0,10] vs gt [0,10]x[0,10]: IoU = 60 / 100 = 0.6 exactly; a match needs IoU ≥ t, so
        // t ∈ {.5, .55, .6} match (3 of 10), the other 7 thresholds have one false positive: rc = [0], pr = [0]
        // → precision 0 at recall 0 and nothing beyond. AP = 3·P1 / 10, AP50 = P1, AP75 = 0, AR = 3 / 10.
        // Both areas (100 and 60) are small.
        var result = EvaluateBoxes([Image(1, Gt(0, 0, 10, 10))], [Dets(1, Dt(0, 0, 6, 10, 0.9))]);
        StatsShouldBe(result, Tight, 0.3, 1, 0, 0.3, U, U, 0.3, 0.3, 0.3, 0.3, U, U);
    }

    [Fact]
    public void IouBetweenThresholdsCountsTheThresholdsBelowIt()
    {
        // IoU = 80 / 120 = 2/3: passes .5, .55, .6, .65 → AP = 0.4·P1, AR = 0.4.
        var result = EvaluateBoxes([Image(1, Gt(0, 0, 10, 10))], [Dets(1, Dt(2, 0, 10, 10, 0.9))]);
        StatsShouldBe(result, Tight, 0.4, 1, 0, 0.4, U, U, 0.4, 0.4, 0.4, 0.4, U, U);
    }

    [Fact]
    public void IouOfPointNineMatchesTheNinthThresholdOfLinspace()
    {
        // IoU = 90 / 100 = 0.9 ≥ linspace's 0.8999999999999999 (and would also be ≥ 0.9): 9 thresholds match.
        var result = EvaluateBoxes([Image(1, Gt(0, 0, 10, 10))], [Dets(1, Dt(0, 0, 9, 10, 0.9))]);
        result.AP.Should().BeApproximately(0.9, Tight);
        result.AR100.Should().BeApproximately(0.9, Tight);
        result.GetRecall(8, 0, 0, 2).Should().Be(1);
        result.GetRecall(9, 0, 0, 2).Should().Be(0);
    }

    [Fact]
    public void LowerScoredDuplicateIsAFalsePositiveThatDoesNotLowerAp()
    {
        // Ranked: exact (tp), duplicate (fp, its gt is taken). tp = [1, 1], fp = [0, 1], rc = [1, 1],
        // pr = [P1, 1 / (2 + 2⁻⁵²) = .5] → envelope [P1, .5]; searchsorted(rc, r) = 0 for every r → P1 everywhere.
        var result = EvaluateBoxes(
            [Image(1, Gt(0, 0, 10, 10))],
            [Dets(1, Dt(0, 0, 10, 10, 0.9), Dt(0, 0, 10, 10, 0.8))]);
        result.AP.Should().BeApproximately(1, Tight);
        for (var r = 0; r < 101; r++)
        {
            result.GetPrecision(0, r, 0, 0, 2).Should().Be(OneOverOnePlusEps);
        }
    }

    [Fact]
    public void HigherScoredFalsePositiveHalvesThePrecision()
    {
        // Ranked: miss (IoU 0 → fp), exact (tp). tp = [0, 1], fp = [1, 1], rc = [0, 1], pr = [0, .5] → envelope
        // [.5, .5]; r = 0 → index 0, r > 0 → index 1: every sample is .5 → AP = .5.
        var result = EvaluateBoxes(
            [Image(1, Gt(0, 0, 10, 10))],
            [Dets(1, Dt(50, 50, 10, 10, 0.9), Dt(0, 0, 10, 10, 0.8))]);
        result.AP.Should().Be(0.5);
        result.AR100.Should().Be(1);
        result.AR1.Should().Be(0); // only the miss is kept with one detection
    }

    [Fact]
    public void PrecisionCurveWithAFalsePositiveBetweenTwoHits()
    {
        // Two gts; ranked detections hit, miss, hit (all IoUs 1 or 0, so every threshold is alike).
        // tp = [1, 1, 2], fp = [0, 1, 1], npig = 2 → rc = [.5, .5, 1],
        // pr = [P1, 1 / (2 + 2⁻⁵²) = .5, 2 / (3 + 2⁻⁵²) = 2/3 (3 + 2⁻⁵² rounds to 3)].
        // Envelope from the right: [P1, 2/3, 2/3]. searchsorted(rc, r, 'left'): r ≤ .5 → 0 (P1), r > .5 → 2 (2/3).
        // recThrs[0..50] ≤ .5 (51 samples of P1), recThrs[51..100] (50 samples of 2/3).
        var result = EvaluateBoxes(
            [Image(1, Gt(0, 0, 10, 10), Gt(50, 50, 10, 10))],
            [Dets(1, Dt(0, 0, 10, 10, 0.9), Dt(100, 100, 10, 10, 0.8), Dt(50, 50, 10, 10, 0.7))]);
        for (var t = 0; t < 10; t++)
        {
            for (var r = 0; r <= 50; r++)
            {
                result.GetPrecision(t, r, 0, 0, 2).Should().Be(OneOverOnePlusEps);
            }

            for (var r = 51; r <= 100; r++)
            {
                result.GetPrecision(t, r, 0, 0, 2).Should().Be(2.0 / 3.0);
            }

            result.GetRecall(t, 0, 0, 2).Should().Be(1);
        }

        var expected = (51 * OneOverOnePlusEps + 50 * (2.0 / 3.0)) / 101;
        result.AP.Should().BeApproximately(expected, Tight); // 0.834983...
        result.AR1.Should().Be(0.5);
    }

    [Fact]
    public void CrowdRegionsAbsorbDetectionsWithoutCountingAsMisses()
    {
        // gt: a normal object and a crowd region [100,150]². Detections inside the crowd have crowd-IoU
        // = intersection / detection area = 1 and are matched to it (a crowd can take several) → ignored.
        // Ranked: crowd (.95, ignored), exact (.9, tp), crowd (.5, ignored). npig = 1 (crowds never count).
        // tp = [0, 1, 1], fp = [0, 0, 0] → rc = [0, 1, 1], pr = [0 / 2⁻⁵² = 0, P1, P1] → envelope all P1.
        var gt = new[] { Image(1, Gt(0, 0, 10, 10), Gt(100, 100, 50, 50, crowd: true)) };
        var dt = new[] { Dets(1, Dt(110, 110, 10, 10, 0.95), Dt(0, 0, 10, 10, 0.9), Dt(120, 120, 10, 10, 0.5)) };
        var result = EvaluateBoxes(gt, dt);
        result.AP.Should().BeApproximately(1, Tight);
        result.AR100.Should().Be(1);
        result.AR1.Should().Be(0); // the top detection is the ignored crowd one; the object is not found

        // Without the crowd flag the same region is an ordinary large object: the two small detections have
        // IoU 100 / 2500 and are false positives, and the region itself is missed.
        var plain = EvaluateBoxes([Image(1, Gt(0, 0, 10, 10), Gt(100, 100, 50, 50))], dt);
        plain.AP.Should().BeLessThan(0.5);
        plain.AR100.Should().Be(0.5);
    }

    [Fact]
    public void DetectionPrefersACountedGroundTruthOverABetterCrowdMatch()
    {
        // dt [0,6]x[0,10]: IoU 0.6 with the normal gt, crowd-IoU 60 / 60 = 1 with the crowd [0,100]².
        // The counted gt is visited first; once matched to it the loop stops at the first ignored gt, so for
        // t ≤ .6 the dt is a true positive. For t > .6 the normal gt fails and the crowd takes the dt (ignored):
        // no detection counts, rc = [0], pr = [0] → precision 0, recall 0. AP = 3·P1 / 10, AR = .3.
        var result = EvaluateBoxes(
            [Image(1, Gt(0, 0, 10, 10), Gt(0, 0, 100, 100, crowd: true))],
            [Dets(1, Dt(0, 0, 6, 10, 0.9))]);
        result.AP.Should().BeApproximately(0.3, Tight);
        result.AR100.Should().BeApproximately(0.3, Tight);
    }

    [Fact]
    public void MatchingTiesGoToTheLaterGroundTruth()
    {
        // Two identical gts and one detection on them: equal IoUs, the later gt wins (`iou < best` skips only
        // worse ones). Observable through a second, lower detection that then takes the first gt; both are tp.
        var result = EvaluateBoxes(
            [Image(1, Gt(0, 0, 10, 10), Gt(0, 0, 10, 10))],
            [Dets(1, Dt(0, 0, 10, 10, 0.9), Dt(0, 0, 10, 10, 0.8))]);
        result.AP.Should().Be(1); // tp = [1, 2]: pr = [P1, 1.0] → envelope 1.0
        result.AR100.Should().Be(1);
    }

    [Fact]
    public void MaxDetectionsTruncatePerImageAndCategory()
    {
        // Eleven high-scored misses, then the exact detection in 12th place.
        var detections = Enumerable.Range(0, 11).Select(i => Dt(100 + 20 * i, 300, 10, 10, 0.99 - 0.01 * i))
            .Append(Dt(0, 0, 10, 10, 0.5)).ToArray();
        var result = EvaluateBoxes([Image(1, Gt(0, 0, 10, 10))], [Dets(1, detections)]);

        // maxDets 1 and 10 keep only misses → recall 0. With 100: tp only at rank 12: rc = [0]·11 + [1],
        // pr = [0]·11 + [1 / (12 + 2⁻⁵²) = 1/12] → envelope 1/12 everywhere → AP = 1/12.
        result.AR1.Should().Be(0);
        result.AR10.Should().Be(0);
        result.AR100.Should().Be(1);
        result.AP.Should().BeApproximately(1.0 / 12.0, Tight);
        result.GetPrecision(0, 0, 0, 0, 1).Should().Be(0); // maxDets 10: pr = [0]·10
    }

    [Fact]
    public void DetectionsPastTheLargestLimitAreNeverEvaluatedAndApUsesTheLiteralLimit100()
    {
        // MaxDetections [1, 2, 3]: the exact detection ranked 4th is cut before matching, so at every limit only
        // misses remain: precision 0 at recall 0, recall 0. pycocotools' stats[0] asks for maxDets == 100, which is
        // not among the limits → −1; AP50 / AP75 and the area APs use maxDets[2] = 3 → 0.
        var detections = new[]
        {
            Dt(100, 100, 10, 10, 0.9), Dt(120, 100, 10, 10, 0.8), Dt(140, 100, 10, 10, 0.7), Dt(0, 0, 10, 10, 0.6),
        };
        var options = new CocoEvaluationOptions { MaxDetections = [3, 1, 2] }; // sorted like pycocotools
        var result = EvaluateBoxes([Image(1, Gt(0, 0, 10, 10))], [Dets(1, detections)], options);
        result.Options.MaxDetections.Should().Equal(1, 2, 3);
        StatsShouldBe(result, 0, U, 0, 0, 0, U, U, 0, 0, 0, 0, U, U);
        result.Summary.Should().Contain("maxDets=  3 ] = 0.000");
    }

    [Fact]
    public void MixedAreaRangesStepByStep()
    {
        // gts: S [0,10]² area 100 (small), M [50,90]² area 1600 (medium), L [100,200]² area 10000 (large).
        // dts: F (score .95) a 40x40 miss far away (area 1600), S exact (.9), L exact (.8); M is missed.
        var gt = new[] { Image(1, Gt(0, 0, 10, 10), Gt(50, 50, 40, 40), Gt(100, 100, 100, 100)) };
        var dt = new[] { Dets(1, Dt(300, 300, 40, 40, 0.95), Dt(0, 0, 10, 10, 0.9), Dt(100, 100, 100, 100, 0.8)) };
        var result = EvaluateBoxes(gt, dt);

        // all: ranked F fp, S tp, L tp; npig 3: rc = [0, 1/3, 2/3], pr = [0, .5, 2/3] → envelope 2/3 everywhere.
        //   searchsorted: recThrs[0] = 0 → 0; .01…0.33 → 1 (1/3 ≥ .33); .34…0.66 → 2; .67…1 → past the end (0).
        //   67 samples of 2/3, 34 zeros → AP = 67·(2/3) / 101 = 0.4422442244224422, the same at every threshold.
        //   AR100 = 2/3; AR1 keeps only F → 0.
        // small: M and L ignored; F unmatched with area 1600 outside [0, 1024] → ignored; L matched to an ignored
        //   gt → ignored. Only S counts: AP = P1, AR = 1.
        // medium: only M counts; F unmatched and medium-sized → fp; S, L matched to ignored gts → ignored.
        //   tp = 0 → AP 0, AR 0.
        // large: only L counts; F too small → ignored; S ignored: AP = P1, AR = 1.
        const double all = 67 * (2.0 / 3.0) / 101;
        StatsShouldBe(result, Tight, all, all, all, 1, 0, 1, 0, 2.0 / 3.0, 2.0 / 3.0, 1, 0, 1);
    }

    [Fact]
    public void TheAreaFieldDecidesTheRangeOfAGroundTruth()
    {
        // A 10x10 box declared with COCO area 5000 (e.g. a polygon area) is medium, not small.
        var result = EvaluateBoxes([Image(1, Gt(0, 0, 10, 10, area: 5000))], [Dets(1, Dt(0, 0, 10, 10, 0.9))]);
        StatsShouldBe(result, Tight, 1, 1, 1, U, 1, U, 1, 1, 1, U, 1, U);
    }

    [Fact]
    public void EqualScoresAcrossImagesKeepImageIdOrder()
    {
        // Two images with one gt each, one detection each at score .5: a miss on one, a hit on the other. The
        // merge is a stable sort over images in id order.
        // Miss first: tp = [0, 1], fp = [1, 1], npig 2 → rc = [0, .5], pr = [0, .5] → envelope .5;
        //   recThrs 0…0.5 (51) → .5, the rest past the end → AP = 51·.5 / 101 = 0.2524752475247525.
        // Hit first: rc = [.5, .5], pr = [P1, .5] → envelope [P1, .5] → 51 samples of P1 → AP = 51·P1 / 101.
        GroundTruthImage[] Gts(long missId, long hitId) => [Image(hitId, Gt(0, 0, 10, 10)), Image(missId, Gt(0, 0, 10, 10))];
        DetectionImage[] Dts(long missId, long hitId) => [Dets(hitId, Dt(0, 0, 10, 10, 0.5)), Dets(missId, Dt(50, 50, 10, 10, 0.5))];

        EvaluateBoxes(Gts(1, 2), Dts(1, 2)).AP.Should().BeApproximately(51 * 0.5 / 101, Tight);
        EvaluateBoxes(Gts(3, 2), Dts(3, 2)).AP.Should().BeApproximately(51 * OneOverOnePlusEps / 101, Tight);
    }

    [Fact]
    public void ImagesWithoutGroundTruthContributeFalsePositives()
    {
        // Image 2 has no objects; its detection (higher score) is a false positive: same curve as
        // HigherScoredFalsePositiveHalvesThePrecision → AP .5.
        var result = EvaluateBoxes(
            [Image(1, Gt(0, 0, 10, 10)), Image(2)],
            [Dets(1, Dt(0, 0, 10, 10, 0.8)), Dets(2, Dt(0, 0, 10, 10, 0.9))]);
        result.AP.Should().Be(0.5);
    }

    [Fact]
    public void NoDetectionsGiveZeroAndNoGroundTruthGivesMinusOne()
    {
        var missed = EvaluateBoxes([Image(1, Gt(0, 0, 10, 10))], []);
        StatsShouldBe(missed, 0, 0, 0, 0, 0, U, U, 0, 0, 0, 0, U, U);

        var empty = EvaluateBoxes([Image(1)], [Dets(1, Dt(0, 0, 10, 10, 0.9))]);
        empty.Stats.Should().AllSatisfy(s => s.Should().Be(-1));
        empty.CategoryIds.Should().BeEmpty();
    }

    [Fact]
    public void CategoriesAreEvaluatedSeparatelyAndAveraged()
    {
        // Category 1: found exactly (AP 1 — tp = [1, 2] gives precision 1.0 exactly). Category 2: missed, with a
        // false positive of category 2 elsewhere (AP 0). Category 3 is requested but has no gt → −1, left out of
        // the mean. Category 7 exists only in the detections and is ignored.
        var gt = new[] { Image(1, Gt(0, 0, 10, 10), Gt(20, 0, 10, 10), Gt(50, 50, 10, 10, category: 2)) };
        var dt = new[]
        {
            Dets(1, Dt(0, 0, 10, 10, 0.9), Dt(20, 0, 10, 10, 0.9), Dt(200, 200, 10, 10, 0.9, category: 2),
                Dt(50, 50, 10, 10, 0.99, category: 7)),
        };
        var result = EvaluateBoxes(gt, dt, new CocoEvaluationOptions { CategoryIds = [3, 2, 1] });
        result.CategoryIds.Should().Equal(1, 2, 3);
        result.Categories.Should().Equal(
            new CocoCategoryResult(1, 1, 1),
            new CocoCategoryResult(2, 0, 0),
            new CocoCategoryResult(3, -1, -1));
        result.AP.Should().Be(0.5);
    }

    [Fact]
    public void WithoutCategoriesAnyCategoryMatches()
    {
        // The detection has the wrong category but the right box: a miss with categories, a hit without.
        var gt = new[] { Image(1, Gt(0, 0, 10, 10, category: 1), Gt(50, 50, 10, 10, category: 2)) };
        var dt = new[] { Dets(1, Dt(0, 0, 10, 10, 0.9, category: 2), Dt(50, 50, 10, 10, 0.8, category: 2)) };
        var withCategories = EvaluateBoxes(gt, dt);
        withCategories.Categories.Select(c => c.AveragePrecision).Should().Equal(0, 0.5);

        var pooled = EvaluateBoxes(gt, dt, new CocoEvaluationOptions { UseCategories = false });
        pooled.AP.Should().Be(1);
        pooled.Categories.Should().BeEmpty();
    }

    [Fact]
    public void InvalidInputIsRejected()
    {
        var gt = new[] { Image(1, Gt(0, 0, 10, 10)) };
        FluentActions.Invoking(() => EvaluateBoxes(gt, [Dets(2, Dt(0, 0, 10, 10, 0.9))]))
            .Should().Throw<ArgumentException>().WithMessage("*image 2*");
        FluentActions.Invoking(() => EvaluateBoxes([Image(1), Image(1)], []))
            .Should().Throw<ArgumentException>().WithMessage("*twice*");
        FluentActions.Invoking(() => EvaluateBoxes(gt, [Dets(1, Dt(0, 0, 10, 10, double.NaN))]))
            .Should().Throw<ArgumentException>().WithMessage("*NaN score*");
        FluentActions.Invoking(() => EvaluateBoxes(gt, [Dets(1, Dt(0, double.PositiveInfinity, 10, 10, 0.5))]))
            .Should().Throw<ArgumentException>().WithMessage("*non-finite box*");
        FluentActions.Invoking(() => CocoEvaluator.Evaluate(gt, [], CocoIouType.Segmentation))
            .Should().Throw<ArgumentException>().WithMessage("*no mask*");
    }
}
