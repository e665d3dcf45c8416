using MaskRcnn.Net.Core.Optim;

namespace MaskRcnn.Net.Core.Tests.Optim;

public class LearningRateScheduleTests
{
    [Fact]
    public void Linear_warmup_matches_hand_computed_LinearLR()
    {
        var s = new LinearWarmup(4, 0.2);
        // factor = 0.2 + 0.8 * step / 4
        new[] { 0, 1, 2, 3, 4, 10 }.Select(i => s.Factor(i)).Should().Equal(
            [0.2, 0.4, 0.6000000000000001, 0.8, 1.0, 1.0], (a, b) => Math.Abs(a - b) < 1e-12);
    }

    [Fact]
    public void Multi_step_and_cosine_and_product()
    {
        var m = new MultiStep([2, 5], 0.1);
        m.Factor(1).Should().Be(1);
        m.Factor(2).Should().BeApproximately(0.1, 1e-15);
        m.Factor(5).Should().BeApproximately(0.01, 1e-15);
        var c = new Cosine(10, 0.1);
        c.Factor(0).Should().Be(1);
        c.Factor(5).Should().BeApproximately(0.55, 1e-12);
        c.Factor(10).Should().BeApproximately(0.1, 1e-12);
        new ProductSchedule(new LinearWarmup(2, 0.5), m).Factor(1).Should().BeApproximately(0.75, 1e-12);
    }

    [Fact]
    public void Scheduler_scales_every_groups_initial_rate()
    {
        using var scope = Torch.NewDisposeScope();
        var a = Tensor.Zeros([1]).RequiresGrad_();
        var b = Tensor.Zeros([1]).RequiresGrad_();
        using var opt = new Sgd([new ParameterGroup([a]), new ParameterGroup([b], learningRate: 1)], new SgdOptions(0.1));
        var s = new LearningRateScheduler(opt, new MultiStep([1], 0.5));
        opt.Groups.Select(g => g.LearningRate).Should().Equal(0.1, 1.0);
        s.Step();
        opt.Groups.Select(g => g.LearningRate).Should().Equal(0.05, 0.5);
    }
}
