using MaskRcnn.Net.Core.Imaging;

namespace MaskRcnn.Net.Training.Tests;

public class DataLoaderTests
{
    private static DetectionDataset BrainTumor() => CocoDataset.Load(TestFiles.BrainTumorJson, TestFiles.BrainTumorImages);

    [Theory]
    [InlineData(0)]
    [InlineData(2)]
    public void BatchesHoldFloatImagesAndTargetsInOrder(int prefetch)
    {
        var dataset = BrainTumor();
        var loader = new DataLoader(dataset, new DataLoaderOptions(BatchSize: 4, Shuffle: false, Prefetch: prefetch));
        loader.BatchCount.Should().Be(2);

        var batches = loader.GetBatches(0).ToList();
        try
        {
            batches.Select(b => b.Count).Should().Equal(4, 2);
            batches.SelectMany(b => b.Indices).Should().Equal(0, 1, 2, 3, 4, 5);
            batches.Select(b => b.BatchIndex).Should().Equal(0, 1);
            foreach (var batch in batches)
            {
                for (var k = 0; k < batch.Count; k++)
                {
                    var sample = dataset.GetSample(batch.Indices[k]);
                    batch.ImageIds[k].Should().Be(sample.ImageId);
                    var image = batch.Images[k];
                    image.DType.Should().Be(DType.Float32);
                    image.Shape.Should().Equal(3, sample.Height, sample.Width);
                    using (var max = image.Max())
                    using (var min = image.Min())
                    {
                        min.ItemDouble().Should().BeGreaterThanOrEqualTo(0);
                        max.ItemDouble().Should().BeInRange(0.1, 1);
                    }

                    var t = batch.Targets[k];
                    var g = sample.Annotations.Count;
                    t.Boxes.DType.Should().Be(DType.Float32);
                    t.Boxes.Shape.Should().Equal(g, 4);
                    t.Labels.DType.Should().Be(DType.Int64);
                    t.Labels.ToArray<long>().Should().Equal(sample.Annotations.Select(a => (long)a.Label));
                    t.Boxes.ToArray<float>().Should().Equal(sample.Annotations.SelectMany(a => a.Box.ToArray()));
                    t.Masks!.DType.Should().Be(DType.UInt8);
                    t.Masks.Shape.Should().Equal(g, sample.Height, sample.Width);
                    t.Masks.ToArray<byte>().Should().Equal(sample.Annotations.SelectMany(a => a.GetMask()!.ToBytes()));
                }
            }
        }
        finally
        {
            batches.ForEach(b => b.Dispose());
        }

        batches.Should().AllSatisfy(b => b.Images.Should().AllSatisfy(i => i.IsDisposed.Should().BeTrue()));
    }

    [Fact]
    public void ShuffleIsDeterministicPerSeedAndEpoch()
    {
        var dataset = new FakeDataset(50);
        var a = new DataLoader(dataset, new DataLoaderOptions(Seed: 11));
        var b = new DataLoader(dataset, new DataLoaderOptions(Seed: 11));
        var c = new DataLoader(dataset, new DataLoaderOptions(Seed: 12));

        a.GetOrder(3).Should().Equal(b.GetOrder(3));
        a.GetOrder(3).Should().NotEqual(a.GetOrder(4));
        a.GetOrder(3).Should().NotEqual(c.GetOrder(3));
        a.GetOrder(3).Order().Should().Equal(Enumerable.Range(0, 50));
        new DataLoader(dataset, new DataLoaderOptions(Shuffle: false)).GetOrder(9).Should().Equal(Enumerable.Range(0, 50));

        var dropLast = new DataLoader(dataset, new DataLoaderOptions(BatchSize: 8, Seed: 11) { DropLast = true });
        dropLast.BatchCount.Should().Be(6);
        var seen = dropLast.GetBatches(3).Select(batch =>
        {
            using (batch)
            {
                return batch.Indices.ToArray();
            }
        }).ToList();
        seen.Should().HaveCount(6).And.AllSatisfy(i => i.Should().HaveCount(8));
        seen.SelectMany(i => i).Should().Equal(a.GetOrder(3).Take(48));
    }

    [Fact]
    public void AugmentationIsReproducibleRegardlessOfPrefetch()
    {
        var dataset = BrainTumor();
        var augmentation = new Compose(new RandomHorizontalFlip(0.5), new RandomVerticalFlip(0.5), new ColorJitter(0.3, 0.3));
        List<(float[] Image, float[] Boxes, byte[] Masks)> Run(int prefetch, int epoch)
        {
            var loader = new DataLoader(dataset, new DataLoaderOptions(BatchSize: 2, Seed: 5, Prefetch: prefetch, Augmentation: augmentation));
            var result = new List<(float[], float[], byte[])>();
            foreach (var batch in loader.GetBatches(epoch))
            {
                using (batch)
                {
                    for (var k = 0; k < batch.Count; k++)
                    {
                        result.Add((batch.Images[k].ToArray<float>(), batch.Targets[k].Boxes.ToArray<float>(), batch.Targets[k].Masks!.ToArray<byte>()));
                    }
                }
            }

            return result;
        }

        var first = Run(0, 1);
        var second = Run(3, 1);
        first.Should().HaveCount(6);
        for (var i = 0; i < first.Count; i++)
        {
            second[i].Image.Should().Equal(first[i].Image);
            second[i].Boxes.Should().Equal(first[i].Boxes);
            second[i].Masks.Should().Equal(first[i].Masks);
        }

        var other = Run(2, 2);
        other.Select(x => x.Boxes.Sum()).Should().NotEqual(first.Select(x => x.Boxes.Sum()));
    }

    [Fact]
    public async Task AsyncEnumerationAndNegativeImages()
    {
        var dataset = new FakeDataset(5, annotationsPerImage: 0);
        var loader = new DataLoader(dataset, new DataLoaderOptions(BatchSize: 3, Shuffle: false, Prefetch: 1));
        var counts = new List<int>();
        await foreach (var batch in loader.GetBatchesAsync(0))
        {
            using (batch)
            {
                counts.Add(batch.Count);
                foreach (var t in batch.Targets)
                {
                    t.Boxes.Shape.Should().Equal(0, 4);
                    t.Labels.Shape.Should().Equal(0);
                    t.Masks!.Shape.Should().Equal(0, FakeDataset.Size, FakeDataset.Size);
                }
            }
        }

        counts.Should().Equal(3, 2);
    }

    [Fact]
    public void CrowdAnnotationsAreLeftOutUnlessAskedForAndMasksCanBeOmitted()
    {
        var dataset = new FakeDataset(1, annotationsPerImage: 2, crowdSecond: true);
        using (var batch = new DataLoader(dataset).LoadBatch([0]))
        {
            batch.Targets[0].Labels.Shape.Should().Equal(1);
        }

        using (var batch = new DataLoader(dataset, new DataLoaderOptions { IncludeCrowd = true, IncludeMasks = false }).LoadBatch([0]))
        {
            batch.Targets[0].Labels.Shape.Should().Equal(2);
            batch.Targets[0].Masks.Should().BeNull();
        }
    }

    [Fact]
    public void BatchTensorsBelongToNoDisposeScope()
    {
        var loader = new DataLoader(new FakeDataset(2), new DataLoaderOptions(BatchSize: 2, Prefetch: 0));
        TrainingBatch batch;
        using (Torch.NewDisposeScope())
        {
            batch = loader.GetBatches(0).Single();
        }

        using (batch)
        {
            batch.Images[0].IsDisposed.Should().BeFalse();
            batch.Targets[1].Masks!.IsDisposed.Should().BeFalse();
            batch.Images[0].Shape.Should().Equal(3, FakeDataset.Size, FakeDataset.Size);
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(2)]
    public async Task CorruptImageReachesTheConsumerNamingTheFile(int prefetch)
    {
        using var dir = new TempDir();
        var images = Path.Combine(dir.Path, "images");
        Directory.CreateDirectory(images);
        foreach (var f in Directory.GetFiles(TestFiles.BrainTumorImages))
        {
            File.Copy(f, Path.Combine(images, Path.GetFileName(f)));
        }

        var corrupt = Path.Combine(images, "00172_102.jpg");
        var bytes = File.ReadAllBytes(corrupt);
        File.WriteAllBytes(corrupt, bytes[..200]);
        var dataset = CocoDataset.Load(TestFiles.BrainTumorJson, images);
        var corruptIndex = dataset.Samples.ToList().FindIndex(s => s.FileName == "00172_102.jpg");
        corruptIndex.Should().Be(2);

        var loader = new DataLoader(dataset, new DataLoaderOptions(BatchSize: 1, Shuffle: false, Prefetch: prefetch));
        var delivered = new List<int>();
        var run = Task.Run(() =>
        {
            foreach (var batch in loader.GetBatches(0))
            {
                using (batch)
                {
                    delivered.Add(batch.Indices[0]);
                }
            }
        });

        (await Task.WhenAny(run, Task.Delay(TimeSpan.FromMinutes(2)))).Should().BeSameAs(run, "the consumer must not hang (a hang guard: three images load in well under a second)");
        run.IsFaulted.Should().BeTrue();
        var e = run.Exception!.InnerException.Should().BeOfType<ImageDecodeException>().Which;
        e.Origin.Should().Be(corrupt);
        e.Message.Should().Contain("00172_102.jpg");
        delivered.Should().Equal(0, 1);
    }

    // "Promptly" is counted in loads, not seconds: the producer checks the token before every image, so after the
    // consumer cancels it starts at most one more load (one that passed its check just before the cancel), and the
    // enumeration only ends (throwing) once the producer has finished. Nothing here reads a clock.

    [Fact]
    public async Task CancellingMidEpochStopsPromptly()
    {
        var dataset = new FakeDataset(1000, delay: TimeSpan.FromMilliseconds(5));
        var loader = new DataLoader(dataset, new DataLoaderOptions(BatchSize: 2, Prefetch: 3));
        using var cts = new CancellationTokenSource();
        var received = 0;
        var loadsAtCancel = -1;
        var act = async () =>
        {
            await foreach (var batch in loader.GetBatchesAsync(0, cts.Token))
            {
                batch.Dispose();
                if (++received == 2)
                {
                    loadsAtCancel = dataset.Loads;
                    cts.Cancel();
                }
            }
        };

        await act.Should().ThrowAsync<OperationCanceledException>();
        received.Should().Be(2);
        var loadsAtStop = dataset.Loads;
        dataset.InFlight.Should().Be(0, "the producer has finished when the enumeration ends");
        (loadsAtStop - loadsAtCancel).Should().BeLessThanOrEqualTo(1, "the producer stops at its next check of the token");
        loadsAtStop.Should().BeLessThanOrEqualTo((2 + 3 + 1) * 2, "2 consumed + 3 prefetched + 1 in progress, 2 images each");
        await Task.Delay(200); // one-sided: a slow machine can hide a stray producer here, never fail a correct one
        dataset.Loads.Should().Be(loadsAtStop, "the background task has stopped");
    }

    [Fact]
    public void AbandoningTheEnumerationStopsTheProducerAndDisposesPrefetchedBatches()
    {
        var dataset = new FakeDataset(100, delay: TimeSpan.FromMilliseconds(5));
        var recorder = new Recorder();
        var loader = new DataLoader(dataset, new DataLoaderOptions(BatchSize: 1, Prefetch: 4, Augmentation: recorder));
        using var fourLoaded = new CountdownEvent(4);
        dataset.OnLoad = _ =>
        {
            if (!fourLoaded.IsSet)
            {
                fourLoaded.Signal();
            }
        };
        foreach (var batch in loader.GetBatches(0))
        {
            batch.Dispose();
            fourLoaded.Wait(TimeSpan.FromMinutes(2)).Should().BeTrue("the producer loads ahead (hang guard only)");
            break;
        }

        var loads = dataset.Loads;
        dataset.InFlight.Should().Be(0, "abandoning the enumeration waits for the producer to finish");
        loads.Should().BeLessThanOrEqualTo(1 + 4 + 1, "1 consumed + 4 prefetched + 1 in progress");
        Thread.Sleep(200); // one-sided, as above
        dataset.Loads.Should().Be(loads, "the background task has stopped");
        recorder.Images.Count.Should().BeGreaterThan(1, "batches were loaded ahead");
        recorder.Images.Should().AllSatisfy(i => i.IsDisposed.Should().BeTrue(),
            "prefetched batches are disposed when the enumeration is abandoned");
    }

    [Fact]
    public void SyncCancellation()
    {
        var dataset = new FakeDataset(1000, delay: TimeSpan.FromMilliseconds(5));
        var loader = new DataLoader(dataset, new DataLoaderOptions(BatchSize: 2, Prefetch: 2));
        using var cts = new CancellationTokenSource();
        var loadsAtCancel = -1;
        var act = () =>
        {
            foreach (var batch in loader.GetBatches(0, cts.Token))
            {
                batch.Dispose();
                loadsAtCancel = dataset.Loads;
                cts.Cancel();
            }
        };
        act.Should().Throw<OperationCanceledException>();
        dataset.InFlight.Should().Be(0);
        (dataset.Loads - loadsAtCancel).Should().BeLessThanOrEqualTo(1, "the producer stops at its next check of the token");
        dataset.Loads.Should().BeLessThanOrEqualTo((1 + 2 + 1) * 2);
    }

    /// <summary>Synthetic images of 16x16 with square annotations; counts image loads and live images.</summary>
    private sealed class FakeDataset(int count, int annotationsPerImage = 1, bool crowdSecond = false, TimeSpan delay = default)
        : IDetectionDataset
    {
        public const int Size = 16;
        private int loads;
        private int inFlight;

        public int Loads => Volatile.Read(ref loads);

        /// <summary>Calls of <see cref="LoadImage"/> that have started and not returned.</summary>
        public int InFlight => Volatile.Read(ref inFlight);

        /// <summary>Called at the end of every <see cref="LoadImage"/> with the index loaded.</summary>
        public Action<int>? OnLoad { get; set; }

        public int Count => count;

        public IReadOnlyList<string> ClassNames { get; } = ["__background__", "square"];

        public DatasetSample GetSample(int index)
        {
            var annotations = Enumerable.Range(0, annotationsPerImage).Select(k =>
            {
                var bytes = new byte[Size * Size];
                for (var y = 2 + k; y < 6 + k; y++)
                {
                    for (var x = 3; x < 8; x++)
                    {
                        bytes[y * Size + x] = 1;
                    }
                }

                return new Annotation(new BoundingBox(3, 2 + k, 8, 6 + k), 1,
                    Core.Masks.BinaryMask.FromBytes(bytes, Size, Size), isCrowd: crowdSecond && k == 1);
            }).ToList();
            return new DatasetSample(index, $"fake{index}.png", Size, Size, annotations);
        }

        public Tensor LoadImage(int index)
        {
            Interlocked.Increment(ref inFlight);
            Interlocked.Increment(ref loads);
            try
            {
                if (delay > TimeSpan.Zero)
                {
                    Thread.Sleep(delay);
                }

                return Tensor.Full([3, Size, Size], (long)(index % 256), DType.UInt8);
            }
            finally
            {
                OnLoad?.Invoke(index);
                Interlocked.Decrement(ref inFlight);
            }
        }
    }

    /// <summary>An identity transform that remembers every image it passes on.</summary>
    private sealed class Recorder : ITransform
    {
        public List<Tensor> Images { get; } = [];

        public DetectionExample Apply(DetectionExample example, Random random)
        {
            lock (Images)
            {
                Images.Add(example.Image);
            }

            return example;
        }
    }
}
