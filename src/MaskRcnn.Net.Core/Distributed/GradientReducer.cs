namespace MaskRcnn.Net.Core.Distributed;

/// <summary>
/// c10d's <c>Reducer</c> (created by <see cref="ProcessGroup.CreateReducer"/>): gradients are averaged across ranks
/// during backward, bucket by bucket as they become ready. Call <see cref="Prepare"/> with the loss before each
/// backward pass whose gradients must be reduced; a backward pass without it (an intermediate micro-batch of
/// gradient accumulation) only accumulates locally. Dispose it before the parameters.
/// </summary>
public sealed class GradientReducer : IDisposable
{
    private readonly ProcessGroup group;
    private nint handle;

    internal GradientReducer(ProcessGroup group, nint handle)
    {
        this.group = group;
        this.handle = handle;
    }

    /// <summary>Arms the reduction of the next backward pass from <paramref name="loss"/>.</summary>
    /// <exception cref="DistributedException">The reducer is in a bad state (e.g. the previous reduction did not finish).</exception>
    public unsafe void Prepare(Tensor loss)
    {
        ArgumentNullException.ThrowIfNull(loss);
        ObjectDisposedException.ThrowIf(handle == 0, this);
        ProcessGroup.WithHandles([loss], p => group.Check(DistributedNativeMethods.mr_reducer_prepare(handle, p, 1) < 0, "gradient reduction setup"));
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (handle != 0)
        {
            DistributedNativeMethods.mr_reducer_free(handle);
            handle = 0;
        }
    }
}
