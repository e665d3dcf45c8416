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

    /// <summary>
    /// Milestones at fractions of a run of <paramref name="totalSteps"/> steps (torchvision's detection reference
    /// drops at about 67 % and 89 %): each milestone is the first step <c>s</c> with <c>s / totalSteps ≥ fraction</c>,
    /// evaluated in double precision exactly as written, so the drop happens at the step that comparison picks.
    /// </summary>
    /// <param name="fractions">Fractions of the run in (0, 1).</param>
    /// <param name="totalSteps">Steps of the run (≥ 0; 0 gives a schedule that never drops).</param>
    /// <param name="gamma">Drop factor.</param>
    /// <exception cref="ArgumentException">A fraction is outside (0, 1), or <paramref name="totalSteps"/> is negative.</exception>
    public static MultiStep AtFractions(IReadOnlyList<double> fractions, long totalSteps, double gamma = 0.1)
    {
        ArgumentNullException.ThrowIfNull(fractions);
        ArgumentOutOfRangeException.ThrowIfNegative(totalSteps);
        if (fractions.Any(f => f is not (> 0 and < 1)))
        {
            throw new ArgumentException($"milestone fractions must be in (0, 1), got [{string.Join(", ", fractions)}]", nameof(fractions));
        }

        if (totalSteps == 0)
        {
            return new MultiStep([], gamma);
        }

        var milestones = fractions.Select(f =>
        {
            // Start from the rounded product and correct it against the comparison itself (the product can be off by
            // one ulp either way).
            var s = Math.Max(0, (long)Math.Ceiling(f * totalSteps));
            while (s > 0 && (double)(s - 1) / totalSteps >= f)
            {
                s--;
            }

            while ((double)s / totalSteps < f)
            {
                s++;
            }

            return s;
        }).ToArray();
        return new MultiStep(milestones, gamma);
    }
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

/// <summary>
/// Applies a schedule to an optimizer: call <see cref="Step"/> once per iteration (or epoch). A run resumed at step
/// N starts the scheduler at N; a schedule whose length is only known later (a time budget planned from the measured
/// step time) is swapped in with <see cref="Schedule"/>.
/// </summary>
public sealed class LearningRateScheduler
{
    private readonly Optimizer optimizer;
    private ILearningRateSchedule schedule;

    /// <summary>Creates the scheduler at <paramref name="startStep"/> (0, or the step a resumed run continues from) and sets that step's learning rates.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="startStep"/> is negative.</exception>
    public LearningRateScheduler(Optimizer optimizer, ILearningRateSchedule schedule, long startStep = 0)
    {
        this.optimizer = optimizer ?? throw new ArgumentNullException(nameof(optimizer));
        this.schedule = schedule ?? throw new ArgumentNullException(nameof(schedule));
        ArgumentOutOfRangeException.ThrowIfNegative(startStep);
        CurrentStep = startStep;
        Apply();
    }

    /// <summary>Steps taken so far (including the start step).</summary>
    public long CurrentStep { get; private set; }

    /// <summary>
    /// The schedule followed; setting it applies the new schedule's rate for <see cref="CurrentStep"/> at once (e.g.
    /// a cosine re-planned over a different number of steps).
    /// </summary>
    public ILearningRateSchedule Schedule
    {
        get => schedule;
        set
        {
            schedule = value ?? throw new ArgumentNullException(nameof(value));
            Apply();
        }
    }

    /// <summary>The factor of the current step (each group's rate is its initial rate times this).</summary>
    public double CurrentFactor => schedule.Factor(CurrentStep);

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
