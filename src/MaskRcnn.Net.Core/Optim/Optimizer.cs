namespace MaskRcnn.Net.Core.Optim;

/// <summary>
/// A set of parameters sharing a learning rate and weight decay (e.g. no weight decay for norm layers and biases).
/// </summary>
public sealed class ParameterGroup
{
    /// <summary>Creates a group; null values take the optimizer's defaults.</summary>
    public ParameterGroup(IEnumerable<Tensor> parameters, double? learningRate = null, double? weightDecay = null)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        Parameters = parameters.ToArray();
        if (Parameters.Any(p => p is null))
        {
            throw new ArgumentException("a parameter group contains a null tensor", nameof(parameters));
        }

        RequestedLearningRate = learningRate;
        RequestedWeightDecay = weightDecay;
    }

    /// <summary>The parameters updated together.</summary>
    public IReadOnlyList<Tensor> Parameters { get; }

    internal double? RequestedLearningRate { get; }

    internal double? RequestedWeightDecay { get; }

    /// <summary>Current learning rate (schedules change it).</summary>
    public double LearningRate { get; set; }

    /// <summary>The learning rate the group started with (schedules scale it).</summary>
    public double InitialLearningRate { get; internal set; }

    /// <summary>Weight decay of this group.</summary>
    public double WeightDecay { get; set; }
}

/// <summary>Base of optimizers: parameter groups, per-parameter state, zeroing gradients.</summary>
public abstract class Optimizer : IDisposable
{
    private readonly Dictionary<Tensor, Dictionary<string, Tensor>> state = new(ReferenceEqualityComparer.Instance);

    /// <summary>Sets up groups, filling unspecified learning rates / weight decays with the defaults.</summary>
    protected Optimizer(IEnumerable<ParameterGroup> groups, double learningRate, double weightDecay)
    {
        ArgumentNullException.ThrowIfNull(groups);
        CheckNonNegative(learningRate, nameof(learningRate));
        CheckNonNegative(weightDecay, nameof(weightDecay));
        Groups = groups.ToArray();
        if (Groups.Count == 0)
        {
            throw new ArgumentException("an optimizer needs at least one parameter group", nameof(groups));
        }

        var seen = new HashSet<Tensor>(ReferenceEqualityComparer.Instance);
        foreach (var g in Groups)
        {
            g.LearningRate = g.InitialLearningRate = g.RequestedLearningRate ?? learningRate;
            g.WeightDecay = g.RequestedWeightDecay ?? weightDecay;
            CheckNonNegative(g.LearningRate, nameof(learningRate));
            CheckNonNegative(g.WeightDecay, nameof(weightDecay));
            foreach (var p in g.Parameters)
            {
                if (!seen.Add(p))
                {
                    throw new ArgumentException("a parameter appears in more than one group", nameof(groups));
                }
            }
        }
    }

    /// <summary>Checks a hyper-parameter is finite and ≥ 0.</summary>
    protected static void CheckNonNegative(double value, string name)
    {
        if (!(value >= 0) || double.IsInfinity(value))
        {
            throw new ArgumentOutOfRangeException(name, value, $"{name} must be a finite non-negative number");
        }
    }

    /// <summary>The parameter groups.</summary>
    public IReadOnlyList<ParameterGroup> Groups { get; }

    /// <summary>Number of <see cref="Step"/> calls so far.</summary>
    public long StepCount { get; private set; }

    /// <summary>Clears every parameter's gradient.</summary>
    public void ZeroGrad()
    {
        foreach (var p in Groups.SelectMany(g => g.Parameters))
        {
            p.Grad = null;
        }
    }

    /// <summary>Updates every parameter that has a gradient.</summary>
    public void Step()
    {
        StepCount++;
        using var scope = Torch.NewDisposeScope();
        using var noGrad = Torch.NoGrad();
        foreach (var g in Groups)
        {
            foreach (var p in g.Parameters)
            {
                using var grad = p.Grad;
                if (grad is null)
                {
                    continue;
                }

                Update(p, grad, g, StateOf(p));
            }
        }
    }

    /// <summary>Applies one update to <paramref name="parameter"/> in place (runs under no-grad in a dispose scope).</summary>
    protected abstract void Update(Tensor parameter, Tensor grad, ParameterGroup group, Dictionary<string, Tensor> state);

    /// <summary>Keeps a state tensor alive across steps (moves it out of the step's dispose scope).</summary>
    protected static Tensor Keep(Dictionary<string, Tensor> state, string key, Tensor value)
    {
        state[key] = value.DetachFromDisposeScope();
        return value;
    }

    private Dictionary<string, Tensor> StateOf(Tensor p)
    {
        if (!state.TryGetValue(p, out var s))
        {
            state[p] = s = [];
        }

        return s;
    }

    /// <summary>The state tensors (momentum buffers, moments) of a parameter, by name.</summary>
    public IReadOnlyDictionary<string, Tensor> StateOfParameter(Tensor parameter) =>
        state.TryGetValue(parameter, out var s) ? s : new Dictionary<string, Tensor>();

    /// <summary>
    /// The optimizer's state for a checkpoint: every state tensor under the key <c>"{group}.{index}.{name}"</c>
    /// (group and parameter positions as passed to the constructor; e.g. <c>"0.12.momentum_buffer"</c>). The tensors
    /// are the live state, not copies: save them before the next <see cref="Step"/>.
    /// </summary>
    public IReadOnlyDictionary<string, Tensor> StateDict()
    {
        var result = new Dictionary<string, Tensor>();
        for (var g = 0; g < Groups.Count; g++)
        {
            for (var i = 0; i < Groups[g].Parameters.Count; i++)
            {
                if (state.TryGetValue(Groups[g].Parameters[i], out var s))
                {
                    foreach (var (name, t) in s)
                    {
                        result[string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{g}.{i}.{name}")] = t;
                    }
                }
            }
        }

        return result;
    }

    /// <summary>
    /// Restores state written by <see cref="StateDict"/> (copied onto each parameter's device and dtype) and the
    /// step count. Replaces all current state. Throws <see cref="ArgumentException"/> naming the key when a key does
    /// not address a parameter of this optimizer or a tensor's shape fits neither its parameter nor a scalar.
    /// </summary>
    public void LoadStateDict(IReadOnlyDictionary<string, Tensor> stateDict, long stepCount)
    {
        ArgumentNullException.ThrowIfNull(stateDict);
        ArgumentOutOfRangeException.ThrowIfNegative(stepCount);
        var loaded = new Dictionary<Tensor, Dictionary<string, Tensor>>(ReferenceEqualityComparer.Instance);
        try
        {
            foreach (var (key, value) in stateDict)
            {
                var parts = key.Split('.', 3);
                if (parts.Length != 3 || !int.TryParse(parts[0], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var g) ||
                    !int.TryParse(parts[1], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var i) ||
                    g >= Groups.Count || i >= Groups[g].Parameters.Count)
                {
                    throw new ArgumentException($"optimizer state key '{key}' does not address a parameter of this optimizer ({Groups.Count} group(s) of {string.Join("/", Groups.Select(x => x.Parameters.Count))} parameters)", nameof(stateDict));
                }

                var p = Groups[g].Parameters[i];
                if (value.Dim != 0 && !value.Shape.SequenceEqual(p.Shape))
                {
                    throw new ArgumentException($"optimizer state '{key}' has shape [{string.Join(", ", value.Shape)}] but its parameter has [{string.Join(", ", p.Shape)}]", nameof(stateDict));
                }

                if (!loaded.TryGetValue(p, out var s))
                {
                    loaded[p] = s = [];
                }

                using var noGrad = Torch.NoGrad();
                var copy = value.To(p.Device, value.Dim == 0 ? value.DType : p.DType, copy: true);
                s[parts[2]] = copy.DetachFromDisposeScope();
            }
        }
        catch
        {
            foreach (var t in loaded.Values.SelectMany(s => s.Values))
            {
                t.Dispose();
            }

            throw;
        }

        foreach (var t in state.Values.SelectMany(s => s.Values))
        {
            t.Dispose();
        }

        state.Clear();
        foreach (var (p, s) in loaded)
        {
            state[p] = s;
        }

        StepCount = stepCount;
    }

    /// <summary>Releases the state tensors.</summary>
    public void Dispose()
    {
        foreach (var t in state.Values.SelectMany(s => s.Values))
        {
            t.Dispose();
        }

        state.Clear();
        GC.SuppressFinalize(this);
    }
}

/// <summary>Options of <see cref="Sgd"/> (PyTorch's torch.optim.SGD semantics).</summary>
/// <param name="LearningRate">Default learning rate.</param>
/// <param name="Momentum">Momentum factor (0 = plain SGD).</param>
/// <param name="Dampening">Dampening of the momentum.</param>
/// <param name="WeightDecay">Default L2 penalty added to the gradient.</param>
/// <param name="Nesterov">Nesterov momentum (needs momentum &gt; 0 and dampening 0).</param>
public sealed record SgdOptions(double LearningRate, double Momentum = 0, double Dampening = 0, double WeightDecay = 0, bool Nesterov = false);

/// <summary>Stochastic gradient descent with momentum, dampening, weight decay and Nesterov.</summary>
public sealed class Sgd : Optimizer
{
    private readonly SgdOptions options;

    /// <summary>SGD over one group of parameters.</summary>
    public Sgd(IEnumerable<Tensor> parameters, SgdOptions options) : this([new ParameterGroup(parameters)], options)
    {
    }

    /// <summary>SGD over parameter groups.</summary>
    public Sgd(IEnumerable<ParameterGroup> groups, SgdOptions options)
        : base(groups, (options ?? throw new ArgumentNullException(nameof(options))).LearningRate, options.WeightDecay)
    {
        CheckNonNegative(options.Momentum, nameof(options.Momentum));
        CheckNonNegative(options.Dampening, nameof(options.Dampening));
        if (options.Nesterov && (options.Momentum <= 0 || options.Dampening != 0))
        {
            throw new ArgumentException("Nesterov momentum requires momentum > 0 and zero dampening", nameof(options));
        }

        this.options = options;
    }

    /// <inheritdoc />
    protected override void Update(Tensor parameter, Tensor grad, ParameterGroup group, Dictionary<string, Tensor> state)
    {
        var d = group.WeightDecay != 0 ? grad.Add(parameter, group.WeightDecay) : grad;
        if (options.Momentum != 0)
        {
            if (!state.TryGetValue("momentum_buffer", out var buf))
            {
                buf = Keep(state, "momentum_buffer", d.Clone());
            }
            else
            {
                buf.MulInPlace(options.Momentum).AddInPlace(d, 1 - options.Dampening);
            }

            d = options.Nesterov ? d.Add(buf, options.Momentum) : buf;
        }

        parameter.AddInPlace(d, -group.LearningRate);
    }
}

/// <summary>Options of <see cref="AdamW"/> (PyTorch's torch.optim.AdamW semantics, decoupled weight decay).</summary>
/// <param name="LearningRate">Default learning rate.</param>
/// <param name="Beta1">First-moment decay.</param>
/// <param name="Beta2">Second-moment decay.</param>
/// <param name="Eps">Denominator epsilon.</param>
/// <param name="WeightDecay">Default decoupled weight decay.</param>
public sealed record AdamWOptions(double LearningRate = 1e-3, double Beta1 = 0.9, double Beta2 = 0.999, double Eps = 1e-8, double WeightDecay = 1e-2);

/// <summary>Adam with decoupled weight decay.</summary>
public sealed class AdamW : Optimizer
{
    private readonly AdamWOptions options;

    /// <summary>AdamW over one group of parameters.</summary>
    public AdamW(IEnumerable<Tensor> parameters, AdamWOptions options) : this([new ParameterGroup(parameters)], options)
    {
    }

    /// <summary>AdamW over parameter groups.</summary>
    public AdamW(IEnumerable<ParameterGroup> groups, AdamWOptions options)
        : base(groups, (options ?? throw new ArgumentNullException(nameof(options))).LearningRate, options.WeightDecay)
    {
        if (options.Beta1 is < 0 or >= 1 || options.Beta2 is < 0 or >= 1)
        {
            throw new ArgumentOutOfRangeException(nameof(options), "betas must be in [0, 1)");
        }

        CheckNonNegative(options.Eps, nameof(options.Eps));
        this.options = options;
    }

    /// <inheritdoc />
    protected override void Update(Tensor parameter, Tensor grad, ParameterGroup group, Dictionary<string, Tensor> state)
    {
        var lr = group.LearningRate;
        parameter.MulInPlace(1 - lr * group.WeightDecay);
        if (!state.TryGetValue("exp_avg", out var m))
        {
            m = Keep(state, "exp_avg", parameter.ZerosLike());
            Keep(state, "exp_avg_sq", parameter.ZerosLike());
            Keep(state, "step", Tensor.Scalar(0L));
        }

        var v = state["exp_avg_sq"];
        var step = state["step"].AddInPlace(1).ItemLong();
        m.LerpInPlace(grad, 1 - options.Beta1);
        v.MulInPlace(options.Beta2).AddcmulInPlace(grad, grad, 1 - options.Beta2);
        var bc1 = 1 - Math.Pow(options.Beta1, step);
        var bc2 = 1 - Math.Pow(options.Beta2, step);
        var denom = v.Sqrt().DivInPlace(Math.Sqrt(bc2)).AddInPlace(options.Eps);
        parameter.AddcdivInPlace(m, denom, -lr / bc1);
    }
}
