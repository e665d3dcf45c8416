using System.Buffers.Binary;
using System.Numerics;
using System.Text;

namespace MaskRcnn.Net.Core.Checkpoints;

/// <summary>
/// A pickle reader (protocols 0–5, binary opcodes plus <c>GLOBAL</c>) that never imports or calls anything: every
/// global must be on a fixed allow-list (<c>collections.OrderedDict</c>, the tensor/parameter rebuild functions of
/// <c>torch._utils</c> and the <c>torch.*Storage</c> types), otherwise <see cref="UnsupportedCheckpointException"/>.
/// Calls to the allowed globals are interpreted symbolically (dicts, <see cref="TensorRef"/>). Every read is
/// bounds-checked, so malformed input raises <see cref="CheckpointFormatException"/>.
/// </summary>
internal sealed class RestrictedUnpickler
{
    private static readonly Dictionary<(string Module, string Name), PyGlobal> Allowed = BuildAllowList();
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private readonly byte[] data;
    private readonly int end;
    private readonly string source;
    private readonly Func<object?, object?>? persistentLoad;
    private readonly List<object?> stack = [];
    private readonly Stack<int> marks = new();
    private readonly Dictionary<long, object?> memo = [];
    private int pos;
    private int opStart;

    /// <param name="data">Buffer holding the pickle.</param>
    /// <param name="start">Offset of the pickle's first byte.</param>
    /// <param name="end">End (exclusive) of the readable region.</param>
    /// <param name="source">File name for error messages.</param>
    /// <param name="persistentLoad">Resolves <c>BINPERSID</c> ids; null rejects persistent ids.</param>
    public RestrictedUnpickler(byte[] data, int start, int end, string source, Func<object?, object?>? persistentLoad)
    {
        this.data = data;
        pos = start;
        this.end = end;
        this.source = source;
        this.persistentLoad = persistentLoad;
    }

    /// <summary>Offset just after the last byte consumed (after <c>STOP</c> once <see cref="Load"/> returned).</summary>
    public int Position => pos;

    public static string DescribeAllowList() =>
        string.Join(", ", Allowed.Values.Select(g => g.FullName).Order(StringComparer.Ordinal));

    private static Dictionary<(string, string), PyGlobal> BuildAllowList()
    {
        var d = new Dictionary<(string, string), PyGlobal>
        {
            [("collections", "OrderedDict")] = new("collections", "OrderedDict", GlobalKind.OrderedDict),
            [("torch._utils", "_rebuild_tensor_v2")] = new("torch._utils", "_rebuild_tensor_v2", GlobalKind.RebuildTensorV2),
            [("torch._utils", "_rebuild_parameter")] = new("torch._utils", "_rebuild_parameter", GlobalKind.RebuildParameter),
            [("torch._utils", "_rebuild_parameter_with_state")] =
                new("torch._utils", "_rebuild_parameter_with_state", GlobalKind.RebuildParameterWithState),
        };
        foreach (var (name, dtype) in new[]
                 {
                     ("FloatStorage", DType.Float32), ("HalfStorage", DType.Float16), ("DoubleStorage", DType.Float64),
                     ("BFloat16Storage", DType.BFloat16), ("LongStorage", DType.Int64), ("IntStorage", DType.Int32),
                     ("ShortStorage", DType.Int16), ("CharStorage", DType.Int8), ("ByteStorage", DType.UInt8),
                     ("BoolStorage", DType.Bool),
                 })
        {
            d[("torch", name)] = new PyGlobal("torch", name, GlobalKind.StorageType, dtype);
        }

        return d;
    }

    /// <summary>Reads one pickle up to and including its <c>STOP</c> opcode and returns the resulting object.</summary>
    public object? Load()
    {
        while (true)
        {
            opStart = pos;
            var op = ReadByte();
            switch (op)
            {
                case 0x80: // PROTO
                    var proto = ReadByte();
                    if (proto > 5)
                    {
                        throw Unsupported($"pickle protocol {proto}");
                    }

                    break;
                case 0x95: // FRAME: the length is advisory, opcodes follow inline
                    Need(8);
                    pos += 8;
                    break;
                case (byte)'.': // STOP
                    if (stack.Count != 1 || marks.Count != 0)
                    {
                        throw Format($"STOP with {stack.Count} objects on the stack and {marks.Count} open marks");
                    }

                    return stack[0];

                // ---- containers
                case (byte)'}': // EMPTY_DICT
                    stack.Add(new PyDict());
                    break;
                case (byte)']': // EMPTY_LIST
                    stack.Add(new List<object?>());
                    break;
                case (byte)')': // EMPTY_TUPLE
                    stack.Add(PyTuple.Empty);
                    break;
                case (byte)'(': // MARK
                    marks.Push(stack.Count);
                    break;
                case (byte)'t': // TUPLE
                    stack.Add(new PyTuple(PopMark()));
                    break;
                case 0x85: // TUPLE1
                    stack.Add(new PyTuple(PopN(1)));
                    break;
                case 0x86: // TUPLE2
                    stack.Add(new PyTuple(PopN(2)));
                    break;
                case 0x87: // TUPLE3
                    stack.Add(new PyTuple(PopN(3)));
                    break;
                case (byte)'l': // LIST
                    stack.Add(new List<object?>(PopMark()));
                    break;
                case (byte)'d': // DICT
                {
                    var items = PopMark();
                    var dict = new PyDict();
                    SetItems(dict, items);
                    stack.Add(dict);
                    break;
                }

                case (byte)'s': // SETITEM
                {
                    var kv = PopN(2);
                    SetItems(Top() as PyDict ?? throw Format("SETITEM target is not a dict"), kv);
                    break;
                }

                case (byte)'u': // SETITEMS
                {
                    var items = PopMark();
                    SetItems(Top() as PyDict ?? throw Format("SETITEMS target is not a dict"), items);
                    break;
                }

                case (byte)'a': // APPEND
                {
                    var item = Pop();
                    (Top() as List<object?> ?? throw Format("APPEND target is not a list")).Add(item);
                    break;
                }

                case (byte)'e': // APPENDS
                {
                    var items = PopMark();
                    (Top() as List<object?> ?? throw Format("APPENDS target is not a list")).AddRange(items);
                    break;
                }

                case (byte)'0': // POP
                    Pop();
                    break;
                case (byte)'1': // POP_MARK
                    PopMark();
                    break;
                case (byte)'2': // DUP
                    stack.Add(Top());
                    break;

                // ---- scalars
                case (byte)'N': // NONE
                    stack.Add(null);
                    break;
                case 0x88: // NEWTRUE
                    stack.Add(true);
                    break;
                case 0x89: // NEWFALSE
                    stack.Add(false);
                    break;
                case (byte)'J': // BININT
                    stack.Add((long)BinaryPrimitives.ReadInt32LittleEndian(Take(4)));
                    break;
                case (byte)'K': // BININT1
                    stack.Add((long)ReadByte());
                    break;
                case (byte)'M': // BININT2
                    stack.Add((long)BinaryPrimitives.ReadUInt16LittleEndian(Take(2)));
                    break;
                case 0x8a: // LONG1
                    stack.Add(DecodeLong(Take(ReadByte())));
                    break;
                case 0x8b: // LONG4
                {
                    var n = BinaryPrimitives.ReadInt32LittleEndian(Take(4));
                    if (n < 0)
                    {
                        throw Format($"LONG4 with negative length {n}");
                    }

                    stack.Add(DecodeLong(Take(n)));
                    break;
                }

                case (byte)'G': // BINFLOAT (big-endian)
                    stack.Add(BinaryPrimitives.ReadDoubleBigEndian(Take(8)));
                    break;
                case (byte)'X': // BINUNICODE
                    stack.Add(Utf8(Take(Length32())));
                    break;
                case 0x8c: // SHORT_BINUNICODE
                    stack.Add(Utf8(Take(ReadByte())));
                    break;
                case 0x8d: // BINUNICODE8
                    stack.Add(Utf8(Take(Length64())));
                    break;
                case (byte)'T': // BINSTRING (Python 2 str)
                    stack.Add(Encoding.Latin1.GetString(Take(Length32())));
                    break;
                case (byte)'U': // SHORT_BINSTRING (Python 2 str)
                    stack.Add(Encoding.Latin1.GetString(Take(ReadByte())));
                    break;
                case (byte)'B': // BINBYTES
                    stack.Add(Take(Length32()).ToArray());
                    break;
                case (byte)'C': // SHORT_BINBYTES
                    stack.Add(Take(ReadByte()).ToArray());
                    break;
                case 0x8e: // BINBYTES8
                    stack.Add(Take(Length64()).ToArray());
                    break;

                // ---- memo
                case (byte)'q': // BINPUT
                    memo[ReadByte()] = Top();
                    break;
                case (byte)'r': // LONG_BINPUT
                    memo[BinaryPrimitives.ReadUInt32LittleEndian(Take(4))] = Top();
                    break;
                case 0x94: // MEMOIZE
                    memo[memo.Count] = Top();
                    break;
                case (byte)'h': // BINGET
                    stack.Add(MemoGet(ReadByte()));
                    break;
                case (byte)'j': // LONG_BINGET
                    stack.Add(MemoGet(BinaryPrimitives.ReadUInt32LittleEndian(Take(4))));
                    break;

                // ---- globals and calls (interpreted, never executed)
                case (byte)'c': // GLOBAL
                {
                    var module = ReadLine();
                    var name = ReadLine();
                    stack.Add(Resolve(module, name));
                    break;
                }

                case 0x93: // STACK_GLOBAL
                {
                    var name = Pop() as string ?? throw Format("STACK_GLOBAL name is not a string");
                    var module = Pop() as string ?? throw Format("STACK_GLOBAL module is not a string");
                    stack.Add(Resolve(module, name));
                    break;
                }

                case (byte)'R': // REDUCE
                {
                    var args = Pop() as PyTuple ?? throw Format("REDUCE arguments are not a tuple");
                    var callable = Pop();
                    stack.Add(Call(callable, args));
                    break;
                }

                case 0x81: // NEWOBJ
                {
                    var args = Pop() as PyTuple ?? throw Format("NEWOBJ arguments are not a tuple");
                    var cls = Pop();
                    if (cls is PyGlobal { Kind: GlobalKind.OrderedDict } && args.Count == 0)
                    {
                        stack.Add(new PyDict());
                    }
                    else
                    {
                        throw Unsupported($"NEWOBJ of {Describe(cls)}");
                    }

                    break;
                }

                case (byte)'b': // BUILD
                {
                    var state = Pop();
                    var target = Top();
                    if (target is not PyDict)
                    {
                        throw Unsupported($"BUILD (setting object state) on {Describe(target)}");
                    }

                    // An OrderedDict's instance attributes (a state_dict's `_metadata` with module versions) are
                    // not part of the mapping; they are accepted and ignored.
                    if (state is not (PyDict or null or PyTuple))
                    {
                        throw Format($"BUILD state of a dict is {Describe(state)}");
                    }

                    break;
                }

                case (byte)'Q': // BINPERSID
                {
                    var pid = Pop();
                    if (persistentLoad is null)
                    {
                        throw Format("persistent id where none is expected");
                    }

                    stack.Add(persistentLoad(pid));
                    break;
                }

                default:
                    throw Unsupported($"pickle opcode 0x{op:x2} ('{(op is >= 0x20 and < 0x7f ? (char)op : '?')}')");
            }
        }
    }

    private object Resolve(string module, string name)
    {
        if (Allowed.TryGetValue((module, name), out var g))
        {
            return g;
        }

        throw new UnsupportedCheckpointException(source,
            $"refusing to load pickled global '{module}.{name}' (loading never runs code; allowed globals are {DescribeAllowList()})",
            global: $"{module}.{name}");
    }

    private object? Call(object? callable, PyTuple args)
    {
        if (callable is not PyGlobal g)
        {
            throw Unsupported($"REDUCE calls {Describe(callable)}");
        }

        switch (g.Kind)
        {
            case GlobalKind.OrderedDict:
            {
                var dict = new PyDict();
                if (args.Count == 0)
                {
                    return dict;
                }

                if (args.Count == 1 && args[0] is List<object?> pairs)
                {
                    foreach (var p in pairs)
                    {
                        if (p is not PyTuple { Count: 2 } kv)
                        {
                            throw Format("OrderedDict argument is not a list of pairs");
                        }

                        dict.Set(kv[0], kv[1]);
                    }

                    return dict;
                }

                throw Format("unexpected OrderedDict arguments");
            }

            case GlobalKind.RebuildTensorV2:
                return RebuildTensor(args);
            case GlobalKind.RebuildParameter:
            case GlobalKind.RebuildParameterWithState:
            {
                var expected = g.Kind == GlobalKind.RebuildParameter ? 3 : 4;
                if (args.Count != expected || args[0] is not TensorRef t)
                {
                    throw Format($"{g.FullName} expects (tensor, requires_grad, backward_hooks{(expected == 4 ? ", state" : "")})");
                }

                return t;
            }

            default:
                throw Unsupported($"calling {g.FullName}");
        }
    }

    private TensorRef RebuildTensor(PyTuple args)
    {
        // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
        if (args.Count is < 6 or > 7)
        {
            throw Format($"_rebuild_tensor_v2 called with {args.Count} arguments");
        }

        if (args[0] is not StorageRef storage)
        {
            throw Format($"_rebuild_tensor_v2 storage is {Describe(args[0])}");
        }

        var offset = AsLong(args[1], "storage_offset");
        var size = AsLongs(args[2], "size");
        var stride = AsLongs(args[3], "stride");
        if (size.Length != stride.Length)
        {
            throw Format($"tensor size has {size.Length} dimensions but stride has {stride.Length}");
        }

        if (offset < 0 || size.Any(s => s < 0) || stride.Any(s => s < 0))
        {
            throw Format("negative tensor offset, size or stride");
        }

        if (args[4] is not bool)
        {
            throw Format("_rebuild_tensor_v2 requires_grad is not a bool");
        }

        return new TensorRef(storage, offset, size, stride);
    }

    private long AsLong(object? o, string what) => o switch
    {
        long l => l,
        _ => throw Format($"{what} is {Describe(o)}, not an integer"),
    };

    private long[] AsLongs(object? o, string what)
    {
        var items = o switch
        {
            PyTuple t => t.Items,
            List<object?> l => l.ToArray(),
            _ => throw Format($"{what} is {Describe(o)}, not a tuple"),
        };
        return items.Select(i => AsLong(i, what)).ToArray();
    }

    private static object DecodeLong(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length == 0)
        {
            return 0L;
        }

        if (bytes.Length <= 8)
        {
            Span<byte> buf = stackalloc byte[8];
            var fill = (bytes[^1] & 0x80) != 0 ? (byte)0xff : (byte)0;
            buf.Fill(fill);
            bytes.CopyTo(buf);
            return BinaryPrimitives.ReadInt64LittleEndian(buf);
        }

        return new BigInteger(bytes, isUnsigned: false, isBigEndian: false);
    }

    private void SetItems(PyDict dict, object?[] items)
    {
        if (items.Length % 2 != 0)
        {
            throw Format("odd number of items for a dict");
        }

        for (var i = 0; i < items.Length; i += 2)
        {
            var key = items[i];
            if (key is not (null or string or long or bool or double or BigInteger or PyTuple))
            {
                throw Format($"dict key is {Describe(key)}");
            }

            dict.Set(key, items[i + 1]);
        }
    }

    private object? MemoGet(long index) =>
        memo.TryGetValue(index, out var v) ? v : throw Format($"memo entry {index} is not defined");

    private object? Top() => stack.Count > (marks.Count > 0 ? marks.Peek() : 0)
        ? stack[^1]
        : throw Format("stack underflow");

    private object? Pop()
    {
        var v = Top();
        stack.RemoveAt(stack.Count - 1);
        return v;
    }

    private object?[] PopN(int n)
    {
        var floor = marks.Count > 0 ? marks.Peek() : 0;
        if (stack.Count - n < floor)
        {
            throw Format("stack underflow");
        }

        var items = stack.GetRange(stack.Count - n, n).ToArray();
        stack.RemoveRange(stack.Count - n, n);
        return items;
    }

    private object?[] PopMark()
    {
        if (marks.Count == 0)
        {
            throw Format("no MARK on the stack");
        }

        var m = marks.Pop();
        var items = stack.GetRange(m, stack.Count - m).ToArray();
        stack.RemoveRange(m, stack.Count - m);
        return items;
    }

    private void Need(long n)
    {
        if (n < 0 || n > end - pos)
        {
            throw Format($"pickle data ends early (needs {n} more bytes, {end - pos} left)");
        }
    }

    private byte ReadByte()
    {
        Need(1);
        return data[pos++];
    }

    private ReadOnlySpan<byte> Take(long n)
    {
        Need(n);
        var span = data.AsSpan(pos, (int)n);
        pos += (int)n;
        return span;
    }

    private long Length32() => BinaryPrimitives.ReadUInt32LittleEndian(Take(4));

    private long Length64()
    {
        var n = BinaryPrimitives.ReadUInt64LittleEndian(Take(8));
        return n > int.MaxValue ? throw Format($"length {n} is too large") : (long)n;
    }

    private string ReadLine()
    {
        var rest = data.AsSpan(pos, end - pos);
        var nl = rest.IndexOf((byte)'\n');
        if (nl < 0)
        {
            throw Format("pickle data ends inside a GLOBAL name");
        }

        pos += nl + 1;
        return Utf8(rest[..nl]);
    }

    private string Utf8(ReadOnlySpan<byte> bytes)
    {
        try
        {
            return StrictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException e)
        {
            throw new CheckpointFormatException(source, $"pickle string at byte {opStart} is not valid UTF-8", inner: e);
        }
    }

    private static string Describe(object? o) => o switch
    {
        null => "None",
        string => "a string",
        long or BigInteger => "an integer",
        double => "a float",
        bool => "a bool",
        byte[] => "bytes",
        PyTuple => "a tuple",
        List<object?> => "a list",
        PyDict => "a dict",
        PyGlobal g => g.FullName,
        StorageRef => "a storage",
        TensorRef => "a tensor",
        _ => o.GetType().Name,
    };

    private CheckpointFormatException Format(string detail) =>
        new(source, $"malformed pickle at byte {opStart}: {detail}");

    private UnsupportedCheckpointException Unsupported(string detail) =>
        new(source, $"unsupported pickle content at byte {opStart}: {detail}");
}
