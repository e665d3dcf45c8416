using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace MaskRcnn.Net.Core.Checkpoints;

/// <summary>One tensor entry of a safetensors header.</summary>
/// <param name="Name">The tensor key.</param>
/// <param name="DType">Element type.</param>
/// <param name="Shape">Size of each dimension (empty for a scalar).</param>
/// <param name="DataBegin">Start of the tensor's bytes, relative to the start of the data buffer.</param>
/// <param name="DataEnd">End (exclusive) of the tensor's bytes, relative to the start of the data buffer.</param>
public sealed record SafeTensorInfo(string Name, DType DType, long[] Shape, long DataBegin, long DataEnd)
{
    /// <summary>Number of elements.</summary>
    public long NumEl => Shape.Aggregate(1L, (a, b) => a * b);

    /// <summary>Number of data bytes.</summary>
    public long ByteCount => DataEnd - DataBegin;
}

/// <summary>The parsed, validated header of a safetensors file.</summary>
/// <param name="Tensors">The tensor entries in header order.</param>
/// <param name="Metadata">The free-form <c>__metadata__</c> string map (empty when absent).</param>
/// <param name="DataStart">Absolute file offset of the data buffer (8 + header length).</param>
public sealed record SafeTensorsHeader(
    IReadOnlyList<SafeTensorInfo> Tensors, IReadOnlyDictionary<string, string> Metadata, long DataStart);

/// <summary>
/// Reads and writes the safetensors format: an 8-byte little-endian header length, a JSON header mapping each name
/// to <c>{dtype, shape, data_offsets}</c> (plus an optional <c>__metadata__</c> string map), then the raw
/// little-endian bytes of every tensor. Reading validates the whole header against the file before any tensor is
/// created and throws <see cref="CheckpointFormatException"/> (or <see cref="UnsupportedCheckpointException"/> for
/// dtypes this library has no tensor type for) naming the file and tensor key.
/// </summary>
public static class SafeTensors
{
    /// <summary>Largest header accepted when reading (the reference implementation's limit).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    private const string MetadataKey = "__metadata__";
    private const string StreamName = "<stream>";
    private const string BytesName = "<bytes>";

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    // ---- writing -----------------------------------------------------------------------------------------------

    /// <summary>
    /// Writes <paramref name="tensors"/> (any device, any layout; stored row-major) and optional metadata to a file.
    /// The file is written to a temporary name first and then moved over <paramref name="path"/>.
    /// </summary>
    /// <param name="path">Destination file.</param>
    /// <param name="tensors">Tensors by name; the names appear sorted (ordinal) in the header.</param>
    /// <param name="metadata">Optional free-form string map stored as <c>__metadata__</c>.</param>
    public static void Save(string path, IReadOnlyDictionary<string, Tensor> tensors,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var full = Path.GetFullPath(path);
        var temp = full + $".{Guid.NewGuid():N}.tmp";
        try
        {
            using (var fs = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                Save(fs, tensors, metadata);
            }

            File.Move(temp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp))
            {
                File.Delete(temp);
            }
        }
    }

    /// <summary>Writes <paramref name="tensors"/> and optional metadata in safetensors format to a stream.</summary>
    /// <param name="stream">A writable stream; it is left open.</param>
    /// <param name="tensors">Tensors by name; the names appear sorted (ordinal) in the header.</param>
    /// <param name="metadata">Optional free-form string map stored as <c>__metadata__</c>.</param>
    public static void Save(Stream stream, IReadOnlyDictionary<string, Tensor> tensors,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(tensors);

        // Data layout follows the reference writer: larger element sizes first, then by name, so every tensor's bytes
        // start at a multiple of its element size (the header is padded to a multiple of 8).
        var entries = new List<(string Name, Tensor Tensor, DType DType, long[] Shape, long Bytes)>(tensors.Count);
        foreach (var (name, tensor) in tensors)
        {
            ArgumentNullException.ThrowIfNull(tensor, $"{nameof(tensors)}[{name}]");
            if (name == MetadataKey)
            {
                throw new ArgumentException($"'{MetadataKey}' is reserved and cannot name a tensor", nameof(tensors));
            }

            var dtype = tensor.DType;
            _ = DTypeName(dtype);
            entries.Add((name, tensor, dtype, tensor.Shape, checked(tensor.NumEl * dtype.ElementSize())));
        }

        var dataOrder = entries
            .OrderByDescending(e => e.DType.ElementSize())
            .ThenBy(e => e.Name, StringComparer.Ordinal)
            .ToList();
        var offsets = new Dictionary<string, (long Begin, long End)>(StringComparer.Ordinal);
        long position = 0;
        foreach (var e in dataOrder)
        {
            offsets[e.Name] = (position, position + e.Bytes);
            position = checked(position + e.Bytes);
        }

        var header = BuildHeader(entries.Select(e => (e.Name, e.DType, e.Shape)), offsets, metadata);
        Span<byte> lengthBytes = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(lengthBytes, (ulong)header.Length);
        stream.Write(lengthBytes);
        stream.Write(header);
        foreach (var e in dataOrder)
        {
            var bytes = e.Tensor.ToBytes();
            if (bytes.LongLength != e.Bytes)
            {
                throw new InvalidOperationException($"tensor '{e.Name}' produced {bytes.LongLength} bytes, expected {e.Bytes}");
            }

            stream.Write(bytes);
        }

        stream.Flush();
    }

    /// <summary>Serializes <paramref name="tensors"/> and optional metadata to an in-memory safetensors image.</summary>
    /// <param name="tensors">Tensors by name.</param>
    /// <param name="metadata">Optional free-form string map stored as <c>__metadata__</c>.</param>
    /// <returns>The complete file contents.</returns>
    public static byte[] Serialize(IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        using var ms = new MemoryStream();
        Save(ms, tensors, metadata);
        return ms.ToArray();
    }

    private static byte[] BuildHeader(IEnumerable<(string Name, DType DType, long[] Shape)> entries,
        Dictionary<string, (long Begin, long End)> offsets, IReadOnlyDictionary<string, string>? metadata)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                w.WriteStartObject(MetadataKey);
                foreach (var (k, v) in metadata.OrderBy(kv => kv.Key, StringComparer.Ordinal))
                {
                    ArgumentNullException.ThrowIfNull(v, $"{nameof(metadata)}[{k}]");
                    w.WriteString(k, v);
                }

                w.WriteEndObject();
            }

            foreach (var (name, dtype, shape) in entries.OrderBy(e => e.Name, StringComparer.Ordinal))
            {
                w.WriteStartObject(name);
                w.WriteString("dtype", DTypeName(dtype));
                w.WriteStartArray("shape");
                foreach (var d in shape)
                {
                    w.WriteNumberValue(d);
                }

                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offsets[name].Begin);
                w.WriteNumberValue(offsets[name].End);
                w.WriteEndArray();
                w.WriteEndObject();
            }

            w.WriteEndObject();
        }

        var padding = (int)((8 - ms.Length % 8) % 8);
        for (var i = 0; i < padding; i++)
        {
            ms.WriteByte((byte)' ');
        }

        return ms.ToArray();
    }

    // ---- reading -----------------------------------------------------------------------------------------------

    /// <summary>Loads every tensor of a safetensors file (CPU tensors owned by the caller, in header order).</summary>
    /// <param name="path">The file to read.</param>
    /// <returns>The tensors by name.</returns>
    /// <exception cref="CheckpointFormatException">The file is malformed; the message names the file and key.</exception>
    /// <exception cref="UnsupportedCheckpointException">A tensor uses a dtype with no <see cref="DType"/>.</exception>
    public static Dictionary<string, Tensor> Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        return LoadSeekable(fs, path);
    }

    /// <summary>Loads every tensor of a safetensors image read from a stream (read to the end; left open).</summary>
    /// <param name="stream">The stream; non-seekable streams are buffered in memory first.</param>
    /// <param name="sourceName">Name used in error messages (default <c>&lt;stream&gt;</c>).</param>
    /// <returns>The tensors by name, in header order.</returns>
    public static Dictionary<string, Tensor> Load(Stream stream, string? sourceName = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var source = sourceName ?? StreamName;
        if (stream.CanSeek)
        {
            return LoadSeekable(stream, source);
        }

        using var ms = new MemoryStream();
        stream.CopyTo(ms);
        ms.Position = 0;
        return LoadSeekable(ms, source);
    }

    /// <summary>Loads every tensor of an in-memory safetensors image.</summary>
    /// <param name="bytes">The complete file contents.</param>
    /// <param name="sourceName">Name used in error messages (default <c>&lt;bytes&gt;</c>).</param>
    /// <returns>The tensors by name, in header order.</returns>
    public static Dictionary<string, Tensor> Load(ReadOnlySpan<byte> bytes, string? sourceName = null)
    {
        var source = sourceName ?? BytesName;
        if (bytes.Length < 8)
        {
            throw new CheckpointFormatException(source, $"file has {bytes.Length} bytes, fewer than the 8-byte header length");
        }

        var n = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        CheckHeaderLength(n, bytes.Length, source);
        var header = ParseHeader(bytes.Slice(8, (int)n), bytes.Length - 8 - (long)n, source);
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            foreach (var info in header.Tensors)
            {
                var start = checked((int)(header.DataStart + info.DataBegin));
                result.Add(info.Name, CreateTensor(info, bytes.Slice(start, (int)info.ByteCount)));
            }
        }
        catch
        {
            DisposeAll(result.Values);
            throw;
        }

        return result;
    }

    /// <summary>Reads and validates only the header of a safetensors file (names, dtypes, shapes, metadata).</summary>
    /// <param name="path">The file to read.</param>
    /// <returns>The validated header.</returns>
    public static SafeTensorsHeader ReadHeader(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        return ReadHeader(fs, path);
    }

    /// <summary>Reads and validates the header from a seekable stream positioned at the start of the image.</summary>
    /// <param name="stream">A seekable stream.</param>
    /// <param name="sourceName">Name used in error messages (default <c>&lt;stream&gt;</c>).</param>
    /// <returns>The validated header; <see cref="SafeTensorsHeader.DataStart"/> is relative to the initial position.</returns>
    public static SafeTensorsHeader ReadHeader(Stream stream, string? sourceName = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (!stream.CanSeek)
        {
            throw new ArgumentException("the stream must be seekable", nameof(stream));
        }

        return ReadHeaderCore(stream, sourceName ?? StreamName);
    }

    /// <summary>The <c>__metadata__</c> string map of a safetensors file (empty when the file has none).</summary>
    /// <param name="path">The file to read.</param>
    /// <returns>The metadata.</returns>
    public static IReadOnlyDictionary<string, string> ReadMetadata(string path) => ReadHeader(path).Metadata;

    private static SafeTensorsHeader ReadHeaderCore(Stream stream, string source)
    {
        var origin = stream.Position;
        var total = stream.Length - origin;
        if (total < 8)
        {
            throw new CheckpointFormatException(source, $"file has {total} bytes, fewer than the 8-byte header length");
        }

        Span<byte> lengthBytes = stackalloc byte[8];
        stream.ReadExactly(lengthBytes);
        var n = BinaryPrimitives.ReadUInt64LittleEndian(lengthBytes);
        CheckHeaderLength(n, total, source);
        var headerBytes = new byte[(int)n];
        stream.ReadExactly(headerBytes);
        return ParseHeader(headerBytes, total - 8 - (long)n, source);
    }

    private static Dictionary<string, Tensor> LoadSeekable(Stream stream, string source)
    {
        var origin = stream.Position;
        var header = ReadHeaderCore(stream, source);
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        byte[]? buffer = null;
        try
        {
            foreach (var info in header.Tensors)
            {
                if (info.ByteCount > Array.MaxLength)
                {
                    throw new UnsupportedCheckpointException(source, $"{info.ByteCount} bytes exceed the largest supported tensor", info.Name);
                }

                var count = (int)info.ByteCount;
                if (buffer is null || buffer.Length < count)
                {
                    if (buffer is not null)
                    {
                        ArrayPool<byte>.Shared.Return(buffer);
                    }

                    buffer = ArrayPool<byte>.Shared.Rent(Math.Max(count, 1));
                }

                stream.Position = origin + header.DataStart + info.DataBegin;
                try
                {
                    stream.ReadExactly(buffer, 0, count);
                }
                catch (EndOfStreamException e)
                {
                    throw new CheckpointFormatException(source, "the file ended inside the tensor's data", info.Name, e);
                }

                result.Add(info.Name, CreateTensor(info, buffer.AsSpan(0, count)));
            }
        }
        catch
        {
            DisposeAll(result.Values);
            throw;
        }
        finally
        {
            if (buffer is not null)
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }

        return result;
    }

    private static Tensor CreateTensor(SafeTensorInfo info, ReadOnlySpan<byte> bytes) =>
        info.NumEl == 0 ? Tensor.Empty(info.Shape, info.DType) : Tensor.FromBytes(bytes, info.DType, info.Shape);

    private static void DisposeAll(IEnumerable<Tensor> tensors)
    {
        foreach (var t in tensors)
        {
            t.Dispose();
        }
    }

    private static void CheckHeaderLength(ulong n, long total, string source)
    {
        if (n > MaxHeaderBytes)
        {
            throw new CheckpointFormatException(source, $"header length {n} exceeds the {MaxHeaderBytes}-byte limit");
        }

        if ((long)n > total - 8)
        {
            throw new CheckpointFormatException(source, $"header length {n} runs past the end of the {total}-byte file");
        }
    }

    private static SafeTensorsHeader ParseHeader(ReadOnlySpan<byte> headerBytes, long bufferLength, string source)
    {
        if (headerBytes.Length == 0 || headerBytes[0] != (byte)'{')
        {
            throw new CheckpointFormatException(source, "header does not start with '{'");
        }

        string text;
        try
        {
            text = StrictUtf8.GetString(headerBytes);
        }
        catch (DecoderFallbackException e)
        {
            throw new CheckpointFormatException(source, "header is not valid UTF-8", inner: e);
        }

        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(text);
        }
        catch (JsonException e)
        {
            throw new CheckpointFormatException(source, $"header is not valid JSON: {e.Message}", inner: e);
        }

        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw new CheckpointFormatException(source, "header is not a JSON object");
            }

            var seen = new HashSet<string>(StringComparer.Ordinal);
            var tensors = new List<SafeTensorInfo>();
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var prop in doc.RootElement.EnumerateObject())
            {
                if (!seen.Add(prop.Name))
                {
                    throw new CheckpointFormatException(source, "the header lists this key twice", prop.Name);
                }

                if (prop.Name == MetadataKey)
                {
                    ReadMetadata(prop.Value, metadata, source);
                }
                else
                {
                    tensors.Add(ReadInfo(prop.Name, prop.Value, bufferLength, source));
                }
            }

            CheckLayout(tensors, bufferLength, source);
            return new SafeTensorsHeader(tensors, metadata, 8 + headerBytes.Length);
        }
    }

    private static void ReadMetadata(JsonElement value, Dictionary<string, string> metadata, string source)
    {
        if (value.ValueKind == JsonValueKind.Null)
        {
            return;
        }

        if (value.ValueKind != JsonValueKind.Object)
        {
            throw new CheckpointFormatException(source, $"'{MetadataKey}' is not a JSON object of strings");
        }

        foreach (var m in value.EnumerateObject())
        {
            if (m.Value.ValueKind != JsonValueKind.String)
            {
                throw new CheckpointFormatException(source, $"'{MetadataKey}' entry '{m.Name}' is not a string");
            }

            if (!metadata.TryAdd(m.Name, m.Value.GetString()!))
            {
                throw new CheckpointFormatException(source, $"'{MetadataKey}' lists '{m.Name}' twice");
            }
        }
    }

    private static SafeTensorInfo ReadInfo(string name, JsonElement value, long bufferLength, string source)
    {
        if (value.ValueKind != JsonValueKind.Object)
        {
            throw new CheckpointFormatException(source, "header entry is not a JSON object", name);
        }

        if (!value.TryGetProperty("dtype", out var dtypeEl) || dtypeEl.ValueKind != JsonValueKind.String)
        {
            throw new CheckpointFormatException(source, "header entry has no string 'dtype'", name);
        }

        var dtype = ParseDType(dtypeEl.GetString()!, name, source);
        var shape = ReadIntArray(value, "shape", name, source);
        var offsets = ReadIntArray(value, "data_offsets", name, source);
        if (offsets.Length != 2)
        {
            throw new CheckpointFormatException(source, $"'data_offsets' has {offsets.Length} values, expected 2", name);
        }

        var (begin, end) = (offsets[0], offsets[1]);
        if (begin > end || end > bufferLength)
        {
            throw new CheckpointFormatException(source,
                $"data_offsets [{begin}, {end}] are outside the {bufferLength}-byte data buffer", name);
        }

        long numel = 1;
        try
        {
            foreach (var d in shape)
            {
                numel = checked(numel * d);
            }

            var expected = checked(numel * dtype.ElementSize());
            if (expected != end - begin)
            {
                throw new CheckpointFormatException(source,
                    $"shape [{string.Join(", ", shape)}] of {dtypeEl.GetString()} needs {expected} bytes but data_offsets span {end - begin}", name);
            }
        }
        catch (OverflowException e)
        {
            throw new CheckpointFormatException(source, $"shape [{string.Join(", ", shape)}] is too large", name, e);
        }

        return new SafeTensorInfo(name, dtype, shape, begin, end);
    }

    private static long[] ReadIntArray(JsonElement entry, string property, string name, string source)
    {
        if (!entry.TryGetProperty(property, out var el) || el.ValueKind != JsonValueKind.Array)
        {
            throw new CheckpointFormatException(source, $"header entry has no array '{property}'", name);
        }

        var result = new long[el.GetArrayLength()];
        var i = 0;
        foreach (var item in el.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt64(out var v) || v < 0)
            {
                throw new CheckpointFormatException(source, $"'{property}' holds {item.GetRawText()}, not a non-negative integer", name);
            }

            result[i++] = v;
        }

        return result;
    }

    private static void CheckLayout(List<SafeTensorInfo> tensors, long bufferLength, string source)
    {
        // Like the reference reader: sorted by offset, the tensors must tile the data buffer exactly (no overlap,
        // no gap, nothing after the last tensor).
        long expectedBegin = 0;
        foreach (var t in tensors.OrderBy(t => t.DataBegin).ThenBy(t => t.DataEnd))
        {
            if (t.DataBegin < expectedBegin)
            {
                throw new CheckpointFormatException(source,
                    $"data_offsets [{t.DataBegin}, {t.DataEnd}] overlap the previous tensor's data (ending at {expectedBegin})", t.Name);
            }

            if (t.DataBegin > expectedBegin)
            {
                throw new CheckpointFormatException(source,
                    $"data_offsets [{t.DataBegin}, {t.DataEnd}] leave a gap after byte {expectedBegin} of the data buffer", t.Name);
            }

            expectedBegin = t.DataEnd;
        }

        if (expectedBegin != bufferLength)
        {
            throw new CheckpointFormatException(source,
                $"the tensors cover {expectedBegin} bytes but the data buffer holds {bufferLength} (truncated or trailing data)");
        }
    }

    private static string DTypeName(DType dtype) => dtype switch
    {
        DType.Float32 => "F32",
        DType.Float16 => "F16",
        DType.BFloat16 => "BF16",
        DType.Float64 => "F64",
        DType.Int64 => "I64",
        DType.Int32 => "I32",
        DType.Int16 => "I16",
        DType.Int8 => "I8",
        DType.UInt8 => "U8",
        DType.Bool => "BOOL",
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "dtype has no safetensors name"),
    };

    private static DType ParseDType(string name, string key, string source) => name switch
    {
        "F32" => DType.Float32,
        "F16" => DType.Float16,
        "BF16" => DType.BFloat16,
        "F64" => DType.Float64,
        "I64" => DType.Int64,
        "I32" => DType.Int32,
        "I16" => DType.Int16,
        "I8" => DType.Int8,
        "U8" => DType.UInt8,
        "BOOL" => DType.Bool,
        "U16" or "U32" or "U64" or "C64" or "F8_E4M3" or "F8_E5M2" or "F8_E8M0" or "F6_E2M3" or "F6_E3M2" or "F4" =>
            throw new UnsupportedCheckpointException(source, $"safetensors dtype {name} has no tensor type here", key),
        _ => throw new CheckpointFormatException(source, $"unknown safetensors dtype '{name}'", key),
    };
}
