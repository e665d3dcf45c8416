using System.Globalization;
using System.Text.Json;

namespace MaskRcnn.Net.Onnx;

/// <summary>
/// The metadata a MaskRcnn.Net ONNX export carries (<c>metadata_props</c>, all strings): what the runtime needs after
/// the network (class names, mask threshold, contained-duplicate suppression) and, for information, the settings
/// baked into the graph. Keys start with <c>maskrcnn.</c>; see <see cref="Keys"/>.
/// </summary>
/// <param name="FormatVersion">The export format (<c>maskrcnn.format</c>); this package reads <see cref="SupportedFormat"/>.</param>
/// <param name="ClassNames">Class names by label, index 0 the background (<c>maskrcnn.class_names</c>, a JSON array).</param>
/// <param name="MaskThreshold">Mask probability threshold (<c>maskrcnn.mask_threshold</c>).</param>
/// <param name="SuppressContained">Contained-duplicate suppression containment, null when <c>off</c>
/// (<c>maskrcnn.suppress_contained</c>).</param>
/// <param name="ScoreThreshold">The box score threshold baked into the graph (<c>maskrcnn.score_threshold</c>), if given.</param>
/// <param name="DetectionsPerImage">The graph's maximum detections per image (<c>maskrcnn.detections_per_image</c>), if given.</param>
/// <param name="MinSize">The resize's shorter side (<c>maskrcnn.min_size</c>), if given.</param>
/// <param name="MaxSize">The resize's longer-side bound (<c>maskrcnn.max_size</c>), if given.</param>
/// <param name="ImageMean">Normalisation mean per channel (<c>maskrcnn.image_mean</c>), if given.</param>
/// <param name="ImageStd">Normalisation standard deviation per channel (<c>maskrcnn.image_std</c>), if given.</param>
/// <param name="MaskSize">M of the M×M mask output (<c>maskrcnn.mask_size</c>), if given.</param>
/// <param name="ProducerName">The ONNX producer_name (<c>MaskRcnn.Net</c> for our exports).</param>
/// <param name="ProducerVersion">The ONNX producer_version.</param>
public sealed record OnnxModelMetadata(
    int FormatVersion,
    IReadOnlyList<string> ClassNames,
    double MaskThreshold,
    double? SuppressContained,
    double? ScoreThreshold,
    int? DetectionsPerImage,
    int? MinSize,
    int? MaxSize,
    IReadOnlyList<double>? ImageMean,
    IReadOnlyList<double>? ImageStd,
    int? MaskSize,
    string ProducerName,
    string ProducerVersion)
{
    /// <summary>The export format version this package reads.</summary>
    public const int SupportedFormat = 1;

    /// <summary>The metadata keys.</summary>
    public static class Keys
    {
        /// <summary>Export format version.</summary>
        public const string Format = "maskrcnn.format";

        /// <summary>Class names JSON array.</summary>
        public const string ClassNames = "maskrcnn.class_names";

        /// <summary>Mask threshold.</summary>
        public const string MaskThreshold = "maskrcnn.mask_threshold";

        /// <summary>Contained-duplicate suppression (a fraction in (0, 1], or <c>off</c>).</summary>
        public const string SuppressContained = "maskrcnn.suppress_contained";

        /// <summary>Box score threshold baked into the graph.</summary>
        public const string ScoreThreshold = "maskrcnn.score_threshold";

        /// <summary>Maximum detections per image.</summary>
        public const string DetectionsPerImage = "maskrcnn.detections_per_image";

        /// <summary>Resize: shorter side.</summary>
        public const string MinSize = "maskrcnn.min_size";

        /// <summary>Resize: bound of the longer side.</summary>
        public const string MaxSize = "maskrcnn.max_size";

        /// <summary>Normalisation mean (JSON array).</summary>
        public const string ImageMean = "maskrcnn.image_mean";

        /// <summary>Normalisation standard deviation (JSON array).</summary>
        public const string ImageStd = "maskrcnn.image_std";

        /// <summary>M of the M×M masks.</summary>
        public const string MaskSize = "maskrcnn.mask_size";

        /// <summary>Mask scoring, <c>on</c> or <c>off</c> (absent in exports before it existed: off).</summary>
        public const string MaskScoring = "maskrcnn.mask_scoring";

        /// <summary>
        /// How the M×M masks are pasted: <c>torchvision</c> (<c>paste_masks_in_image</c>) or <c>aligned</c> (exact,
        /// half-pixel-aligned geometry); absent in exports before it existed: torchvision.
        /// </summary>
        public const string MaskPaste = "maskrcnn.mask_paste";
    }

    /// <summary>Whether the scores are multiplied by the masks' confidence (<c>maskrcnn.mask_scoring</c>; see <see cref="Net.MaskScoring"/>).</summary>
    public bool MaskScoring { get; init; }

    /// <summary>Whether the masks are pasted with aligned geometry (<c>maskrcnn.mask_paste</c> = <c>aligned</c>; see <see cref="PostprocessingOptions.AlignedMaskPaste"/>).</summary>
    public bool AlignedMaskPaste { get; init; }

    /// <summary>The options of the shared post-processing this model's metadata asks for.</summary>
    public PostprocessingOptions Postprocessing => new()
    {
        ClassNames = ClassNames,
        MaskThreshold = MaskThreshold,
        SuppressContained = SuppressContained,
        MaskScoring = MaskScoring,
        AlignedMaskPaste = AlignedMaskPaste,
    };

    /// <summary>
    /// Reads the metadata map of a model file. Required: <c>maskrcnn.format</c> (= <see cref="SupportedFormat"/>),
    /// <c>maskrcnn.class_names</c>, <c>maskrcnn.mask_threshold</c> and <c>maskrcnn.suppress_contained</c> (what the
    /// runtime applies after the network: without them the results could silently differ from the libtorch model's);
    /// the others are read when present.
    /// </summary>
    /// <param name="metadata">The model's <c>metadata_props</c>.</param>
    /// <param name="path">The file, for messages.</param>
    /// <param name="producerName">The model's producer_name.</param>
    /// <param name="producerVersion">The model's producer_version.</param>
    /// <exception cref="OnnxModelFormatException">A required key is missing, a value is malformed, or the format
    /// version is not <see cref="SupportedFormat"/>; names the file and the key.</exception>
    public static OnnxModelMetadata Parse(IReadOnlyDictionary<string, string> metadata, string path, string producerName = "", string producerVersion = "")
    {
        ArgumentNullException.ThrowIfNull(metadata);
        ArgumentNullException.ThrowIfNull(path);
        if (!metadata.TryGetValue(Keys.Format, out var formatText))
        {
            throw new OnnxModelFormatException(path, Keys.Format,
                $"not a MaskRcnn.Net export: the metadata key {Keys.Format} is missing (producer '{producerName}'); export models with `maskrcnn export` or MaskRcnnModel.ExportOnnx");
        }

        if (!int.TryParse(formatText, NumberStyles.Integer, CultureInfo.InvariantCulture, out var format))
        {
            throw new OnnxModelFormatException(path, Keys.Format, $"metadata {Keys.Format} = '{formatText}' is not an integer");
        }

        if (format != SupportedFormat)
        {
            throw new OnnxModelFormatException(path, Keys.Format,
                $"export format {format} (metadata {Keys.Format}) is not supported: this MaskRcnn.Net.Onnx reads format {SupportedFormat}");
        }

        var classNames = Required(metadata, path, Keys.ClassNames, v => StringArray(v));
        if (classNames.Count < 2)
        {
            throw new OnnxModelFormatException(path, Keys.ClassNames, $"metadata {Keys.ClassNames} must name the background and at least one class, got {classNames.Count} names");
        }

        var maskThreshold = Required(metadata, path, Keys.MaskThreshold, Number);
        if (!(maskThreshold >= 0 && maskThreshold <= 1))
        {
            throw new OnnxModelFormatException(path, Keys.MaskThreshold, $"metadata {Keys.MaskThreshold} = {maskThreshold} is outside [0, 1]");
        }

        var suppress = Required(metadata, path, Keys.SuppressContained, v => v is "off" ? (double?)null : Number(v));
        if (suppress is { } s && !(s > 0 && s <= 1))
        {
            throw new OnnxModelFormatException(path, Keys.SuppressContained, $"metadata {Keys.SuppressContained} = {s} is outside (0, 1] (or 'off')");
        }

        var minSize = Optional(metadata, path, Keys.MinSize, Integer);
        var maxSize = Optional(metadata, path, Keys.MaxSize, Integer);
        if (minSize is < 1 || maxSize is < 1)
        {
            throw new OnnxModelFormatException(path, minSize is < 1 ? Keys.MinSize : Keys.MaxSize, $"metadata {Keys.MinSize}/{Keys.MaxSize} must be positive, got {minSize}/{maxSize}");
        }

        return new OnnxModelMetadata(format, classNames, maskThreshold, suppress,
            Optional(metadata, path, Keys.ScoreThreshold, Number),
            Optional(metadata, path, Keys.DetectionsPerImage, Integer),
            minSize, maxSize,
            OptionalList(metadata, path, Keys.ImageMean),
            OptionalList(metadata, path, Keys.ImageStd),
            Optional(metadata, path, Keys.MaskSize, Integer),
            producerName, producerVersion)
        {
            MaskScoring = Optional(metadata, path, Keys.MaskScoring, v => v switch
            {
                "on" => true,
                "off" => false,
                _ => throw new FormatException("expected 'on' or 'off'"),
            }) ?? false,
            AlignedMaskPaste = Optional(metadata, path, Keys.MaskPaste, v => v switch
            {
                "torchvision" => false,
                "aligned" => true,
                _ => throw new FormatException("expected 'torchvision' or 'aligned'"),
            }) ?? false,
        };
    }

    private static T Required<T>(IReadOnlyDictionary<string, string> metadata, string path, string key, Func<string, T> parse)
    {
        if (!metadata.TryGetValue(key, out var text))
        {
            throw new OnnxModelFormatException(path, key, $"the metadata key {key} is missing (a MaskRcnn.Net export of format {SupportedFormat} has it)");
        }

        return ParseValue(path, key, text, parse);
    }

    private static T? Optional<T>(IReadOnlyDictionary<string, string> metadata, string path, string key, Func<string, T> parse)
        where T : struct =>
        metadata.TryGetValue(key, out var text) ? ParseValue(path, key, text, parse) : null;

    private static IReadOnlyList<double>? OptionalList(IReadOnlyDictionary<string, string> metadata, string path, string key) =>
        metadata.TryGetValue(key, out var text) ? ParseValue(path, key, text, NumberArray) : null;

    private static T ParseValue<T>(string path, string key, string text, Func<string, T> parse)
    {
        try
        {
            return parse(text);
        }
        catch (Exception e) when (e is FormatException or JsonException or OverflowException or InvalidOperationException)
        {
            var shown = text.Length > 80 ? text[..80] + "…" : text;
            throw new OnnxModelFormatException(path, key, $"metadata {key} = '{shown}' is malformed: {e.Message}", e);
        }
    }

    private static double Number(string text) =>
        double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && double.IsFinite(v) ? v : throw new FormatException("not a finite number");

    private static int Integer(string text) =>
        int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v : throw new FormatException("not an integer");

    private static IReadOnlyList<string> StringArray(string text)
    {
        var names = JsonSerializer.Deserialize<string?[]>(text) ?? throw new FormatException("expected a JSON array of strings, got null");
        return names.Any(n => n is null) ? throw new FormatException("a class name is null") : names.Select(n => n!).ToArray();
    }

    private static IReadOnlyList<double> NumberArray(string text) =>
        JsonSerializer.Deserialize<double[]>(text) ?? throw new FormatException("expected a JSON array of numbers, got null");

    /// <inheritdoc/>
    public bool Equals(OnnxModelMetadata? other) =>
        other is not null && FormatVersion == other.FormatVersion && ClassNames.SequenceEqual(other.ClassNames) &&
        MaskThreshold.Equals(other.MaskThreshold) && SuppressContained.Equals(other.SuppressContained) &&
        ScoreThreshold.Equals(other.ScoreThreshold) && DetectionsPerImage == other.DetectionsPerImage && MinSize == other.MinSize &&
        MaxSize == other.MaxSize && SameList(ImageMean, other.ImageMean) && SameList(ImageStd, other.ImageStd) &&
        MaskSize == other.MaskSize && ProducerName == other.ProducerName && ProducerVersion == other.ProducerVersion &&
        MaskScoring == other.MaskScoring && AlignedMaskPaste == other.AlignedMaskPaste;

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(FormatVersion, ClassNames.Count, MaskThreshold, SuppressContained, MinSize, MaxSize, MaskSize);

    private static bool SameList(IReadOnlyList<double>? a, IReadOnlyList<double>? b) =>
        ReferenceEquals(a, b) || (a is not null && b is not null && a.SequenceEqual(b));
}
