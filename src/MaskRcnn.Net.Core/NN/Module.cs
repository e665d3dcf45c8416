namespace MaskRcnn.Net.Core.NN;

/// <summary>
/// Thrown when a state dict does not fit a module: a missing, unexpected or wrong-shaped key. The message names
/// the key and both shapes.
/// </summary>
public sealed class CheckpointMismatchException : Exception
{
    /// <summary>Creates the exception.</summary>
    public CheckpointMismatchException(string message) : base(message)
    {
    }

    /// <summary>Keys the module has but the state dict lacks.</summary>
    public IReadOnlyList<string> MissingKeys { get; init; } = [];

    /// <summary>Keys the state dict has but the module lacks.</summary>
    public IReadOnlyList<string> UnexpectedKeys { get; init; } = [];
}

/// <summary>Result of a non-strict <see cref="Module.LoadStateDict"/>.</summary>
/// <param name="MissingKeys">Module keys not present in the state dict (left unchanged).</param>
/// <param name="UnexpectedKeys">State-dict keys the module does not have (ignored).</param>
public sealed record LoadStateDictResult(IReadOnlyList<string> MissingKeys, IReadOnlyList<string> UnexpectedKeys);

/// <summary>
/// Base class of network building blocks: owns named parameters, buffers and child modules in a hierarchy whose
/// dotted names (<c>layer1.0.conv1.weight</c>) are the state-dict keys. Parameters and buffers are owned by the
/// module (not by any dispose scope) and die with <see cref="Dispose()"/>.
/// </summary>
public abstract class Module : IDisposable
{
    private readonly List<KeyValuePair<string, Tensor>> parameters = [];
    private readonly List<KeyValuePair<string, Tensor>> buffers = [];
    private readonly HashSet<string> nonPersistent = [];
    private readonly List<KeyValuePair<string, Module>> children = [];
    private bool disposed;

    /// <summary>True in training mode (dropout active, batch norm uses batch statistics).</summary>
    public bool IsTraining { get; private set; } = true;

    /// <summary>Registers a parameter (gradients on when <paramref name="requiresGrad"/>) and returns it.</summary>
    protected Tensor RegisterParameter(string name, Tensor value, bool requiresGrad = true)
    {
        CheckName(name);
        ArgumentNullException.ThrowIfNull(value);
        value.DetachFromDisposeScope();
        value.RequiresGrad = requiresGrad && value.DType.IsFloatingPoint();
        parameters.Add(new(name, value));
        return value;
    }

    /// <summary>Registers a buffer (state that is not trained, e.g. running statistics) and returns it.</summary>
    protected Tensor RegisterBuffer(string name, Tensor value, bool persistent = true)
    {
        CheckName(name);
        ArgumentNullException.ThrowIfNull(value);
        value.DetachFromDisposeScope();
        buffers.Add(new(name, value));
        if (!persistent)
        {
            nonPersistent.Add(name);
        }

        return value;
    }

    /// <summary>Registers a child module and returns it.</summary>
    protected T RegisterModule<T>(string name, T module) where T : Module
    {
        CheckName(name);
        ArgumentNullException.ThrowIfNull(module);
        children.Add(new(name, module));
        return module;
    }

    private void CheckName(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (name.Contains('.'))
        {
            throw new ArgumentException($"member name '{name}' must not contain '.'", nameof(name));
        }

        if (parameters.Any(p => p.Key == name) || buffers.Any(b => b.Key == name) || children.Any(c => c.Key == name))
        {
            throw new ArgumentException($"'{name}' is already registered in {GetType().Name}", nameof(name));
        }
    }

    /// <summary>Direct children in registration order.</summary>
    public IEnumerable<(string Name, Module Module)> NamedChildren() => children.Select(c => (c.Key, c.Value));

    /// <summary>This module and every descendant with its dotted path ("" for this one).</summary>
    public IEnumerable<(string Name, Module Module)> NamedModules(string prefix = "")
    {
        yield return (prefix, this);
        foreach (var (name, child) in children)
        {
            foreach (var m in child.NamedModules(Join(prefix, name)))
            {
                yield return m;
            }
        }
    }

    /// <summary>Every parameter with its dotted name (recursing into children).</summary>
    public IEnumerable<(string Name, Tensor Parameter)> NamedParameters(bool recurse = true) =>
        Walk(m => m.parameters, recurse);

    /// <summary>Every buffer with its dotted name (recursing into children).</summary>
    public IEnumerable<(string Name, Tensor Buffer)> NamedBuffers(bool recurse = true) => Walk(m => m.buffers, recurse);

    /// <summary>Every parameter (recursing into children).</summary>
    public IEnumerable<Tensor> Parameters() => NamedParameters().Select(p => p.Parameter);

    /// <summary>Parameters that currently require gradients (what an optimizer should update).</summary>
    public IEnumerable<Tensor> TrainableParameters() => Parameters().Where(p => p.RequiresGrad);

    private IEnumerable<(string, Tensor)> Walk(Func<Module, List<KeyValuePair<string, Tensor>>> select, bool recurse, string prefix = "")
    {
        foreach (var (name, t) in select(this))
        {
            yield return (Join(prefix, name), t);
        }

        if (!recurse)
        {
            yield break;
        }

        foreach (var (name, child) in children)
        {
            foreach (var item in child.Walk(select, true, Join(prefix, name)))
            {
                yield return item;
            }
        }
    }

    private static string Join(string prefix, string name) => prefix.Length == 0 ? name : prefix + "." + name;

    /// <summary>
    /// Parameters and persistent buffers by state-dict key, in registration order. The tensors are the module's own
    /// (not copies): do not dispose them.
    /// </summary>
    public IReadOnlyList<KeyValuePair<string, Tensor>> StateDict()
    {
        var result = new List<KeyValuePair<string, Tensor>>();
        Collect(result, "");
        return result;
    }

    private void Collect(List<KeyValuePair<string, Tensor>> into, string prefix)
    {
        foreach (var (name, t) in parameters)
        {
            into.Add(new(Join(prefix, name), t));
        }

        foreach (var (name, t) in buffers)
        {
            if (!nonPersistent.Contains(name))
            {
                into.Add(new(Join(prefix, name), t));
            }
        }

        foreach (var (name, child) in children)
        {
            child.Collect(into, Join(prefix, name));
        }
    }

    /// <summary>
    /// Copies values from <paramref name="stateDict"/> into this module's parameters and buffers (converting dtype
    /// and device). Strict: every key must match in name and shape, or a <see cref="CheckpointMismatchException"/>
    /// names the key and both shapes. Non-strict: shapes must still match; missing/unexpected keys are reported.
    /// </summary>
    public LoadStateDictResult LoadStateDict(IReadOnlyDictionary<string, Tensor> stateDict, bool strict = true)
    {
        ArgumentNullException.ThrowIfNull(stateDict);
        var own = StateDict();
        var ownKeys = own.Select(kv => kv.Key).ToHashSet();
        var missing = own.Where(kv => !stateDict.ContainsKey(kv.Key)).Select(kv => kv.Key).ToList();
        var unexpected = stateDict.Keys.Where(k => !ownKeys.Contains(k)).OrderBy(k => k, StringComparer.Ordinal).ToList();
        foreach (var (key, target) in own)
        {
            if (stateDict.TryGetValue(key, out var source) && !source.Shape.SequenceEqual(target.Shape))
            {
                throw new CheckpointMismatchException(
                    $"state dict key '{key}' has shape [{string.Join(", ", source.Shape)}] but the module expects [{string.Join(", ", target.Shape)}]");
            }
        }

        if (strict && (missing.Count > 0 || unexpected.Count > 0))
        {
            var parts = new List<string>();
            if (missing.Count > 0)
            {
                parts.Add($"missing keys: {string.Join(", ", missing.Take(20))}{(missing.Count > 20 ? $" (+{missing.Count - 20} more)" : "")}");
            }

            if (unexpected.Count > 0)
            {
                parts.Add($"unexpected keys: {string.Join(", ", unexpected.Take(20))}{(unexpected.Count > 20 ? $" (+{unexpected.Count - 20} more)" : "")}");
            }

            throw new CheckpointMismatchException($"state dict does not match {GetType().Name}: {string.Join("; ", parts)}")
            {
                MissingKeys = missing,
                UnexpectedKeys = unexpected,
            };
        }

        using (Torch.NoGrad())
        {
            foreach (var (key, target) in own)
            {
                if (stateDict.TryGetValue(key, out var source))
                {
                    target.CopyFrom(source);
                }
            }
        }

        return new LoadStateDictResult(missing, unexpected);
    }

    /// <summary>Sets training mode on this module and every descendant.</summary>
    public virtual Module Train(bool training = true)
    {
        foreach (var (_, m) in NamedModules())
        {
            m.IsTraining = training;
        }

        return this;
    }

    /// <summary>Sets evaluation mode (same as <c>Train(false)</c>).</summary>
    public Module Eval() => Train(false);

    /// <summary>Moves every parameter and buffer to <paramref name="device"/> (tensors keep their identity).</summary>
    public Module To(Device device) => Apply(t => t.To(device));

    /// <summary>Converts every floating-point parameter and buffer to <paramref name="dtype"/>.</summary>
    public Module To(DType dtype)
    {
        if (!dtype.IsFloatingPoint())
        {
            throw new ArgumentException($"modules convert to floating-point dtypes only, not {dtype}", nameof(dtype));
        }

        return Apply(t => t.DType.IsFloatingPoint() ? t.To(dtype) : t.Alias());
    }

    private Module Apply(Func<Tensor, Tensor> convert)
    {
        using var scope = Torch.NewDisposeScope();
        using (Torch.NoGrad())
        {
            foreach (var t in NamedParameters().Select(p => p.Parameter).Concat(NamedBuffers().Select(b => b.Buffer)))
            {
                var moved = convert(t);
                t.SetData(moved);
                using var g = t.Grad;
                if (g is not null)
                {
                    t.Grad = null;
                }
            }
        }

        return this;
    }

    /// <summary>Stops gradients for every parameter (requires_grad = false).</summary>
    public Module Freeze()
    {
        foreach (var p in Parameters())
        {
            p.RequiresGrad = false;
        }

        return this;
    }

    /// <summary>Enables gradients for every floating-point parameter.</summary>
    public Module Unfreeze()
    {
        foreach (var p in Parameters())
        {
            p.RequiresGrad = p.DType.IsFloatingPoint();
        }

        return this;
    }

    /// <summary>Clears the gradients of every parameter.</summary>
    public void ZeroGrad()
    {
        foreach (var p in Parameters())
        {
            p.Grad = null;
        }
    }

    /// <summary>Number of parameter elements (optionally only trainable ones).</summary>
    public long ParameterCount(bool trainableOnly = false) =>
        (trainableOnly ? TrainableParameters() : Parameters()).Sum(p => p.NumEl);

    /// <summary>Releases the native memory of all parameters, buffers and children.</summary>
    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Disposes owned tensors and children; override to release extra resources.</summary>
    protected virtual void Dispose(bool disposing)
    {
        if (disposed || !disposing)
        {
            return;
        }

        disposed = true;
        foreach (var (_, t) in parameters.Concat(buffers))
        {
            t.Dispose();
        }

        foreach (var (_, c) in children)
        {
            c.Dispose();
        }
    }
}
