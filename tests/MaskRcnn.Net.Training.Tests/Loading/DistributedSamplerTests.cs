using System.Text.Json;
using MaskRcnn.Net.Core.Tests.TestSupport;

namespace MaskRcnn.Net.Training.Tests;

/// <summary>
/// Data-parallel sharding of an epoch: <see cref="DistributedSampler"/> against torch's own
/// <c>torch.utils.data.DistributedSampler</c> (oracle: Debian's python3-torch), and the <see cref="DataLoader"/>'s
/// per-rank shards, batches and augmentation against the unsharded loader.
/// </summary>
public class DistributedSamplerTests
{
    // For every case and rank, torch's sampler over `order` (shuffle=False: the loader's own order, padded and strided),
    // its length, and the shuffled variant next to the permutation it draws, so that the mapping "padded position p
    // holds order[p % n]" is checked through a non-identity order too.
    private const string TorchSamplerScript = """
        import json, sys
        import torch
        from torch.utils.data.distributed import DistributedSampler
        cases = json.load(open(sys.argv[1]))
        out = []
        for c in cases:
            order, w, dl = c["order"], c["w"], c["dl"]
            n = len(order)
            g = torch.Generator()
            g.manual_seed(7 + 3)
            perm = torch.randperm(n, generator=g).tolist()
            ranks = []
            for r in range(w):
                plain = DistributedSampler(order, num_replicas=w, rank=r, shuffle=False, drop_last=dl)
                shuffled = DistributedSampler(order, num_replicas=w, rank=r, shuffle=True, seed=7, drop_last=dl)
                shuffled.set_epoch(3)
                ranks.append({"len": len(plain), "sharded": [order[i] for i in plain], "shuffled": list(shuffled)})
            out.append({"perm": perm, "ranks": ranks})
        print(json.dumps(out))
        """;

    private static readonly (int N, int W, bool DropLast)[] Cases =
    [
        (10, 3, false), (10, 3, true),   // padding 2 / cut 1
        (12, 4, false), (12, 4, true),   // divisible: no padding, nothing cut
        (2, 5, false), (2, 5, true),     // n < W: the order repeats 2.5 times / nobody gets anything
        (1, 3, false), (3, 3, true),
        (7, 1, false), (7, 1, true),     // one rank: the whole order
        (5, 2, false), (5, 2, true),
        (0, 2, false),
    ];

    [Fact]
    public void GlobalPositions_are_torchs_DistributedSampler_positions()
    {
        var cases = Cases.Select(c => (c.N, c.W, c.DropLast, Order: Enumerable.Range(0, c.N).ToArray())).ToList();
        var torch = RunTorch(cases);
        for (var i = 0; i < cases.Count; i++)
        {
            var (n, w, dropLast, _) = cases[i];
            var perm = torch[i].Perm;
            for (var r = 0; r < w; r++)
            {
                var sampler = new DistributedSampler(r, w) { DropLast = dropLast };
                var expected = torch[i].Ranks[r];
                var because = $"n={n}, W={w}, rank={r}, drop_last={dropLast}";
                sampler.SamplesPerRank(n).Should().Be(expected.Len, because);
                var positions = sampler.GlobalPositions(n);
                positions.Should().HaveCount(expected.Len, because);
                positions.Select(p => p % n).Should().Equal(expected.Sharded, because);
                positions.Select(p => perm[p % n]).Should().Equal(expected.Shuffled, because);
            }
        }
    }

    [Fact]
    public void A_ranks_GetOrder_is_torchs_DistributedSampler_over_the_loaders_unsharded_order()
    {
        var cases = new List<(int N, int W, bool DropLast, int[] Order)>();
        foreach (var (n, w, dropLast) in Cases)
        {
            var whole = new DataLoader(new SyntheticDataset(n), new DataLoaderOptions(Seed: 9));
            cases.Add((n, w, dropLast, whole.GetOrder(4).ToArray()));
        }

        var torch = RunTorch(cases);
        for (var i = 0; i < cases.Count; i++)
        {
            var (n, w, dropLast, order) = cases[i];
            if (n >= 5)
            {
                order.Should().NotEqual(Enumerable.Range(0, n), "the loader's order is shuffled, so the check is not trivial");
            }

            for (var r = 0; r < w; r++)
            {
                var sampler = new DistributedSampler(r, w) { DropLast = dropLast };
                var loader = new DataLoader(new SyntheticDataset(n), new DataLoaderOptions(Seed: 9) { Sampler = sampler });
                loader.GetOrder(4).Should().Equal(torch[i].Ranks[r].Sharded, $"n={n}, W={w}, rank={r}, drop_last={dropLast}");
            }
        }
    }

    [Theory]
    // Positions in the unsharded order each rank gets, by hand: padded position p holds order[p % n], rank r takes r, r+W, ….
    [InlineData(5, 2, false, "0,2,4|1,3,0")]
    [InlineData(5, 2, true, "0,2|1,3")]
    [InlineData(2, 3, false, "0|1|0")]
    [InlineData(2, 5, false, "0|1|0|1|0")]
    [InlineData(2, 3, true, "||")]
    [InlineData(6, 3, false, "0,3|1,4|2,5")]
    [InlineData(7, 3, false, "0,3,6|1,4,0|2,5,1")]
    public void Ranks_cover_the_unsharded_order_once_plus_the_padding(int n, int w, bool dropLast, string expected)
    {
        var dataset = new SyntheticDataset(n);
        var whole = new DataLoader(dataset, new DataLoaderOptions(Seed: 21)).GetOrder(1);
        var shards = Enumerable.Range(0, w)
            .Select(r => new DataLoader(dataset, new DataLoaderOptions(Seed: 21) { Sampler = new DistributedSampler(r, w) { DropLast = dropLast } }).GetOrder(1))
            .ToList();

        var expectedPositions = expected.Split('|')
            .Select(s => s.Length == 0 ? Array.Empty<int>() : s.Split(',').Select(int.Parse).ToArray())
            .ToList();
        for (var r = 0; r < w; r++)
        {
            shards[r].Should().Equal(expectedPositions[r].Select(p => whole[p]), $"rank {r}");
        }

        var all = shards.SelectMany(s => s).ToList();
        if (!dropLast)
        {
            all.Distinct().Order().Should().Equal(Enumerable.Range(0, n), "every image is visited");
            all.Should().HaveCount((n + w - 1) / w * w);
        }
        else
        {
            all.Should().OnlyHaveUniqueItems().And.HaveCount(n / w * w);
        }
    }

    [Fact]
    public void Interleaving_the_ranks_rebuilds_the_padded_global_order()
    {
        foreach (var (n, w, dropLast) in Cases)
        {
            var dataset = new SyntheticDataset(n);
            var whole = new DataLoader(dataset, new DataLoaderOptions(Seed: 3)).GetOrder(0);
            var shards = Enumerable.Range(0, w)
                .Select(r => new DataLoader(dataset, new DataLoaderOptions(Seed: 3) { Sampler = new DistributedSampler(r, w) { DropLast = dropLast } }).GetOrder(0))
                .ToList();
            var perRank = dropLast ? n / w : (n + w - 1) / w;
            shards.Should().AllSatisfy(s => s.Should().HaveCount(perRank));
            for (var p = 0; p < perRank * w; p++)
            {
                shards[p % w][p / w].Should().Be(whole[p % n], $"n={n}, W={w}, drop_last={dropLast}, position {p}");
            }
        }
    }

    [Theory]
    // n = 7 over W = 2 pads to 8: four images per rank; batches of 3 are [3, 1], or [3] with DataLoaderOptions.DropLast.
    [InlineData(false, false, 2, "3,1")]
    [InlineData(true, false, 1, "3")]
    // The sampler's drop-last cuts to three images per rank: one full batch either way.
    [InlineData(false, true, 1, "3")]
    [InlineData(true, true, 1, "3")]
    public void BatchCount_and_batches_are_the_ranks_own(bool loaderDropLast, bool samplerDropLast, int batchCount, string sizes)
    {
        var dataset = new SyntheticDataset(7);
        for (var r = 0; r < 2; r++)
        {
            var loader = new DataLoader(dataset, new DataLoaderOptions(BatchSize: 3, Seed: 4, Prefetch: r)
            {
                DropLast = loaderDropLast,
                Sampler = new DistributedSampler(r, 2) { DropLast = samplerDropLast },
            });
            loader.BatchCount.Should().Be(batchCount);
            var batches = loader.GetBatches(2).Select(b =>
            {
                using (b)
                {
                    return (b.BatchIndex, Indices: b.Indices.ToArray());
                }
            }).ToList();
            batches.Select(b => b.Indices.Length).Should().Equal(sizes.Split(',').Select(int.Parse));
            batches.Select(b => b.BatchIndex).Should().Equal(Enumerable.Range(0, batchCount));
            batches.SelectMany(b => b.Indices).Should().Equal(loader.GetOrder(2).Take(batches.Sum(b => b.Indices.Length)),
                "batches are consecutive runs of the rank's shard");
        }
    }

    [Fact]
    public void The_same_global_position_gets_bit_identical_augmentation_whatever_the_world_size()
    {
        var dataset = CocoDataset.Load(TestFiles.BrainTumorJson, TestFiles.BrainTumorImages);
        var augmentation = new Compose(new RandomHorizontalFlip(0.5), new RandomVerticalFlip(0.5), new ColorJitter(0.3, 0.3));

        // Global position -> (dataset index, image, boxes, masks) as each configuration loads it.
        Dictionary<int, Loaded> Run(int worldSize, int batchSize)
        {
            var result = new Dictionary<int, Loaded>();
            for (var r = 0; r < worldSize; r++)
            {
                var options = new DataLoaderOptions(BatchSize: batchSize, Seed: 5, Prefetch: 1, Augmentation: augmentation)
                {
                    Sampler = worldSize == 1 ? null : new DistributedSampler(r, worldSize),
                };
                var j = 0;
                foreach (var batch in new DataLoader(dataset, options).GetBatches(1))
                {
                    using (batch)
                    {
                        for (var k = 0; k < batch.Count; k++, j++)
                        {
                            // Rank r's j-th image sits at global position r + j·W (no padding: 6 images over 1, 2 or 3 ranks).
                            result.Add(r + j * worldSize, Loaded.From(batch, k));
                        }
                    }
                }
            }

            return result;
        }

        var single = Run(1, 4);
        single.Keys.Order().Should().Equal(0, 1, 2, 3, 4, 5);
        single.Values.Select(v => v.Index).Should().OnlyHaveUniqueItems();
        foreach (var (worldSize, batchSize) in new[] { (2, 2), (3, 1) })
        {
            var sharded = Run(worldSize, batchSize);
            sharded.Keys.Order().Should().Equal(single.Keys.Order());
            foreach (var (p, expected) in single)
            {
                var actual = sharded[p];
                var because = $"global position {p} with W={worldSize}";
                actual.Index.Should().Be(expected.Index, because);
                actual.Image.Should().Equal(expected.Image, because);
                actual.Boxes.Should().Equal(expected.Boxes, because);
                actual.Masks.Should().Equal(expected.Masks, because);
            }
        }

        // The augmentation did something: a flip or jitter changed at least one image from its plain load.
        var plain = new DataLoader(dataset, new DataLoaderOptions(BatchSize: 6, Seed: 5, Prefetch: 0)).GetBatches(1).Single();
        using (plain)
        {
            Enumerable.Range(0, 6).Count(k => !Loaded.From(plain, k).Image.SequenceEqual(single[k].Image))
                .Should().BeGreaterThan(0);
        }
    }

    [Fact]
    public void Ranks_draw_different_augmentation_for_identical_images()
    {
        // Every image has the same pixels and annotation, so two ranks' batches differ only if their augmentation does
        // (seeding by a rank's local position would give every rank the same flips and jitter).
        var dataset = new SyntheticDataset(8, sameImage: true);
        var augmentation = new Compose(new RandomHorizontalFlip(0.5), new ColorJitter(0.4, 0.4));
        var first = Enumerable.Range(0, 2).Select(r =>
        {
            var loader = new DataLoader(dataset, new DataLoaderOptions(BatchSize: 2, Seed: 13, Prefetch: 0, Augmentation: augmentation)
            {
                Sampler = new DistributedSampler(r, 2),
            });
            using var batch = loader.GetBatches(0).First();
            return Enumerable.Range(0, batch.Count).Select(k => Loaded.From(batch, k)).ToList();
        }).ToList();

        for (var k = 0; k < 2; k++)
        {
            first[1][k].Image.Should().NotEqual(first[0][k].Image, $"image {k} of the first batch");
        }

        using var plain = new DataLoader(dataset, new DataLoaderOptions(Prefetch: 0)).LoadBatch([0]);
        var unaugmented = Loaded.From(plain, 0).Image;
        first.SelectMany(f => f).Should().OnlyContain(l => !l.Image.SequenceEqual(unaugmented), "the jitter changes every image");
    }

    [Fact]
    public void Resuming_a_ranks_epoch_gives_the_tail_of_its_batches()
    {
        var dataset = new SyntheticDataset(11);
        var augmentation = new Compose(new RandomVerticalFlip(0.5), new ColorJitter(0.3, 0.3));
        var options = new DataLoaderOptions(BatchSize: 2, Seed: 8, Prefetch: 2, Augmentation: augmentation) { Sampler = new DistributedSampler(2, 3) };
        var loader = new DataLoader(dataset, options);
        loader.BatchCount.Should().Be(2, "11 images over 3 ranks pad to 12: four per rank, two batches of 2");

        List<List<Loaded>> Load(int firstBatch) => loader.GetBatches(5, firstBatch).Select(b =>
        {
            using (b)
            {
                return Enumerable.Range(0, b.Count).Select(k => Loaded.From(b, k)).ToList();
            }
        }).ToList();

        var full = Load(0);
        var tail = Load(1);
        full.Should().HaveCount(2);
        tail.Should().ContainSingle();
        for (var k = 0; k < 2; k++)
        {
            tail[0][k].Index.Should().Be(full[1][k].Index);
            tail[0][k].Image.Should().Equal(full[1][k].Image);
            tail[0][k].Boxes.Should().Equal(full[1][k].Boxes);
        }

        Load(2).Should().BeEmpty();
    }

    [Fact]
    public void World_size_one_is_the_unsharded_loader()
    {
        var dataset = new SyntheticDataset(5);
        var augmentation = new Compose(new RandomHorizontalFlip(0.5), new ColorJitter(0.3, 0.3));
        List<Loaded> Load(DistributedSampler? sampler) =>
            new DataLoader(dataset, new DataLoaderOptions(BatchSize: 2, Seed: 17, Prefetch: 0, Augmentation: augmentation) { Sampler = sampler })
                .GetBatches(3).SelectMany(b =>
                {
                    using (b)
                    {
                        return Enumerable.Range(0, b.Count).Select(k => Loaded.From(b, k)).ToList();
                    }
                }).ToList();

        var unsharded = Load(null);
        var one = Load(new DistributedSampler(0, 1));
        one.Select(l => l.Index).Should().Equal(unsharded.Select(l => l.Index));
        for (var i = 0; i < unsharded.Count; i++)
        {
            one[i].Image.Should().Equal(unsharded[i].Image);
            one[i].Boxes.Should().Equal(unsharded[i].Boxes);
        }
    }

    [Theory]
    [InlineData(3, 2, "rank 3 is not below the world size 2")]
    [InlineData(2, 2, "rank 2 is not below the world size 2")]
    [InlineData(-1, 2, "rank -1 is negative (world size 2)")]
    [InlineData(0, 0, "the world size must be at least 1, got 0 (rank 0)")]
    public void A_bad_rank_or_world_size_throws_naming_them(int rank, int worldSize, string message)
    {
        var sampler = new DistributedSampler(rank, worldSize);
        var expectedParam = worldSize < 1 ? "WorldSize" : "Rank";
        sampler.Invoking(s => s.Validate()).Should().Throw<ArgumentOutOfRangeException>()
            .Where(e => e.Message.Contains(message) && e.ParamName == expectedParam);
        sampler.Invoking(s => s.GlobalPositions(10)).Should().Throw<ArgumentOutOfRangeException>().Where(e => e.Message.Contains(message));
        FluentActions.Invoking(() => new DataLoaderOptions { Sampler = sampler }).Should().Throw<ArgumentException>()
            .Where(e => e.Message.Contains(message));

        // A valid sampler turned invalid by a `with` copy is caught by the options and by the loader.
        var valid = new DistributedSampler(0, 1);
        var options = new DataLoaderOptions { Sampler = valid };
        FluentActions.Invoking(() => options with { Sampler = valid with { Rank = rank, WorldSize = worldSize } })
            .Should().Throw<ArgumentException>().Where(e => e.Message.Contains(message));
        new DistributedSampler(0, 2).Invoking(s => s.SamplesPerRank(-1)).Should().Throw<ArgumentOutOfRangeException>()
            .Where(e => e.ParamName == "datasetSize");
    }

    private static List<(int[] Perm, List<(int Len, int[] Sharded, int[] Shuffled)> Ranks)> RunTorch(
        List<(int N, int W, bool DropLast, int[] Order)> cases)
    {
        using var dir = new TempDir();
        var input = dir.Write("cases.json", JsonSerializer.Serialize(cases.Select(c => new { order = c.Order, w = c.W, dl = c.DropLast })));
        using var json = JsonDocument.Parse(PythonOracle.Run(TorchSamplerScript, input));
        static int[] Ints(JsonElement e) => e.EnumerateArray().Select(x => x.GetInt32()).ToArray();
        var result = json.RootElement.EnumerateArray().Select(c => (
            Perm: Ints(c.GetProperty("perm")),
            Ranks: c.GetProperty("ranks").EnumerateArray()
                .Select(r => (r.GetProperty("len").GetInt32(), Ints(r.GetProperty("sharded")), Ints(r.GetProperty("shuffled"))))
                .ToList())).ToList();
        result.Should().HaveCount(cases.Count);
        return result;
    }

    /// <summary>One loaded image and its target, copied out of a batch.</summary>
    private sealed record Loaded(int Index, float[] Image, float[] Boxes, byte[] Masks)
    {
        public static Loaded From(TrainingBatch batch, int k) => new(
            batch.Indices[k], batch.Images[k].ToArray<float>(), batch.Targets[k].Boxes.ToArray<float>(), batch.Targets[k].Masks!.ToArray<byte>());
    }

    /// <summary>
    /// Small synthetic RGB images (10 high, 12 wide, not symmetric, so flips show) with one rectangle annotation;
    /// the pixels depend on the index unless <paramref name="sameImage"/>.
    /// </summary>
    private sealed class SyntheticDataset(int count, bool sameImage = false) : IDetectionDataset
    {
        private const int Height = 10;
        private const int Width = 12;

        public int Count => count;

        public IReadOnlyList<string> ClassNames { get; } = ["__background__", "box"];

        public DatasetSample GetSample(int index)
        {
            var bytes = new byte[Height * Width];
            for (var y = 1; y < 4; y++)
            {
                for (var x = 2; x < 7; x++)
                {
                    bytes[y * Width + x] = 1;
                }
            }

            var annotation = new Annotation(new BoundingBox(2, 1, 7, 4), 1, Core.Masks.BinaryMask.FromBytes(bytes, Height, Width));
            return new DatasetSample(index, $"synthetic{index}.png", Width, Height, [annotation]);
        }

        public Tensor LoadImage(int index)
        {
            var seed = sameImage ? 0 : index;
            var pixels = new byte[3 * Height * Width];
            for (var i = 0; i < pixels.Length; i++)
            {
                pixels[i] = (byte)((i * 7 + seed * 31 + i / Width * 13) % 256);
            }

            return Tensor.FromArray(pixels, 3, Height, Width);
        }
    }
}
