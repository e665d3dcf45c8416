using MaskRcnn.Net.Core.Detection;
using MaskRcnn.Net.Core.Tests.TestSupport;

namespace MaskRcnn.Net.Core.Tests.Detection;

/// <summary>Boxes, BoxCoder, AnchorGenerator, Matcher and sampler against torchvision 0.14 on identical inputs.</summary>
public class DetectionPrimitivesParityTests
{
    private static Tensor RandomBoxes(ulong seed, long n, double scale = 100)
    {
        Torch.ManualSeed(seed);
        var xy = Tensor.Rand([n, 2]) * scale;
        var wh = Tensor.Rand([n, 2]) * (scale / 2);
        return Tensor.Cat([xy, xy + wh], 1);
    }

    [Fact]
    public void Box_ops_match_torchvision()
    {
        using var scope = Torch.NewDisposeScope();
        var a = Tensor.Cat([RandomBoxes(1, 20), Tensor.FromArray(new float[] { 5, 5, 5, 5, 3, 4, 3, 9 }, 2, 4)]);
        var b = RandomBoxes(2, 7);
        var expected = PythonOracle.Compute("""
            from torchvision.ops import boxes as B
            a = inp['a'].float(); b = inp['b'].float()
            out['area'] = B.box_area(a)
            out['iou'] = B.box_iou(a, b)
            out['clip'] = B.clip_boxes_to_image(a, (60, 45))
            out['small'] = B.remove_small_boxes(a, 12.0).double()
            for f in ['xyxy', 'xywh', 'cxcywh']:
                for t in ['xyxy', 'xywh', 'cxcywh']:
                    out[f + '_' + t] = B.box_convert(a, f, t)
            """, new Dictionary<string, Tensor> { ["a"] = a, ["b"] = b });
        Assertions.AllClose(Boxes.Area(a), expected["area"], what: "area");
        Assertions.AllClose(Boxes.Iou(a, b), expected["iou"], atol: 1e-6, what: "iou");
        Assertions.AllClose(Boxes.ClipToImage(a, 60, 45), expected["clip"], what: "clip");
        Assertions.AllClose(Boxes.RemoveSmall(a, 12.0), expected["small"], atol: 0, rtol: 0, what: "remove small");
        foreach (var f in Enum.GetValues<BoxFormat>())
        {
            foreach (var t in Enum.GetValues<BoxFormat>())
            {
                var key = $"{f.ToString().ToLowerInvariant()}_{t.ToString().ToLowerInvariant()}";
                Assertions.AllClose(Boxes.Convert(a, f, t), expected[key], atol: 2e-5, what: key);
            }
        }
    }

    [Fact]
    public void Box_coder_matches_torchvision_and_round_trips()
    {
        using var scope = Torch.NewDisposeScope();
        var proposals = RandomBoxes(3, 30);
        var gt = RandomBoxes(4, 30);
        Torch.ManualSeed(5);
        var codes = Tensor.Randn([30, 8]) * 3; // two classes, some dw/dh above the clamp
        var expected = PythonOracle.Compute("""
            from torchvision.models.detection._utils import BoxCoder
            p = inp['p'].float(); g = inp['g'].float(); c = inp['c'].float()
            bc = BoxCoder((10.0, 10.0, 5.0, 5.0))
            out['enc'] = bc.encode_single(g, p)
            out['dec'] = bc.decode(c, [p])
            out['dec_rpn'] = BoxCoder((1.0, 1.0, 1.0, 1.0)).decode_single(c[:, :4], p)
            """, new Dictionary<string, Tensor> { ["p"] = proposals, ["g"] = gt, ["c"] = codes });
        var coder = new BoxCoder((10, 10, 5, 5));
        var enc = coder.Encode(gt, proposals);
        Assertions.AllClose(enc, expected["enc"], atol: 1e-5, what: "encode");
        Assertions.AllClose(coder.Decode(codes, proposals), expected["dec"], atol: 1e-4, what: "decode");
        Assertions.AllClose(new BoxCoder((1, 1, 1, 1)).Decode(codes.Slice(1, 0, 4), proposals).Reshape(-1, 4), expected["dec_rpn"], atol: 1e-4, what: "decode rpn");
        Assertions.AllClose(coder.Decode(enc, proposals).Reshape(-1, 4).ToArray<double>(), gt.ToArray<double>(), atol: 1e-3, what: "round trip");
        FluentActions.Invoking(() => coder.Decode(Tensor.Zeros([3, 5]), proposals)).Should().Throw<ArgumentException>().WithParameterName("codes");
        FluentActions.Invoking(() => coder.Encode(Tensor.Zeros([3, 3]), proposals)).Should().Throw<ArgumentException>().WithParameterName("targets");
    }

    [Theory]
    [InlineData(800, 1216)]
    [InlineData(608, 800)]
    [InlineData(224, 352)]
    public void Anchors_match_torchvision_for_image_sizes(int h, int w)
    {
        using var scope = Torch.NewDisposeScope();
        var strides = new[] { 4, 8, 16, 32, 64 };
        var sizes = strides.Select(s => ((long)Math.Ceiling(h / (double)s), (long)Math.Ceiling(w / (double)s))).ToArray();
        var expected = PythonOracle.Compute($$"""
            from torchvision.models.detection.anchor_utils import AnchorGenerator
            from torchvision.models.detection.image_list import ImageList
            sizes = {{"[" + string.Join(", ", sizes.Select(s => $"({s.Item1}, {s.Item2})")) + "]"}}
            gen = AnchorGenerator(((32,), (64,), (128,), (256,), (512,)), ((0.5, 1.0, 2.0),) * 5)
            il = ImageList(torch.zeros(1, 3, {{h}}, {{w}}), [({{h}}, {{w}})])
            feats = [torch.zeros(1, 1, a, b) for a, b in sizes]
            out['anchors'] = gen(il, feats)[0]
            """, new Dictionary<string, Tensor>());
        using var gen = AnchorGenerator.DefaultFpn();
        var anchors = gen.Generate(h, w, sizes);
        Assertions.AllClose(anchors, expected["anchors"], atol: 0, rtol: 0, what: "anchors");
        var again = gen.Generate(h, w, sizes);
        again.ToArray<float>().Should().Equal(anchors.ToArray<float>(), "cached anchors are the same");
        gen.AnchorsPerLocation.Should().Equal(3, 3, 3, 3, 3);
    }

    [Theory]
    [InlineData(0.7, 0.3, true)]
    [InlineData(0.5, 0.5, false)]
    public void Matcher_labels_match_torchvision(double high, double low, bool allowLow)
    {
        using var scope = Torch.NewDisposeScope();
        var gt = RandomBoxes(6, 5);
        var anchors = Tensor.Cat([RandomBoxes(7, 200), gt.Slice(0, 0, 2)]); // exact duplicates create ties
        var iou = Boxes.Iou(gt, anchors);
        var expected = PythonOracle.Compute($$"""
            from torchvision.models.detection._utils import Matcher
            m = Matcher({{high.ToString(System.Globalization.CultureInfo.InvariantCulture)}}, {{low.ToString(System.Globalization.CultureInfo.InvariantCulture)}}, {{(allowLow ? "True" : "False")}})
            out['m'] = m(inp['iou'].float()).double()
            """, new Dictionary<string, Tensor> { ["iou"] = iou });
        var matches = new Matcher(high, low, allowLow).Match(iou);
        matches.DType.Should().Be(DType.Int64);
        Assertions.AllClose(matches, expected["m"], atol: 0, rtol: 0, what: "matches");
        new Matcher(high, low, allowLow).Match(Tensor.Zeros([0, 4])).ToArray<long>().Should().Equal(-1, -1, -1, -1);
    }

    [Fact]
    public void Sampler_picks_the_same_elements_as_torchvision_after_the_same_seed()
    {
        using var scope = Torch.NewDisposeScope();
        Torch.ManualSeed(8);
        var labels = Tensor.RandInt(-1, 3, [500]);
        var labels2 = Tensor.RandInt(-1, 2, [300]);
        var expected = PythonOracle.Compute("""
            from torchvision.models.detection._utils import BalancedPositiveNegativeSampler
            torch.manual_seed(42)
            s = BalancedPositiveNegativeSampler(256, 0.25)
            pos, neg = s([inp['l'].long().clamp(min=-1).where(inp['l'] != 2, torch.tensor(1.0).double()).long(), inp['l2'].long()])
            out['p0'] = pos[0]; out['n0'] = neg[0]; out['p1'] = pos[1]; out['n1'] = neg[1]
            """, new Dictionary<string, Tensor> { ["l"] = labels.To(DType.Float64), ["l2"] = labels2.To(DType.Float64) });
        Torch.ManualSeed(42);
        var binary = Tensor.Where(labels.Eq(2L), Tensor.Scalar(1L), labels);
        var result = new BalancedPositiveNegativeSampler(256, 0.25).Sample([binary, labels2]);
        Assertions.AllClose(result[0].Positive, expected["p0"], 0, 0, "positives 0");
        Assertions.AllClose(result[0].Negative, expected["n0"], 0, 0, "negatives 0");
        Assertions.AllClose(result[1].Positive, expected["p1"], 0, 0, "positives 1");
        Assertions.AllClose(result[1].Negative, expected["n1"], 0, 0, "negatives 1");
        result[0].Positive.Sum().ItemLong().Should().Be(64);
        var zeros = labels.Eq(0L).Sum().ItemLong();
        result[0].Negative.Sum().ItemLong().Should().Be(Math.Min(zeros, 256 - 64), "negatives fill the batch as far as they go");
    }

    [Fact]
    public void Bad_boxes_throw_ArgumentException_naming_the_argument()
    {
        using var scope = Torch.NewDisposeScope();
        FluentActions.Invoking(() => Boxes.Area(Tensor.Zeros([3, 5]))).Should().Throw<ArgumentException>().WithParameterName("boxes");
        FluentActions.Invoking(() => Boxes.Iou(Tensor.Zeros([3, 4]), Tensor.Zeros([4]))).Should().Throw<ArgumentException>().WithParameterName("boxes2");
        FluentActions.Invoking(() => Boxes.Area(Tensor.Zeros([3, 4], DType.Int64))).Should().Throw<ArgumentException>().WithMessage("*floating*");
        var nan = Tensor.FromArray(new float[] { 0, 0, float.NaN, 1 }, 1, 4);
        FluentActions.Invoking(() => Boxes.CheckFinite(nan, "boxes")).Should().Throw<ArgumentException>().WithMessage("*non-finite*");
        FluentActions.Invoking(() => new Matcher(0.3, 0.7)).Should().Throw<ArgumentException>();
        FluentActions.Invoking(() => new AnchorGenerator([[32]], [[0.5], [1.0]])).Should().Throw<ArgumentException>();
    }
}
