using System.Collections;
using System.Diagnostics.CodeAnalysis;

namespace MaskRcnn.Net.Core.Checkpoints;

/// <summary>Which <c>torch.save</c> serialization a checkpoint used.</summary>
public enum TorchCheckpointFormat
{
    /// <summary>The zip archive written by PyTorch 1.6 and later (the default).</summary>
    Zip,

    /// <summary>The pre-1.6 stream of pickles (<c>_use_new_zipfile_serialization=False</c>).</summary>
    Legacy,
}

/// <summary>
/// The tensors of a <c>torch.save</c> checkpoint keyed by name in file order, plus its non-tensor values. Nested
/// containers are flattened: a dict inside a dict contributes <c>outer.inner</c> keys and list/tuple items
/// contribute <c>outer.0</c>, <c>outer.1</c>, … (the separator is <see cref="TorchCheckpointOptions.KeySeparator"/>).
/// Tensor leaves land in this dictionary; other leaves (ints, floats, strings, bools, None, bytes) land in
/// <see cref="Extras"/>. Every tensor is a contiguous CPU tensor owning its memory (shared storages in the file are
/// not shared after loading), does not require grad, and is disposed with this object unless taken out of it.
/// </summary>
public sealed class TorchStateDict : IReadOnlyDictionary<string, Tensor>, IDisposable
{
    private readonly List<KeyValuePair<string, Tensor>> entries;
    private readonly Dictionary<string, Tensor> byKey;

    internal TorchStateDict(string source, TorchCheckpointFormat format, List<KeyValuePair<string, Tensor>> entries,
        Dictionary<string, object?> extras)
    {
        Source = source;
        Format = format;
        this.entries = entries;
        byKey = new Dictionary<string, Tensor>(entries, StringComparer.Ordinal);
        Extras = extras;
        Keys = entries.Select(e => e.Key).ToArray();
        Values = entries.Select(e => e.Value).ToArray();
    }

    /// <summary>The file path (or stream name) the checkpoint was read from.</summary>
    public string Source { get; }

    /// <summary>The serialization format of the file.</summary>
    public TorchCheckpointFormat Format { get; }

    /// <summary>The (key, tensor) pairs in file order.</summary>
    public IReadOnlyList<KeyValuePair<string, Tensor>> Entries => entries;

    /// <summary>The tensor keys in file order.</summary>
    public IReadOnlyList<string> Keys { get; }

    /// <summary>The tensors in file order.</summary>
    public IReadOnlyList<Tensor> Values { get; }

    /// <summary>
    /// Non-tensor leaves by flattened key, in file order (for example a training checkpoint's <c>epoch</c>). Values
    /// are <c>null</c>, <see cref="bool"/>, <see cref="long"/>, <see cref="System.Numerics.BigInteger"/>,
    /// <see cref="double"/>, <see cref="string"/> or <see cref="byte"/>[].
    /// </summary>
    public IReadOnlyDictionary<string, object?> Extras { get; }

    /// <summary>Number of tensors.</summary>
    public int Count => entries.Count;

    /// <summary>The tensor stored under <paramref name="key"/>.</summary>
    /// <param name="key">A flattened key.</param>
    public Tensor this[string key] => byKey.TryGetValue(key, out var t)
        ? t
        : throw new KeyNotFoundException($"{Source} has no tensor '{key}'");

    IEnumerable<string> IReadOnlyDictionary<string, Tensor>.Keys => Keys;

    IEnumerable<Tensor> IReadOnlyDictionary<string, Tensor>.Values => Values;

    /// <summary>True when a tensor is stored under <paramref name="key"/>.</summary>
    /// <param name="key">A flattened key.</param>
    public bool ContainsKey(string key) => byKey.ContainsKey(key);

    /// <summary>Looks up a tensor.</summary>
    /// <param name="key">A flattened key.</param>
    /// <param name="value">The tensor, when found.</param>
    public bool TryGetValue(string key, [MaybeNullWhen(false)] out Tensor value) => byKey.TryGetValue(key, out value);

    /// <summary>Enumerates the (key, tensor) pairs in file order.</summary>
    public IEnumerator<KeyValuePair<string, Tensor>> GetEnumerator() => entries.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <summary>Disposes every tensor (idempotent).</summary>
    public void Dispose()
    {
        foreach (var (_, t) in entries)
        {
            t.Dispose();
        }
    }
}

/// <summary>Options of <see cref="TorchCheckpoint.Load(string, TorchCheckpointOptions?)"/>.</summary>
public sealed record TorchCheckpointOptions
{
    /// <summary>The default options.</summary>
    public static TorchCheckpointOptions Default { get; } = new();

    /// <summary>Joins the keys of nested containers when flattening (default <c>"."</c>).</summary>
    public string KeySeparator { get; init; } = ".";

    /// <summary>Deepest container nesting accepted (default 64); deeper or cyclic structures are rejected.</summary>
    public int MaxNestingDepth { get; init; } = 64;

    /// <summary>
    /// Largest number of elements the loader materializes beyond the sizes of the storages in the file, default
    /// 2^26: a tensor with more elements than its storage (an expanded view with zero strides) or one storage
    /// referenced under several keys is copied densely, so this bounds the memory a small, possibly corrupt or
    /// hostile, file can make the loader allocate.
    /// </summary>
    public long MaxExpandedElements { get; init; } = 1L << 26;

    /// <summary>
    /// Largest number of values (containers and leaves) the flattened checkpoint may have, default 2^20. Pickles
    /// can share a container many times through their memo, so a file of a few hundred bytes can describe an
    /// exponentially large structure; such files are rejected instead of being walked.
    /// </summary>
    public long MaxValues { get; init; } = 1L << 20;
}
