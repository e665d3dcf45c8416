namespace MaskRcnn.Net.Core;

/// <summary>
/// A private random stream (PyTorch's <c>torch.Generator</c>): random tensor operations run inside
/// <see cref="Use"/> draw from it instead of libtorch's process-wide default generator, so a seeded computation (model
/// initialisation, a training run) gives the same numbers whatever else in the process draws random numbers, on
/// other threads too. A generator seeded with <c>s</c> produces the same stream as the default generator after
/// <see cref="Torch.ManualSeed"/>(<c>s</c>). Each device gets its own native generator, created on first use with
/// the same seed. Draws from one generator on several threads at once are safe but their order is not defined.
/// </summary>
public sealed class RandomGenerator : IDisposable
{
    private static readonly AsyncLocal<RandomGenerator?> CurrentGenerator = new();

    private readonly Dictionary<Device, GeneratorHandle> handles = [];
    private readonly Lock gate = new();
    private bool disposed;

    /// <summary>Creates a generator with the given seed.</summary>
    public RandomGenerator(ulong seed) => Seed = seed;

    /// <summary>The seed every device's stream starts from.</summary>
    public ulong Seed { get; }

    /// <summary>The generator random operations of the current thread (or async flow) draw from; null: libtorch's default.</summary>
    public static RandomGenerator? Current => CurrentGenerator.Value;

    /// <summary>
    /// Makes <paramref name="generator"/> the <see cref="Current"/> one until the returned scope is disposed (scopes
    /// nest; null selects libtorch's default generator inside the scope). The choice flows with the execution context:
    /// into async continuations and into tasks or threads started inside the scope, not into threads already running.
    /// </summary>
    public static IDisposable Use(RandomGenerator? generator)
    {
        ObjectDisposedException.ThrowIf(generator?.disposed == true, generator!);
        var scope = new Scope(CurrentGenerator.Value);
        CurrentGenerator.Value = generator;
        return scope;
    }

    /// <summary>
    /// The state of this generator's stream on <paramref name="device"/> (default CPU) as a uint8 CPU tensor owned by
    /// the caller; <see cref="SetState"/> restores it so draws continue identically.
    /// </summary>
    public Tensor GetState(Device? device = null) =>
        new(Native.Check(NativeMethods.mr_generator_get_state(Handle(device ?? Device.Cpu))));

    /// <summary>Restores a state returned by <see cref="GetState"/> (throws <see cref="TorchException"/> for a tensor that is not one).</summary>
    public void SetState(Tensor state, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(state);
        Native.Check(NativeMethods.mr_generator_set_state(Handle(device ?? Device.Cpu), state.Handle));
    }

    /// <summary>Frees the native generators.</summary>
    public void Dispose()
    {
        lock (gate)
        {
            disposed = true;
            foreach (var h in handles.Values)
            {
                h.Dispose();
            }

            handles.Clear();
        }
    }

    /// <summary>The native generator random operations on <paramref name="device"/> should draw from right now.</summary>
    internal static GeneratorHandle CurrentHandle(Device device) =>
        CurrentGenerator.Value is { } g ? g.Handle(device) : GeneratorHandle.Default;

    /// <summary>The native generator an in-place random operation on <paramref name="tensor"/> should draw from.</summary>
    internal static GeneratorHandle CurrentHandle(Tensor tensor) =>
        CurrentGenerator.Value is { } g ? g.Handle(tensor.Device) : GeneratorHandle.Default;

    private GeneratorHandle Handle(Device device)
    {
        if (device.Type == DeviceType.Cpu)
        {
            device = Device.Cpu;
        }

        lock (gate)
        {
            ObjectDisposedException.ThrowIf(disposed, this);
            if (!handles.TryGetValue(device, out var h))
            {
                h = new GeneratorHandle(Native.Check(NativeMethods.mr_generator_new((int)device.Type, device.Index, Seed)));
                handles[device] = h;
            }

            return h;
        }
    }

    private sealed class Scope(RandomGenerator? previous) : IDisposable
    {
        private bool done;

        public void Dispose()
        {
            if (!done)
            {
                done = true;
                CurrentGenerator.Value = previous;
            }
        }
    }
}
