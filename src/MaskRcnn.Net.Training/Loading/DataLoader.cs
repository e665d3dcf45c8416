using System.Runtime.CompilerServices;
using System.Threading.Channels;
using MaskRcnn.Net.Core;
using MaskRcnn.Net.Core.Structures;

namespace MaskRcnn.Net.Training;

/// <summary>
/// Turns an <see cref="IDetectionDataset"/> into batches of float images and <see cref="DetectionTarget"/>s,
/// optionally shuffled and augmented, loading <see cref="DataLoaderOptions.Prefetch"/> batches ahead on a background
/// task.
/// </summary>
/// <remarks>
/// <para>Determinism: the order of an epoch and every augmentation decision depend only on
/// <see cref="DataLoaderOptions.Seed"/>, the epoch number and the image's position in the epoch's global order — not
/// on timing, prefetching or (with a <see cref="DataLoaderOptions.Sampler"/>) the world size.</para>
/// <para>Data-parallel training: with <see cref="DataLoaderOptions.Sampler"/> set, the loader yields only this rank's
/// share of every epoch (see <see cref="DistributedSampler"/>), in consecutive batches of
/// <see cref="DataLoaderOptions.BatchSize"/>. An image's augmentation is seeded by its position in the padded global
/// order, so ranks draw different augmentation and a given global position gets the same augmentation whatever the
/// world size.</para>
/// <para>Errors while loading (an undecodable image: <see cref="Core.Imaging.ImageDecodeException"/> naming the file)
/// reach the consumer at the batch that failed, after the batches before it. Cancelling the token or abandoning the
/// enumeration stops the background task promptly and disposes the batches it had loaded ahead.</para>
/// <para>Every batch handed out is owned by the consumer (its tensors belong to no dispose scope); dispose it.</para>
/// </remarks>
public sealed class DataLoader : ITrainingBatchSource
{
    /// <summary>Creates a loader.</summary>
    /// <param name="dataset">The dataset. It is only used from one thread at a time.</param>
    /// <param name="options">Options, or null for the defaults.</param>
    public DataLoader(IDetectionDataset dataset, DataLoaderOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(dataset);
        options ??= new DataLoaderOptions();
        ArgumentOutOfRangeException.ThrowIfLessThan(options.BatchSize, 1, nameof(options));
        ArgumentOutOfRangeException.ThrowIfNegative(options.Prefetch, nameof(options));
        options.Sampler?.Validate();
        Dataset = dataset;
        Options = options;
    }

    /// <summary>The dataset.</summary>
    public IDetectionDataset Dataset { get; }

    /// <summary>The options.</summary>
    public DataLoaderOptions Options { get; }

    /// <summary>
    /// Number of batches per epoch (of this rank's share when <see cref="DataLoaderOptions.Sampler"/> is set;
    /// <see cref="DataLoaderOptions.DropLast"/> drops that share's last partial batch).
    /// </summary>
    public int BatchCount
    {
        get
        {
            var count = Options.Sampler?.SamplesPerRank(Dataset.Count) ?? Dataset.Count;
            return Options.DropLast ? count / Options.BatchSize : (count + Options.BatchSize - 1) / Options.BatchSize;
        }
    }

    /// <summary>
    /// The dataset indices in the order epoch <paramref name="epoch"/> visits them (all of them, even with
    /// <see cref="DataLoaderOptions.DropLast"/>). With <see cref="DataLoaderOptions.Sampler"/> set, this rank's share:
    /// <c>order[p % n]</c> for each of its <see cref="DistributedSampler.GlobalPositions"/> <c>p</c>, where
    /// <c>order</c> is the unsharded order (the same on every rank); the sampler's own
    /// <see cref="DistributedSampler.DropLast"/> does shorten it.
    /// </summary>
    public IReadOnlyList<int> GetOrder(int epoch) => Shard(epoch).Indices;

    /// <summary>This rank's dataset indices for an epoch and their positions in the padded global order.</summary>
    private (int[] Indices, int[] Positions) Shard(int epoch)
    {
        var order = GlobalOrder(epoch);
        if (Options.Sampler is not { } sampler)
        {
            return (order, Enumerable.Range(0, order.Length).ToArray());
        }

        var positions = sampler.GlobalPositions(order.Length).ToArray();
        return (positions.Select(p => order[p % order.Length]).ToArray(), positions);
    }

    /// <summary>Every dataset index in the (seeded, possibly shuffled) order of an epoch, identical on all ranks.</summary>
    private int[] GlobalOrder(int epoch)
    {
        var order = Enumerable.Range(0, Dataset.Count).ToArray();
        if (Options.Shuffle)
        {
            var random = new Random(DeriveSeed(Options.Seed, epoch, -1));
            for (var i = order.Length - 1; i > 0; i--)
            {
                var j = random.Next(i + 1);
                (order[i], order[j]) = (order[j], order[i]);
            }
        }

        return order;
    }

    /// <summary>The batches of one epoch; with prefetching they are loaded on a background task.</summary>
    /// <param name="epoch">The epoch number (selects the order and the augmentation's randomness).</param>
    /// <param name="cancellationToken">Stops the enumeration (it then throws <see cref="OperationCanceledException"/>).</param>
    /// <returns>Batches owned by the consumer.</returns>
    public IEnumerable<TrainingBatch> GetBatches(int epoch, CancellationToken cancellationToken = default) =>
        GetBatches(epoch, 0, cancellationToken);

    /// <summary>
    /// The batches of one epoch from batch <paramref name="firstBatch"/> on (the earlier ones are not loaded); they
    /// are the same batches, with the same augmentation, as the tail of <see cref="GetBatches(int, CancellationToken)"/>,
    /// which is what resuming an interrupted epoch needs.
    /// </summary>
    /// <param name="epoch">The epoch number (selects the order and the augmentation's randomness).</param>
    /// <param name="firstBatch">Index of the first batch to produce (0 … <see cref="BatchCount"/>).</param>
    /// <param name="cancellationToken">Stops the enumeration (it then throws <see cref="OperationCanceledException"/>).</param>
    /// <returns>Batches owned by the consumer.</returns>
    public IEnumerable<TrainingBatch> GetBatches(int epoch, int firstBatch, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(firstBatch);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(firstBatch, BatchCount);
        if (Options.Prefetch == 0)
        {
            return Sequential(epoch, firstBatch, cancellationToken);
        }

        return Blocking(GetBatchesAsync(epoch, firstBatch, cancellationToken), cancellationToken);
    }

    /// <summary>The batches of one epoch, asynchronously; with prefetching they are loaded on a background task.</summary>
    /// <param name="epoch">The epoch number (selects the order and the augmentation's randomness).</param>
    /// <param name="cancellationToken">Stops the enumeration (it then throws <see cref="OperationCanceledException"/>).</param>
    /// <returns>Batches owned by the consumer.</returns>
    public IAsyncEnumerable<TrainingBatch> GetBatchesAsync(int epoch, CancellationToken cancellationToken = default) =>
        GetBatchesAsync(epoch, 0, cancellationToken);

    /// <summary>The batches of one epoch from batch <paramref name="firstBatch"/> on, asynchronously.</summary>
    /// <param name="epoch">The epoch number (selects the order and the augmentation's randomness).</param>
    /// <param name="firstBatch">Index of the first batch to produce.</param>
    /// <param name="cancellationToken">Stops the enumeration (it then throws <see cref="OperationCanceledException"/>).</param>
    /// <returns>Batches owned by the consumer.</returns>
    public async IAsyncEnumerable<TrainingBatch> GetBatchesAsync(int epoch, int firstBatch, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        if (Options.Prefetch == 0)
        {
            foreach (var batch in Sequential(epoch, firstBatch, cancellationToken))
            {
                yield return batch;
            }

            yield break;
        }

        var plan = Plan(epoch);

        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var channel = Channel.CreateBounded<TrainingBatch>(new BoundedChannelOptions(Options.Prefetch)
        {
            SingleReader = true,
            SingleWriter = true,
            FullMode = BoundedChannelFullMode.Wait,
        });
        var producer = Task.Run(() => ProduceAsync(channel.Writer, epoch, plan, firstBatch, stop.Token), CancellationToken.None);
        try
        {
            while (await channel.Reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
            {
                while (channel.Reader.TryRead(out var batch))
                {
                    if (cancellationToken.IsCancellationRequested)
                    {
                        batch.Dispose();
                        cancellationToken.ThrowIfCancellationRequested();
                    }

                    yield return batch;
                }
            }
        }
        finally
        {
            stop.Cancel();
            try
            {
                await producer.ConfigureAwait(false);
            }
            catch (Exception)
            {
                // The producer reports its errors through the channel.
            }

            while (channel.Reader.TryRead(out var leftover))
            {
                leftover.Dispose();
            }
        }
    }

    /// <summary>
    /// Loads the given dataset images as one batch on the calling thread (augmentation seeded as for positions
    /// 0, 1, … of epoch <paramref name="epoch"/>).
    /// </summary>
    /// <param name="indices">Dataset indices.</param>
    /// <param name="epoch">Epoch number for the augmentation's randomness.</param>
    /// <returns>A batch owned by the caller.</returns>
    public TrainingBatch LoadBatch(IReadOnlyList<int> indices, int epoch = 0)
    {
        ArgumentNullException.ThrowIfNull(indices);
        var array = indices.ToArray();
        return LoadBatch(epoch, 0, new BatchPlan(array, Enumerable.Range(0, array.Length).ToArray()), CancellationToken.None);
    }

    // ---- internals ---------------------------------------------------------------------------------------------

    /// <summary>One batch: its dataset indices and their positions in the epoch's padded global order (the augmentation's seeds).</summary>
    private readonly record struct BatchPlan(int[] Indices, int[] Positions);

    private List<BatchPlan> Plan(int epoch)
    {
        var (order, positions) = Shard(epoch);
        var plan = new List<BatchPlan>();
        for (var start = 0; start < order.Length; start += Options.BatchSize)
        {
            var n = Math.Min(Options.BatchSize, order.Length - start);
            if (n < Options.BatchSize && Options.DropLast)
            {
                break;
            }

            plan.Add(new BatchPlan(order[start..(start + n)], positions[start..(start + n)]));
        }

        return plan;
    }

    private IEnumerable<TrainingBatch> Sequential(int epoch, int firstBatch, CancellationToken cancellationToken)
    {
        var plan = Plan(epoch);
        for (var b = firstBatch; b < plan.Count; b++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            yield return LoadBatch(epoch, b, plan[b], cancellationToken);
        }
    }

    private static IEnumerable<TrainingBatch> Blocking(IAsyncEnumerable<TrainingBatch> source, CancellationToken cancellationToken)
    {
        var e = source.GetAsyncEnumerator(cancellationToken);
        try
        {
            while (e.MoveNextAsync().AsTask().GetAwaiter().GetResult())
            {
                yield return e.Current;
            }
        }
        finally
        {
            e.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
    }

    private async Task ProduceAsync(ChannelWriter<TrainingBatch> writer, int epoch, List<BatchPlan> plan, int firstBatch, CancellationToken cancellationToken)
    {
        Exception? error = null;
        try
        {
            for (var b = firstBatch; b < plan.Count; b++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var batch = LoadBatch(epoch, b, plan[b], cancellationToken);
                try
                {
                    await writer.WriteAsync(batch, cancellationToken).ConfigureAwait(false);
                }
                catch
                {
                    batch.Dispose();
                    throw;
                }
            }
        }
        catch (Exception e)
        {
            error = e;
        }
        finally
        {
            writer.TryComplete(error);
        }
    }

    private TrainingBatch LoadBatch(int epoch, int batchIndex, BatchPlan plan, CancellationToken cancellationToken)
    {
        var n = plan.Indices.Length;
        var images = new List<Tensor>(n);
        var targets = new List<DetectionTarget>(n);
        var ids = new long[n];
        try
        {
            for (var k = 0; k < n; k++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var (image, target, id) = LoadExample(plan.Indices[k], DeriveSeed(Options.Seed, epoch, plan.Positions[k]));
                images.Add(image);
                targets.Add(target);
                ids[k] = id;
            }

            return new TrainingBatch(epoch, batchIndex, plan.Indices, ids, [.. images], [.. targets]);
        }
        catch
        {
            foreach (var image in images)
            {
                image.Dispose();
            }

            foreach (var t in targets)
            {
                t.Dispose();
            }

            throw;
        }
    }

    private (Tensor Image, DetectionTarget Target, long ImageId) LoadExample(int index, int seed)
    {
        var sample = Dataset.GetSample(index);
        using var scope = Torch.NewDisposeScope();
        var raw = Dataset.LoadImage(index);
        var shape = raw.Shape;
        if (shape.Length != 3 || shape[0] != 3 || shape[1] != sample.Height || shape[2] != sample.Width)
        {
            throw new DatasetFormatException(sample.Origin, null,
                $"LoadImage gave a tensor of shape [{string.Join(", ", shape)}], expected [3, {sample.Height}, {sample.Width}]");
        }

        if (raw.DType != DType.UInt8)
        {
            throw new DatasetFormatException(sample.Origin, null, $"LoadImage must give a uint8 image, got {raw.DType}");
        }

        var image = raw.To(DType.Float32);
        image.DivInPlace(255.0);
        var annotations = Options.IncludeCrowd ? sample.Annotations : sample.Annotations.Where(a => !a.IsCrowd).ToList();
        var example = new DetectionExample(image, annotations);
        if (Options.Augmentation is { } augmentation)
        {
            example = augmentation.Apply(example, new Random(seed));
        }

        var (h, w) = (example.Height, example.Width);
        var g = example.Annotations.Count;
        Tensor boxes, labels;
        Tensor? masks = null;
        if (g == 0)
        {
            boxes = Tensor.Zeros([0, 4]);
            labels = Tensor.Zeros([0], DType.Int64);
            if (Options.IncludeMasks)
            {
                masks = Tensor.Zeros([0, h, w], DType.UInt8);
            }
        }
        else
        {
            var boxData = new float[g * 4];
            var labelData = new long[g];
            var maskData = Options.IncludeMasks ? new byte[(long)g * h * w] : null;
            for (var i = 0; i < g; i++)
            {
                var a = example.Annotations[i];
                var b = a.Box;
                (boxData[4 * i], boxData[4 * i + 1], boxData[4 * i + 2], boxData[4 * i + 3]) = (b.X1, b.Y1, b.X2, b.Y2);
                labelData[i] = a.Label;
                if (maskData is not null && a.GetMask() is { } mask)
                {
                    if (mask.Height != h || mask.Width != w)
                    {
                        throw new DatasetFormatException(sample.Origin, null,
                            $"annotation {i} has a {mask.Height}x{mask.Width} mask but the image is {h}x{w}");
                    }

                    mask.ToBytes().CopyTo(maskData, (long)i * h * w);
                }
            }

            boxes = Tensor.FromArray(boxData, g, 4);
            labels = Tensor.FromArray(labelData, g);
            if (maskData is not null)
            {
                masks = Tensor.FromArray(maskData, g, h, w);
            }
        }

        example.Image.DetachFromDisposeScope();
        boxes.DetachFromDisposeScope();
        labels.DetachFromDisposeScope();
        masks?.DetachFromDisposeScope();
        return (example.Image, new DetectionTarget(boxes, labels, masks), sample.ImageId);
    }

    /// <summary>A well-mixed 31-bit seed from the loader seed, the epoch and a stream number (SplitMix64 finaliser).</summary>
    private static int DeriveSeed(int seed, int epoch, long stream)
    {
        static ulong Mix(ulong z)
        {
            z += 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }

        var h = Mix(Mix(Mix((ulong)(uint)seed) ^ (uint)epoch) ^ (ulong)stream);
        return (int)(h & 0x7FFFFFFF);
    }
}
