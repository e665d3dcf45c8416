using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using MaskRcnn.Net.Backbones;
using MaskRcnn.Net.Heads;
using MaskRcnn.Net.RoIAlign;

namespace MaskRcnn.Net;

/// <summary>
/// Backbone settings: a ResNet body (its own <see cref="ResNetOptions"/>: depth, norm kind, epsilon, GroupNorm groups,
/// blocks per stage) with an FPN on top.
/// </summary>
public sealed record BackboneConfig
{
    /// <summary>torchvision's ResNet-50 + FPN with frozen batch norm, 3 trainable stages, 256 FPN channels.</summary>
    public BackboneConfig()
    {
    }

    /// <summary>A body and the FPN around it.</summary>
    /// <param name="body">The ResNet body's options.</param>
    /// <param name="trainableLayers">How many of the body's stages train (0–5, torchvision semantics).</param>
    /// <param name="outChannels">FPN channels.</param>
    public BackboneConfig(ResNetOptions body, int trainableLayers = ResNetFpn.DefaultTrainableLayers, int outChannels = ResNetFpn.DefaultOutChannels)
    {
        Body = body ?? throw new ArgumentNullException(nameof(body));
        TrainableLayers = trainableLayers;
        OutChannels = outChannels;
    }

    /// <summary>The ResNet body's options (saved as they are, so the model reloads the same body).</summary>
    public ResNetOptions Body { get; init; } = new();

    /// <summary>How many of the body's stages train (0–5, torchvision semantics).</summary>
    public int TrainableLayers { get; init; } = ResNetFpn.DefaultTrainableLayers;

    /// <summary>FPN channels.</summary>
    public int OutChannels { get; init; } = ResNetFpn.DefaultOutChannels;

    /// <summary>Shorthand for <see cref="Body"/>'s <see cref="ResNetOptions.Depth"/> (18, 34, 50, 101 or 152).</summary>
    [JsonIgnore]
    public int Depth
    {
        get => Body.Depth;
        init => Body = Body with { Depth = value };
    }

    /// <summary>Shorthand for <see cref="Body"/>'s <see cref="ResNetOptions.Norm"/>.</summary>
    [JsonIgnore]
    public NormKind Norm
    {
        get => Body.Norm;
        init => Body = Body with { Norm = value };
    }

    /// <summary>Shorthand for <see cref="Body"/>'s <see cref="ResNetOptions.NormEps"/>.</summary>
    [JsonIgnore]
    public double NormEps
    {
        get => Body.NormEps;
        init => Body = Body with { NormEps = value };
    }

    /// <summary>Shorthand for <see cref="Body"/>'s <see cref="ResNetOptions.GroupNormGroups"/>.</summary>
    [JsonIgnore]
    public int GroupNormGroups
    {
        get => Body.GroupNormGroups;
        init => Body = Body with { GroupNormGroups = value };
    }

    /// <summary>Shorthand for <see cref="Body"/>'s <see cref="ResNetOptions.StageBlocks"/>.</summary>
    [JsonIgnore]
    public IReadOnlyList<int>? StageBlocks
    {
        get => Body.StageBlocks;
        init => Body = Body with { StageBlocks = value };
    }

    /// <summary>The body's options (<see cref="Body"/>).</summary>
    public ResNetOptions ToResNetOptions() => Body;

    /// <summary>Checks the ranges; throws <see cref="ArgumentException"/> naming the field and its value.</summary>
    public void Validate()
    {
        if (Body is null)
        {
            throw new ArgumentException("BackboneConfig.Body must be set", nameof(Body));
        }

        Body.Validate();
        if (TrainableLayers is < 0 or > 5)
        {
            throw new ArgumentException($"BackboneConfig.TrainableLayers must be 0..5, got {TrainableLayers}", nameof(TrainableLayers));
        }

        if (OutChannels < 1)
        {
            throw new ArgumentException($"BackboneConfig.OutChannels must be at least 1, got {OutChannels}", nameof(OutChannels));
        }
    }
}

/// <summary>
/// Everything needed to rebuild a Mask R-CNN: stored next to saved weights so that a trained model reloads with one
/// call. Defaults are torchvision's <c>maskrcnn_resnet50_fpn</c>.
/// </summary>
public sealed record MaskRcnnConfig
{
    /// <summary>Number of classes including the background class 0 (COCO: 91).</summary>
    public int NumClasses { get; init; } = 91;

    /// <summary>Names of classes 0..NumClasses-1 (index 0 is the background), or null for numeric names.</summary>
    public IReadOnlyList<string>? ClassNames { get; init; }

    /// <summary>Backbone settings.</summary>
    public BackboneConfig Backbone { get; init; } = new();

    /// <summary>Resize and normalisation.</summary>
    public TransformOptions Transform { get; init; } = TransformOptions.Default;

    /// <summary>Anchor sizes per FPN level.</summary>
    public IReadOnlyList<IReadOnlyList<double>> AnchorSizes { get; init; } = [[32], [64], [128], [256], [512]];

    /// <summary>Anchor aspect ratios (height/width) per FPN level.</summary>
    public IReadOnlyList<IReadOnlyList<double>> AnchorAspectRatios { get; init; } =
        [[0.5, 1.0, 2.0], [0.5, 1.0, 2.0], [0.5, 1.0, 2.0], [0.5, 1.0, 2.0], [0.5, 1.0, 2.0]];

    /// <summary>Region proposal network settings.</summary>
    public RpnOptions Rpn { get; init; } = new();

    /// <summary>RoI heads settings (thresholds, NMS, detections per image).</summary>
    public RoIHeadsOptions RoIHeads { get; init; } = new();

    /// <summary>RoI pooler of the box branch (torchvision: 7×7 multi-scale RoIAlign, sampling ratio 2).</summary>
    public RoIPoolerOptions BoxPooler { get; init; } = RoIPoolerOptions.BoxDefault;

    /// <summary>RoI pooler of the mask branch (torchvision: 14×14 multi-scale RoIAlign, sampling ratio 2).</summary>
    public RoIPoolerOptions MaskPooler { get; init; } = RoIPoolerOptions.MaskDefault;

    /// <summary>Whether the model has the mask branch (false: Faster R-CNN).</summary>
    public bool Masks { get; init; } = true;

    /// <summary>Mask probability above which a pixel belongs to the instance.</summary>
    public double MaskThreshold { get; init; } = 0.5;

    /// <summary>
    /// When set, a detection whose mask lies at least this fraction inside the mask of a higher-scoring detection of
    /// the same class is dropped as a nested duplicate (<see cref="DuplicateSuppression"/>); null (default): off.
    /// </summary>
    public double? SuppressContained { get; init; }

    /// <summary>
    /// Multiplies each detection's score by its mask's confidence (the mean probability of the mask's pixels above
    /// <see cref="MaskThreshold"/>) and sorts by the result; see <see cref="Net.MaskScoring"/>. False (default, as
    /// torchvision): the network's scores. The training recipe turns it on.
    /// </summary>
    public bool MaskScoring { get; init; }

    /// <summary>
    /// Pastes the masks with exact, half-pixel-aligned geometry (detectron2's paste, <see cref="Core.Masks.MaskPasting.PasteAligned"/>)
    /// instead of torchvision's <c>paste_masks_in_image</c>, which rounds the box to whole pixels and stretches the mask by
    /// about one pixel. For mask heads trained on aligned targets (<see cref="RoIHeadsOptions.AlignedMaskTargets"/>); set
    /// with them by <see cref="MaskRcnnBuilder.WithAlignedRoIAlign"/>. False (default, as torchvision).
    /// </summary>
    public bool AlignedMaskPaste { get; init; }

    /// <summary>Representation size of the box head.</summary>
    public int BoxHeadSize { get; init; } = 1024;

    /// <summary>Channels of the mask head's 3×3 convolutions, one entry per layer (torchvision: 4 × 256).</summary>
    public IReadOnlyList<int> MaskHeadLayers { get; init; } = [256, 256, 256, 256];

    /// <summary>Channels of the mask predictor's transposed convolution (torchvision: 256).</summary>
    public int MaskPredictorChannels { get; init; } = 256;

    /// <summary>
    /// Parts built by factories registered by name in <see cref="PartRegistry"/> instead of the defaults (null: none);
    /// the builder's named overloads (<c>WithMaskHead("name", settings)</c>) set it.
    /// </summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public CustomPartsConfig? Parts { get; init; }

    /// <summary>The name of class <paramref name="label"/>.</summary>
    public string ClassName(int label) =>
        ClassNames is { } names && label >= 0 && label < names.Count ? names[label] : label.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>
    /// Checks every setting, including the nested option records (<see cref="BackboneConfig.Validate"/>,
    /// <see cref="TransformOptions.Validate"/>, <see cref="RpnOptions.Validate"/>, <see cref="RoIHeadsOptions.Validate"/>,
    /// <see cref="RoIPoolerOptions.Validate"/>); throws <see cref="ArgumentException"/> naming the field.
    /// </summary>
    public void Validate()
    {
        if (NumClasses < 2)
        {
            throw new ArgumentException($"NumClasses must be at least 2 (background + one class), got {NumClasses}", nameof(NumClasses));
        }

        if (ClassNames is not null && ClassNames.Count != NumClasses)
        {
            throw new ArgumentException($"ClassNames has {ClassNames.Count} entries but NumClasses is {NumClasses} (index 0 is the background)", nameof(ClassNames));
        }

        Require(Backbone, nameof(Backbone)).Validate();
        Require(Transform, nameof(Transform)).Validate();
        ValidateAnchors();
        Require(Rpn, nameof(Rpn)).Validate();
        Require(RoIHeads, nameof(RoIHeads)).Validate();
        Require(BoxPooler, nameof(BoxPooler)).Validate();
        Require(MaskPooler, nameof(MaskPooler)).Validate();
        if (MaskThreshold is < 0 or > 1 || double.IsNaN(MaskThreshold))
        {
            throw new ArgumentException($"MaskThreshold must be in [0, 1], got {MaskThreshold}", nameof(MaskThreshold));
        }

        if (SuppressContained is { } sc && !(sc > 0 && sc <= 1))
        {
            throw new ArgumentException($"SuppressContained must be in (0, 1] or null, got {sc}", nameof(SuppressContained));
        }

        if (BoxHeadSize < 1)
        {
            throw new ArgumentException($"BoxHeadSize must be at least 1, got {BoxHeadSize}", nameof(BoxHeadSize));
        }

        if (MaskHeadLayers is null || MaskHeadLayers.Count == 0 || MaskHeadLayers.Any(c => c < 1))
        {
            throw new ArgumentException(
                $"MaskHeadLayers needs at least one layer, each with at least 1 channel, got [{string.Join(", ", MaskHeadLayers ?? [])}]", nameof(MaskHeadLayers));
        }

        if (MaskPredictorChannels < 1)
        {
            throw new ArgumentException($"MaskPredictorChannels must be at least 1, got {MaskPredictorChannels}", nameof(MaskPredictorChannels));
        }

        Parts?.Validate();
    }

    private static T Require<T>(T? value, string name) where T : class =>
        value ?? throw new ArgumentException($"{name} must be set", name);

    private void ValidateAnchors()
    {
        if (AnchorSizes is null || AnchorSizes.Count == 0)
        {
            throw new ArgumentException("AnchorSizes needs at least one level", nameof(AnchorSizes));
        }

        if (AnchorAspectRatios is null || AnchorSizes.Count != AnchorAspectRatios.Count)
        {
            throw new ArgumentException($"AnchorSizes has {AnchorSizes.Count} levels but AnchorAspectRatios has {AnchorAspectRatios?.Count ?? 0}", nameof(AnchorAspectRatios));
        }

        for (var i = 0; i < AnchorSizes.Count; i++)
        {
            if (AnchorSizes[i] is not { Count: > 0 } sizes || sizes.Any(v => !(v > 0) || !double.IsFinite(v)))
            {
                throw new ArgumentException($"AnchorSizes[{i}] must be a non-empty list of positive finite sizes", nameof(AnchorSizes));
            }

            if (AnchorAspectRatios[i] is not { Count: > 0 } ratios || ratios.Any(v => !(v > 0) || !double.IsFinite(v)))
            {
                throw new ArgumentException($"AnchorAspectRatios[{i}] must be a non-empty list of positive finite ratios", nameof(AnchorAspectRatios));
            }

            // One RPN head serves every level, so each level needs the same number of anchors per location.
            var perLocation = sizes.Count * ratios.Count;
            var first = AnchorSizes[0].Count * AnchorAspectRatios[0].Count;
            if (perLocation != first)
            {
                throw new ArgumentException(
                    $"AnchorSizes[{i}] × AnchorAspectRatios[{i}] gives {perLocation} anchors per location but level 0 gives {first}; the shared RPN head needs the same number on every level",
                    nameof(AnchorSizes));
            }
        }
    }

    /// <summary>Value equality: lists (class names, anchors, mask head layers) compare element by element.</summary>
    public bool Equals(MaskRcnnConfig? other) =>
        other is not null && NumClasses == other.NumClasses && ListEqual(ClassNames, other.ClassNames) &&
        Equals(Backbone, other.Backbone) && Equals(Transform, other.Transform) &&
        NestedEqual(AnchorSizes, other.AnchorSizes) && NestedEqual(AnchorAspectRatios, other.AnchorAspectRatios) &&
        Equals(Rpn, other.Rpn) && Equals(RoIHeads, other.RoIHeads) && Equals(BoxPooler, other.BoxPooler) &&
        Equals(MaskPooler, other.MaskPooler) && Masks == other.Masks && MaskThreshold.Equals(other.MaskThreshold) &&
        SuppressContained.Equals(other.SuppressContained) && MaskScoring == other.MaskScoring && AlignedMaskPaste == other.AlignedMaskPaste &&
        BoxHeadSize == other.BoxHeadSize &&
        ListEqual(MaskHeadLayers, other.MaskHeadLayers) && MaskPredictorChannels == other.MaskPredictorChannels &&
        Equals(Parts is { IsEmpty: false } ? Parts : null, other.Parts is { IsEmpty: false } ? other.Parts : null);

    /// <inheritdoc/>
    public override int GetHashCode()
    {
        var hash = new HashCode();
        hash.Add(NumClasses);
        hash.Add(Backbone);
        hash.Add(Transform);
        hash.Add(AnchorSizes?.Count);
        hash.Add(Rpn);
        hash.Add(RoIHeads);
        hash.Add(BoxPooler);
        hash.Add(MaskPooler);
        hash.Add(Masks);
        hash.Add(MaskThreshold);
        hash.Add(AlignedMaskPaste);
        hash.Add(BoxHeadSize);
        hash.Add(MaskPredictorChannels);
        foreach (var c in MaskHeadLayers ?? [])
        {
            hash.Add(c);
        }

        return hash.ToHashCode();
    }

    private static bool ListEqual<T>(IReadOnlyList<T>? a, IReadOnlyList<T>? b) =>
        ReferenceEquals(a, b) || (a is not null && b is not null && a.SequenceEqual(b));

    private static bool NestedEqual<T>(IReadOnlyList<IReadOnlyList<T>>? a, IReadOnlyList<IReadOnlyList<T>>? b) =>
        ReferenceEquals(a, b) || (a is not null && b is not null && a.Count == b.Count && a.Zip(b).All(p => ListEqual(p.First, p.Second)));

    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        IncludeFields = true,
        Converters = { new JsonStringEnumConverter() },
    };

    /// <summary>Serialises to JSON.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>
    /// Parses JSON written by <see cref="ToJson"/> — also by earlier versions, whose <c>Backbone</c> held the body's
    /// settings (<c>Depth</c>, <c>Norm</c>, <c>NormEps</c>, <c>StageBlocks</c>) directly instead of in <c>Body</c> and
    /// which had no poolers (torchvision's 7×7 / 14×14 then). Validates the result.
    /// </summary>
    /// <exception cref="FormatException">The text is not JSON of a configuration.</exception>
    /// <exception cref="ArgumentException">A setting is out of range; the message names it.</exception>
    public static MaskRcnnConfig FromJson(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        try
        {
            var node = JsonNode.Parse(json) ?? throw new FormatException("model config JSON is null");
            UpgradeLegacyBackbone(node);
            var config = node.Deserialize<MaskRcnnConfig>(Json) ?? throw new FormatException("model config JSON is null");
            config.Validate();
            return config;
        }
        catch (JsonException e)
        {
            throw new FormatException($"model config JSON is invalid: {e.Message}", e);
        }
        catch (InvalidOperationException e)
        {
            throw new FormatException($"model config JSON is invalid: {e.Message}", e);
        }
    }

    /// <summary>Names of the body settings that model.json files before <see cref="BackboneConfig.Body"/> kept in <c>Backbone</c>.</summary>
    private static readonly string[] LegacyBodyKeys = ["Depth", "Norm", "NormEps", "GroupNormGroups", "StageBlocks"];

    /// <summary>Moves a flat legacy <c>Backbone</c> ({Depth, Norm, NormEps, StageBlocks, …}) into <c>Backbone.Body</c>.</summary>
    private static void UpgradeLegacyBackbone(JsonNode root)
    {
        if (root is not JsonObject rootObject || rootObject["Backbone"] is not JsonObject backbone || backbone.ContainsKey("Body"))
        {
            return;
        }

        var body = new JsonObject();
        foreach (var key in LegacyBodyKeys)
        {
            if (backbone.TryGetPropertyValue(key, out var value))
            {
                backbone.Remove(key);
                body[key] = value;
            }
        }

        backbone["Body"] = body;
    }
}
