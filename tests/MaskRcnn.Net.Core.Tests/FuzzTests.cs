using MaskRcnn.Net.Core.Checkpoints;
using MaskRcnn.Net.Core.Imaging;
using MaskRcnn.Net.Core.Masks;
using MaskRcnn.Net.Core.Tests.Imaging;
using MaskRcnn.Net.Core.Tests.TestSupport;
using Xunit.Abstractions;

namespace MaskRcnn.Net.Core.Tests;

/// <summary>
/// Bounded, seeded fuzzing of the image decoder, the checkpoint readers and the COCO RLE string parser (issue 6,
/// item 4): mutated real inputs must load or throw the reader's documented exception. A failure lists the seeds;
/// <c>MR_FUZZ_SEED=&lt;seed&gt;</c> reruns one case, <c>MR_FUZZ_CASES=&lt;n&gt;</c> runs longer. The seed inputs are
/// made in C# (or are files in the repository), so no Python is needed.
/// </summary>
public class FuzzTests(ITestOutputHelper output)
{
    private static readonly Lazy<byte[][]> ImageSeeds = new(() =>
    {
        var seeds = ImagingTestData.MriJpegs.Select(File.ReadAllBytes).ToList();
        var rng = new Random(7);
        foreach (var (c, h, w) in new[] { (3, 20, 30), (2, 9, 13), (1, 16, 16), (4, 5, 3) })
        {
            var pixels = new byte[c * h * w];
            rng.NextBytes(pixels);
            using var image = Tensor.FromBytes(pixels, DType.UInt8, [c, h, w]);
            seeds.Add(ImageCodec.EncodePng(image, compressionLevel: c == 1 ? 0 : 6));
            if (c is 1 or 3)
            {
                seeds.Add(ImageCodec.EncodeJpeg(image, quality: 75));
            }
        }

        return [.. seeds];
    });

    private static readonly Lazy<byte[][]> SafeTensorsSeeds = new(() =>
    {
        using var scope = Torch.NewDisposeScope();
        var tensors = new Dictionary<string, Tensor>
        {
            ["conv.weight"] = Tensor.Arange(0, 24, 1, DType.Float32).Reshape(2, 3, 2, 2),
            ["conv.bias"] = Tensor.FromArray(new[] { 0.5f, -1.5f }),
            ["steps"] = Tensor.FromArray(new long[] { 3 }),
            ["mask"] = Tensor.FromArray(new[] { true, false, true }),
            ["half"] = Tensor.Ones([2, 2]).To(DType.Float16),
            ["scalar"] = Tensor.Scalar(2.5),
            ["empty"] = Tensor.Zeros([0, 3]),
        };
        var withMetadata = SafeTensors.Serialize(tensors, new Dictionary<string, string> { ["format"] = "pt", ["note"] = "fuzz seed" });
        var small = SafeTensors.Serialize(new Dictionary<string, Tensor> { ["x"] = tensors["conv.bias"] });
        return new[] { withMetadata, small };
    });

    private static readonly Lazy<(byte[] Zip, byte[] Legacy, byte[] Pickle, TorchSaveWriter.Storage[] Storages)> TorchSeeds = new(() =>
    {
        var (entries, storages) = TorchSaveWriter.Simple(("backbone.conv1.weight", [2, 1, 3, 3]), ("backbone.bn1.bias", [2]),
            ("num_batches_tracked", []));

        // One more tensor: a transposed (non-contiguous) view of the first storage, so views and shared storages are
        // in the seed too.
        var view = new TorchSaveWriter.Entry("head.weight_t", "0", 0, [9, 2], [1, 9]);
        entries = [.. entries, view];
        var numel = storages.ToDictionary(s => s.Key, s => s.Numel);
        return (TorchSaveWriter.Zip(entries, storages), TorchSaveWriter.Legacy(entries, storages),
            TorchSaveWriter.StateDictPickle(entries, numel, legacy: false), storages);
    });

    [Fact]
    public void Image_decoder_survives_mutated_jpeg_and_png()
    {
        var seeds = ImageSeeds.Value;
        var summary = FuzzRunner.Run("image", 3000,
            rng =>
            {
                var seed = seeds[rng.Next(seeds.Length)];
                return ByteMutator.Mutate(seed, rng, seeds, protectedPrefix: rng.Next(4) == 0 ? 0 : 8);
            },
            input =>
            {
                var mode = (ImageReadMode)(input.Length % 5);
                var info = ImageCodec.ReadInfo(input, mode);
                using var image = ImageCodec.Decode(input, mode);
                image.Shape.Should().Equal([info.Channels, info.Height, info.Width], "the decoded shape is the probed shape");
                info.Height.Should().BeInRange(1, 65535);
                info.Width.Should().BeInRange(1, 1_000_000);
                (info.Height * info.Width).Should().BeLessThanOrEqualTo(ImageCodec.MaxPixels);
            },
            e => e is ImageDecodeException,
            output);
        summary.Succeeded.Should().BeGreaterThan(100, "some mutations keep the image decodable");
        summary.Rejected.Should().BeGreaterThan(100);
    }

    [Fact]
    public void Safetensors_reader_survives_mutated_files()
    {
        var seeds = SafeTensorsSeeds.Value;
        var summary = FuzzRunner.Run("safetensors", 3000,
            rng => ByteMutator.Mutate(seeds[rng.Next(seeds.Length)], rng, seeds),
            input =>
            {
                var header = SafeTensors.ReadHeader(new MemoryStream(input), "fuzz");
                var tensors = (input.Length & 1) == 0 ? SafeTensors.Load(input, "fuzz") : SafeTensors.Load(new ForwardOnlyStream(input), "fuzz");
                try
                {
                    tensors.Keys.Should().Equal(header.Tensors.Select(t => t.Name));
                    foreach (var info in header.Tensors)
                    {
                        tensors[info.Name].Shape.Should().Equal(info.Shape);
                        tensors[info.Name].DType.Should().Be(info.DType);
                    }
                }
                finally
                {
                    foreach (var t in tensors.Values)
                    {
                        t.Dispose();
                    }
                }
            },
            e => e is CheckpointException && e.Message.StartsWith("fuzz", StringComparison.Ordinal),
            output);
        summary.Succeeded.Should().BeGreaterThan(20);
        summary.Rejected.Should().BeGreaterThan(20);
    }

    [Theory]
    [InlineData("zip")]
    [InlineData("legacy")]
    public void Torch_checkpoint_reader_survives_mutated_files(string format)
    {
        var (zip, legacy, pickle, storages) = TorchSeeds.Value;
        var seed = format == "zip" ? zip : legacy;
        byte[][] pool = [zip, legacy];
        var summary = FuzzRunner.Run("torch-" + format, 3000,
            rng => format == "zip" && rng.Next(2) == 0
                ? TorchSaveWriter.Zip(ByteMutator.Mutate(pickle, rng, [pickle], protectedPrefix: 2), storages) // reaches the unpickler
                : ByteMutator.Mutate(seed, rng, pool, protectedPrefix: rng.Next(2) == 0 ? 0 : 4),
            input =>
            {
                using var sd = TorchCheckpoint.Load(new MemoryStream(input), "fuzz");
                foreach (var (key, tensor) in sd)
                {
                    key.Should().NotBeNull();
                    tensor.IsContiguous.Should().BeTrue();
                    tensor.NumEl.Should().BeLessThanOrEqualTo(input.Length + TorchCheckpointOptions.Default.MaxExpandedElements);
                }
            },
            e => e is CheckpointException && e.Message.StartsWith("fuzz", StringComparison.Ordinal),
            output);
        summary.Succeeded.Should().BeGreaterThan(10);
        summary.Rejected.Should().BeGreaterThan(100);
    }

    [Fact]
    public void Compressed_rle_parser_survives_mutated_strings()
    {
        // Seeds: the strings of real-looking masks (a disc, a ring, stripes) on a 37×53 canvas.
        const int h = 37, w = 53;
        var seeds = new[]
        {
            Rle.FromPolygon(Enumerable.Range(0, 40).SelectMany(k => new[] { 26 + 15 * Math.Cos(k * Math.PI / 20), 18 + 12 * Math.Sin(k * Math.PI / 20) }).ToArray(), h, w),
            Rle.FromPolygons([[2.0, 2, 50, 3, 40, 30], [10.0, 20, 20, 35, 5, 33]], h, w),
            Rle.FromCounts([h * w], h, w),
        }.Select(r => System.Text.Encoding.ASCII.GetBytes(r.ToCompressedString())).ToArray();
        var summary = FuzzRunner.Run("rle-string", 4000,
            rng => ByteMutator.Mutate(seeds[rng.Next(seeds.Length)], rng, seeds),
            input =>
            {
                var rle = Rle.FromCompressedString(System.Text.Encoding.Latin1.GetString(input), h, w);
                var mask = rle.Decode();
                mask.Area.Should().Be(rle.Area);
                Rle.Encode(mask).Area.Should().Be(rle.Area);
            },
            e => e is FormatException,
            output);
        summary.Succeeded.Should().BeGreaterThan(10);
    }
}
