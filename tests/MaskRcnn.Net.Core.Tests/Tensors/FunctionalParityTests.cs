using MaskRcnn.Net.Core.NN;
using MaskRcnn.Net.Core.Tests.TestSupport;

namespace MaskRcnn.Net.Core.Tests.Tensors;

/// <summary>NN functions against torch.nn.functional on identical float32 inputs (oracle: Debian's python3-torch).</summary>
public class FunctionalParityTests
{
    private static Tensor R(ulong seed, params long[] shape)
    {
        Torch.ManualSeed(seed);
        return Tensor.Randn(shape);
    }

    [Fact]
    public void Convolutions_pooling_norms_and_resampling_match_torch()
    {
        using var scope = Torch.NewDisposeScope();
        var x = R(1, 2, 4, 9, 11);
        var w = R(2, 6, 2, 3, 3);
        var b = R(3, 6);
        var wt = R(4, 4, 3, 2, 2);
        var gw = R(5, 4);
        var gb = R(6, 4);
        var mean = R(7, 4);
        var varT = R(8, 4).Abs() + 0.5;
        var inputs = new Dictionary<string, Tensor> { ["x"] = x, ["w"] = w, ["b"] = b, ["wt"] = wt, ["gw"] = gw, ["gb"] = gb, ["mean"] = mean, ["var"] = varT };
        var expected = PythonOracle.Compute("""
            import torch.nn.functional as F
            f = {k: v.float() for k, v in inp.items()}
            x = f['x']
            out['conv'] = F.conv2d(x, f['w'], f['b'], stride=2, padding=1, groups=2)
            out['conv_dil'] = F.conv2d(x, f['w'], None, stride=1, padding=2, dilation=2, groups=2)
            out['convt'] = F.conv_transpose2d(x, f['wt'], None, stride=2, padding=0, output_padding=1)
            out['bn_eval'] = F.batch_norm(x, f['mean'], f['var'], f['gw'], f['gb'], False, 0.1, 1e-5)
            rm, rv = f['mean'].clone(), f['var'].clone()
            out['bn_train'] = F.batch_norm(x, rm, rv, f['gw'], f['gb'], True, 0.1, 1e-5)
            out['bn_rm'] = rm; out['bn_rv'] = rv
            out['gn'] = F.group_norm(x, 2, f['gw'], f['gb'], 1e-5)
            out['maxpool'] = F.max_pool2d(x, 3, 2, 1)
            out['maxpool_ceil'] = F.max_pool2d(x, 2, 2, 0, ceil_mode=True)
            out['near'] = F.interpolate(x, size=(5, 7), mode='nearest')
            out['near_scale'] = F.interpolate(x, scale_factor=1.7, mode='nearest')
            out['bil'] = F.interpolate(x, size=(13, 6), mode='bilinear', align_corners=False)
            out['bil_ac'] = F.interpolate(x, size=(13, 6), mode='bilinear', align_corners=True)
            out['bil_rc'] = F.interpolate(x, scale_factor=0.77, mode='bilinear', align_corners=False, recompute_scale_factor=True)
            out['relu'] = F.relu(x)
            out['softmax'] = F.softmax(x, dim=1)
            out['logsoftmax'] = F.log_softmax(x, dim=-1)
            out['adapt'] = F.adaptive_avg_pool2d(x, (1, 1))
            """, inputs);

        var (mRun, vRun) = (mean.Clone(), varT.Clone());
        var actual = new Dictionary<string, Tensor>
        {
            ["conv"] = Functional.Conv2d(x, w, b, stride: 2, padding: 1, groups: 2),
            ["conv_dil"] = Functional.Conv2d(x, w, null, stride: 1, padding: 2, dilation: 2, groups: 2),
            ["convt"] = Functional.ConvTranspose2d(x, wt, null, stride: 2, padding: 0, outputPadding: 1),
            ["bn_eval"] = Functional.BatchNorm(x, mean, varT, gw, gb, training: false),
            ["bn_train"] = Functional.BatchNorm(x, mRun, vRun, gw, gb, training: true),
            ["bn_rm"] = mRun,
            ["bn_rv"] = vRun,
            ["gn"] = Functional.GroupNorm(x, 2, gw, gb),
            ["maxpool"] = Functional.MaxPool2d(x, 3, 2, 1),
            ["maxpool_ceil"] = Functional.MaxPool2d(x, 2, 2, 0, ceilMode: true),
            ["near"] = Functional.Interpolate(x, 5, 7),
            ["near_scale"] = Functional.Interpolate(x, 1.7, 1.7),
            ["bil"] = Functional.Interpolate(x, 13, 6, InterpolationMode.Bilinear),
            ["bil_ac"] = Functional.Interpolate(x, 13, 6, InterpolationMode.Bilinear, alignCorners: true),
            ["bil_rc"] = Functional.Interpolate(x, 0.77, 0.77, InterpolationMode.Bilinear, recomputeScaleFactor: true),
            ["relu"] = Functional.Relu(x),
            ["softmax"] = Functional.Softmax(x, 1),
            ["logsoftmax"] = Functional.LogSoftmax(x, -1),
            ["adapt"] = Functional.AdaptiveAvgPool2d(x, 1, 1),
        };
        expected.Keys.Should().BeEquivalentTo(actual.Keys);
        foreach (var (k, t) in actual)
        {
            Assertions.AllClose(t, expected[k], atol: 1e-5, rtol: 1e-5, what: k);
        }
    }

    [Fact]
    public void Losses_and_linear_match_torch_including_smooth_l1_beta()
    {
        using var scope = Torch.NewDisposeScope();
        var logits = R(11, 7, 5);
        var target = Tensor.FromArray(new long[] { 0, 4, 2, -100, 1, 3, 3 });
        var cw = R(12, 5).Abs();
        var a = R(13, 6, 4);
        var t = R(14, 6, 4);
        var prob = R(15, 6, 4).Sigmoid();
        var lw = R(16, 3, 4);
        var lb = R(17, 3);
        var inputs = new Dictionary<string, Tensor> { ["logits"] = logits, ["target"] = target.To(DType.Float64), ["cw"] = cw, ["a"] = a, ["t"] = t, ["prob"] = prob, ["lw"] = lw, ["lb"] = lb };
        var expected = PythonOracle.Compute("""
            import torch.nn.functional as F
            f = {k: v.float() for k, v in inp.items()}
            tgt = inp['target'].long()
            out['ce'] = F.cross_entropy(f['logits'], tgt)
            out['ce_w_sum'] = F.cross_entropy(f['logits'], tgt, weight=f['cw'], reduction='sum')
            out['ce_none_ls'] = F.cross_entropy(f['logits'], tgt, reduction='none', label_smoothing=0.1)
            out['bce'] = F.binary_cross_entropy_with_logits(f['a'], f['prob'])
            out['bce_sum'] = F.binary_cross_entropy_with_logits(f['a'], f['prob'], reduction='sum')
            out['sl1'] = F.smooth_l1_loss(f['a'], f['t'], beta=1.0 / 9, reduction='sum')
            out['sl1_mean'] = F.smooth_l1_loss(f['a'], f['t'])
            out['sl1_beta0'] = F.smooth_l1_loss(f['a'], f['t'], beta=0.0)
            out['l1'] = F.l1_loss(f['a'], f['t'], reduction='sum')
            out['mse'] = F.mse_loss(f['a'], f['t'])
            out['lin'] = F.linear(f['a'], f['lw'], f['lb'])
            """, inputs);
        var actual = new Dictionary<string, Tensor>
        {
            ["ce"] = Functional.CrossEntropy(logits, target),
            ["ce_w_sum"] = Functional.CrossEntropy(logits, target, cw, Reduction.Sum),
            ["ce_none_ls"] = Functional.CrossEntropy(logits, target, reduction: Reduction.None, labelSmoothing: 0.1),
            ["bce"] = Functional.BinaryCrossEntropyWithLogits(a, prob),
            ["bce_sum"] = Functional.BinaryCrossEntropyWithLogits(a, prob, reduction: Reduction.Sum),
            ["sl1"] = Functional.SmoothL1Loss(a, t, Reduction.Sum, beta: 1.0 / 9),
            ["sl1_mean"] = Functional.SmoothL1Loss(a, t),
            ["sl1_beta0"] = Functional.SmoothL1Loss(a, t, beta: 0),
            ["l1"] = Functional.L1Loss(a, t, Reduction.Sum),
            ["mse"] = Functional.MseLoss(a, t),
            ["lin"] = Functional.Linear(a, lw, lb),
        };
        foreach (var (k, v) in actual)
        {
            Assertions.AllClose(v, expected[k], atol: 2e-5, rtol: 1e-5, what: k);
        }

        // beta really changes the loss (the libtorch 1.13 functional API ignored it).
        actual["sl1_mean"].ItemDouble().Should().NotBeApproximately(Functional.SmoothL1Loss(a, t, beta: 1.0 / 9).ItemDouble(), 1e-6);
    }

    [Fact]
    public void Conv2d_gradients_match_torch()
    {
        using var scope = Torch.NewDisposeScope();
        var x = R(21, 1, 3, 6, 5);
        var w = R(22, 4, 3, 3, 3);
        var upstream = R(23, 1, 4, 3, 3);
        var expected = PythonOracle.Compute("""
            import torch.nn.functional as F
            x = inp['x'].float().requires_grad_()
            w = inp['w'].float().requires_grad_()
            y = F.conv2d(x, w, stride=2, padding=1)
            y.backward(inp['g'].float())
            out['gx'] = x.grad; out['gw'] = w.grad
            """, new Dictionary<string, Tensor> { ["x"] = x, ["w"] = w, ["g"] = upstream });
        var xg = x.Clone().Detach().RequiresGrad_();
        var wg = w.Clone().Detach().RequiresGrad_();
        var y = Functional.Conv2d(xg, wg, null, stride: 2, padding: 1);
        y.Backward(upstream);
        Assertions.AllClose(xg.Grad!, expected["gx"], what: "d/dx");
        Assertions.AllClose(wg.Grad!, expected["gw"], what: "d/dw");
    }

    [Fact]
    public void Dropout_zeroes_about_p_and_rescales_in_training_only()
    {
        using var scope = Torch.NewDisposeScope();
        Torch.ManualSeed(3);
        var x = Tensor.Ones([100_000]);
        var y = Functional.Dropout(x, 0.3, training: true).ToArray<float>();
        var zeros = y.Count(v => v == 0);
        ((double)zeros / y.Length).Should().BeApproximately(0.3, 0.01);
        y.Where(v => v != 0).Should().OnlyContain(v => Math.Abs(v - 1 / 0.7f) < 1e-5);
        Functional.Dropout(x, 0.3, training: false).ToArray<float>().Should().OnlyContain(v => v == 1);
    }

    [Fact]
    public void Bad_arguments_throw_typed_exceptions()
    {
        using var scope = Torch.NewDisposeScope();
        var x = Tensor.Zeros([1, 1, 4, 4]);
        FluentActions.Invoking(() => Functional.Interpolate(x, 0, 3)).Should().Throw<ArgumentOutOfRangeException>();
        FluentActions.Invoking(() => Functional.Interpolate(x, 2, 2, InterpolationMode.Nearest, alignCorners: true)).Should().Throw<ArgumentException>();
        FluentActions.Invoking(() => Functional.Dropout(x, 1.5)).Should().Throw<ArgumentOutOfRangeException>();
        FluentActions.Invoking(() => Functional.SmoothL1Loss(x, x, beta: -1)).Should().Throw<ArgumentOutOfRangeException>();
        FluentActions.Invoking(() => Functional.MaxPool2d(Tensor.Zeros([4]), 2)).Should().Throw<TorchException>();
        FluentActions.Invoking(() => Functional.CrossEntropy(Tensor.Zeros([2, 3]), Tensor.FromArray(new long[] { 0, 7 }))).Should().Throw<TorchException>();
    }
}
