using System.Text.RegularExpressions;
using MaskRcnn.Net.Core;
using MaskRcnn.Net.Core.NN;

namespace MaskRcnn.Net.Backbones;

/// <summary>
/// The one place that knows how torchvision's state-dict keys changed over versions and maps them onto this
/// library's module names (which equal torchvision 0.14's). <see cref="Normalize(string)"/> rewrites legacy keys;
/// <see cref="NormalizeFor"/> additionally drops the keys torchvision itself ignores on load.
/// </summary>
/// <remarks>
/// Current rules (each anchored on a whole dotted segment, so prefixes such as <c>backbone.</c> are kept):
/// <list type="bullet">
/// <item>FPN before torchvision 0.13 (<c>FeaturePyramidNetwork</c> version &lt; 2):
/// <c>…inner_blocks.{i}.weight|bias</c> → <c>…inner_blocks.{i}.0.weight|bias</c>, same for <c>layer_blocks</c>.</item>
/// <item>RPN head before torchvision 0.13 (<c>RPNHead</c> version &lt; 2): <c>…head.conv.weight|bias</c> →
/// <c>…head.conv.0.0.weight|bias</c>.</item>
/// <item>Mask head before torchvision 0.13 (<c>MaskRCNNHeads</c> version &lt; 2): <c>…mask_head.mask_fcn{n}.weight|bias</c>
/// → <c>…mask_head.{n-1}.0.weight|bias</c>.</item>
/// </list>
/// The legacy names are what torchvision's classic model-zoo files (e.g. the COCO Mask R-CNN checkpoint) contain.
/// </remarks>
public static partial class TorchvisionKeys
{
    private static readonly (Regex Pattern, MatchEvaluator Replacement, string Reason)[] Rules =
    [
        (LegacyFpnBlock(), m => $"{m.Groups["prefix"].Value}{m.Groups["block"].Value}.{m.Groups["index"].Value}.0.{m.Groups["param"].Value}",
            "FPN blocks wrapped in Conv2dNormActivation (torchvision 0.13)"),
        (LegacyRpnConv(), m => $"{m.Groups["prefix"].Value}head.conv.0.0.{m.Groups["param"].Value}",
            "RPN head conv wrapped in Conv2dNormActivation (torchvision 0.13)"),
        (LegacyMaskFcn(), m => $"{m.Groups["prefix"].Value}mask_head.{int.Parse(m.Groups["n"].Value, System.Globalization.CultureInfo.InvariantCulture) - 1}.0.{m.Groups["param"].Value}",
            "mask head convs wrapped in Conv2dNormActivation (torchvision 0.13)"),
    ];

    [GeneratedRegex(@"^(?<prefix>(?:.*\.)?)head\.conv\.(?<param>weight|bias)$", RegexOptions.CultureInvariant)]
    private static partial Regex LegacyRpnConv();

    [GeneratedRegex(@"^(?<prefix>(?:.*\.)?)mask_head\.mask_fcn(?<n>[1-9]\d*)\.(?<param>weight|bias)$", RegexOptions.CultureInvariant)]
    private static partial Regex LegacyMaskFcn();

    [GeneratedRegex(@"^(?<prefix>(?:.*\.)?)(?<block>inner_blocks|layer_blocks)\.(?<index>\d+)\.(?<param>weight|bias)$", RegexOptions.CultureInvariant)]
    private static partial Regex LegacyFpnBlock();

    /// <summary>The current name of a (possibly legacy) torchvision key; unchanged when no rule applies.</summary>
    public static string Normalize(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        foreach (var (pattern, replacement, _) in Rules)
        {
            if (pattern.IsMatch(key))
            {
                return pattern.Replace(key, replacement);
            }
        }

        return key;
    }

    /// <summary>
    /// A view of <paramref name="stateDict"/> with every key normalised (same order, same tensor objects — the
    /// result does not own them).
    /// </summary>
    /// <exception cref="CheckpointMismatchException">Two keys map to the same name (e.g. both the legacy and the
    /// current FPN key are present); the message names both.</exception>
    public static IReadOnlyDictionary<string, Tensor> Normalize(IEnumerable<KeyValuePair<string, Tensor>> stateDict)
    {
        ArgumentNullException.ThrowIfNull(stateDict);
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var origin = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (key, value) in stateDict)
        {
            var name = Normalize(key);
            if (!origin.TryAdd(name, key))
            {
                throw new CheckpointMismatchException(
                    $"state dict keys '{origin[name]}' and '{key}' both map to '{name}'");
            }

            result[name] = value;
        }

        return result;
    }

    /// <summary>
    /// <see cref="Normalize(IEnumerable{KeyValuePair{string, Tensor}})"/>, then drops what torchvision drops when
    /// loading into <paramref name="target"/>: <c>num_batches_tracked</c> keys the module does not have (a checkpoint
    /// written with trainable BatchNorm loaded into <see cref="FrozenBatchNorm2d"/>).
    /// </summary>
    public static IReadOnlyDictionary<string, Tensor> NormalizeFor(Module target, IEnumerable<KeyValuePair<string, Tensor>> stateDict)
    {
        ArgumentNullException.ThrowIfNull(target);
        var normalized = Normalize(stateDict);
        var own = target.StateDict().Select(kv => kv.Key).ToHashSet(StringComparer.Ordinal);
        return normalized
            .Where(kv => own.Contains(kv.Key) || !IsNumBatchesTracked(kv.Key))
            .ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal);
    }

    /// <summary>Loads a torchvision state dict into <paramref name="target"/> after <see cref="NormalizeFor"/>.</summary>
    /// <param name="target">The module (e.g. a <see cref="BackboneWithFpn"/>).</param>
    /// <param name="stateDict">Keys as torchvision (any version) wrote them.</param>
    /// <param name="strict">Fail on missing or unexpected keys (shapes must always match).</param>
    /// <exception cref="CheckpointMismatchException">The message names the offending key(s).</exception>
    public static LoadStateDictResult LoadStateDict(Module target, IEnumerable<KeyValuePair<string, Tensor>> stateDict, bool strict = true)
    {
        ArgumentNullException.ThrowIfNull(target);
        return target.LoadStateDict(NormalizeFor(target, stateDict), strict);
    }

    private static bool IsNumBatchesTracked(string key) =>
        key == "num_batches_tracked" || key.EndsWith(".num_batches_tracked", StringComparison.Ordinal);
}
