using System.Buffers.Binary;
using System.IO.Compression;
using System.Numerics;
using System.Text;

namespace MaskRcnn.Net.Core.Tests.TestSupport;

/// <summary>
/// Writes <c>torch.save</c> files without Python, byte for byte in the layout PyTorch uses (protocol-2 pickle of an
/// <c>OrderedDict</c> whose values are <c>torch._utils._rebuild_tensor_v2</c> calls on persistent storage ids), in
/// the zip format of PyTorch ≥ 1.6 and the legacy stream format. Used as fuzz seeds and to build hostile variants.
/// </summary>
public static class TorchSaveWriter
{
    /// <summary>The legacy format's magic number.</summary>
    public static readonly BigInteger LegacyMagic = BigInteger.Parse("1950a86a20f9469cfc6c", System.Globalization.NumberStyles.HexNumber);

    /// <summary>One float32 tensor: a view (offset, size, stride in elements) of storage <paramref name="StorageKey"/>.</summary>
    public sealed record Entry(string Key, string StorageKey, long Offset, long[] Size, long[] Stride);

    /// <summary>A storage record: its key, element count and float32 values (may be shorter or longer than the count).</summary>
    public sealed record Storage(string Key, long Numel, float[] Values);

    /// <summary>A state dict of contiguous float32 tensors, one storage each.</summary>
    public static (Entry[] Entries, Storage[] Storages) Simple(params (string Key, long[] Shape)[] tensors)
    {
        var entries = new List<Entry>();
        var storages = new List<Storage>();
        var value = 0f;
        foreach (var (key, shape) in tensors)
        {
            var numel = shape.Aggregate(1L, (a, b) => a * b);
            var stride = new long[shape.Length];
            var s = 1L;
            for (var d = shape.Length - 1; d >= 0; d--)
            {
                stride[d] = s;
                s *= shape[d];
            }

            var storageKey = storages.Count.ToString(System.Globalization.CultureInfo.InvariantCulture);
            storages.Add(new Storage(storageKey, numel, Enumerable.Range(0, (int)numel).Select(_ => value++ * 0.5f).ToArray()));
            entries.Add(new Entry(key, storageKey, 0, shape, stride));
        }

        return ([.. entries], [.. storages]);
    }

    /// <summary>The data.pkl of a state dict; <paramref name="legacy"/> selects the 6-element persistent ids.</summary>
    public static byte[] StateDictPickle(IEnumerable<Entry> entries, IReadOnlyDictionary<string, long> storageNumel, bool legacy)
    {
        var p = new PickleBuilder().Proto(2).Global("collections", "OrderedDict").EmptyTuple().Reduce().Mark();
        foreach (var e in entries)
        {
            p.Unicode(e.Key).Global("torch._utils", "_rebuild_tensor_v2").Mark();
            p.Mark().Unicode("storage").Global("torch", "FloatStorage").Unicode(e.StorageKey).Unicode("cpu").Int(storageNumel[e.StorageKey]);
            if (legacy)
            {
                p.None();
            }

            p.Tuple().BinPersId().Int(e.Offset).IntTuple(e.Size).IntTuple(e.Stride).False()
                .Global("collections", "OrderedDict").EmptyTuple().Reduce().Tuple().Reduce();
        }

        return p.SetItems().Stop().ToArray();
    }

    /// <summary>A zip-format checkpoint (PyTorch ≥ 1.6) whose data.pkl is <paramref name="pickle"/>.</summary>
    public static byte[] Zip(byte[] pickle, IEnumerable<Storage> storages)
    {
        var ms = new MemoryStream();
        using (var zip = new ZipArchive(ms, ZipArchiveMode.Create, leaveOpen: true))
        {
            Write(zip, "archive/data.pkl", pickle);
            Write(zip, "archive/byteorder", "little"u8.ToArray());
            foreach (var s in storages)
            {
                Write(zip, "archive/data/" + s.Key, FloatBytes(s.Values));
            }

            Write(zip, "archive/version", "3\n"u8.ToArray());
        }

        return ms.ToArray();
    }

    /// <summary>A zip-format checkpoint of a state dict.</summary>
    public static byte[] Zip(Entry[] entries, Storage[] storages) =>
        Zip(StateDictPickle(entries, storages.ToDictionary(s => s.Key, s => s.Numel), legacy: false), storages);

    /// <summary>A legacy-format checkpoint (pre-1.6 stream of pickles followed by the raw storages).</summary>
    public static byte[] Legacy(Entry[] entries, Storage[] storages)
    {
        var ms = new MemoryStream();
        var magic = LegacyMagic.ToByteArray(isUnsigned: false, isBigEndian: false);
        ms.Write(new PickleBuilder().Proto(2).Long1(magic).Stop().ToArray());
        ms.Write(new PickleBuilder().Proto(2).Int(1001).Stop().ToArray());
        ms.Write(new PickleBuilder().Proto(2).EmptyDict().Mark().Unicode("protocol_version").Int(1001)
            .Unicode("little_endian").True().SetItems().Stop().ToArray());
        ms.Write(StateDictPickle(entries, storages.ToDictionary(s => s.Key, s => s.Numel), legacy: true));
        var keys = new PickleBuilder().Proto(2).EmptyList().Mark();
        foreach (var s in storages)
        {
            keys.Unicode(s.Key);
        }

        ms.Write(keys.Appends().Stop().ToArray());
        Span<byte> count = stackalloc byte[8];
        foreach (var s in storages)
        {
            BinaryPrimitives.WriteInt64LittleEndian(count, s.Numel);
            ms.Write(count);
            ms.Write(FloatBytes(s.Values));
        }

        return ms.ToArray();
    }

    private static byte[] FloatBytes(float[] values)
    {
        var bytes = new byte[values.Length * 4];
        for (var i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(4 * i), values[i]);
        }

        return bytes;
    }

    private static void Write(ZipArchive zip, string name, byte[] data)
    {
        using var s = zip.CreateEntry(name, CompressionLevel.NoCompression).Open();
        s.Write(data);
    }
}

/// <summary>Appends pickle opcodes (the subset torch.save uses, plus a few for hostile inputs).</summary>
public sealed class PickleBuilder
{
    private readonly List<byte> bytes = [];

    /// <summary>The pickle so far.</summary>
    public byte[] ToArray() => [.. bytes];

    /// <summary>Appends raw bytes.</summary>
    public PickleBuilder Raw(params byte[] raw)
    {
        bytes.AddRange(raw);
        return this;
    }

    public PickleBuilder Proto(byte version) => Raw(0x80, version);

    public PickleBuilder Global(string module, string name) => Raw([(byte)'c', .. Encoding.UTF8.GetBytes($"{module}\n{name}\n")]);

    public PickleBuilder StackGlobal(string module, string name) => Unicode(module).Unicode(name).Raw(0x93);

    public PickleBuilder Mark() => Raw((byte)'(');

    public PickleBuilder Tuple() => Raw((byte)'t');

    public PickleBuilder EmptyTuple() => Raw((byte)')');

    public PickleBuilder EmptyList() => Raw((byte)']');

    public PickleBuilder EmptyDict() => Raw((byte)'}');

    public PickleBuilder Reduce() => Raw((byte)'R');

    public PickleBuilder SetItems() => Raw((byte)'u');

    public PickleBuilder Append() => Raw((byte)'a');

    public PickleBuilder Appends() => Raw((byte)'e');

    public PickleBuilder BinPersId() => Raw((byte)'Q');

    public PickleBuilder Stop() => Raw((byte)'.');

    public PickleBuilder None() => Raw((byte)'N');

    public PickleBuilder True() => Raw(0x88);

    public PickleBuilder False() => Raw(0x89);

    public PickleBuilder Dup() => Raw((byte)'2');

    public PickleBuilder Put(byte index) => Raw((byte)'q', index);

    public PickleBuilder Get(byte index) => Raw((byte)'h', index);

    public PickleBuilder Unicode(string s)
    {
        var utf8 = Encoding.UTF8.GetBytes(s);
        Span<byte> length = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(length, utf8.Length);
        return Raw([(byte)'X', .. length, .. utf8]);
    }

    public PickleBuilder Int(long value)
    {
        if (value is >= int.MinValue and <= int.MaxValue)
        {
            Span<byte> b = stackalloc byte[4];
            BinaryPrimitives.WriteInt32LittleEndian(b, (int)value);
            return Raw([(byte)'J', .. b]);
        }

        return Long1(new BigInteger(value).ToByteArray(isUnsigned: false, isBigEndian: false));
    }

    public PickleBuilder Long1(byte[] littleEndian) => Raw([0x8a, (byte)littleEndian.Length, .. littleEndian]);

    public PickleBuilder IntTuple(long[] values)
    {
        Mark();
        foreach (var v in values)
        {
            Int(v);
        }

        return Tuple();
    }
}
