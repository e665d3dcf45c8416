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

    [Fact]
    public void Multi_step_at_fractions_drops_at_the_first_step_whose_share_of_the_run_reaches_each_fraction()
    {
        double[] fractions = [0.1, 0.3, 0.5, 0.67, 0.7, 0.89, 0.9];
        for (var total = 1L; total <= 400; total++)
        {
            var m = MultiStep.AtFractions(fractions, total, 0.5);
            for (var f = 0; f < fractions.Length; f++)
            {
                // The first step s with s / total >= fraction, by search.
                var first = 0L;
                while ((double)first / total < fractions[f])
                {
                    first++;
                }

                m.Milestones[f].Should().Be(first, $"fraction {fractions[f]} of {total} steps");
            }
        }

        MultiStep.AtFractions([0.67, 0.89], 100, 0.1).Milestones.Should().Equal(67, 89);
        MultiStep.AtFractions([0.5], 0, 0.1).Factor(5).Should().Be(1, "an empty run never drops");
        FluentActions.Invoking(() => MultiStep.AtFractions([0.5, 1.0], 10)).Should().Throw<ArgumentException>().WithParameterName("fractions");
        FluentActions.Invoking(() => MultiStep.AtFractions([0.5], -1)).Should().Throw<ArgumentOutOfRangeException>();
    }

    [Fact]
    public void A_scheduler_started_at_step_n_continues_as_one_stepped_n_times()
    {
        using var scope = Torch.NewDisposeScope();
        var a = Tensor.Zeros([1]).RequiresGrad_();
        var b = Tensor.Zeros([1]).RequiresGrad_();
        using var stepped = new Sgd([a], new SgdOptions(0.1));
        using var started = new Sgd([b], new SgdOptions(0.1));
        var schedule = new ProductSchedule(new LinearWarmup(4, 0.25), new Cosine(10));
        var s1 = new LearningRateScheduler(stepped, schedule);
        for (var i = 0; i < 3; i++)
        {
            s1.Step();
        }

        var s2 = new LearningRateScheduler(started, schedule, startStep: 3);
        s2.CurrentStep.Should().Be(3);
        // Step 3: warm-up 0.25 + 0.75 · 3/4, cosine (1 + cos(0.3π)) / 2.
        started.Groups[0].LearningRate.Should().BeApproximately(0.1 * (0.25 + 0.75 * 3 / 4) * (1 + Math.Cos(0.3 * Math.PI)) / 2, 1e-15);
        for (var i = 0; i < 8; i++)
        {
            started.Groups[0].LearningRate.Should().Be(stepped.Groups[0].LearningRate, $"step {s2.CurrentStep}");
            s1.Step();
            s2.Step();
        }

        started.Groups[0].LearningRate.Should().Be(0, "the cosine ends at 0 from step 10 on");
        FluentActions.Invoking(() => new LearningRateScheduler(started, schedule, -1)).Should().Throw<ArgumentOutOfRangeException>();
    }

    [Fact]
    public void Swapping_the_schedule_applies_the_new_one_at_the_current_step()
    {
        using var scope = Torch.NewDisposeScope();
        var a = Tensor.Zeros([1]).RequiresGrad_();
        using var opt = new Sgd([a], new SgdOptions(0.2));
        var s = new LearningRateScheduler(opt, new Cosine(100));
        s.Step();
        s.Step();
        opt.Groups[0].LearningRate.Should().BeApproximately(0.2 * (1 + Math.Cos(Math.PI * 2 / 100)) / 2, 1e-15);

        // A time budget re-plans the run to 4 steps: the rate of step 2 is now the cosine's middle.
        s.Schedule = new Cosine(4);
        s.CurrentStep.Should().Be(2);
        opt.Groups[0].LearningRate.Should().BeApproximately(0.1, 1e-15);
        s.CurrentFactor.Should().BeApproximately(0.5, 1e-15);
        s.Step();
        opt.Groups[0].LearningRate.Should().BeApproximately(0.2 * (1 + Math.Cos(Math.PI * 3 / 4)) / 2, 1e-15);
    }
}
