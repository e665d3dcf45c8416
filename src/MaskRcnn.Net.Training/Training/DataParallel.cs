using MaskRcnn.Net.Core;
using MaskRcnn.Net.Core.Distributed;
using MaskRcnn.Net.Core.NN;

namespace MaskRcnn.Net.Training;

/// <summary>
/// What the <see cref="Trainer"/> does with a <see cref="ProcessGroup"/> (torch DistributedDataParallel's
/// semantics, without its autograd hooks): rank 0's weights and buffers go to every rank at the start; after the
/// backward passes of an optimizer step the gradients are averaged across ranks, in flat buckets, one all-reduce per
/// bucket; decisions that must agree (stop, the planned number of steps) are agreed on; the losses shown are the
/// means over ranks. The time spent in collectives is summed for the communication share in the logs.
/// </summary>
/// <remarks>Control values (flags, counts, losses) travel as tensors on the model's device: NCCL only reduces CUDA tensors.</remarks>
internal sealed class DataParallel(ProcessGroup group, TimeProvider time, Device device) : IDisposable
{
    /// <summary>Bucket size of the gradient all-reduce (torch DDP's default bucket_cap_mb is 25).</summary>
    internal const long BucketBytes = 25L << 20;

    public ProcessGroup Group { get; } = group;

    public int Rank => Group.Rank;

    public int WorldSize => Group.WorldSize;

    private GradientReducer? reducer;

    /// <summary>Whether gradients are averaged during backward (c10d's Reducer) instead of by <see cref="AverageGradients"/>.</summary>
    public bool ReducesDuringBackward => reducer is not null;

    /// <summary>Switches to averaging during backward over <paramref name="parameters"/>.</summary>
    public void ReduceDuringBackward(IReadOnlyList<Tensor> parameters) => reducer = Group.CreateReducer(parameters);

    /// <summary>Arms the reduction of the coming backward pass (the last micro-batch of a step).</summary>
    public void PrepareBackward(Tensor loss) => reducer?.Prepare(loss);

    /// <summary>A failure of a backward pass during which the reducer communicated, as the typed error of a lost peer.</summary>
    public Exception BackwardFailed(TorchException e) => e is DistributedException ? e
        : new DistributedException($"rank {Rank} of {WorldSize}: the gradient all-reduce during backward failed (a peer disconnected, or did not take part within " +
            $"{Group.Options.Timeout.TotalSeconds:0} s; store {Group.Options.StoreAddress}): {e.Message.Split('\n', 2)[0]}", Rank, "all-reduce", e);

    /// <summary>Wall time spent in collectives since the last <see cref="TakeCommunicationTime"/>.</summary>
    private TimeSpan communication;

    public TimeSpan TakeCommunicationTime()
    {
        var t = communication;
        communication = TimeSpan.Zero;
        return t;
    }

    /// <summary>
    /// Refuses modules whose training differs per rank without synchronisation: BatchNorm in training mode
    /// normalises with each rank's own batch statistics and updates each rank's running statistics differently.
    /// </summary>
    public static void RefuseUnsynchronisedBatchNorm(Module module)
    {
        var bn = module.NamedModules().FirstOrDefault(m => m.Module is BatchNorm2d);
        if (bn.Module is not null)
        {
            throw new NotSupportedException(
                $"module '{bn.Name}' is a BatchNorm2d: in data-parallel training each rank would normalise with its own batch " +
                "statistics and drift apart (there is no synchronised BatchNorm). Use FrozenBatchNorm (torchvision's pretrained " +
                "layout) or GroupNorm for distributed training");
        }
    }

    /// <summary>Copies rank 0's parameters and buffers into every rank's module.</summary>
    public void BroadcastState(Module module)
    {
        using var noGrad = Torch.NoGrad();
        var tensors = module.NamedParameters().Select(p => p.Parameter).Concat(module.NamedBuffers().Select(b => b.Buffer)).ToList();
        Timed(() =>
        {
            foreach (var bucket in Buckets(tensors))
            {
                using var scope = Torch.NewDisposeScope();
                var flat = Tensor.Cat(bucket.Select(t => t.Detach().Reshape(-1)).ToList());
                Group.Broadcast(flat, 0);
                Scatter(flat, bucket);
            }
        });
    }

    /// <summary>
    /// Averages the gradients of <paramref name="parameters"/> (the same list, in the same order, on every rank).
    /// A parameter without a gradient on some ranks counts as zero there; one without a gradient on every rank keeps
    /// none (so optimizers skip it as they would in one process).
    /// </summary>
    public void AverageGradients(IReadOnlyList<Tensor> parameters)
    {
        using var noGrad = Torch.NoGrad();
        Timed(() =>
        {
            using var scope = Torch.NewDisposeScope();
            var has = Control(parameters.Select(p => p.Grad is null ? 0.0 : 1.0).ToArray());
            Group.AllReduce(has);
            var counts = Read<double>(has);
            var withGrad = new List<Tensor>();
            for (var i = 0; i < parameters.Count; i++)
            {
                if (counts[i] == 0)
                {
                    continue;
                }

                var p = parameters[i];
                if (p.Grad is null)
                {
                    var zero = p.Detach().ZerosLike();
                    p.Grad = zero;
                }

                withGrad.Add(p.Grad!);
            }

            foreach (var bucket in Buckets(withGrad))
            {
                using var bucketScope = Torch.NewDisposeScope();
                var flat = Tensor.Cat(bucket.Select(g => g.Reshape(-1)).ToList());
                Group.AllReduce(flat);
                flat.DivInPlace(WorldSize);
                Scatter(flat, bucket);
            }
        });
    }

    /// <summary>For each flag, true on every rank when it is true on any rank (one collective for all).</summary>
    public bool[] Any(params bool[] local)
    {
        using var t = Control(local.Select(f => f ? 1L : 0L).ToArray());
        Timed(() => Group.AllReduce(t, ReduceOp.Max));
        return Read<long>(t).Select(v => v != 0).ToArray();
    }

    /// <summary>Rank 0's <paramref name="value"/> on every rank.</summary>
    public long FromRankZero(long value)
    {
        using var t = Control([value]);
        Timed(() => Group.Broadcast(t, 0));
        return Read<long>(t)[0];
    }

    /// <summary>The mean over ranks of each value (the same keys in the same order on every rank).</summary>
    public double[] Mean(double[] values)
    {
        using var t = Control(values);
        Timed(() => Group.AllReduce(t));
        return Read<double>(t).Select(v => v / WorldSize).ToArray();
    }

    /// <summary>
    /// Checks that every rank starts from the same position and configuration (a rank that did not find the
    /// checkpoint, or got other data or options, would otherwise train out of step until a collective mismatched).
    /// </summary>
    /// <exception cref="InvalidOperationException">A value differs between ranks; the message names it.</exception>
    public void CheckAgreement(IReadOnlyList<(string Name, long Value)> values)
    {
        var mine = values.Select(v => v.Value).ToArray();
        using var max = Control(mine);
        using var min = Control(mine.Select(v => -v).ToArray());
        Timed(() =>
        {
            Group.AllReduce(max, ReduceOp.Max);
            Group.AllReduce(min, ReduceOp.Max);
        });
        var hi = Read<long>(max);
        var lo = Read<long>(min).Select(v => -v).ToArray();
        for (var i = 0; i < values.Count; i++)
        {
            if (hi[i] != lo[i])
            {
                throw new InvalidOperationException(
                    $"rank {Rank} of {WorldSize}: the ranks disagree on the {values[i].Name} (this rank {mine[i]}, the ranks {lo[i]} … {hi[i]}): " +
                    "start every rank with the same data, options and checkpoint");
            }
        }
    }

    private Tensor Control<T>(T[] values) where T : unmanaged
    {
        var t = Tensor.FromArray(values, values.Length);
        if (device.Type == DeviceType.Cpu)
        {
            return t;
        }

        using (t)
        {
            return t.To(device);
        }
    }

    private static T[] Read<T>(Tensor t) where T : unmanaged
    {
        if (t.Device.Type == DeviceType.Cpu)
        {
            return t.ToArray<T>();
        }

        using var cpu = t.To(Device.Cpu);
        return cpu.ToArray<T>();
    }

    public void Barrier() => Timed(Group.Barrier);

    public void Dispose()
    {
        reducer?.Dispose();
        Group.Dispose();
    }

    private void Timed(Action action)
    {
        var start = time.GetTimestamp();
        try
        {
            action();
        }
        finally
        {
            communication += time.GetElapsedTime(start);
        }
    }

    /// <summary>Consecutive runs of same-dtype tensors of at most <see cref="BucketBytes"/> (a larger tensor is a bucket by itself).</summary>
    private static IEnumerable<List<Tensor>> Buckets(IReadOnlyList<Tensor> tensors)
    {
        var bucket = new List<Tensor>();
        long bytes = 0;
        foreach (var t in tensors)
        {
            var size = t.NumEl * t.DType.ElementSize();
            if (bucket.Count > 0 && (bytes + size > BucketBytes || bucket[0].DType != t.DType))
            {
                yield return bucket;
                bucket = [];
                bytes = 0;
            }

            bucket.Add(t);
            bytes += size;
        }

        if (bucket.Count > 0)
        {
            yield return bucket;
        }
    }

    private static void Scatter(Tensor flat, List<Tensor> targets)
    {
        long offset = 0;
        foreach (var t in targets)
        {
            var n = t.NumEl;
            t.CopyFrom(flat.Narrow(0, offset, n).View(t.Shape));
            offset += n;
        }
    }
}
