using System.Text.Json;
using System.Text.Json.Serialization;
using MaskRcnn.Net.Backbones;
using MaskRcnn.Net.Heads;

namespace MaskRcnn.Net;

/// <summary>Backbone settings: a ResNet body with an FPN.</summary>
/// <param name="Depth">ResNet depth: 18, 34, 50, 101 (or 152).</param>
/// <param name="Norm">Normalisation layers of the body.</param>
/// <param name="NormEps">Epsilon of the body's normalisation (torchvision's FrozenBatchNorm default 1e-5).</param>
/// <param name="TrainableLayers">How many of the body's stages train (0–5, torchvision semantics).</param>
/// <param name="OutChannels">FPN channels.</param>
public sealed record BackboneConfig(int Depth = 50, NormKind Norm = NormKind.FrozenBatchNorm, double NormEps = 1e-5,
    int TrainableLayers = 3, int OutChannels = 256)
{
    /// <summary>
    /// Residual blocks per stage when they differ from <see cref="Depth"/>'s standard layout (the ImageNet
    /// ResNet-18 from ML.NET's package has [2, 2, 2, 3]), or null. Saved with the model, so it reloads the same body.
    /// </summary>
    public IReadOnlyList<int>? StageBlocks { get; init; }

    /// <summary>The body's options.</summary>
    public ResNetOptions ToResNetOptions() => new(Depth, Norm) { NormEps = NormEps, StageBlocks = StageBlocks };

    /// <inheritdoc/>
    public bool Equals(BackboneConfig? other) =>
        other is not null && Depth == other.Depth && Norm == other.Norm && NormEps.Equals(other.NormEps) &&
        TrainableLayers == other.TrainableLayers && OutChannels == other.OutChannels &&
        (StageBlocks is null ? other.StageBlocks is null : other.StageBlocks is not null && StageBlocks.SequenceEqual(other.StageBlocks));

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Depth, Norm, NormEps, TrainableLayers, OutChannels, StageBlocks?.Count);
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

    /// <summary>Whether the model has the mask branch (false: Faster R-CNN).</summary>
    public bool Masks { get; init; } = true;

    /// <summary>Mask probability above which a pixel belongs to the instance.</summary>
    public double MaskThreshold { get; init; } = 0.5;

    /// <summary>
    /// When set, a detection whose mask lies at least this fraction inside the mask of a higher-scoring detection of
    /// the same class is dropped as a nested duplicate (<see cref="DuplicateSuppression"/>); null (default): off.
    /// </summary>
    public double? SuppressContained { get; init; }

    /// <summary>Representation size of the box head.</summary>
    public int BoxHeadSize { get; init; } = 1024;

    /// <summary>Channels of the mask head's 3×3 convolutions, one entry per layer (torchvision: 4 × 256).</summary>
    public IReadOnlyList<int> MaskHeadLayers { get; init; } = [256, 256, 256, 256];

    /// <summary>Channels of the mask predictor's transposed convolution (torchvision: 256).</summary>
    public int MaskPredictorChannels { get; init; } = 256;

    /// <summary>The name of class <paramref name="label"/>.</summary>
    public string ClassName(int label) =>
        ClassNames is { } names && label >= 0 && label < names.Count ? names[label] : label.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Checks consistency; throws <see cref="ArgumentException"/> naming the field.</summary>
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

        if (AnchorSizes.Count != AnchorAspectRatios.Count)
        {
            throw new ArgumentException($"AnchorSizes has {AnchorSizes.Count} levels but AnchorAspectRatios has {AnchorAspectRatios.Count}", nameof(AnchorAspectRatios));
        }

        if (MaskThreshold is < 0 or > 1 || double.IsNaN(MaskThreshold))
        {
            throw new ArgumentException($"MaskThreshold must be in [0, 1], got {MaskThreshold}", nameof(MaskThreshold));
        }

        if (SuppressContained is { } sc && !(sc > 0 && sc <= 1))
        {
            throw new ArgumentException($"SuppressContained must be in (0, 1] or null, got {sc}", nameof(SuppressContained));
        }

        if (MaskHeadLayers.Count == 0 || MaskHeadLayers.Any(c => c < 1) || MaskPredictorChannels < 1 || BoxHeadSize < 1)
        {
            throw new ArgumentException($"MaskHeadLayers needs at least one layer and every channel count (mask head, mask predictor, box head) must be >= 1", nameof(MaskHeadLayers));
        }

        RoIHeads.Validate();
        if (Backbone.TrainableLayers is < 0 or > 5)
        {
            throw new ArgumentException($"Backbone.TrainableLayers must be 0..5, got {Backbone.TrainableLayers}", nameof(Backbone));
        }
    }

    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        IncludeFields = true,
        Converters = { new JsonStringEnumConverter() },
    };

    /// <summary>Serialises to JSON.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>Parses JSON written by <see cref="ToJson"/>; throws <see cref="FormatException"/> on bad input.</summary>
    public static MaskRcnnConfig FromJson(string json)
    {
        try
        {
            var config = JsonSerializer.Deserialize<MaskRcnnConfig>(json, Json) ?? throw new FormatException("model config JSON is null");
            config.Validate();
            return config;
        }
        catch (JsonException e)
        {
            throw new FormatException($"model config JSON is invalid: {e.Message}", e);
        }
    }
}
