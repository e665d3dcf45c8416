using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace MaskRcnn.Net.Core.Distributed;

/// <summary>The reduction of an all-reduce.</summary>
public enum ReduceOp
{
    /// <summary>Element-wise sum.</summary>
    Sum = 0,

    /// <summary>Element-wise product.</summary>
    Product = 1,

    /// <summary>Element-wise minimum.</summary>
    Min = 2,

    /// <summary>Element-wise maximum.</summary>
    Max = 3,
}

/// <summary>
/// A group of processes that exchange tensors through libtorch's c10d: rank 0 serves a key-value store (TCP, or a
/// shared file) where the ranks meet, then Gloo (or NCCL) runs the collectives. Every collective blocks until all
/// ranks have taken part; one that cannot complete — a peer died, or did not arrive within
/// <see cref="DistributedOptions.Timeout"/> — throws a <see cref="DistributedException"/> naming this rank, the store's
/// address and the operation, never hanging past the timeout.
/// </summary>
/// <remarks>All ranks must call the same collectives in the same order with tensors of the same shapes and dtypes.</remarks>
public sealed class ProcessGroup : IDisposable
{
    private readonly OwnedHandle store;
    private readonly OwnedHandle group;

    private ProcessGroup(DistributedOptions options, OwnedHandle store, OwnedHandle group)
    {
        Options = options;
        this.store = store;
        this.group = group;
    }

    /// <summary>The options the group was created with.</summary>
    public DistributedOptions Options { get; }

    /// <summary>This process's rank.</summary>
    public int Rank => Options.Rank;

    /// <summary>The number of processes.</summary>
    public int WorldSize => Options.WorldSize;

    /// <summary>Whether this native library was built with c10d and Gloo (see the build notes when false).</summary>
    public static bool IsAvailable => (DistributedNativeMethods.mr_dist_backends() & 1) != 0;

    /// <summary>Whether this native library was built with NCCL.</summary>
    public static bool IsNcclAvailable => (DistributedNativeMethods.mr_dist_backends() & 2) != 0;

    /// <summary>
    /// Joins the job: rank 0 starts the store, every rank connects to it and waits (at most
    /// <see cref="DistributedOptions.Timeout"/>) until all <see cref="DistributedOptions.WorldSize"/> ranks have
    /// arrived.
    /// </summary>
    /// <exception cref="ArgumentException">The options are invalid.</exception>
    /// <exception cref="DistributedException">
    /// The store could not be served (port in use) or reached (unreachable master), or not all ranks arrived in time.
    /// </exception>
    public static ProcessGroup Create(DistributedOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var timeoutMs = (long)Math.Ceiling(options.Timeout.TotalMilliseconds);
        var who = $"rank {options.Rank} of {options.WorldSize}";
        nint s;
        if (options.StoreFile is { } file)
        {
            s = DistributedNativeMethods.mr_store_file(file, options.WorldSize, timeoutMs);
            Fail(s == 0, options, "store", $"{who} could not open the store file {file}");
        }
        else
        {
            var server = options.Rank == 0 && !options.StoreServedByLauncher;
            s = DistributedNativeMethods.mr_store_tcp(options.MasterAddress, options.MasterPort, server ? 1 : 0, options.WorldSize, timeoutMs);
            Fail(s == 0, options, "store", server
                ? $"{who} could not serve the store on port {options.MasterPort} (is the port in use, e.g. by another job?)"
                : $"{who} could not reach the master at {options.StoreAddress} within {Describe(options.Timeout)} (is rank 0 running, and the address right?)");
        }

        var storeHandle = new OwnedHandle(s, DistributedNativeMethods.mr_store_free);
        var prefix = string.Create(CultureInfo.InvariantCulture, $"maskrcnn/{options.RestartCount}/");
        try
        {
            var iface = options.NetworkInterface;
            var hostname = iface is null && options.IsLoopback ? "127.0.0.1" : null;
            var g = options.Backend switch
            {
                DistributedBackend.Gloo => DistributedNativeMethods.mr_pg_gloo(s, prefix, options.Rank, options.WorldSize, iface, hostname, timeoutMs, options.CommunicationThreads),
                DistributedBackend.Nccl => DistributedNativeMethods.mr_pg_nccl(s, prefix, options.Rank, options.WorldSize, timeoutMs),
                _ => throw new ArgumentException($"unknown backend {options.Backend}", nameof(options)),
            };
            Fail(g == 0, options, "rendezvous",
                $"{who}: not all {options.WorldSize} ranks met at {options.StoreAddress} within {Describe(options.Timeout)} ({options.Backend})");
            return new ProcessGroup(options, storeHandle, new OwnedHandle(g, DistributedNativeMethods.mr_pg_free));
        }
        catch
        {
            storeHandle.Dispose();
            throw;
        }
    }

    /// <summary>Reduces <paramref name="tensor"/> across all ranks, in place: afterwards every rank holds the result.</summary>
    /// <exception cref="DistributedException">A peer is gone or did not take part within the timeout.</exception>
    public void AllReduce(Tensor tensor, ReduceOp op = ReduceOp.Sum)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        Run("all-reduce", h => DistributedNativeMethods.mr_pg_allreduce(h, tensor.Handle, (int)op));
    }

    /// <summary>Reduces several tensors in one collective (Gloo: dense CPU tensors of one dtype), in place.</summary>
    /// <exception cref="DistributedException">A peer is gone or did not take part within the timeout.</exception>
    public unsafe void AllReduce(IReadOnlyList<Tensor> tensors, ReduceOp op = ReduceOp.Sum)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        if (tensors.Count == 0)
        {
            return;
        }

        WithHandles(tensors, p =>
        {
            var n = tensors.Count;
            Run("all-reduce", h => DistributedNativeMethods.mr_pg_allreduce_coalesced(h, p, n, (int)op));
        });
    }

    /// <summary>
    /// c10d's <c>Reducer</c>, DistributedDataParallel's engine, over <paramref name="parameters"/> (the same list in
    /// the same order on every rank): autograd hooks all-reduce their gradients in buckets while backward still runs
    /// and leave the averages over ranks in <see cref="Tensor.Grad"/> when it ends. Only backward passes armed with
    /// <see cref="GradientReducer.Prepare"/> are reduced.
    /// </summary>
    /// <param name="parameters">Leaf tensors that require gradients.</param>
    /// <param name="firstBucketBytes">Size of the first bucket (torch: 1 MiB), so that communication starts early.</param>
    /// <param name="bucketBytes">Size of the other buckets (torch: 25 MiB).</param>
    public unsafe GradientReducer CreateReducer(IReadOnlyList<Tensor> parameters, long firstBucketBytes = 1L << 20, long bucketBytes = 25L << 20)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentOutOfRangeException.ThrowIfLessThan(parameters.Count, 1);
        nint r = 0;
        WithHandles(parameters, p =>
        {
            var n = parameters.Count;
            Run("reducer setup", h => (r = DistributedNativeMethods.mr_reducer_new(h, p, n, firstBucketBytes, bucketBytes, findUnused: 1)) == 0 ? -1 : 0);
        });
        return new GradientReducer(this, r);
    }

    /// <summary>Code that gets the raw handles of tensors.</summary>
    internal unsafe delegate void HandlesBody(nint* handles);

    /// <summary>Runs <paramref name="body"/> with the raw handles of <paramref name="tensors"/> pinned.</summary>
    internal static unsafe void WithHandles(IReadOnlyList<Tensor> tensors, HandlesBody body)
    {
        var handles = new nint[tensors.Count];
        var refs = new bool[tensors.Count];
        try
        {
            for (var i = 0; i < handles.Length; i++)
            {
                var th = tensors[i].Handle;
                th.DangerousAddRef(ref refs[i]);
                handles[i] = th.DangerousGetHandle();
            }

            fixed (nint* p = handles)
            {
                body(p);
            }
        }
        finally
        {
            for (var i = 0; i < handles.Length; i++)
            {
                if (refs[i])
                {
                    tensors[i].Handle.DangerousRelease();
                }
            }
        }
    }

    /// <summary>Turns a failed native call into a <see cref="DistributedException"/> naming this rank and the store.</summary>
    internal void Check(bool failed, string operation) =>
        Fail(failed, Options, operation,
            $"rank {Rank} of {WorldSize}: {operation} failed (a peer disconnected, or did not take part within {Describe(Options.Timeout)}; store {Options.StoreAddress})");

    /// <summary>Copies <paramref name="tensor"/> of rank <paramref name="root"/> into the same tensor of every other rank.</summary>
    /// <exception cref="DistributedException">A peer is gone or did not take part within the timeout.</exception>
    public void Broadcast(Tensor tensor, int root = 0)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        ArgumentOutOfRangeException.ThrowIfNegative(root);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(root, WorldSize);
        Run("broadcast", h => DistributedNativeMethods.mr_pg_broadcast(h, tensor.Handle, root));
    }

    /// <summary>Waits until every rank has reached this call.</summary>
    /// <exception cref="DistributedException">A peer is gone or did not arrive within the timeout.</exception>
    public void Barrier() => Run("barrier", DistributedNativeMethods.mr_pg_barrier);

    /// <summary>Stores <paramref name="value"/> under <paramref name="key"/> in the job's key-value store.</summary>
    public unsafe void StoreSet(string key, ReadOnlySpan<byte> value)
    {
        ArgumentException.ThrowIfNullOrEmpty(key);
        fixed (byte* p = value)
        {
            var ptr = p;
            var n = value.Length;
            RunStore("store set", h => DistributedNativeMethods.mr_store_set(h, "user/" + key, ptr, n));
        }
    }

    /// <summary>Waits (at most the timeout) for <paramref name="key"/> in the job's key-value store and returns its value.</summary>
    public unsafe byte[] StoreGet(string key)
    {
        ArgumentException.ThrowIfNullOrEmpty(key);
        var buffer = new byte[256];
        while (true)
        {
            long n = 0;
            fixed (byte* p = buffer)
            {
                var ptr = p;
                var cap = buffer.Length;
                RunStore("store get", h => (int)Math.Min(int.MaxValue, n = DistributedNativeMethods.mr_store_get(h, "user/" + key, ptr, cap)));
            }

            if (n <= buffer.Length)
            {
                return buffer[..(int)n];
            }

            buffer = new byte[n];
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        group.Dispose();
        store.Dispose();
    }

    private void Run(string operation, Func<nint, int> call)
    {
        var added = false;
        group.DangerousAddRef(ref added);
        try
        {
            Check(call(group.DangerousGetHandle()) < 0, operation);
        }
        finally
        {
            if (added)
            {
                group.DangerousRelease();
            }
        }
    }

    private void RunStore(string operation, Func<nint, int> call)
    {
        var added = false;
        store.DangerousAddRef(ref added);
        try
        {
            Fail(call(store.DangerousGetHandle()) < 0, Options, operation, $"rank {Rank} of {WorldSize}: {operation} at {Options.StoreAddress} failed");
        }
        finally
        {
            if (added)
            {
                store.DangerousRelease();
            }
        }
    }

    private static void Fail(bool failed, DistributedOptions options, string operation, string message)
    {
        if (!failed)
        {
            return;
        }

        var p = NativeMethods.mr_last_error();
        var native = p == 0 ? "no message" : Marshal.PtrToStringUTF8(p) ?? "";
        NativeMethods.mr_clear_error();
        var first = native.Split('\n', 2)[0].Trim();
        throw new DistributedException($"{message}: {first}", options.Rank, operation, new TorchException(native));
    }

    private static string Describe(TimeSpan t) => t.TotalSeconds < 120
        ? string.Create(CultureInfo.InvariantCulture, $"{t.TotalSeconds:0.#} s")
        : string.Create(CultureInfo.InvariantCulture, $"{t.TotalMinutes:0.#} min");

    /// <summary>Owns one c10d object of the shim (a store or a process group), freed by its own call.</summary>
    private sealed class OwnedHandle : SafeHandle
    {
        private readonly Action<nint> free;

        public OwnedHandle(nint h, Action<nint> free) : base(0, ownsHandle: true)
        {
            this.free = free;
            SetHandle(h);
        }

        public override bool IsInvalid => handle == 0;

        protected override bool ReleaseHandle()
        {
            free(handle);
            return true;
        }
    }
}
