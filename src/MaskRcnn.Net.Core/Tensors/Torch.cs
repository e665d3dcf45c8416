namespace MaskRcnn.Net.Core;

/// <summary>Process-wide libtorch state and scopes: dispose scopes, grad modes, RNG seed, thread count.</summary>
public static class Torch
{
    /// <summary>Opens a dispose scope on this thread; tensors created until it is disposed die with it.</summary>
    public static DisposeScope NewDisposeScope() => new();

    /// <summary>Disables gradient recording on this thread until the returned scope is disposed.</summary>
    public static IDisposable NoGrad() => new GradModeScope(false);

    /// <summary>Enables gradient recording on this thread until the returned scope is disposed.</summary>
    public static IDisposable EnableGrad() => new GradModeScope(true);

    /// <summary>
    /// libtorch's inference mode on this thread (faster than <see cref="NoGrad"/>; tensors created inside can never
    /// take part in autograd). Dispose on the same thread.
    /// </summary>
    public static IDisposable InferenceMode() => new InferenceModeScope();

    /// <summary>Whether gradients are recorded on this thread.</summary>
    public static bool IsGradEnabled => NativeMethods.mr_grad_enabled() != 0;

    /// <summary>Seeds the CPU (and every CUDA) default random generator; a <see cref="RandomGenerator"/> keeps its own seed.</summary>
    public static void ManualSeed(ulong seed) => Native.Check(NativeMethods.mr_manual_seed(seed));

    /// <summary>
    /// The state of a device's default random generator (PyTorch's <c>torch.get_rng_state()</c>) as a uint8 CPU
    /// tensor owned by the caller; <see cref="SetRngState"/> restores it so random draws continue identically.
    /// </summary>
    public static Tensor GetRngState(Device? device = null)
    {
        var d = device ?? Device.Cpu;
        return new Tensor(Native.Check(NativeMethods.mr_get_rng_state((int)d.Type, d.Index)));
    }

    /// <summary>Restores a state returned by <see cref="GetRngState"/> (throws <see cref="TorchException"/> for a tensor that is not one).</summary>
    public static void SetRngState(Tensor state, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(state);
        var d = device ?? Device.Cpu;
        Native.Check(NativeMethods.mr_set_rng_state((int)d.Type, d.Index, state.Handle));
    }

    /// <summary>Intra-op thread count of libtorch.</summary>
    public static int NumThreads
    {
        get => NativeMethods.mr_get_num_threads();
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 1);
            NativeMethods.mr_set_num_threads(value);
        }
    }

    /// <summary>libtorch's build configuration (BLAS, OpenMP, CPU capability, CUDA).</summary>
    public static string BuildConfig => Native.TakeString(NativeMethods.mr_config_string());

    /// <summary>Version of the native shim's C ABI.</summary>
    public static int NativeAbiVersion => NativeMethods.mr_abi_version();

    private sealed class GradModeScope : IDisposable
    {
        private readonly bool previous;
        private bool disposed;

        internal GradModeScope(bool enabled)
        {
            previous = NativeMethods.mr_grad_enabled() != 0;
            NativeMethods.mr_set_grad_enabled(enabled ? 1 : 0);
        }

        public void Dispose()
        {
            if (!disposed)
            {
                disposed = true;
                NativeMethods.mr_set_grad_enabled(previous ? 1 : 0);
            }
        }
    }

    private sealed class InferenceModeScope : IDisposable
    {
        private nint guard;

        internal InferenceModeScope() => guard = Native.Check(NativeMethods.mr_inference_mode_enter());

        public void Dispose()
        {
            if (guard != 0)
            {
                NativeMethods.mr_inference_mode_exit(guard);
                guard = 0;
            }
        }
    }
}
