using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using MaskRcnn.Net.Core.Checkpoints;

namespace MaskRcnn.Net.Core.Tests.Checkpoints;

[Collection(CheckpointCollection.Name)]
public class SafeTensorsTests(CheckpointFiles files)
{
    [Fact]
    public void Reads_a_file_written_by_python_exactly()
    {
        var path = files.PathOf("py.safetensors");
        var expected = files.Expected("py.safetensors");
        var loaded = SafeTensors.Load(path);
        try
        {
            var tensors = expected.GetProperty("tensors").EnumerateArray().ToList();
            loaded.Keys.Should().BeEquivalentTo(tensors.Select(t => t[0].GetString()));
            foreach (var t in tensors)
            {
                CheckpointFiles.AssertTensor(loaded[t[0].GetString()!], t, t[0].GetString()!);
            }

            var metadata = SafeTensors.ReadMetadata(path);
            metadata.Should().BeEquivalentTo(expected.GetProperty("metadata").EnumerateObject()
                .ToDictionary(p => p.Name, p => p.Value.GetString()));
            metadata["note"].Should().Be("h\u00e9llo \"quoted\"");
        }
        finally
        {
            DisposeAll(loaded);
        }
    }

    [Fact]
    public void Round_trips_every_dtype_through_a_file_and_python_reads_it_identically()
    {
        using var scope = Torch.NewDisposeScope();
        var tensors = SampleTensors();
        var metadata = new Dictionary<string, string> { ["format"] = "pt", ["epoch"] = "7", ["unicode"] = "\u00e9\u4e2d<&>" };
        var path = Path.Combine(files.Dir, "cs_roundtrip.safetensors");
        SafeTensors.Save(path, tensors, metadata);

        var back = SafeTensors.Load(path);
        back.Keys.Should().BeEquivalentTo(tensors.Keys);
        foreach (var (name, t) in tensors)
        {
            back[name].DType.Should().Be(t.DType, name);
            back[name].Shape.Should().Equal(t.Shape, name);
            back[name].ToBytes().Should().Equal(t.ToBytes(), name);
        }

        SafeTensors.ReadMetadata(path).Should().BeEquivalentTo(metadata);

        var py = CheckpointFiles.ReadSafeTensorsWithPython(path);
        py.GetProperty("metadata").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString())
            .Should().BeEquivalentTo(metadata);
        var pyTensors = py.GetProperty("tensors");
        pyTensors.EnumerateObject().Select(p => p.Name).Should().BeEquivalentTo(tensors.Keys);
        foreach (var (name, t) in tensors)
        {
            var d = pyTensors.GetProperty(name);
            var description = JsonDocument.Parse($"[\"{name}\", {d[0].GetRawText()}, {d[1].GetRawText()}, {d[2].GetRawText()}]").RootElement;
            CheckpointFiles.AssertTensor(t, description, "python view of " + name);
        }
    }

    [Fact]
    public void Writer_sorts_names_pads_the_header_and_aligns_every_tensor()
    {
        using var scope = Torch.NewDisposeScope();
        var tensors = SampleTensors();
        var bytes = SafeTensors.Serialize(tensors);
        var n = (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        ((8 + n) % 8).Should().Be(0);
        var headerText = Encoding.UTF8.GetString(bytes, 8, (int)n);
        headerText.TrimEnd(' ').Length.Should().BeGreaterThan(headerText.Length - 8);
        using var doc = JsonDocument.Parse(headerText);
        doc.RootElement.EnumerateObject().Select(p => p.Name).Should().BeInAscendingOrder(StringComparer.Ordinal);

        using var ms = new MemoryStream(bytes);
        var header = SafeTensors.ReadHeader(ms, "mem");
        header.DataStart.Should().Be(8 + n);
        header.Metadata.Should().BeEmpty();
        foreach (var info in header.Tensors)
        {
            (info.DataBegin % info.DType.ElementSize()).Should().Be(0, info.Name);
            ((8 + n + info.DataBegin) % info.DType.ElementSize()).Should().Be(0, info.Name);
        }

        var fromBytes = SafeTensors.Load(bytes.AsSpan(), "bytes");
        var fromStream = SafeTensors.Load(new MemoryStream(bytes));
        foreach (var (name, t) in tensors)
        {
            fromBytes[name].ToBytes().Should().Equal(t.ToBytes(), name);
            fromStream[name].ToBytes().Should().Equal(t.ToBytes(), name);
        }
    }

    [Fact]
    public void Saving_a_reserved_name_is_rejected()
    {
        using var t = Tensor.Zeros([1]);
        var act = () => SafeTensors.Serialize(new Dictionary<string, Tensor> { ["__metadata__"] = t });
        act.Should().Throw<ArgumentException>().WithMessage("*reserved*");
    }

    public static TheoryData<string, string, int, string> BadHeaders => new()
    {
        // header JSON, data byte count, expected message fragment, key (or "" when the error concerns the file)
        { """{"a":{"dtype":"F99","shape":[1],"data_offsets":[0,4]}}""", "unknown safetensors dtype", 4, "a" },
        { """{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}""", "needs 8 bytes", 4, "a" },
        { """{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,8]}}""", "outside the 4-byte data buffer", 4, "a" },
        { """{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}""", "outside", 4, "a" },
        { """{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}""", "not a non-negative integer", 4, "a" },
        { """{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}""", "not a non-negative integer", 4, "a" },
        { """{"a":{"dtype":"F32","shape":"1","data_offsets":[0,4]}}""", "no array 'shape'", 4, "a" },
        { """{"a":{"dtype":"F32","shape":[1]}}""", "no array 'data_offsets'", 4, "a" },
        { """{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}""", "expected 2", 4, "a" },
        { """{"a":{"shape":[1],"data_offsets":[0,4]}}""", "no string 'dtype'", 4, "a" },
        { """{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}}""", "overlap", 8, "b" },
        { """{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}""", "gap", 12, "b" },
        { """{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", "trailing", 8, "" },
        { """{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", "twice", 4, "a" },
        { """{"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,4]}}""", "too large", 4, "a" },
        { """{"__metadata__":{"x":1}}""", "not a string", 0, "" },
        { """{"__metadata__":[]}""", "not a JSON object", 0, "" },
        { """{"a":[1,2]}""", "not a JSON object", 0, "a" },
        { """{"a":{"dtype":"F32",""", "not valid JSON", 0, "" },
        { """[1,2]""", "does not start with '{'", 0, "" },
        { "", "does not start with '{'", 0, "" },
    };

    [Theory]
    [MemberData(nameof(BadHeaders))]
    public void Invalid_headers_throw_CheckpointFormatException_naming_file_and_key(string header, string fragment, int dataBytes, string key)
    {
        var path = Path.Combine(files.Dir, $"bad_{Guid.NewGuid():N}.safetensors");
        File.WriteAllBytes(path, Build(Encoding.UTF8.GetBytes(header), new byte[dataBytes]));
        var act = () => SafeTensors.Load(path);
        var ex = act.Should().Throw<CheckpointFormatException>().Which;
        ex.Message.Should().StartWith(path).And.Contain(fragment);
        ex.Key.Should().Be(key.Length == 0 ? null : key);
        var actBytes = () => SafeTensors.Load(File.ReadAllBytes(path), "bytes");
        actBytes.Should().Throw<CheckpointFormatException>().Which.Message.Should().Contain(fragment);
    }

    [Fact]
    public void Known_but_unsupported_dtype_throws_UnsupportedCheckpointException()
    {
        var bytes = Build("""{"u":{"dtype":"U32","shape":[1],"data_offsets":[0,4]}}"""u8.ToArray(), new byte[4]);
        var act = () => SafeTensors.Load(bytes, "u32");
        act.Should().Throw<UnsupportedCheckpointException>().WithMessage("u32, tensor 'u': *U32*");
    }

    [Fact]
    public void Bad_header_lengths_and_invalid_utf8_are_rejected()
    {
        var tooLong = new byte[16];
        BinaryPrimitives.WriteUInt64LittleEndian(tooLong, 9);
        var act1 = () => SafeTensors.Load(tooLong, "x");
        act1.Should().Throw<CheckpointFormatException>().WithMessage("x: header length 9 runs past the end*");

        var huge = new byte[16];
        BinaryPrimitives.WriteUInt64LittleEndian(huge, ulong.MaxValue);
        var act2 = () => SafeTensors.Load(new MemoryStream(huge), "y");
        act2.Should().Throw<CheckpointFormatException>().WithMessage("y: header length * exceeds*");

        var act3 = () => SafeTensors.Load(new byte[5], "z");
        act3.Should().Throw<CheckpointFormatException>().WithMessage("z: *fewer than the 8-byte*");

        var act4 = () => SafeTensors.Load(Build([(byte)'{', 0xff, 0xfe, (byte)'}'], []), "w");
        act4.Should().Throw<CheckpointFormatException>().WithMessage("w: *UTF-8*");
    }

    [Fact]
    public void Every_truncation_of_a_valid_file_throws_a_format_exception()
    {
        var bytes = File.ReadAllBytes(files.PathOf("py.safetensors"));
        var path = Path.Combine(files.Dir, "truncated.safetensors");
        for (var cut = 0; cut < bytes.Length; cut += Math.Max(1, cut < 64 ? 1 : 7))
        {
            File.WriteAllBytes(path, bytes[..cut]);
            var act = () => SafeTensors.Load(path);
            act.Should().Throw<CheckpointFormatException>($"cut at {cut}").Which.Message.Should().StartWith(path);
        }
    }

    [Fact]
    public void Flipped_header_bytes_either_load_or_throw_a_checkpoint_exception()
    {
        var bytes = File.ReadAllBytes(files.PathOf("py.safetensors"));
        var n = (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        for (var i = 0; i < 8 + n; i++)
        {
            var corrupt = (byte[])bytes.Clone();
            corrupt[i] ^= 0x5a;
            try
            {
                DisposeAll(SafeTensors.Load(corrupt, "flip"));
            }
            catch (CheckpointException)
            {
            }
        }
    }

    private static Dictionary<string, Tensor> SampleTensors()
    {
        using var f = Tensor.Arange(0, 20, 1, DType.Float32);
        return new Dictionary<string, Tensor>
        {
            ["zeta_f32"] = Tensor.Randn([3, 4]),
            ["alpha_u8"] = Tensor.FromArray(new byte[] { 1, 2, 3 }),
            ["f16"] = Tensor.Randn([5]).To(DType.Float16),
            ["bf16"] = Tensor.Randn([2, 3]).To(DType.BFloat16),
            ["f64"] = Tensor.Randn([3]).To(DType.Float64),
            ["i64"] = Tensor.FromArray(new long[] { long.MinValue, -1, long.MaxValue }),
            ["i32"] = Tensor.FromArray(new[] { int.MinValue, 0, int.MaxValue }),
            ["i16"] = Tensor.FromArray(new short[] { -3, 4 }),
            ["i8"] = Tensor.FromArray(new sbyte[] { -128, 127, 0 }),
            ["bool"] = Tensor.FromArray(new[] { true, false, true, true, false }),
            ["scalar"] = Tensor.Scalar(2.5),
            ["empty"] = Tensor.Zeros([0, 7]),
            ["transposed"] = f.Reshape(4, 5).T(),
            ["ünïcode name"] = Tensor.Ones([2]),
        };
    }

    private static byte[] Build(byte[] header, byte[] data)
    {
        var result = new byte[8 + header.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(result, (ulong)header.Length);
        header.CopyTo(result, 8);
        data.CopyTo(result, 8 + header.Length);
        return result;
    }

    private static void DisposeAll(Dictionary<string, Tensor> tensors)
    {
        foreach (var t in tensors.Values)
        {
            t.Dispose();
        }
    }
}
