using System.Collections.Concurrent;
using System.Text.Json.Serialization;
using MaskRcnn.Net.Core.NN;
using MaskRcnn.Net.Heads;

namespace MaskRcnn.Net;

/// <summary>
/// A custom part named in a configuration: the name it was registered under in <see cref="PartRegistry"/> and the
/// settings its factory receives. Saved in <c>model.json</c>, so <see cref="MaskRcnnModel.Load"/> rebuilds the part.
/// </summary>
/// <param name="Name">The registered name.</param>
/// <param name="Settings">Free-form settings passed to the factory (null: none).</param>
public sealed record NamedPart(string Name, IReadOnlyDictionary<string, string>? Settings = null)
{
    /// <summary>The settings, never null.</summary>
    [JsonIgnore]
    public IReadOnlyDictionary<string, string> SettingsOrEmpty => Settings ?? new Dictionary<string, string>();

    /// <summary>Checks the name; throws <see cref="ArgumentException"/> naming the field.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(Name))
        {
            throw new ArgumentException("NamedPart.Name must be a non-empty registered name", nameof(Name));
        }
    }

    /// <summary>Value equality: the settings compare entry by entry.</summary>
    public bool Equals(NamedPart? other) =>
        other is not null && Name == other.Name && SettingsOrEmpty.Count == other.SettingsOrEmpty.Count &&
        SettingsOrEmpty.All(kv => other.SettingsOrEmpty.TryGetValue(kv.Key, out var v) && v == kv.Value);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Name, SettingsOrEmpty.Count);
}

/// <summary>
/// Which parts of the model are custom, by registered name (<see cref="PartRegistry"/>); null: the default part.
/// </summary>
public sealed record CustomPartsConfig
{
    /// <summary>Backbone (<see cref="PartRegistry.RegisterBackbone"/>).</summary>
    public NamedPart? Backbone { get; init; }

    /// <summary>RPN head (<see cref="PartRegistry.RegisterRpnHead"/>).</summary>
    public NamedPart? RpnHead { get; init; }

    /// <summary>Box head (<see cref="PartRegistry.RegisterBoxHead"/>).</summary>
    public NamedPart? BoxHead { get; init; }

    /// <summary>Box predictor (<see cref="PartRegistry.RegisterBoxPredictor"/>).</summary>
    public NamedPart? BoxPredictor { get; init; }

    /// <summary>Mask head (<see cref="PartRegistry.RegisterMaskHead"/>).</summary>
    public NamedPart? MaskHead { get; init; }

    /// <summary>Mask predictor (<see cref="PartRegistry.RegisterMaskPredictor"/>).</summary>
    public NamedPart? MaskPredictor { get; init; }

    /// <summary>True when no part is custom.</summary>
    [JsonIgnore]
    public bool IsEmpty => Backbone is null && RpnHead is null && BoxHead is null && BoxPredictor is null && MaskHead is null && MaskPredictor is null;

    /// <summary>Checks every named part; throws <see cref="ArgumentException"/> naming the field.</summary>
    public void Validate()
    {
        foreach (var (part, name) in new[]
        {
            (Backbone, nameof(Backbone)), (RpnHead, nameof(RpnHead)), (BoxHead, nameof(BoxHead)),
            (BoxPredictor, nameof(BoxPredictor)), (MaskHead, nameof(MaskHead)), (MaskPredictor, nameof(MaskPredictor)),
        })
        {
            if (part is not null && string.IsNullOrWhiteSpace(part.Name))
            {
                throw new ArgumentException($"CustomPartsConfig.{name}.Name must be a non-empty registered name", name);
            }
        }
    }
}

/// <summary>
/// Custom parts registered by name, so that a model using them can be saved and reloaded: register the factory once
/// per process (before building or loading), select it with the builder's named overload
/// (<c>WithMaskHead("gn-mask-head", settings)</c>), and the configuration records the name and the settings. Factory
/// arguments are those of the builder's factory overloads plus the settings.
/// </summary>
/// <example>
/// <code>
/// PartRegistry.RegisterMaskHead("gn-mask-head", (inChannels, s) => new GroupNormMaskHead(inChannels, int.Parse(s["channels"])));
/// using var model = new MaskRcnnBuilder().WithMaskHead("gn-mask-head", new Dictionary&lt;string, string&gt; { ["channels"] = "128" }).Build();
/// model.Save("model.safetensors");                       // model.json: "Parts": { "MaskHead": { "Name": "gn-mask-head", … } }
/// using var again = MaskRcnnModel.Load("model.safetensors"); // same head, same weights
/// </code>
/// </example>
public static class PartRegistry
{
    private static readonly ConcurrentDictionary<(string Kind, string Name), Delegate> Factories = new();

    /// <summary>Registers a backbone factory: (configuration, settings) → a <see cref="Module"/> implementing <see cref="Backbones.IBackbone"/>.</summary>
    /// <exception cref="ArgumentException">Another factory is registered under this name.</exception>
    public static void RegisterBackbone(string name, Func<MaskRcnnConfig, IReadOnlyDictionary<string, string>, Module> factory) =>
        Register("backbone", name, factory);

    /// <summary>Registers an RPN head factory: (inChannels, anchorsPerLocation, settings).</summary>
    /// <exception cref="ArgumentException">Another factory is registered under this name.</exception>
    public static void RegisterRpnHead(string name, Func<int, int, IReadOnlyDictionary<string, string>, IRpnHead> factory) =>
        Register("RPN head", name, factory);

    /// <summary>Registers a box head factory: (inChannels, poolerResolution, settings).</summary>
    /// <exception cref="ArgumentException">Another factory is registered under this name.</exception>
    public static void RegisterBoxHead(string name, Func<int, int, IReadOnlyDictionary<string, string>, IBoxHead> factory) =>
        Register("box head", name, factory);

    /// <summary>Registers a box predictor factory: (representationSize, numClasses, settings).</summary>
    /// <exception cref="ArgumentException">Another factory is registered under this name.</exception>
    public static void RegisterBoxPredictor(string name, Func<int, int, IReadOnlyDictionary<string, string>, IBoxPredictor> factory) =>
        Register("box predictor", name, factory);

    /// <summary>Registers a mask head factory: (inChannels, settings).</summary>
    /// <exception cref="ArgumentException">Another factory is registered under this name.</exception>
    public static void RegisterMaskHead(string name, Func<int, IReadOnlyDictionary<string, string>, IMaskHead> factory) =>
        Register("mask head", name, factory);

    /// <summary>Registers a mask predictor factory: (maskHeadChannels, numClasses, settings).</summary>
    /// <exception cref="ArgumentException">Another factory is registered under this name.</exception>
    public static void RegisterMaskPredictor(string name, Func<int, int, IReadOnlyDictionary<string, string>, IMaskPredictor> factory) =>
        Register("mask predictor", name, factory);

    private static void Register(string kind, string name, Delegate factory)
    {
        if (string.IsNullOrWhiteSpace(name))
        {
            throw new ArgumentException("a part needs a non-empty name", nameof(name));
        }

        ArgumentNullException.ThrowIfNull(factory);
        var stored = Factories.GetOrAdd((kind, name), factory);
        if (!Equals(stored, factory))
        {
            throw new ArgumentException($"another {kind} is already registered as '{name}'", nameof(name));
        }
    }

    /// <summary>The factory registered for <paramref name="part"/>, or an <see cref="ArgumentException"/> saying how to register it.</summary>
    internal static T Resolve<T>(string kind, NamedPart part, string field) where T : Delegate
    {
        if (Factories.TryGetValue((kind, part.Name), out var factory) && factory is T typed)
        {
            return typed;
        }

        var method = kind switch
        {
            "backbone" => nameof(RegisterBackbone),
            "RPN head" => nameof(RegisterRpnHead),
            "box head" => nameof(RegisterBoxHead),
            "box predictor" => nameof(RegisterBoxPredictor),
            "mask head" => nameof(RegisterMaskHead),
            _ => nameof(RegisterMaskPredictor),
        };
        throw new ArgumentException(
            $"the configuration names a {kind} '{part.Name}' (Parts.{field}) that is not registered in this process; call " +
            $"PartRegistry.{method}(\"{part.Name}\", …) before building or loading the model", field);
    }
}
