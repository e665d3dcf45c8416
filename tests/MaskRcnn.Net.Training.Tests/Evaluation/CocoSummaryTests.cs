using MaskRcnn.Net.Training.Evaluation;
using static MaskRcnn.Net.Training.Tests.Evaluation.CocoTestData;

namespace MaskRcnn.Net.Training.Tests.Evaluation;

public sealed class CocoSummaryTests
{
    [Fact]
    public void SummaryHasPycocotoolsLayout()
    {
        // IoU 0.6 case of CocoEvaluatorTests: stats .3, 1, 0, .3, −1, −1, .3, .3, .3, .3, −1, −1. The layout is
        // pycocotools' ' {:<18} {} @[ IoU={:<9} | area={:>6s} | maxDets={:>3d} ] = {:0.3f}'.
        var result = EvaluateBoxes([Image(1, Gt(0, 0, 10, 10))], [Dets(1, Dt(0, 0, 6, 10, 0.9))]);
        const string expected =
            " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.300\n" +
            " Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=100 ] = 1.000\n" +
            " Average Precision  (AP) @[ IoU=0.75      | area=   all | maxDets=100 ] = 0.000\n" +
            " Average Precision  (AP) @[ IoU=0.50:0.95 | area= small | maxDets=100 ] = 0.300\n" +
            " Average Precision  (AP) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ] = -1.000\n" +
            " Average Precision  (AP) @[ IoU=0.50:0.95 | area= large | maxDets=100 ] = -1.000\n" +
            " Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=  1 ] = 0.300\n" +
            " Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets= 10 ] = 0.300\n" +
            " Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.300\n" +
            " Average Recall     (AR) @[ IoU=0.50:0.95 | area= small | maxDets=100 ] = 0.300\n" +
            " Average Recall     (AR) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ] = -1.000\n" +
            " Average Recall     (AR) @[ IoU=0.50:0.95 | area= large | maxDets=100 ] = -1.000\n";
        result.Summary.Should().Be(expected);
        result.ToString().Should().Be(expected);
    }

    [Fact]
    public void SummaryRoundsExactTiesToEvenLikePython()
    {
        // Eight gts, five detections at box IoU exactly 0.5 (matched only at t = .5): recall 5/8 at t = .5 and 0 at
        // the other nine → AR = 0.625 / 10 = 0.0625, exactly representable. Python formats it '0.062'
        // ('{:0.3f}'.format(0.0625) == '0.062', round-half-even on the exact binary value).
        var gts = Enumerable.Range(0, 8).Select(i => Gt(20 * i, 0, 10, 10)).ToArray();
        var dts = Enumerable.Range(0, 5).Select(i => Dt(20 * i, 0, 5, 10, 0.9 - 0.1 * i)).ToArray();
        var result = EvaluateBoxes([Image(1, gts)], [Dets(1, dts)]);
        result.AR100.Should().Be(0.0625);
        result.Summary.Should().Contain("area=   all | maxDets=100 ] = 0.062\n");
    }
}
