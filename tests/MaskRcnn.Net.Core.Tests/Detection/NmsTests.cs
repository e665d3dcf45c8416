using MaskRcnn.Net.Core.Detection;
using MaskRcnn.Net.Core.Tests.TestSupport;
using Xunit.Abstractions;

namespace MaskRcnn.Net.Core.Tests.Detection;

/// <summary>Nms.Apply and Nms.Batched against torchvision.ops.nms / batched_nms (exact keep sets and order).</summary>
public class NmsTests(ITestOutputHelper output)
{
    /// <summary>Random boxes in a 100×100 area; <paramref name="quantize"/> &gt; 0 rounds scores to that many levels (ties).</summary>
    private static (Tensor Boxes, Tensor Scores, Tensor Classes) RandomCase(int seed, int n, int quantize = 0, int classes = 1,
        DType dtype = DType.Float32)
    {
        var rng = new Random(seed);
        var b = new double[n * 4];
        var s = new double[n];
        var c = new long[n];
        for (var i = 0; i < n; i++)
        {
            var x = rng.NextDouble() * 100;
            var y = rng.NextDouble() * 100;
            b[4 * i] = x;
            b[4 * i + 1] = y;
            b[4 * i + 2] = x + 5 + (rng.NextDouble() * 40);
            b[4 * i + 3] = y + 5 + (rng.NextDouble() * 40);
            s[i] = quantize > 0 ? Math.Round(rng.NextDouble() * quantize) / quantize : rng.NextDouble();
            c[i] = rng.Next(classes);
        }

        using var b64 = Tensor.FromArray(b, n, 4);
        using var s64 = Tensor.FromArray(s);
        return (b64.To(dtype), s64.To(dtype), Tensor.FromArray(c));
    }

    private static long[] Longs((double[] Data, long[] Shape) r) => r.Data.Select(v => (long)v).ToArray();

    [Fact]
    public void Nms_matches_torchvision_on_random_boxes_with_and_without_score_ties()
    {
        using var scope = Torch.NewDisposeScope();
        var inputs = new Dictionary<string, Tensor>();
        var cases = new List<(string Key, Tensor Boxes, Tensor Scores, double Threshold)>();
        foreach (var (seed, n, quantize) in new[] { (1, 400, 0), (2, 300, 4), (3, 200, 1), (4, 64, 2) })
        {
            var (boxes, scores, _) = RandomCase(seed, n, quantize);
            inputs[$"b{seed}"] = boxes;
            inputs[$"s{seed}"] = scores;
            foreach (var t in new[] { 0.3, 0.5, 0.7 })
            {
                cases.Add(($"k{seed}_{(int)(t * 10)}", boxes, scores, t));
            }
        }

        var expected = PythonOracle.Compute("""
            from torchvision.ops import nms
            for seed in (1, 2, 3, 4):
                for t in (0.3, 0.5, 0.7):
                    out[f'k{seed}_{int(t * 10)}'] = nms(inp[f'b{seed}'].float(), inp[f's{seed}'].float(), t)
            """, inputs);
        foreach (var (key, boxes, scores, t) in cases)
        {
            var keep = Nms.Apply(boxes, scores, t);
            keep.DType.Should().Be(DType.Int64);
            keep.ToArray<long>().Should().Equal(Longs(expected[key]), key);
            output.WriteLine($"{key}: kept {keep.NumEl} of {boxes.Size(0)}, identical to torchvision");
        }
    }

    [Fact]
    public void Nms_edge_cases_match_torchvision()
    {
        using var scope = Torch.NewDisposeScope();
        // 0-1: IoU exactly 0.5; 2-3: zero-area boxes (IoU 0/0); 4-7: identical boxes with tied scores;
        // 8: a box nested in 4; 9-10 another exact-half pair, scores tied with 0-1.
        var boxes = Tensor.FromArray(new float[]
        {
            0, 0, 10, 10, 0, 0, 10, 5,
            5, 5, 5, 5, 5, 5, 5, 5,
            20, 20, 30, 30, 20, 20, 30, 30, 20, 20, 30, 30, 20, 20, 30, 30,
            21, 21, 29, 29,
            50, 50, 54, 54, 50, 52, 54, 54,
        }, 11, 4);
        var scores = Tensor.FromArray(new float[] { 0.9f, 0.8f, 0.7f, 0.7f, 0.6f, 0.6f, 0.6f, 0.6f, 0.95f, 0.9f, 0.8f });
        var expected = PythonOracle.Compute("""
            from torchvision.ops import nms
            b = inp['b'].float(); s = inp['s'].float()
            for t in (0.0, 0.25, 0.49, 0.5, 0.51, 1.0):
                out[f't{int(t * 100)}'] = nms(b, s, t)
            out['one'] = nms(b[:1], s[:1], 0.5)
            out['tie'] = nms(b[4:8], s[4:8], 0.5)
            """, new Dictionary<string, Tensor> { ["b"] = boxes, ["s"] = scores });
        foreach (var t in new[] { 0.0, 0.25, 0.49, 0.5, 0.51, 1.0 })
        {
            Nms.Apply(boxes, scores, t).ToArray<long>().Should().Equal(Longs(expected[$"t{(int)(t * 100)}"]), $"threshold {t}");
        }

        // IoU exactly at the threshold does not suppress; just above it does.
        Nms.Apply(boxes.Slice(0, 0, 2), scores.Slice(0, 0, 2), 0.5).ToArray<long>().Should().Equal(0, 1);
        Nms.Apply(boxes.Slice(0, 0, 2), scores.Slice(0, 0, 2), 0.49).ToArray<long>().Should().Equal(0);
        // Zero-area boxes never suppress each other (0/0 is not greater than the threshold).
        Nms.Apply(boxes.Slice(0, 2, 4), scores.Slice(0, 2, 4), 0.5).ToArray<long>().Should().Equal(0, 1);
        // Identical boxes with equal scores: the first one in input order wins.
        Nms.Apply(boxes.Slice(0, 4, 8), scores.Slice(0, 4, 8), 0.5).ToArray<long>().Should().Equal(Longs(expected["tie"]));
        Nms.Apply(boxes.Slice(0, 4, 8), scores.Slice(0, 4, 8), 0.5).ToArray<long>().Should().Equal(0);
        Nms.Apply(boxes.Slice(0, 0, 1), scores.Slice(0, 0, 1), 0.5).ToArray<long>().Should().Equal(Longs(expected["one"]));

        var none = Nms.Apply(Tensor.Zeros([0, 4]), Tensor.Zeros([0]), 0.5);
        none.Shape.Should().Equal(0);
        none.DType.Should().Be(DType.Int64);
    }

    [Fact]
    public void Nms_float64_matches_torchvision()
    {
        using var scope = Torch.NewDisposeScope();
        var (boxes, scores, _) = RandomCase(11, 300, 8, dtype: DType.Float64);
        var expected = PythonOracle.Compute("""
            from torchvision.ops import nms
            out['k'] = nms(inp['b'], inp['s'], 0.45)
            """, new Dictionary<string, Tensor> { ["b"] = boxes, ["s"] = scores });
        Nms.Apply(boxes, scores, 0.45).ToArray<long>().Should().Equal(Longs(expected["k"]));
    }

    [Fact]
    public void Batched_nms_matches_torchvision_for_both_strategies()
    {
        using var scope = Torch.NewDisposeScope();
        // 300 boxes (1200 coordinates) take the coordinate-offset path, 1500 boxes (6000) the per-class path.
        var (b1, s1, c1) = RandomCase(21, 300, 5, classes: 4);
        var (b2, s2, c2) = RandomCase(22, 1500, 5, classes: 6);
        var (b3, s3, c3) = RandomCase(23, 300, 0, classes: 3);
        var expected = PythonOracle.Compute("""
            from torchvision.ops import batched_nms
            for k in ('1', '2', '3'):
                for t in (0.3, 0.6):
                    out[f'k{k}_{int(t * 10)}'] = batched_nms(inp['b' + k].float(), inp['s' + k].float(), inp['c' + k].long(), t)
            out['empty'] = batched_nms(inp['b1'][:0].float(), inp['s1'][:0].float(), inp['c1'][:0].long(), 0.5)
            """, new Dictionary<string, Tensor>
        {
            ["b1"] = b1, ["s1"] = s1, ["c1"] = c1, ["b2"] = b2, ["s2"] = s2, ["c2"] = c2, ["b3"] = b3, ["s3"] = s3, ["c3"] = c3,
        });
        foreach (var (k, b, s, c) in new[] { ("1", b1, s1, c1), ("2", b2, s2, c2), ("3", b3, s3, c3) })
        {
            foreach (var t in new[] { 0.3, 0.6 })
            {
                var key = $"k{k}_{(int)(t * 10)}";
                var keep = Nms.Batched(b, s, c, t);
                keep.ToArray<long>().Should().Equal(Longs(expected[key]), key);
                output.WriteLine($"batched {key}: kept {keep.NumEl} of {b.Size(0)}, identical to torchvision");
            }
        }

        Nms.Batched(b1.Slice(0, 0, 0), s1.Slice(0, 0, 0), c1.Slice(0, 0, 0), 0.5).NumEl.Should().Be(0);
        expected["empty"].Data.Should().BeEmpty();
    }

    [Fact]
    public void Batched_nms_never_suppresses_across_classes()
    {
        using var scope = Torch.NewDisposeScope();
        var boxes = Tensor.FromArray(new float[] { 0, 0, 10, 10, 0, 0, 10, 10, 0, 0, 10, 10 }, 3, 4);
        var scores = Tensor.FromArray(new float[] { 0.5f, 0.9f, 0.7f });
        Nms.Batched(boxes, scores, Tensor.FromArray(new long[] { 0, 1, 0 }), 0.5).ToArray<long>().Should().Equal(1, 2);
        Nms.Apply(boxes, scores, 0.5).ToArray<long>().Should().Equal(1);
    }

    [Fact]
    public void Bad_arguments_throw_argument_exceptions_naming_the_argument()
    {
        using var scope = Torch.NewDisposeScope();
        var boxes = Tensor.FromArray(new float[] { 0, 0, 1, 1, 2, 2, 3, 3 }, 2, 4);
        var scores = Tensor.FromArray(new float[] { 1, 2 });
        FluentActions.Invoking(() => Nms.Apply(Tensor.Zeros([2, 3]), scores, 0.5))
            .Should().Throw<ArgumentException>().Which.ParamName.Should().Be("boxes");
        FluentActions.Invoking(() => Nms.Apply(Tensor.Zeros([8]), scores, 0.5))
            .Should().Throw<ArgumentException>().Which.ParamName.Should().Be("boxes");
        FluentActions.Invoking(() => Nms.Apply(boxes.To(DType.Int64), scores, 0.5))
            .Should().Throw<ArgumentException>().Which.ParamName.Should().Be("boxes");
        FluentActions.Invoking(() => Nms.Apply(boxes, Tensor.Zeros([3]), 0.5))
            .Should().Throw<ArgumentException>().Which.ParamName.Should().Be("scores");
        FluentActions.Invoking(() => Nms.Apply(boxes, Tensor.Zeros([2, 1]), 0.5))
            .Should().Throw<ArgumentException>().Which.ParamName.Should().Be("scores");
        FluentActions.Invoking(() => Nms.Apply(boxes, scores.To(DType.Float64), 0.5))
            .Should().Throw<ArgumentException>().Which.ParamName.Should().Be("scores");
        FluentActions.Invoking(() => Nms.Apply(boxes, scores, double.NaN))
            .Should().Throw<ArgumentException>().Which.ParamName.Should().Be("iouThreshold");
        foreach (var bad in new[] { float.NaN, float.PositiveInfinity, float.NegativeInfinity })
        {
            var b = Tensor.FromArray(new float[] { 0, 0, 1, 1, 2, 2, bad, 3 }, 2, 4);
            FluentActions.Invoking(() => Nms.Apply(b, scores, 0.5))
                .Should().Throw<ArgumentException>().Which.ParamName.Should().Be("boxes");
            FluentActions.Invoking(() => Nms.Batched(b, scores, Tensor.Zeros([2], DType.Int64), 0.5))
                .Should().Throw<ArgumentException>().Which.ParamName.Should().Be("boxes");
        }

        FluentActions.Invoking(() => Nms.Apply(boxes, Tensor.FromArray(new float[] { 1, float.NaN }), 0.5))
            .Should().Throw<ArgumentException>().Which.ParamName.Should().Be("scores");
        FluentActions.Invoking(() => Nms.Batched(boxes, scores, Tensor.Zeros([3], DType.Int64), 0.5))
            .Should().Throw<ArgumentException>().Which.ParamName.Should().Be("classIds");
        FluentActions.Invoking(() => Nms.Batched(boxes, scores, Tensor.Zeros([2]), 0.5))
            .Should().Throw<ArgumentException>().Which.ParamName.Should().Be("classIds");
        FluentActions.Invoking(() => Nms.Apply(null!, scores, 0.5)).Should().Throw<ArgumentNullException>();

        // Infinite scores are ordered like any other value.
        Nms.Apply(boxes, Tensor.FromArray(new float[] { float.NegativeInfinity, float.PositiveInfinity }), 0.5)
            .ToArray<long>().Should().Equal(1, 0);
    }
}
