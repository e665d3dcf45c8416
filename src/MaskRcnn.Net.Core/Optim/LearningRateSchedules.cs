namespace MaskRcnn.Net.Core.Optim;

/// <summary>A learning-rate multiplier as a function of the step (iteration or epoch) number.</summary>
public interface ILearningRateSchedule
{
    /// <summary>The factor applied to each group's initial learning rate at <paramref name="step"/> (0-based).</summary>
    double Factor(long step);
}

/// <summary>
/// Linear warm-up from <paramref name="StartFactor"/> to 1 over <paramref name="WarmupSteps"/> steps, then 1
/// (PyTorch's LinearLR as torchvision's detection reference uses it).
/// </summary>
/// <param name="WarmupSteps">Steps until the factor reaches 1.</param>
/// <param name="StartFactor">Factor at step 0.</param>
public sealed record LinearWarmup(long WarmupSteps, double StartFactor = 0.001) : ILearningRateSchedule
{
    /// <inheritdoc />
    public double Factor(long step)
    {
        if (WarmupSteps <= 0 || step >= WarmupSteps)
        {
            return 1;
        }

        return StartFactor + (1 - StartFactor) * Math.Max(0, step) / WarmupSteps;
    }
}

/// <summary>Multiplies by <paramref name="Gamma"/> at each milestone (PyTorch's MultiStepLR).</summary>
/// <param name="Milestones">Steps at which the rate drops.</param>
/// <param name="Gamma">Drop factor.</param>
public sealed record MultiStep(IReadOnlyList<long> Milestones, double Gamma = 0.1) : ILearningRateSchedule
{
    /// <inheritdoc />
    public double Factor(long step) => Math.Pow(Gamma, Milestones.Count(m => step >= m));
}

/// <summary>Cosine decay from 1 to <paramref name="MinFactor"/> over <paramref name="TotalSteps"/> (PyTorch's CosineAnnealingLR).</summary>
/// <param name="TotalSteps">Steps of one half-cosine.</param>
/// <param name="MinFactor">Factor reached at the end.</param>
public sealed record Cosine(long TotalSteps, double MinFactor = 0) : ILearningRateSchedule
{
    /// <inheritdoc />
    public double Factor(long step)
    {
        if (TotalSteps <= 0)
        {
            return 1;
        }

        var t = Math.Clamp((double)step / TotalSteps, 0, 1);
        return MinFactor + (1 - MinFactor) * (1 + Math.Cos(Math.PI * t)) / 2;
    }
}

/// <summary>The product of several schedules (e.g. warm-up × multi-step).</summary>
/// <param name="Parts">The schedules multiplied together.</param>
public sealed record ProductSchedule(params ILearningRateSchedule[] Parts) : ILearningRateSchedule
{
    /// <inheritdoc />
    public double Factor(long step) => Parts.Aggregate(1.0, (f, s) => f * s.Factor(step));
}

/// <summary>Applies a schedule to an optimizer: call <see cref="Step"/> once per iteration (or epoch).</summary>
public sealed class LearningRateScheduler
{
    private readonly Optimizer optimizer;
    private readonly ILearningRateSchedule schedule;

    /// <summary>Creates the scheduler and sets the step-0 learning rates.</summary>
    public LearningRateScheduler(Optimizer optimizer, ILearningRateSchedule schedule)
    {
        this.optimizer = optimizer ?? throw new ArgumentNullException(nameof(optimizer));
        this.schedule = schedule ?? throw new ArgumentNullException(nameof(schedule));
        Apply();
    }

    /// <summary>Steps taken so far.</summary>
    public long CurrentStep { get; private set; }

    /// <summary>Advances one step and updates every group's learning rate.</summary>
    public void Step()
    {
        CurrentStep++;
        Apply();
    }

    private void Apply()
    {
        var f = schedule.Factor(CurrentStep);
        foreach (var g in optimizer.Groups)
        {
            g.LearningRate = g.InitialLearningRate * f;
        }
    }
}
