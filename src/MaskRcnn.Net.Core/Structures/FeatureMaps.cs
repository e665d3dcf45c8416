using System.Collections;

namespace MaskRcnn.Net.Core.Structures;

/// <summary>
/// An ordered list of named feature maps, finest first — what a backbone hands to the RPN and the RoI pooler
/// (torchvision's <c>OrderedDict[str, Tensor]</c>). For a ResNet-FPN: "0" [N, 256, H/4, W/4], "1" [N, 256, H/8, W/8],
/// "2" [N, 256, H/16, W/16], "3" [N, 256, H/32, W/32], "pool" [N, 256, H/64, W/64] (sizes rounded up).
/// The maps live in the dispose scope that was current when the forward pass returned; <see cref="Dispose"/>
/// releases them early.
/// </summary>
/// <remarks>
/// Ownership: the list holds its tensors, it does not copy them; whoever receives it owns it (a backbone's caller:
/// inside a dispose scope the scope releases the maps, outside one dispose the list). Disposing twice, or after the
/// scope released the maps, is harmless (<see cref="Tensor.Dispose"/> is idempotent). <see cref="Tensors"/> and the
/// indexers hand out the same tensors, not copies.
/// </remarks>
public sealed class FeatureMaps : IReadOnlyList<(string Name, Tensor Map)>, IDisposable
{
    private readonly (string Name, Tensor Map)[] maps;

    /// <summary>Creates the list; names must be unique and non-empty.</summary>
    /// <param name="maps">Named maps in order (finest first, by convention).</param>
    public FeatureMaps(IEnumerable<(string Name, Tensor Map)> maps)
    {
        ArgumentNullException.ThrowIfNull(maps);
        this.maps = maps.ToArray();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, map) in this.maps)
        {
            ArgumentException.ThrowIfNullOrEmpty(name, nameof(maps));
            ArgumentNullException.ThrowIfNull(map, nameof(maps));
            if (!seen.Add(name))
            {
                throw new ArgumentException($"feature map name '{name}' occurs twice", nameof(maps));
            }
        }
    }

    /// <summary>Number of maps.</summary>
    public int Count => maps.Length;

    /// <summary>The map at a position.</summary>
    public (string Name, Tensor Map) this[int index] => maps[index];

    /// <summary>The map with a name.</summary>
    /// <exception cref="KeyNotFoundException">No map has that name; the message lists the names.</exception>
    public Tensor this[string name] => TryGet(name, out var map)
        ? map
        : throw new KeyNotFoundException($"no feature map '{name}' (have {string.Join(", ", Names)})");

    /// <summary>The names in order.</summary>
    public IReadOnlyList<string> Names => maps.Select(m => m.Name).ToArray();

    /// <summary>The tensors in order.</summary>
    public IReadOnlyList<Tensor> Tensors => maps.Select(m => m.Map).ToArray();

    /// <summary>Looks a map up by name.</summary>
    public bool TryGet(string name, [System.Diagnostics.CodeAnalysis.MaybeNullWhen(false)] out Tensor map)
    {
        foreach (var (n, m) in maps)
        {
            if (string.Equals(n, name, StringComparison.Ordinal))
            {
                map = m;
                return true;
            }
        }

        map = null;
        return false;
    }

    /// <summary>Moves every map to the dispose scope enclosing its current one and returns this list.</summary>
    public FeatureMaps MoveToOuterDisposeScope()
    {
        foreach (var (_, m) in maps)
        {
            m.MoveToOuterDisposeScope();
        }

        return this;
    }

    /// <inheritdoc />
    public IEnumerator<(string Name, Tensor Map)> GetEnumerator() => ((IEnumerable<(string, Tensor)>)maps).GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <summary>Disposes every map (idempotent).</summary>
    public void Dispose()
    {
        foreach (var (_, m) in maps)
        {
            m.Dispose();
        }
    }
}
