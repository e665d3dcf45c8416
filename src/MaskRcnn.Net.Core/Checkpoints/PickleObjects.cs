namespace MaskRcnn.Net.Core.Checkpoints;

/// <summary>What an allow-listed pickled global stands for.</summary>
internal enum GlobalKind
{
    OrderedDict,
    RebuildTensorV2,
    RebuildParameter,
    RebuildParameterWithState,
    StorageType,
}

/// <summary>An allow-listed global (<c>module.name</c>) as it sits on the unpickler's stack; never executed.</summary>
internal sealed record PyGlobal(string Module, string Name, GlobalKind Kind, DType StorageDType = DType.UInt8)
{
    public string FullName => $"{Module}.{Name}";

    public override string ToString() => FullName;
}

/// <summary>A Python tuple.</summary>
internal sealed class PyTuple(object?[] items)
{
    public object?[] Items { get; } = items;

    public int Count => Items.Length;

    public object? this[int index] => Items[index];

    public static readonly PyTuple Empty = new([]);
}

/// <summary>A Python dict or OrderedDict: insertion-ordered, re-assignment keeps the original position.</summary>
internal sealed class PyDict
{
    private static readonly object NoneKey = new();
    private readonly List<KeyValuePair<object?, object?>> items = [];
    private readonly Dictionary<object, int> index = [];

    public IReadOnlyList<KeyValuePair<object?, object?>> Items => items;

    public int Count => items.Count;

    public void Set(object? key, object? value)
    {
        var k = key ?? NoneKey;
        if (index.TryGetValue(k, out var at))
        {
            items[at] = new KeyValuePair<object?, object?>(key, value);
        }
        else
        {
            index[k] = items.Count;
            items.Add(new KeyValuePair<object?, object?>(key, value));
        }
    }

    public bool TryGet(string key, out object? value)
    {
        if (index.TryGetValue(key, out var at))
        {
            value = items[at].Value;
            return true;
        }

        value = null;
        return false;
    }
}

/// <summary>
/// A reference to (a window of) a serialized storage: <paramref name="Key"/> names the root storage record, whose
/// declared size is <paramref name="RootNumel"/> elements; the window starts <paramref name="ElementOffset"/>
/// elements in and holds <paramref name="Numel"/> elements.
/// </summary>
internal sealed record StorageRef(string Key, DType DType, long RootNumel, long ElementOffset, long Numel);

/// <summary>The arguments of <c>torch._utils._rebuild_tensor_v2</c>, materialized once all storages are read.</summary>
internal sealed record TensorRef(StorageRef Storage, long StorageOffset, long[] Size, long[] Stride);
