using System.Globalization;
using MaskRcnn.Net.Core.Optim;
using MaskRcnn.Net.Core.Tests.TestSupport;

namespace MaskRcnn.Net.Core.Tests.Optim;

/// <summary>Optimizer updates against torch.optim on the same quadratic problem, with two parameter groups.</summary>
public class OptimizerParityTests
{
    private static string Fmt(double v) => v.ToString("R", CultureInfo.InvariantCulture);

    private static (double[] W, double[] B) RunOurs(Func<ParameterGroup[], Optimizer> make, Tensor w0, Tensor b0, Tensor x, Tensor y, int steps)
    {
        using var scope = Torch.NewDisposeScope();
        var w = w0.Clone().RequiresGrad_();
        var b = b0.Clone().RequiresGrad_();
        using var opt = make([new ParameterGroup([w]), new ParameterGroup([b], learningRate: 0.05, weightDecay: 0)]);
        var sched = new LearningRateScheduler(opt, new MultiStep([3], 0.5));
        for (var i = 0; i < steps; i++)
        {
            using var s = Torch.NewDisposeScope();
            opt.ZeroGrad();
            var loss = (x.MatMul(w.T()) + b - y).Square().Mean();
            loss.Backward();
            opt.Step();
            sched.Step();
        }

        return (w.ToArray<double>(), b.ToArray<double>());
    }

    private static double[] RunTorch(string optimizerCtor, Dictionary<string, Tensor> inputs, int steps) =>
        PythonOracle.Compute($$"""
            w = inp['w0'].clone().requires_grad_(); b = inp['b0'].clone().requires_grad_()
            x, y = inp['x'], inp['y']
            opt = {{optimizerCtor}}
            sched = torch.optim.lr_scheduler.MultiStepLR(opt, [3], 0.5)
            for _ in range({{steps}}):
                opt.zero_grad()
                loss = ((x @ w.t() + b - y) ** 2).mean()
                loss.backward()
                opt.step(); sched.step()
            out['w'] = w; out['b'] = b
            """, inputs) is var r ? [.. r["w"].Data, .. r["b"].Data] : [];

    private static Dictionary<string, Tensor> Problem()
    {
        Torch.ManualSeed(99);
        return new Dictionary<string, Tensor>
        {
            ["w0"] = Tensor.Randn([3, 4], DType.Float64),
            ["b0"] = Tensor.Randn([3], DType.Float64),
            ["x"] = Tensor.Randn([16, 4], DType.Float64),
            ["y"] = Tensor.Randn([16, 3], DType.Float64),
        };
    }

    [Theory]
    [InlineData(0.0, 0.0, 0.0, false)]
    [InlineData(0.9, 0.0, 1e-2, false)]
    [InlineData(0.9, 0.0, 1e-4, true)]
    [InlineData(0.8, 0.3, 0.0, false)]
    public void Sgd_matches_torch_optim_SGD(double momentum, double dampening, double weightDecay, bool nesterov)
    {
        using var scope = Torch.NewDisposeScope();
        var p = Problem();
        var (w, b) = RunOurs(g => new Sgd(g, new SgdOptions(0.1, momentum, dampening, weightDecay, nesterov)), p["w0"], p["b0"], p["x"], p["y"], 6);
        var expected = RunTorch(
            $"torch.optim.SGD([{{'params': [w]}}, {{'params': [b], 'lr': 0.05, 'weight_decay': 0}}], lr=0.1, momentum={Fmt(momentum)}, dampening={Fmt(dampening)}, weight_decay={Fmt(weightDecay)}, nesterov={(nesterov ? "True" : "False")})",
            p, 6);
        Assertions.AllClose([.. w, .. b], expected, atol: 1e-12, rtol: 1e-10, what: "SGD parameters");
    }

    [Theory]
    [InlineData(1e-2)]
    [InlineData(0.0)]
    public void AdamW_matches_torch_optim_AdamW(double weightDecay)
    {
        using var scope = Torch.NewDisposeScope();
        var p = Problem();
        var (w, b) = RunOurs(g => new AdamW(g, new AdamWOptions(0.1, 0.9, 0.99, 1e-8, weightDecay)), p["w0"], p["b0"], p["x"], p["y"], 6);
        var expected = RunTorch(
            $"torch.optim.AdamW([{{'params': [w]}}, {{'params': [b], 'lr': 0.05, 'weight_decay': 0}}], lr=0.1, betas=(0.9, 0.99), eps=1e-8, weight_decay={Fmt(weightDecay)})",
            p, 6);
        Assertions.AllClose([.. w, .. b], expected, atol: 1e-12, rtol: 1e-9, what: "AdamW parameters");
    }

    [Fact]
    public void Invalid_hyper_parameters_are_rejected()
    {
        using var scope = Torch.NewDisposeScope();
        var w = Tensor.Zeros([2]).RequiresGrad_();
        FluentActions.Invoking(() => new Sgd([w], new SgdOptions(-1))).Should().Throw<ArgumentOutOfRangeException>();
        FluentActions.Invoking(() => new Sgd([w], new SgdOptions(0.1, Nesterov: true))).Should().Throw<ArgumentException>();
        FluentActions.Invoking(() => new AdamW([w], new AdamWOptions(Beta1: 1))).Should().Throw<ArgumentOutOfRangeException>();
        FluentActions.Invoking(() => new Sgd([new ParameterGroup([w]), new ParameterGroup([w])], new SgdOptions(0.1))).Should().Throw<ArgumentException>();
    }
}
