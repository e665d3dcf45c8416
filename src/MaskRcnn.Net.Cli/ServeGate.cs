namespace MaskRcnn.Net.Cli;

/// <summary>
/// Bounds the predictions <c>maskrcnn serve</c> runs at once: up to <c>maxConcurrency</c> hold a slot, up to
/// <c>maxQueue</c> more wait for one (each at most <c>queueTimeout</c>); any request beyond that is refused at once.
/// </summary>
internal sealed class ServeGate : IDisposable
{
    private readonly SemaphoreSlim slots;
    private readonly int capacity;
    private readonly TimeSpan queueTimeout;
    private int pending;

    /// <summary>A gate of <paramref name="maxConcurrency"/> slots and a queue of <paramref name="maxQueue"/>.</summary>
    public ServeGate(int maxConcurrency, int maxQueue, TimeSpan queueTimeout)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxConcurrency, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(maxQueue);
        slots = new SemaphoreSlim(maxConcurrency, maxConcurrency);
        capacity = maxConcurrency + maxQueue;
        this.queueTimeout = queueTimeout;
    }

    /// <summary>Requests holding a slot or waiting for one.</summary>
    public int Pending => Volatile.Read(ref pending);

    /// <summary>
    /// Takes a slot (dispose the result to give it back), or returns null when the queue is full or the wait timed out.
    /// </summary>
    /// <exception cref="OperationCanceledException">The request was cancelled while waiting.</exception>
    public async Task<IDisposable?> EnterAsync(CancellationToken cancellationToken)
    {
        if (Interlocked.Increment(ref pending) > capacity)
        {
            Interlocked.Decrement(ref pending);
            return null;
        }

        bool entered;
        try
        {
            entered = await slots.WaitAsync(queueTimeout, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            Interlocked.Decrement(ref pending);
            throw;
        }

        if (!entered)
        {
            Interlocked.Decrement(ref pending);
            return null;
        }

        return new Slot(this);
    }

    /// <summary>Releases the semaphore.</summary>
    public void Dispose() => slots.Dispose();

    private sealed class Slot(ServeGate gate) : IDisposable
    {
        private int released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref released, 1) == 0)
            {
                gate.slots.Release();
                Interlocked.Decrement(ref gate.pending);
            }
        }
    }
}
