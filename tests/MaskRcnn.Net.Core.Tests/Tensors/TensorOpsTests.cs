using MaskRcnn.Net.Core.Tests.TestSupport;

namespace MaskRcnn.Net.Core.Tests.Tensors;

/// <summary>Shape, indexing, joining, sorting and reduction ops: hand-computed values and torch parity.</summary>
public class TensorOpsTests
{
    [Fact]
    public void Views_share_storage_and_shape_ops_match_hand_computed()
    {
        using var scope = Torch.NewDisposeScope();
        var t = Tensor.Arange(0, 12, 1, DType.Float32).Reshape(3, 4);
        t.Transpose(0, 1).Shape.Should().Equal(4, 3);
        t.Permute(1, 0).IsContiguous.Should().BeFalse();
        t.Permute(1, 0).Contiguous().ToArray<float>().Should().Equal(0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11);
        t.Unsqueeze(0).Shape.Should().Equal(1, 3, 4);
        t.Unsqueeze(0).Squeeze().Shape.Should().Equal(3, 4);
        t.Flatten().Shape.Should().Equal(12);
        t.Slice(1, 1, 4, 2).ToArray<float>().Should().Equal(1, 3, 5, 7, 9, 11);
        t.Narrow(0, 1, 2).ToArray<float>().Should().Equal(4, 5, 6, 7, 8, 9, 10, 11);
        t[2].ToArray<float>().Should().Equal(8, 9, 10, 11);
        t.Flip(1)[0].ToArray<float>().Should().Equal(3, 2, 1, 0);
        t.Expand(2, 3, 4).Shape.Should().Equal(2, 3, 4);
        t.Repeat(1, 2).Shape.Should().Equal(3, 8);
        t.AsStrided([2, 2], [1, 4], 1).ToArray<float>().Should().Equal(1, 5, 2, 6);

        // Writing through a view changes the base.
        t.Select(0, 1).FillInPlace(-1);
        t.ToArray<float>().Skip(4).Take(4).Should().Equal(-1, -1, -1, -1);
        t.Strides.Should().Equal(4, 1);
    }

    [Fact]
    public void Joining_and_splitting()
    {
        using var scope = Torch.NewDisposeScope();
        var a = Tensor.FromArray(new long[] { 1, 2 });
        var b = Tensor.FromArray(new long[] { 3, 4 });
        Tensor.Cat([a, b]).ToArray<long>().Should().Equal(1, 2, 3, 4);
        Tensor.Stack([a, b], 1).ToArray<long>().Should().Equal(1, 3, 2, 4);
        var parts = Tensor.Arange(7).Split([2, 5]);
        parts.Select(p => p.NumEl).Should().Equal(2, 5);
        Tensor.Arange(7).Chunk(3).Select(p => p.NumEl).Should().Equal(3, 3, 1);
        Tensor.Arange(6).Reshape(2, 3).Unbind(1).Select(p => p.ToArray<long>()[1]).Should().Equal(3, 4, 5);
        var grids = Tensor.Meshgrid([a, Tensor.FromArray(new long[] { 7, 8, 9 })]);
        grids[0].Shape.Should().Equal(2, 3);
        grids[1].ToArray<long>().Should().Equal(7, 8, 9, 7, 8, 9);
        FluentActions.Invoking(() => Tensor.Cat([a, Tensor.Zeros([2, 2])])).Should().Throw<TorchException>();
    }

    [Fact]
    public void Indexing_selection_and_assignment()
    {
        using var scope = Torch.NewDisposeScope();
        var t = Tensor.FromArray(new float[] { 5, 1, 4, 2, 3, 0 }, 2, 3);
        var idx = Tensor.FromArray(new long[] { 2, 0 });
        t.IndexSelect(1, idx).ToArray<float>().Should().Equal(4, 5, 0, 2);
        t.Gather(1, Tensor.FromArray(new long[] { 1, 1, 0, 2 }, 2, 2)).ToArray<float>().Should().Equal(1, 1, 2, 0);
        var mask = t.Gt(2.5);
        t.MaskedSelect(mask).ToArray<float>().Should().Equal(5, 4, 3);
        t.MaskedFill(mask, -1).ToArray<float>().Should().Equal(-1, 1, -1, 2, -1, 0);
        mask.Nonzero().ToArray<long>().Should().Equal(0, 0, 0, 2, 1, 1);
        t.Index(mask).ToArray<float>().Should().Equal(5, 4, 3);
        t.Index(null, idx).ToArray<float>().Should().Equal(4, 5, 0, 2);
        t.Index(Tensor.FromArray(new long[] { 1, 0 }), Tensor.FromArray(new long[] { 0, 2 })).ToArray<float>().Should().Equal(2, 4);

        var z = Tensor.Zeros([5]);
        z.IndexPutInPlace([Tensor.FromArray(new long[] { 1, 3, 1 })], Tensor.FromArray(new float[] { 1, 2, 3 }), accumulate: true);
        z.ToArray<float>().Should().Equal(0, 4, 0, 2, 0);
        z.Scatter(0, Tensor.FromArray(new long[] { 0 }), Tensor.FromArray(new float[] { 9 })).ToArray<float>()[0].Should().Be(9);
        Tensor.Where(mask, t, t.Neg()).ToArray<float>().Should().Equal(5, -1, 4, -2, 3, -0f);
        t.Clamp(1, 4).ToArray<float>().Should().Equal(4, 1, 4, 2, 3, 1);
        t.Clamp(min: 2).ToArray<float>().Should().Equal(5, 2, 4, 2, 3, 2);
        var ints = Tensor.FromArray(new long[] { -3, 0, 7 });
        ints.Clamp(min: 0).DType.Should().Be(DType.Int64, "whole-number bounds keep an integer tensor integer");
        ints.Clamp(min: 0, max: 5).ToArray<long>().Should().Equal(0, 0, 5);
        ints.Clamp(max: 0.5).DType.Should().Be(DType.Float32, "a fractional bound promotes like PyTorch");
        FluentActions.Invoking(() => t.IndexSelect(1, Tensor.FromArray(new long[] { 3 }))).Should().Throw<TorchException>();
    }

    [Fact]
    public void Sort_topk_argmax_and_reductions()
    {
        using var scope = Torch.NewDisposeScope();
        var t = Tensor.FromArray(new float[] { 3, 1, 2, 2, 9, -1 }, 2, 3);
        var (v, i) = t.Sort(1, descending: true);
        v.ToArray<float>().Should().Equal(3, 2, 1, 9, 2, -1);
        i.ToArray<long>().Should().Equal(0, 2, 1, 1, 0, 2);
        Tensor.FromArray(new float[] { 1, 2, 1, 2 }).ArgSort(stable: true).ToArray<long>().Should().Equal(0, 2, 1, 3);
        var (tv, ti) = t.Flatten().TopK(2);
        tv.ToArray<float>().Should().Equal(9, 3);
        ti.ToArray<long>().Should().Equal(4, 0);
        t.ArgMax().ItemLong().Should().Be(4);
        t.ArgMin(1).ToArray<long>().Should().Equal(1, 2);
        var (mv, mi) = t.Max(0);
        mv.ToArray<float>().Should().Equal(3, 9, 2);
        mi.ToArray<long>().Should().Equal(0, 1, 0);
        t.Sum().ItemDouble().Should().Be(16);
        t.Sum(1).ToArray<float>().Should().Equal(6, 10);
        t.Mean([0, 1]).ItemDouble().Should().BeApproximately(16 / 6.0, 1e-6);
        t.Max().ItemDouble().Should().Be(9);
        t.Min().ItemDouble().Should().Be(-1);
        t.Prod(1).ToArray<float>().Should().Equal(6, -18);
        t.Gt(0).All().ItemBool().Should().BeFalse();
        t.Gt(0).Any(1).ToArray<bool>().Should().Equal(true, true);
        t.Gt(0).Sum().DType.Should().Be(DType.Int64);
        t.CumSum(1).ToArray<float>().Should().Equal(3, 4, 6, 2, 11, 10);
        Tensor.FromArray(new long[] { 3, 1, 3, 2 }).Unique().ToArray<long>().Should().Equal(1, 2, 3);
        Tensor.FromArray(new long[] { 1, 2 }).RepeatInterleave(2, 0).ToArray<long>().Should().Equal(1, 1, 2, 2);
    }

    [Fact]
    public void Elementwise_math_and_statistics_match_torch()
    {
        using var scope = Torch.NewDisposeScope();
        Torch.ManualSeed(5);
        var x = Tensor.Randn([4, 5]);
        var y = Tensor.Rand([4, 5]) + 0.1;
        var expected = PythonOracle.Compute("""
            x = inp['x'].float(); y = inp['y'].float()
            out['a'] = torch.exp(x) + torch.log(y) * torch.sqrt(y) - torch.rsqrt(y)
            out['b'] = torch.sigmoid(x) * torch.tanh(x) + torch.floor(x * 3) - torch.ceil(x) + torch.round(x * 2)
            out['c'] = torch.remainder(x * 5, 3.0) + torch.div(x * 5, y, rounding_mode='floor') + torch.atan2(x, y)
            out['d'] = torch.maximum(x, y) - torch.minimum(x, y) + x.pow(2) + y.pow(x) + torch.log1p(y) + torch.expm1(x)
            out['std'] = x.std(dim=1); out['var'] = x.var(dim=0, unbiased=False); out['lse'] = torch.logsumexp(x, dim=1)
            out['norm'] = x.norm(dim=1); out['mm'] = x @ y.t()
            out['softmax'] = torch.softmax(x, 0)
            """, new Dictionary<string, Tensor> { ["x"] = x, ["y"] = y });
        Assertions.AllClose(x.Exp() + y.Log() * y.Sqrt() - y.Rsqrt(), expected["a"], what: "a");
        Assertions.AllClose(x.Sigmoid() * x.Tanh() + (x * 3).Floor() - x.Ceil() + (x * 2).Round(), expected["b"], what: "b");
        Assertions.AllClose((x * 5).Remainder(Tensor.Scalar(3.0)) + (x * 5).FloorDivide(y) + x.Atan2(y), expected["c"], what: "c");
        Assertions.AllClose(x.Maximum(y) - x.Minimum(y) + x.Pow(2) + y.Pow(x) + y.Log1p() + x.Expm1(), expected["d"], what: "d");
        Assertions.AllClose(x.Std([1]), expected["std"], what: "std");
        Assertions.AllClose(x.Var([0], unbiased: false), expected["var"], what: "var");
        Assertions.AllClose(x.LogSumExp([1]), expected["lse"], what: "logsumexp");
        Assertions.AllClose(x.Norm([1]), expected["norm"], what: "norm");
        Assertions.AllClose(x.MatMul(y.T()), expected["mm"], what: "matmul");
        Assertions.AllClose(MaskRcnn.Net.Core.NN.Functional.Softmax(x, 0), expected["softmax"], what: "softmax");
    }

    [Fact]
    public void In_place_ops_and_span_access()
    {
        using var scope = Torch.NewDisposeScope();
        var t = Tensor.Zeros([4]);
        t.AddInPlace(2.0).MulInPlace(3.0).ClampInPlace(max: 5);
        t.ToArray<float>().Should().Equal(5, 5, 5, 5);
        var span = t.AsSpan<float>();
        span[1] = 7;
        t.ToArray<float>()[1].Should().Be(7);
        t.CopyFrom(Tensor.FromArray(new float[] { 1, 2, 3, 4 }));
        t.AddcmulInPlace(t, t, 0.5).ToArray<float>().Should().Equal(1.5f, 4, 7.5f, 12);
        FluentActions.Invoking(() => t.AsSpan<long>()).Should().Throw<InvalidOperationException>();
        FluentActions.Invoking(() => Tensor.Arange(6).Reshape(2, 3).T().AsSpan<long>()).Should().Throw<TorchException>().WithMessage("*contiguous*");
        FluentActions.Invoking(() => Tensor.Arange(0, 1, 0)).Should().Throw<ArgumentException>();
    }
}
