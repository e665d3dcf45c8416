using System.Buffers.Binary;
using System.IO.Compression;
using System.Numerics;
using System.Text;

namespace MaskRcnn.Net.Core.Checkpoints;

/// <summary>
/// Reads <c>torch.save</c> checkpoints (state_dicts and plain nested dicts of tensors) in both the zip format of
/// PyTorch 1.6+ and the legacy pre-1.6 format, without Python and without running any pickled code: the pickle is
/// read by a restricted interpreter that only accepts <c>collections.OrderedDict</c>, the tensor/parameter rebuild
/// functions of <c>torch._utils</c> and the <c>torch.*Storage</c> types. Anything else (a pickled module or class,
/// <c>os.system</c>, numpy scalars, quantized tensors) raises <see cref="UnsupportedCheckpointException"/>; corrupt
/// or truncated files raise <see cref="CheckpointFormatException"/>. Both name the file.
/// </summary>
public static class TorchCheckpoint
{
    private const string StreamName = "<stream>";

    // Total length of all flattened keys accepted (2^26 characters, 128 MiB of strings).
    private const long MaxKeyCharacters = 1L << 26;

    private static readonly BigInteger LegacyMagic = BigInteger.Parse("1950a86a20f9469cfc6c", System.Globalization.NumberStyles.HexNumber);

    /// <summary>Loads a checkpoint file; see <see cref="TorchStateDict"/> for how nested values are flattened.</summary>
    /// <param name="path">The <c>.pt</c>/<c>.pth</c> file.</param>
    /// <param name="options">Flattening options (default <see cref="TorchCheckpointOptions.Default"/>).</param>
    /// <returns>The tensors in file order (owned by the caller) and the non-tensor values.</returns>
    /// <exception cref="CheckpointFormatException">The file is corrupt or truncated.</exception>
    /// <exception cref="UnsupportedCheckpointException">The file pickles a global outside the allow-list or uses an
    /// unsupported feature.</exception>
    public static TorchStateDict Load(string path, TorchCheckpointOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        return LoadCore(fs, path, options ?? TorchCheckpointOptions.Default);
    }

    /// <summary>Loads a checkpoint from a stream (read to the end and left open).</summary>
    /// <param name="stream">The stream; non-seekable streams are buffered in memory first.</param>
    /// <param name="sourceName">Name used in error messages (default <c>&lt;stream&gt;</c>).</param>
    /// <param name="options">Flattening options (default <see cref="TorchCheckpointOptions.Default"/>).</param>
    /// <returns>The tensors in file order (owned by the caller) and the non-tensor values.</returns>
    public static TorchStateDict Load(Stream stream, string? sourceName = null, TorchCheckpointOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var source = sourceName ?? StreamName;
        if (stream.CanSeek)
        {
            return LoadCore(stream, source, options ?? TorchCheckpointOptions.Default);
        }

        using var ms = new MemoryStream();
        stream.CopyTo(ms);
        ms.Position = 0;
        return LoadCore(ms, source, options ?? TorchCheckpointOptions.Default);
    }

    private static TorchStateDict LoadCore(Stream stream, string source, TorchCheckpointOptions options)
    {
        ArgumentException.ThrowIfNullOrEmpty(options.KeySeparator, nameof(options));
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxNestingDepth, 1, nameof(options));
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxValues, 1, nameof(options));
        ArgumentOutOfRangeException.ThrowIfNegative(options.MaxExpandedElements, nameof(options));
        try
        {
            var origin = stream.Position;
            Span<byte> head = stackalloc byte[4];
            var got = stream.ReadAtLeast(head, 4, throwOnEndOfStream: false);
            stream.Position = origin;
            if (got == 4 && head[0] == (byte)'P' && head[1] == (byte)'K' && head[2] is 3 or 5)
            {
                return LoadZip(stream, source, options);
            }

            if (got >= 1 && head[0] == 0x80)
            {
                return LoadLegacy(stream, source, options);
            }

            throw new CheckpointFormatException(source,
                got == 0 ? "the file is empty" : "not a PyTorch checkpoint (neither a zip archive nor a legacy pickle stream)");
        }
        catch (Exception e) when (e is InvalidDataException or IOException or OverflowException or DecoderFallbackException
                                      or NotSupportedException or TorchException)
        {
            throw new CheckpointFormatException(source, $"corrupt or truncated checkpoint: {e.Message}", inner: e);
        }
    }

    // ---- zip format --------------------------------------------------------------------------------------------

    private static TorchStateDict LoadZip(Stream stream, string source, TorchCheckpointOptions options)
    {
        var archiveLength = stream.Length - stream.Position;
        using var zip = new ZipArchive(stream, ZipArchiveMode.Read, leaveOpen: true);
        var pklEntries = zip.Entries
            .Where(e => e.FullName.EndsWith("/data.pkl", StringComparison.Ordinal) && e.FullName.Count(c => c == '/') == 1)
            .ToList();
        if (pklEntries.Count != 1)
        {
            throw new CheckpointFormatException(source,
                pklEntries.Count == 0 ? "zip archive has no <archive>/data.pkl record" : "zip archive has several data.pkl records");
        }

        var prefix = pklEntries[0].FullName[..^"data.pkl".Length];
        if (zip.GetEntry(prefix + "byteorder") is { } byteOrderEntry)
        {
            var order = Encoding.ASCII.GetString(ReadEntry(byteOrderEntry, source, 64, archiveLength)).Trim();
            if (order != "little")
            {
                throw new UnsupportedCheckpointException(source, $"byte order '{order}' (only little-endian is supported)");
            }
        }

        var pickle = ReadEntry(pklEntries[0], source, Array.MaxLength, archiveLength);
        var storages = new Dictionary<string, StorageRef>(StringComparer.Ordinal);
        var unpickler = new RestrictedUnpickler(pickle, 0, pickle.Length, source,
            pid => ZipPersistentLoad(pid, storages, source));
        var root = unpickler.Load();
        if (unpickler.Position != pickle.Length)
        {
            throw new CheckpointFormatException(source, "data.pkl has bytes after the pickle's STOP");
        }

        return Materialize(root, source, TorchCheckpointFormat.Zip, options, storage =>
        {
            var entry = zip.GetEntry(prefix + "data/" + storage.Key)
                        ?? throw new CheckpointFormatException(source, $"storage record data/{storage.Key} is missing from the archive");
            var expected = checked(storage.RootNumel * storage.DType.ElementSize());
            if (entry.Length != expected)
            {
                throw new CheckpointFormatException(source,
                    $"storage record data/{storage.Key} holds {entry.Length} bytes, expected {expected} ({storage.RootNumel} × {storage.DType})");
            }

            return (ReadOnlyMemory<byte>)ReadEntry(entry, source, Array.MaxLength, archiveLength);
        });
    }

    private static byte[] ReadEntry(ZipArchiveEntry entry, string source, long limit, long archiveLength)
    {
        // Sizes come from the central directory: refuse impossible ones before allocating (deflate expands at most
        // about 1032:1), so a corrupt size cannot trigger a huge allocation. Checked first, so that a corrupt size is
        // reported as corruption rather than as an unsupported record size.
        if (entry.CompressedLength > archiveLength ||
            entry.Length > checked(Math.Max(entry.CompressedLength, 1) * 1032 + 64))
        {
            throw new CheckpointFormatException(source,
                $"record {entry.FullName} claims {entry.Length} bytes ({entry.CompressedLength} stored), more than the archive can hold");
        }

        if (entry.Length > limit)
        {
            throw new UnsupportedCheckpointException(source, $"record {entry.FullName} ({entry.Length} bytes) is too large");
        }

        var bytes = new byte[entry.Length];
        using var s = entry.Open();
        try
        {
            s.ReadExactly(bytes);
        }
        catch (EndOfStreamException e)
        {
            throw new CheckpointFormatException(source, $"record {entry.FullName} is truncated", inner: e);
        }

        return bytes;
    }

    private static StorageRef ZipPersistentLoad(object? pid, Dictionary<string, StorageRef> storages, string source)
    {
        // ('storage', storage_type, key, location, numel)
        var t = CheckPid(pid, source);
        if (t.Count != 5 || t[2] is not string key || t[3] is not string || t[4] is not long numel || numel < 0)
        {
            throw new CheckpointFormatException(source, "malformed storage persistent id (expected ('storage', type, key, location, numel))");
        }

        var dtype = StorageDType(t[1], source);
        return Intern(storages, new StorageRef(key, dtype, numel, 0, numel), source);
    }

    // ---- legacy format -----------------------------------------------------------------------------------------

    private static TorchStateDict LoadLegacy(Stream stream, string source, TorchCheckpointOptions options)
    {
        var remaining = stream.Length - stream.Position;
        if (remaining > Array.MaxLength)
        {
            throw new UnsupportedCheckpointException(source, $"legacy checkpoints larger than {Array.MaxLength} bytes");
        }

        var data = new byte[remaining];
        stream.ReadExactly(data);
        var pos = 0;
        object? Next(Func<object?, object?>? persistentLoad)
        {
            var u = new RestrictedUnpickler(data, pos, data.Length, source, persistentLoad);
            var result = u.Load();
            pos = u.Position;
            return result;
        }

        if (Next(null) is not BigInteger magic || magic != LegacyMagic)
        {
            throw new CheckpointFormatException(source, "legacy checkpoint has a wrong magic number");
        }

        if (Next(null) is not long protocol || protocol != 1001)
        {
            throw new UnsupportedCheckpointException(source, "legacy checkpoint protocol version other than 1001");
        }

        if (Next(null) is not PyDict sysInfo)
        {
            throw new CheckpointFormatException(source, "legacy checkpoint has no sys_info dict");
        }

        if (sysInfo.TryGet("little_endian", out var little) && little is false)
        {
            throw new UnsupportedCheckpointException(source, "big-endian legacy checkpoint");
        }

        var storages = new Dictionary<string, StorageRef>(StringComparer.Ordinal);
        var root = Next(pid => LegacyPersistentLoad(pid, storages, source));
        if (Next(null) is not List<object?> keyList || keyList.Any(k => k is not string))
        {
            throw new CheckpointFormatException(source, "legacy checkpoint has no list of storage keys after the main pickle");
        }

        // The storage records follow in key-list order: 8-byte little-endian element count, then the raw bytes.
        var records = new Dictionary<string, (int Offset, int Length)>(StringComparer.Ordinal);
        foreach (var key in keyList.Cast<string>())
        {
            if (!storages.TryGetValue(key, out var storage))
            {
                throw new CheckpointFormatException(source, $"storage '{key}' is listed but never referenced");
            }

            if (data.Length - pos < 8)
            {
                throw new CheckpointFormatException(source, $"the file ends before storage '{key}'");
            }

            var numel = BinaryPrimitives.ReadInt64LittleEndian(data.AsSpan(pos, 8));
            pos += 8;
            if (numel != storage.RootNumel)
            {
                throw new CheckpointFormatException(source,
                    $"storage '{key}' holds {numel} elements but the pickle declares {storage.RootNumel}");
            }

            var length = checked(numel * storage.DType.ElementSize());
            if (length > data.Length - pos)
            {
                throw new CheckpointFormatException(source, $"the file ends inside storage '{key}'");
            }

            if (!records.TryAdd(key, (pos, (int)length)))
            {
                throw new CheckpointFormatException(source, $"storage '{key}' is listed twice");
            }

            pos += (int)length;
        }

        return Materialize(root, source, TorchCheckpointFormat.Legacy, options, storage =>
            records.TryGetValue(storage.Key, out var r)
                ? data.AsMemory(r.Offset, r.Length)
                : throw new CheckpointFormatException(source, $"storage '{storage.Key}' has no data record"));
    }

    private static StorageRef LegacyPersistentLoad(object? pid, Dictionary<string, StorageRef> storages, string source)
    {
        // ('storage', storage_type, root_key, location, numel, view_metadata)
        var t = CheckPid(pid, source);
        if (t.Count != 6 || t[2] is not string key || t[3] is not string || t[4] is not long numel || numel < 0)
        {
            throw new CheckpointFormatException(source,
                "malformed storage persistent id (expected ('storage', type, key, location, numel, view_metadata))");
        }

        var dtype = StorageDType(t[1], source);
        var root = Intern(storages, new StorageRef(key, dtype, numel, 0, numel), source);
        switch (t[5])
        {
            case null:
                return root;
            case PyTuple { Count: 3 } view when view[0] is string && view[1] is long offset && view[2] is long size:
                if (offset < 0 || size < 0 || offset > root.RootNumel - size)
                {
                    throw new CheckpointFormatException(source, $"storage view [{offset}, {offset}+{size}) lies outside storage '{key}'");
                }

                return root with { ElementOffset = offset, Numel = size };
            default:
                throw new CheckpointFormatException(source, "malformed storage view metadata");
        }
    }

    // ---- shared ------------------------------------------------------------------------------------------------

    private static PyTuple CheckPid(object? pid, string source)
    {
        if (pid is not PyTuple { Count: > 0 } t || t[0] is not string kind)
        {
            throw new CheckpointFormatException(source, "persistent id is not a tuple tagged with a string");
        }

        if (kind != "storage")
        {
            throw new UnsupportedCheckpointException(source,
                $"persistent id of kind '{kind}' (a pickled module's source code or another non-tensor object)");
        }

        return t;
    }

    private static DType StorageDType(object? type, string source) => type is PyGlobal { Kind: GlobalKind.StorageType } g
        ? g.StorageDType
        : throw new CheckpointFormatException(source, "storage persistent id does not name a torch storage type");

    private static StorageRef Intern(Dictionary<string, StorageRef> storages, StorageRef storage, string source)
    {
        if (storages.TryGetValue(storage.Key, out var known))
        {
            if (known.DType != storage.DType || known.RootNumel != storage.RootNumel)
            {
                throw new CheckpointFormatException(source, $"storage '{storage.Key}' is declared with two different types or sizes");
            }

            return known;
        }

        storages[storage.Key] = storage;
        return storage;
    }

    private static TorchStateDict Materialize(object? root, string source, TorchCheckpointFormat format,
        TorchCheckpointOptions options, Func<StorageRef, ReadOnlyMemory<byte>> readStorage)
    {
        var tensorRefs = new List<KeyValuePair<string, TensorRef>>();
        var extras = new Dictionary<string, object?>(StringComparer.Ordinal);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        long visited = 0, keyCharacters = 0;
        Flatten(root, "", 0);

        var users = tensorRefs.GroupBy(e => e.Value.Storage.Key).ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);
        CheckMaterializedSize();
        var result = new List<KeyValuePair<string, Tensor>>(tensorRefs.Count);
        using (var scope = Torch.NewDisposeScope())
        {
            var storageTensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            foreach (var (key, t) in tensorRefs)
            {
                var tensor = Build(key, t);
                result.Add(new KeyValuePair<string, Tensor>(key, tensor));
            }

            foreach (var (_, t) in result)
            {
                scope.MoveToOuter(t);
            }

            Tensor Build(string key, TensorRef t)
            {
                var s = t.Storage;
                var numel = CheckView(key, t);
                if (numel == 0)
                {
                    return Tensor.Empty(t.Size, s.DType);
                }

                if (!storageTensors.TryGetValue(s.Key, out var storage))
                {
                    var bytes = readStorage(s);
                    storage = s.RootNumel == 0 ? Tensor.Empty([0], s.DType) : Tensor.FromBytes(bytes.Span, s.DType, [s.RootNumel]);
                    storageTensors[s.Key] = storage;
                }

                var view = storage.AsStrided(t.Size, t.Stride, s.ElementOffset + t.StorageOffset);
                if (!view.IsContiguous)
                {
                    return view.Contiguous();
                }

                // The only user of a storage that spans all of it keeps the storage itself; otherwise copy, so no
                // two loaded tensors alias each other.
                var wholeStorage = users[s.Key] == 1 && s.ElementOffset + t.StorageOffset == 0 && numel == s.RootNumel;
                return wholeStorage ? view : view.Clone();
            }
        }

        return new TorchStateDict(source, format, result, extras);

        // Before anything is allocated: the tensors may not hold more than MaxExpandedElements elements beyond the
        // storages they view (expanded views and storages shared under many keys are copied densely).
        void CheckMaterializedSize()
        {
            long total = 0;
            foreach (var (key, t) in tensorRefs)
            {
                total = checked(total + CheckView(key, t));
            }

            var stored = tensorRefs.Select(e => e.Value.Storage).DistinctBy(s => s.Key).Sum(s => s.RootNumel);
            if (total - stored > options.MaxExpandedElements)
            {
                throw new CheckpointFormatException(source,
                    $"the {tensorRefs.Count} tensors have {total} elements but their storages hold only {stored} (views repeat " +
                    $"storages), more than {nameof(TorchCheckpointOptions.MaxExpandedElements)} ({options.MaxExpandedElements}) extra");
            }
        }

        // Checks that a view lies inside its storage and does not expand it beyond MaxExpandedElements; returns its
        // element count.
        long CheckView(string key, TensorRef t)
        {
            var s = t.Storage;
            var numel = 1L;
            var last = s.ElementOffset + t.StorageOffset;
            for (var d = 0; d < t.Size.Length; d++)
            {
                numel = checked(numel * t.Size[d]);
                if (t.Size[d] > 0)
                {
                    last = checked(last + (t.Size[d] - 1) * t.Stride[d]);
                }
            }

            if (numel > 0 && (t.StorageOffset >= s.Numel || last >= s.ElementOffset + s.Numel))
            {
                throw new CheckpointFormatException(source,
                    $"view (offset {t.StorageOffset}, size [{string.Join(", ", t.Size)}], stride [{string.Join(", ", t.Stride)}]) " +
                    $"reaches past the {s.Numel} elements of storage '{s.Key}'", key);
            }

            if (numel > s.Numel && numel > options.MaxExpandedElements)
            {
                throw new CheckpointFormatException(source,
                    $"view of size [{string.Join(", ", t.Size)}] repeats its {s.Numel}-element storage into {numel} elements, " +
                    $"more than {nameof(TorchCheckpointOptions.MaxExpandedElements)} ({options.MaxExpandedElements})", key);
            }

            return numel;
        }

        void Flatten(object? value, string prefix, int depth)
        {
            if (depth > options.MaxNestingDepth)
            {
                throw new CheckpointFormatException(source, $"containers nest deeper than {options.MaxNestingDepth} levels (or form a cycle)", prefix);
            }

            // Containers shared through the pickle memo are walked once per reference: bound the total work.
            keyCharacters += prefix.Length;
            if (++visited > options.MaxValues || keyCharacters > MaxKeyCharacters)
            {
                throw new CheckpointFormatException(source,
                    $"the checkpoint flattens to more than {options.MaxValues} values or {MaxKeyCharacters} key characters " +
                    $"(a container shared many times through the pickle memo?); see {nameof(TorchCheckpointOptions)}.{nameof(TorchCheckpointOptions.MaxValues)}");
            }

            string Join(string k) => prefix.Length == 0 ? k : prefix + options.KeySeparator + k;

            switch (value)
            {
                case TensorRef t:
                    Add(prefix);
                    tensorRefs.Add(new KeyValuePair<string, TensorRef>(prefix, t));
                    break;
                case PyDict d:
                    foreach (var (k, v) in d.Items)
                    {
                        Flatten(v, Join(KeyText(k, prefix)), depth + 1);
                    }

                    break;
                case List<object?> list:
                    for (var i = 0; i < list.Count; i++)
                    {
                        Flatten(list[i], Join(i.ToString(System.Globalization.CultureInfo.InvariantCulture)), depth + 1);
                    }

                    break;
                case PyTuple tuple:
                    for (var i = 0; i < tuple.Count; i++)
                    {
                        Flatten(tuple[i], Join(i.ToString(System.Globalization.CultureInfo.InvariantCulture)), depth + 1);
                    }

                    break;
                case null or bool or long or BigInteger or double or string or byte[]:
                    Add(prefix);
                    extras[prefix] = value;
                    break;
                case StorageRef:
                    throw new UnsupportedCheckpointException(source, "a bare storage (not wrapped in a tensor)", prefix);
                case PyGlobal g:
                    throw new UnsupportedCheckpointException(source, $"a reference to {g.FullName} as a value", prefix, g.FullName);
                default:
                    throw new UnsupportedCheckpointException(source, $"a value of type {value.GetType().Name}", prefix);
            }
        }

        void Add(string key)
        {
            if (!seen.Add(key))
            {
                throw new CheckpointFormatException(source, "two values flatten to the same key", key);
            }
        }

        string KeyText(object? k, string prefix) => k switch
        {
            string s => s,
            null => "None",
            bool b => b ? "True" : "False",
            long or BigInteger => Convert.ToString(k, System.Globalization.CultureInfo.InvariantCulture)!,
            double x => x.ToString("R", System.Globalization.CultureInfo.InvariantCulture),
            _ => throw new UnsupportedCheckpointException(source, "a dict key that is not a string or number", prefix),
        };
    }
}
