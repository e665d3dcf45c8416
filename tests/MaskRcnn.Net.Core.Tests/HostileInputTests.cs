using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using MaskRcnn.Net.Core.Checkpoints;
using MaskRcnn.Net.Core.Imaging;
using MaskRcnn.Net.Core.Masks;
using MaskRcnn.Net.Core.NN;
using MaskRcnn.Net.Core.Tests.Imaging;
using MaskRcnn.Net.Core.Tests.TestSupport;

namespace MaskRcnn.Net.Core.Tests;

/// <summary>
/// Hostile images and checkpoints (issue 6, item 4): each must give a typed exception naming the source and the
/// field or shape at fault, or a correct result; never a crash, a hang or a huge allocation. Complements
/// Imaging/ImageHostileInputTests and the checkpoint format tests, which cover the plain truncation and bit-flip cases.
/// </summary>
public class HostileInputTests
{
    // ---- images ------------------------------------------------------------------------------------------------

    [Fact]
    public void Png_header_claiming_20000_by_20000_is_refused_before_any_pixel_memory_is_allocated()
    {
        // 4·10^8 pixels: below the native decoder's 2^31 backstop, so only ImageCodec.MaxPixels stops it from
        // allocating a 1.2 GB tensor for a 100-byte file.
        var png = TestImages.PngWithHeader(20_000, 20_000, bitDepth: 8, colorType: 2, idat: TestImages.Zlib(new byte[64]));
        var (e, cpu) = ThreadCpuTime.Of(() => FluentActions.Invoking(() => ImageCodec.Decode(png, ImageReadMode.Rgb)).Should().Throw<ImageDecodeException>().Which);
        cpu.Should().BeLessThan(TimeSpan.FromSeconds(2), "refused from the header (CPU time of this thread)");
        e.Failure.Should().Be(ImageDecodeFailure.TooLarge);
        e.Message.Should().Contain("<bytes>").And.Contain("20000x20000").And.Contain("MaxPixels");
        FluentActions.Invoking(() => ImageCodec.ReadInfo(png)).Should().Throw<ImageDecodeException>()
            .Which.Failure.Should().Be(ImageDecodeFailure.TooLarge);
    }

    [Theory]
    [InlineData(65_000, 65_000)] // beyond the native 2^31-pixel backstop
    [InlineData(20_000, 20_000)] // below it, beyond MaxPixels
    [InlineData(65_000, 1)] // elongated but small: decodes far enough to find the data missing
    public void Jpeg_claiming_huge_dimensions_fails_fast_with_a_typed_exception(int height, int width)
    {
        var jpeg = TestImages.MriJpegWithSize(height, width);
        var file = Path.Combine(Path.GetTempPath(), $"mr_huge_{Guid.NewGuid():N}.jpg");
        File.WriteAllBytes(file, jpeg);
        try
        {
            var (e, cpu) = ThreadCpuTime.Of(() => FluentActions.Invoking(() => ImageCodec.Decode(file)).Should().Throw<ImageDecodeException>().Which);
            cpu.Should().BeLessThan(TimeSpan.FromSeconds(5), "fails fast (CPU time of this thread)");
            e.Origin.Should().Be(file);
            if ((long)height * width > ImageCodec.DefaultMaxPixels)
            {
                e.Failure.Should().Be(ImageDecodeFailure.TooLarge);
                e.Message.Should().Contain($"{width}x{height}");
                FluentActions.Invoking(() => ImageCodec.ReadInfo(file)).Should().Throw<ImageDecodeException>()
                    .Which.Failure.Should().Be(ImageDecodeFailure.TooLarge);
            }
            else
            {
                // The MRI's entropy-coded data ends (at EOI) long before 65000 rows: libjpeg would pad the rest
                // with gray and only warn; the decoder reports the premature end instead.
                e.Failure.Should().Be(ImageDecodeFailure.Truncated);
                e.Reason.Should().Contain("premature end of data segment");
                ImageCodec.ReadInfo(file).Should().Be(new ImageInfo(ImageFormat.Jpeg, height, width, 1));
            }
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public void MaxPixels_is_validated_and_raising_it_lets_a_large_header_reach_the_decoder()
    {
        FluentActions.Invoking(() => ImageCodec.MaxPixels = 0).Should().Throw<ArgumentOutOfRangeException>();
        FluentActions.Invoking(() => ImageCodec.MaxPixels = ImageCodec.MaxPixelsLimit + 1).Should().Throw<ArgumentOutOfRangeException>();
        ImageCodec.MaxPixels.Should().Be(ImageCodec.DefaultMaxPixels);

        // 17000² = 2.89·10^8 gray pixels: refused by default; with the limit raised to exactly that, the decoder
        // allocates the 289 MB image and finds only 64 bytes of pixel data (other tests use images far below or
        // far above this limit, so raising it briefly does not change their outcome).
        var png = TestImages.PngWithHeader(17_000, 17_000, bitDepth: 8, colorType: 0, idat: TestImages.Zlib(new byte[64]));
        FluentActions.Invoking(() => ImageCodec.Decode(png, ImageReadMode.Gray)).Should().Throw<ImageDecodeException>()
            .Which.Failure.Should().Be(ImageDecodeFailure.TooLarge);
        ImageCodec.MaxPixels = 17_000L * 17_000;
        try
        {
            ImageCodec.ReadInfo(png).Should().Be(new ImageInfo(ImageFormat.Png, 17_000, 17_000, 1));
            var e = FluentActions.Invoking(() => ImageCodec.Decode(png, ImageReadMode.Gray)).Should().Throw<ImageDecodeException>().Which;
            e.Failure.Should().Be(ImageDecodeFailure.Corrupt);
            e.Reason.Should().Contain("Not enough image data");
        }
        finally
        {
            ImageCodec.MaxPixels = ImageCodec.DefaultMaxPixels;
        }
    }

    [Fact]
    public void Zero_by_zero_images_are_rejected_not_decoded_to_empty_tensors()
    {
        var png = TestImages.PngWithHeader(0, 0, bitDepth: 8, colorType: 2, idat: TestImages.Zlib([]));
        var e = FluentActions.Invoking(() => ImageCodec.Decode(png)).Should().Throw<ImageDecodeException>().Which;
        e.Failure.Should().Be(ImageDecodeFailure.Corrupt);
        FluentActions.Invoking(() => ImageCodec.ReadInfo(png)).Should().Throw<ImageDecodeException>();

        // JPEG height 0 means "defined later by a DNL marker", which libjpeg does not support.
        var jpeg = TestImages.MriJpegWithSize(0, 0);
        FluentActions.Invoking(() => ImageCodec.Decode(jpeg)).Should().Throw<ImageDecodeException>()
            .Which.Message.Should().Contain("<bytes>");
        FluentActions.Invoking(() => ImageCodec.ReadInfo(jpeg)).Should().Throw<ImageDecodeException>();

        // Encoding a 0×0 tensor is refused too (it would give a file nothing can read back).
        using var empty = Tensor.Zeros([3, 0, 0], DType.UInt8);
        FluentActions.Invoking(() => ImageCodec.EncodePng(empty)).Should().Throw<ArgumentException>().WithMessage("*[3, 0, 0]*");
        FluentActions.Invoking(() => ImageCodec.EncodeJpeg(empty)).Should().Throw<ArgumentException>().WithMessage("*[3, 0, 0]*");
    }

    [Fact]
    public void One_pixel_images_decode_exactly()
    {
        using var rgb = Tensor.FromArray(new byte[] { 10, 200, 77 }, 3, 1, 1);
        using (var decoded = ImageCodec.Decode(ImageCodec.EncodePng(rgb)))
        {
            decoded.Shape.Should().Equal(3, 1, 1);
            decoded.ToArray<byte>().Should().Equal(10, 200, 77);
        }

        using var gray = Tensor.FromArray(new byte[] { 200 }, 1, 1, 1);
        using (var decoded = ImageCodec.Decode(ImageCodec.EncodeJpeg(gray, quality: 100), ImageReadMode.Rgb))
        {
            decoded.Shape.Should().Equal(3, 1, 1);
            decoded.ToArray<byte>().Should().OnlyContain(v => v >= 199 && v <= 201, "a flat 1×1 JPEG at quality 100");
        }
    }

    [Fact]
    public void Chunk_and_segment_lengths_beyond_the_file_are_typed_errors()
    {
        // A PNG whose IDAT chunk announces 2^31 - 16 bytes.
        var png = TestImages.PngWithHeader(4, 4, bitDepth: 8, colorType: 0, idat: TestImages.Zlib(new byte[20]));
        var idat = png.AsSpan().IndexOf("IDAT"u8) - 4;
        BinaryPrimitives.WriteUInt32BigEndian(png.AsSpan(idat), 0x7FFF_FFF0);
        FluentActions.Invoking(() => ImageCodec.Decode(png)).Should().Throw<ImageDecodeException>()
            .Which.Failure.Should().BeOneOf(ImageDecodeFailure.Corrupt, ImageDecodeFailure.Truncated);

        // A JPEG whose first segment after SOI announces 65535 bytes in a 20-byte file.
        byte[] jpeg = [0xFF, 0xD8, 0xFF, 0xE0, 0xFF, 0xFF, (byte)'J', (byte)'F', (byte)'I', (byte)'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0];
        FluentActions.Invoking(() => ImageCodec.Decode(jpeg)).Should().Throw<ImageDecodeException>()
            .Which.Failure.Should().BeOneOf(ImageDecodeFailure.Corrupt, ImageDecodeFailure.Truncated);
    }

    // ---- torch.save checkpoints --------------------------------------------------------------------------------

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Checkpoints_written_without_python_load_exactly(bool legacy)
    {
        // The fuzz seeds must be valid files, or fuzzing them only exercises the first error check.
        var (entries, storages) = TorchSaveWriter.Simple(("w", [2, 3]), ("b", [3]), ("s", []));
        var bytes = legacy ? TorchSaveWriter.Legacy(entries, storages) : TorchSaveWriter.Zip(entries, storages);
        using var sd = TorchCheckpoint.Load(new MemoryStream(bytes), "seed");
        sd.Format.Should().Be(legacy ? TorchCheckpointFormat.Legacy : TorchCheckpointFormat.Zip);
        sd.Keys.Should().Equal("w", "b", "s");
        sd["w"].Shape.Should().Equal(2, 3);
        sd["w"].ToArray<float>().Should().Equal(0f, 0.5f, 1f, 1.5f, 2f, 2.5f);
        sd["b"].ToArray<float>().Should().Equal(3f, 3.5f, 4f);
        sd["s"].Shape.Should().BeEmpty();
        sd["s"].ToArray<float>().Should().Equal(4.5f);
    }

    [Fact]
    public void Zip_checkpoint_with_a_truncated_storage_record_names_the_record_and_sizes()
    {
        var (entries, storages) = TorchSaveWriter.Simple(("w", [2, 3]));
        var shortStorage = storages[0] with { Values = storages[0].Values[..4] };
        var e = LoadFails<CheckpointFormatException>(TorchSaveWriter.Zip(entries, [shortStorage]), "short.pt");
        e.Message.Should().Contain("data/0").And.Contain("holds 16 bytes, expected 24");

        // Every cut of a whole zip checkpoint is a format error naming the source.
        var whole = TorchSaveWriter.Zip(entries, storages);
        for (var cut = 0; cut < whole.Length; cut += Math.Max(1, whole.Length / 97))
        {
            LoadFails<CheckpointFormatException>(whole[..cut], $"cut{cut}.pt");
        }

        // The pickle declares a larger storage than the record holds: the same check.
        var big = TorchSaveWriter.StateDictPickle(entries, new Dictionary<string, long> { ["0"] = 1000 }, legacy: false);
        LoadFails<CheckpointFormatException>(TorchSaveWriter.Zip(big, storages), "big.pt").Message.Should().Contain("expected 4000");
    }

    [Fact]
    public void Tensor_views_outside_their_storage_or_with_mismatched_ranks_name_the_key()
    {
        var (entries, storages) = TorchSaveWriter.Simple(("w", [2, 3]));
        var pastEnd = entries[0] with { Offset = 2 };
        var e = LoadFails<CheckpointFormatException>(TorchSaveWriter.Zip([pastEnd], storages), "past.pt");
        e.Key.Should().Be("w");
        e.Message.Should().StartWith("past.pt, tensor 'w': ").And.Contain("reaches past the 6 elements");

        var rank = entries[0] with { Stride = [1] };
        LoadFails<CheckpointFormatException>(TorchSaveWriter.Zip([rank], storages), "rank.pt")
            .Message.Should().Contain("size has 2 dimensions but stride has 1");

        var hugeStride = entries[0] with { Stride = [long.MaxValue / 2, 1] };
        LoadFails<CheckpointFormatException>(TorchSaveWriter.Zip([hugeStride], storages), "stride.pt");
    }

    [Fact]
    public void Legacy_checkpoint_cut_inside_a_storage_or_with_a_wrong_count_is_a_format_error()
    {
        var (entries, storages) = TorchSaveWriter.Simple(("w", [2, 3]), ("b", [3]));
        var bytes = TorchSaveWriter.Legacy(entries, storages);
        LoadFails<CheckpointFormatException>(bytes[..^5], "cut.pt").Message.Should().Contain("ends inside storage '1'");

        // The count in front of the last storage's bytes (3 floats) says 4.
        var wrongCount = bytes.ToArray();
        BinaryPrimitives.WriteInt64LittleEndian(wrongCount.AsSpan(wrongCount.Length - 12 - 8), 4);
        LoadFails<CheckpointFormatException>(wrongCount, "count.pt").Message.Should().Contain("storage '1' holds 4 elements but the pickle declares 3");
    }

    [Theory]
    [InlineData("builtins", "eval")]
    [InlineData("os", "system")]
    [InlineData("subprocess", "Popen")]
    [InlineData("torch", "load")]
    [InlineData("torch._utils", "_rebuild_tensor")]
    [InlineData("numpy.core.multiarray", "_reconstruct")]
    [InlineData("collections", "defaultdict")]
    public void Foreign_globals_are_refused_in_every_position(string module, string name)
    {
        // As GLOBAL + REDUCE (the classic exploit), as STACK_GLOBAL (protocol 4), as a plain value, and hidden in
        // the legacy format's sys_info pickle.
        var reduce = new PickleBuilder().Proto(2).Global(module, name).Mark().Unicode("touch /tmp/pwned").Tuple().Reduce().Stop().ToArray();
        var stack = new PickleBuilder().Proto(4).StackGlobal(module, name).EmptyTuple().Reduce().Stop().ToArray();
        var value = new PickleBuilder().Proto(2).EmptyDict().Unicode("x").Global(module, name).Raw((byte)'s').Stop().ToArray();
        foreach (var (what, pickle) in new[] { ("reduce", reduce), ("stack_global", stack), ("value", value) })
        {
            var e = LoadFails<UnsupportedCheckpointException>(TorchSaveWriter.Zip(pickle, []), what);
            e.Global.Should().Be($"{module}.{name}", what);
            e.Message.Should().StartWith(what + ": ").And.Contain($"{module}.{name}");
        }

        var legacy = new MemoryStream();
        legacy.Write(new PickleBuilder().Proto(2).Long1(TorchSaveWriter.LegacyMagic.ToByteArray()).Stop().ToArray());
        legacy.Write(new PickleBuilder().Proto(2).Int(1001).Stop().ToArray());
        legacy.Write(reduce);
        LoadFails<UnsupportedCheckpointException>(legacy.ToArray(), "legacy").Global.Should().Be($"{module}.{name}");
    }

    [Fact]
    public void Exponentially_shared_containers_are_rejected_quickly()
    {
        // m0 = None; m(k+1) = [m(k), m(k)] through the memo: 300 bytes describing 2^60 leaves ("billion laughs").
        var p = new PickleBuilder().Proto(2).None().Put(0).Raw((byte)'0');
        for (var k = 0; k < 60; k++)
        {
            p.Mark().Get(0).Get(0).Raw((byte)'l').Put(0).Raw((byte)'0');
        }

        var bomb = TorchSaveWriter.Zip(p.Get(0).Stop().ToArray(), []);
        var (e, cpu) = ThreadCpuTime.Of(() => LoadFails<CheckpointFormatException>(bomb, "laughs.pt"));
        // Measured 0.64-0.79 s of CPU idle and with three busy processes on the 2 cores; expanding 2^60 leaves never ends.
        cpu.Should().BeLessThan(TimeSpan.FromSeconds(10), "2^60 leaves are never expanded (CPU time of this thread)");
        e.Message.Should().Contain("MaxValues");

        // The same structure 10 levels deep (1024 leaves) is fine, and so it is with a budget of exactly its size.
        var small = new PickleBuilder().Proto(2).None().Put(0).Raw((byte)'0');
        for (var k = 0; k < 10; k++)
        {
            small.Mark().Get(0).Get(0).Raw((byte)'l').Put(0).Raw((byte)'0');
        }

        var smallZip = TorchSaveWriter.Zip(small.Get(0).Stop().ToArray(), []);
        using (var sd = TorchCheckpoint.Load(new MemoryStream(smallZip), "small.pt"))
        {
            sd.Extras.Should().HaveCount(1024);
            sd.Extras.Keys.Should().Contain("1.0.1.1.0.0.1.1.1.0");
        }

        var values = 2047; // 1023 lists + 1024 leaves
        using (TorchCheckpoint.Load(new MemoryStream(smallZip), "exact", new TorchCheckpointOptions { MaxValues = values }))
        {
        }

        LoadFails<CheckpointFormatException>(smallZip, "over", new TorchCheckpointOptions { MaxValues = values - 1 });
    }

    [Fact]
    public void One_storage_shared_under_many_keys_is_bounded_by_MaxExpandedElements()
    {
        // A 2^20-element storage (4 MiB) under 100 keys would be copied into 400 MiB: refused before any copy.
        var storage = new TorchSaveWriter.Storage("0", 1 << 20, new float[1 << 20]);
        var entries = Enumerable.Range(0, 100)
            .Select(i => new TorchSaveWriter.Entry($"k{i}", "0", 0, [1 << 20], [1]))
            .ToArray();
        var bomb = TorchSaveWriter.Zip(entries, [storage]);
        var e = LoadFails<CheckpointFormatException>(bomb, "shared.pt");
        e.Message.Should().Contain("MaxExpandedElements").And.Contain("104857600 elements");

        // Ten users of a 1000-element storage need 9000 extra elements: the budget decides.
        var small = new TorchSaveWriter.Storage("0", 1000, Enumerable.Range(0, 1000).Select(i => (float)i).ToArray());
        var ten = Enumerable.Range(0, 10).Select(i => new TorchSaveWriter.Entry($"k{i}", "0", 0, [1000], [1])).ToArray();
        var zip = TorchSaveWriter.Zip(ten, [small]);
        LoadFails<CheckpointFormatException>(zip, "tight", new TorchCheckpointOptions { MaxExpandedElements = 8999 });
        using var sd = TorchCheckpoint.Load(new MemoryStream(zip), "enough", new TorchCheckpointOptions { MaxExpandedElements = 9000 });
        sd.Count.Should().Be(10);
        sd["k9"].ToArray<float>()[999].Should().Be(999f);
    }

    [Fact]
    public void Zip_directory_claiming_an_impossible_record_size_is_refused_before_allocating()
    {
        var (entries, storages) = TorchSaveWriter.Simple(("w", [2, 3]));
        var zip = TorchSaveWriter.Zip(entries, storages);

        // Patch the uncompressed size of archive/data.pkl in the central directory (signature PK\1\2, size at +24).
        var central = zip.AsSpan().IndexOf("PK\u0001\u0002"u8);
        central.Should().BePositive();
        BinaryPrimitives.WriteUInt32LittleEndian(zip.AsSpan(central + 24), 0xFFFF_FFF0);
        var e = LoadFails<CheckpointFormatException>(zip, "sizes.pt");
        e.Message.Should().Contain("archive/data.pkl");
    }

    // ---- safetensors -------------------------------------------------------------------------------------------

    public static TheoryData<string> SafeTensorsDamage => ["truncated", "header past end", "offsets past data", "byte count", "deep header"];

    [Theory]
    [MemberData(nameof(SafeTensorsDamage))]
    public void Damaged_safetensors_fail_the_same_way_through_every_entry_point(string damage)
    {
        using var a = Tensor.Arange(0, 6, 1, DType.Float32).Reshape(2, 3);
        using var b = Tensor.FromArray(new long[] { 7, 8 });
        var good = SafeTensors.Serialize(new Dictionary<string, Tensor> { ["a"] = a, ["b"] = b });
        var headerLength = (int)BinaryPrimitives.ReadUInt64LittleEndian(good);
        var data = good[(8 + headerLength)..];
        string Edit(Action<System.Text.Json.Nodes.JsonObject> edit)
        {
            var header = System.Text.Json.Nodes.JsonNode.Parse(Encoding.UTF8.GetString(good, 8, headerLength))!.AsObject();
            edit(header["a"]!.AsObject());
            return header.ToJsonString();
        }

        byte[] bad = damage switch
        {
            "truncated" => good[..^3],
            "header past end" => WithLength(good, (ulong)good.Length),
            "offsets past data" => Rebuild(Edit(a => a["data_offsets"] = new System.Text.Json.Nodes.JsonArray(16, 64)), data),
            "byte count" => Rebuild(Edit(a => a["shape"] = new System.Text.Json.Nodes.JsonArray(2, 4)), data),
            _ => Rebuild("{\"a\":" + new string('[', 100) + new string(']', 100) + "}", []),
        };
        bad.Should().NotEqual(good, damage);
        var path = Path.Combine(Path.GetTempPath(), $"mr_st_{Guid.NewGuid():N}.safetensors");
        File.WriteAllBytes(path, bad);
        try
        {
            var loads = new (string Name, Func<object> Load)[]
            {
                (path, () => SafeTensors.Load(path)),
                ("bytes", () => SafeTensors.Load(bad, "bytes")),
                ("seekable", () => SafeTensors.Load(new MemoryStream(bad), "seekable")),
                ("forward-only", () => SafeTensors.Load(new ForwardOnlyStream(bad), "forward-only")),
            };
            foreach (var (name, load) in loads)
            {
                var e = FluentActions.Invoking(load).Should().Throw<CheckpointFormatException>($"{damage} via {name}").Which;
                e.FilePath.Should().Be(name);
                e.Message.Should().StartWith(name);
                if (damage is "offsets past data" or "byte count")
                {
                    e.Key.Should().Be("a", $"{damage} via {name}");
                }
            }

            // The header is checked against the file size, so reading only the header already fails.
            FluentActions.Invoking(() => SafeTensors.ReadHeader(path)).Should().Throw<CheckpointFormatException>(damage);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Safetensors_of_rank_65_loads_and_wrong_shapes_are_refused_by_modules()
    {
        // Rank is not limited by the format: 65 dimensions of 1 is one float, loaded as such.
        var shape = string.Join(",", Enumerable.Repeat("1", 65));
        var bytes = Rebuild($"{{\"x\":{{\"dtype\":\"F32\",\"shape\":[{shape}],\"data_offsets\":[0,4]}}}}", BitConverter.GetBytes(2.5f));
        var loaded = SafeTensors.Load(bytes);
        loaded["x"].Dim.Should().Be(65);
        loaded["x"].ToArray<float>().Should().Equal(2.5f);
        loaded["x"].Dispose();

        // A checkpoint whose tensor has the wrong shape for the module names the key and both shapes.
        using var linear = new Linear(3, 2);
        using var w = Tensor.Zeros([2, 4]);
        using var bias = Tensor.Zeros([2]);
        var act = () => linear.LoadStateDict(new Dictionary<string, Tensor> { ["weight"] = w, ["bias"] = bias });
        act.Should().Throw<CheckpointMismatchException>().WithMessage("*'weight'*[2, 4]*[2, 3]*");
    }

    // ---- polygons -------------------------------------------------------------------------------------------

    [Fact]
    public void Polygon_zig_zagging_across_a_million_pixel_wide_image_is_refused_quickly()
    {
        // 400 edges, each crossing ~10^6 columns of a 1,000,000 x 2 image: 4·10^8 crossings (1.6 GB and a long sort)
        // before the guard; now refused once the count passes Rle.MaxCrossings.
        var xy = Enumerable.Range(0, 400).SelectMany(i => new[] { i % 2 == 0 ? 0.0 : 999_999.0, i * 0.005 }).ToArray();
        var (e, cpu) = ThreadCpuTime.Of(() => FluentActions.Invoking(() => Rle.FromPolygon(xy, 2, 1_000_000)).Should().Throw<ArgumentException>().Which);
        // Measured 0.67-0.77 s of CPU idle and with three busy processes on the 2 cores (counting up to the limit).
        cpu.Should().BeLessThan(TimeSpan.FromSeconds(10), "refused before sorting 4·10^8 crossings (CPU time of this thread)");
        e.Message.Should().Contain("too complex").And.Contain($"{Rle.MaxCrossings}");

        // A plain rectangle over the same image is cheap and exact.
        var rle = Rle.FromPolygon([0, 0, 999_999, 0, 999_999, 2, 0, 2], 2, 1_000_000);
        rle.Area.Should().BeGreaterThan(1_999_000);
    }

    private static T LoadFails<T>(byte[] bytes, string name, TorchCheckpointOptions? options = null) where T : CheckpointException
    {
        var e = FluentActions.Invoking(() => TorchCheckpoint.Load(new MemoryStream(bytes), name, options)).Should().Throw<T>().Which;
        e.FilePath.Should().Be(name);
        return e;
    }

    private static byte[] WithLength(byte[] file, ulong length)
    {
        var copy = file.ToArray();
        BinaryPrimitives.WriteUInt64LittleEndian(copy, length);
        return copy;
    }

    private static byte[] Rebuild(string header, byte[] data)
    {
        var h = Encoding.UTF8.GetBytes(header);
        var result = new byte[8 + h.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(result, (ulong)h.Length);
        h.CopyTo(result, 8);
        data.CopyTo(result, 8 + h.Length);
        return result;
    }
}

/// <summary>Hand-made image files for hostile tests.</summary>
public static class TestImages
{
    /// <summary>The first MRI JPEG with its baseline SOF0 frame header patched to another size.</summary>
    public static byte[] MriJpegWithSize(int height, int width)
    {
        var jpeg = File.ReadAllBytes(ImagingTestData.MriJpegs[0]);
        var sof = FindMarker(jpeg, 0xC0);
        if (sof < 0)
        {
            throw new InvalidOperationException("the MRI JPEG has no baseline SOF0 marker");
        }

        BinaryPrimitives.WriteUInt16BigEndian(jpeg.AsSpan(sof + 5), (ushort)height);
        BinaryPrimitives.WriteUInt16BigEndian(jpeg.AsSpan(sof + 7), (ushort)width);
        return jpeg;
    }

    /// <summary>Offset of the first JPEG marker FF <paramref name="marker"/> (walking the segments), or -1.</summary>
    public static int FindMarker(byte[] jpeg, byte marker)
    {
        for (var i = 2; i + 3 < jpeg.Length && jpeg[i] == 0xFF;)
        {
            if (jpeg[i + 1] == marker)
            {
                return i;
            }

            i += 2 + BinaryPrimitives.ReadUInt16BigEndian(jpeg.AsSpan(i + 2));
        }

        return -1;
    }

    /// <summary>zlib-compresses bytes (PNG IDAT payload).</summary>
    public static byte[] Zlib(byte[] raw)
    {
        using var ms = new MemoryStream();
        using (var z = new ZLibStream(ms, CompressionLevel.Optimal))
        {
            z.Write(raw);
        }

        return ms.ToArray();
    }

    /// <summary>A PNG with the given IHDR fields and one IDAT chunk (correct CRCs).</summary>
    public static byte[] PngWithHeader(uint width, uint height, byte bitDepth, byte colorType, byte[] idat)
    {
        var ihdr = new byte[13];
        BinaryPrimitives.WriteUInt32BigEndian(ihdr, width);
        BinaryPrimitives.WriteUInt32BigEndian(ihdr.AsSpan(4), height);
        ihdr[8] = bitDepth;
        ihdr[9] = colorType;
        using var ms = new MemoryStream();
        ms.Write([0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A]);
        WriteChunk(ms, "IHDR", ihdr);
        WriteChunk(ms, "IDAT", idat);
        WriteChunk(ms, "IEND", []);
        return ms.ToArray();
    }

    private static void WriteChunk(Stream s, string type, byte[] data)
    {
        Span<byte> u32 = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(u32, (uint)data.Length);
        s.Write(u32);
        byte[] typeAndData = [.. Encoding.ASCII.GetBytes(type), .. data];
        s.Write(typeAndData);
        BinaryPrimitives.WriteUInt32BigEndian(u32, Crc32(typeAndData));
        s.Write(u32);
    }

    private static uint Crc32(byte[] bytes)
    {
        var crc = 0xFFFFFFFFu;
        foreach (var b in bytes)
        {
            crc ^= b;
            for (var k = 0; k < 8; k++)
            {
                crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
            }
        }

        return ~crc;
    }
}

/// <summary>A read-only stream that cannot seek (exercises the buffering paths of the readers).</summary>
public sealed class ForwardOnlyStream(byte[] data) : Stream
{
    private readonly MemoryStream inner = new(data);

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override void Flush()
    {
    }

    public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
