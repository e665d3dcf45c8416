namespace MaskRcnn.Net.Core.Distributed;

/// <summary>
/// A distributed operation failed: the store could not be reached or bound, a peer disconnected (a process died), or
/// a collective did not complete within <see cref="DistributedOptions.Timeout"/>. The message names the rank, the
/// address and the operation; <see cref="Exception.InnerException"/> carries libtorch's message.
/// </summary>
public sealed class DistributedException : TorchException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="message">What failed, naming rank, address and operation.</param>
    /// <param name="rank">The rank that reports the failure.</param>
    /// <param name="operation">The operation that failed (e.g. <c>all-reduce</c>, <c>rendezvous</c>).</param>
    /// <param name="inner">libtorch's error.</param>
    public DistributedException(string message, int rank, string operation, Exception? inner = null)
        : base(message, inner ?? new TorchException(message))
    {
        Rank = rank;
        Operation = operation;
    }

    /// <summary>The rank that reports the failure.</summary>
    public int Rank { get; }

    /// <summary>The operation that failed.</summary>
    public string Operation { get; }
}
