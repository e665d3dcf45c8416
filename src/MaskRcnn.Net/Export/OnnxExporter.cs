using System.Globalization;
using System.Reflection;
using System.Text.Json;
using MaskRcnn.Net.Core.Checkpoints;

namespace MaskRcnn.Net.Export;

// =====================================================================================================================
// Stage interface between the export branch (transform, backbone, assembly) and the heads branch (RPN, RoI heads,
// mask head). The heads files implement, in src/MaskRcnn.Net/Export:
//
//   internal static class RpnExport
//   {
//       // Proposals of the single image: boxes float32 [P, 4] (x1, y1, x2, y2) in the RESIZED image's pixels (clipped
//       // to ResizedHeight/ResizedWidth), objectness float32 [P] — after NMS and post_nms_top_n (test mode).
//       public static (string Boxes, string Scores) Emit(OnnxGraphBuilder g, MaskRcnnModel model, OnnxFeatureValues f, OnnxImageSizes s);
//   }
//   internal static class RoIHeadsExport
//   {
//       // Final detections in the RESIZED image's pixels, sorted by score descending: boxes float32 [N, 4],
//       // scores float32 [N], labels int64 [N].
//       public static (string Boxes, string Scores, string Labels) Emit(OnnxGraphBuilder g, MaskRcnnModel model,
//           OnnxFeatureValues f, OnnxImageSizes s, string proposals);
//   }
//   internal static class MaskHeadExport
//   {
//       // Mask probabilities of each detection's own class: float32 [N, 1, M, M].
//       public static string Emit(OnnxGraphBuilder g, MaskRcnnModel model, OnnxFeatureValues f, OnnxImageSizes s,
//           string boxes, string labels);
//   }
//
// and wire them into this class by implementing the partial method EmitHeads in a file of theirs (e.g. at the end of
// RoIHeadsExport.cs), exactly:
//
//   internal static partial class OnnxExporter
//   {
//       static partial void EmitHeads(OnnxGraphBuilder g, MaskRcnnModel model, OnnxFeatureValues f, OnnxImageSizes s,
//           ref OnnxDetectionValues? detections)
//       {
//           var (proposals, _) = RpnExport.Emit(g, model, f, s);
//           var (boxes, scores, labels) = RoIHeadsExport.Emit(g, model, f, s, proposals);
//           var masks = model.RoIHeads.MaskPredictor is null ? null : MaskHeadExport.Emit(g, model, f, s, boxes, labels);
//           detections = new OnnxDetectionValues(boxes, scores, labels, masks);
//       }
//   }
//
// Until that implementation is present, Export writes the model only with DebugOutputs (tests of transform and
// backbone) and otherwise throws NotSupportedException (never a file without detections). The exporter rescales the
// boxes to the input image (TransformExport.RescaleBoxes) and declares the outputs boxes/labels/scores/masks.
// =====================================================================================================================

/// <summary>The graph values of the final detections, in the resized image's pixels (before the postprocess rescale).</summary>
/// <param name="Boxes">float32 [N, 4] (x1, y1, x2, y2), sorted by score descending.</param>
/// <param name="Scores">float32 [N].</param>
/// <param name="Labels">int64 [N].</param>
/// <param name="Masks">float32 [N, 1, M, M] probabilities of each detection's class, or null without a mask branch.</param>
internal sealed record OnnxDetectionValues(string Boxes, string Scores, string Labels, string? Masks);

/// <summary>
/// Writes a <see cref="MaskRcnnModel"/> as one ONNX graph (opset 17): input <c>image</c> uint8 [3, height, width];
/// outputs <c>boxes</c> float32 [N, 4] in the input's pixels, <c>labels</c> int64 [N], <c>scores</c> float32 [N],
/// <c>masks</c> float32 [N, 1, M, M] (unpasted probabilities); settings in <c>metadata_props</c> (<c>maskrcnn.*</c>).
/// </summary>
internal static partial class OnnxExporter
{
    /// <summary>The name of the graph input.</summary>
    public const string ImageInput = "image";

    /// <summary>The value of the <c>maskrcnn.format</c> metadata entry.</summary>
    public const string FormatVersion = "1";

    /// <summary>Builds the graph of <paramref name="model"/> (see <see cref="Build"/>) and writes it to <paramref name="path"/>.</summary>
    public static void Export(MaskRcnnModel model, string path, OnnxExportOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrEmpty(path);
        var writer = Build(model, options);
        var directory = Path.GetDirectoryName(Path.GetFullPath(path));
        if (directory is not null)
        {
            Directory.CreateDirectory(directory);
        }

        writer.Save(path);
    }

    /// <summary>Builds the whole graph of <paramref name="model"/> with its metadata.</summary>
    /// <exception cref="NotSupportedException">A part of the model cannot be expressed in the graph.</exception>
    public static OnnxModelWriter Build(MaskRcnnModel model, OnnxExportOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        options ??= OnnxExportOptions.Default;
        options.Validate();
        var g = new OnnxGraphBuilder(options.Opset);
        var image = g.Input(ImageInput, OnnxElementType.UInt8, 3, "height", "width");
        var sizes = TransformExport.Emit(g, image, model.Transform.Options);
        var features = BackboneExport.Emit(g, model.Backbone, sizes.Images);

        OnnxDetectionValues? detections = null;
        EmitHeads(g, model, features, sizes, ref detections);
        if (detections is null && options.DebugOutputs == OnnxDebugOutputs.None)
        {
            throw new NotSupportedException(
                "ONNX export: this build has no RPN / RoI heads / mask head export stages (RpnExport, RoIHeadsExport, MaskHeadExport)");
        }

        if (detections is { } d)
        {
            var boxes = TransformExport.RescaleBoxes(g, sizes, d.Boxes);
            g.Output(boxes, "boxes", OnnxElementType.Float, "N", 4);
            g.Output(d.Labels, "labels", OnnxElementType.Int64, "N");
            g.Output(d.Scores, "scores", OnnxElementType.Float, "N");
            if (d.Masks is { } masks)
            {
                var m = MaskSize(model);
                g.Output(masks, "masks", OnnxElementType.Float, "N", 1, m, m);
            }
        }

        if (options.DebugOutputs.HasFlag(OnnxDebugOutputs.Transform))
        {
            g.Output(sizes.Images, "debug_images", OnnxElementType.Float, 1, 3, "padded_height", "padded_width");
            g.Output(g.Concat(0, sizes.ResizedHeight, sizes.ResizedWidth), "debug_resized_size", OnnxElementType.Int64, 2);
        }

        if (options.DebugOutputs.HasFlag(OnnxDebugOutputs.Features))
        {
            for (var i = 0; i < features.Names.Count; i++)
            {
                g.Output(features.Values[i], "debug_feature_" + features.Names[i], OnnxElementType.Float, null);
            }
        }

        var writer = g.ToWriter();
        writer.ProducerName = "MaskRcnn.Net";
        writer.ProducerVersion = ProducerVersion();
        writer.GraphName = "maskrcnn";
        foreach (var entry in Metadata(model, detections?.Masks is not null))
        {
            writer.Metadata.Add(entry);
        }

        return writer;
    }

    /// <summary>
    /// The heads hook: implemented by the heads stages' file (see the comment at the top of this file); without an
    /// implementation the call is removed and <paramref name="detections"/> stays null.
    /// </summary>
    static partial void EmitHeads(OnnxGraphBuilder g, MaskRcnnModel model, OnnxFeatureValues f, OnnxImageSizes s, ref OnnxDetectionValues? detections);

    /// <summary>The side M of the mask head's output (twice the mask pooler's, through the stride-2 transposed conv).</summary>
    internal static int MaskSize(MaskRcnnModel model) => model.Config.MaskPooler.OutputSize * 2;

    /// <summary>The <c>metadata_props</c> entries the runtime reads (all strings; lists as JSON arrays).</summary>
    internal static IReadOnlyList<KeyValuePair<string, string>> Metadata(MaskRcnnModel model, bool hasMasks)
    {
        var transform = model.Transform.Options;
        var roi = model.RoIHeads.Options;
        var list = new List<KeyValuePair<string, string>>
        {
            new("maskrcnn.format", FormatVersion),
            new("maskrcnn.class_names", JsonSerializer.Serialize(model.ClassNames)),
            new("maskrcnn.num_classes", Invariant(model.Config.NumClasses)),
            new("maskrcnn.mask_threshold", Invariant(model.Config.MaskThreshold)),
            new("maskrcnn.score_threshold", Invariant(roi.ScoreThreshold)),
            new("maskrcnn.detections_per_image", Invariant(roi.DetectionsPerImage)),
            new("maskrcnn.min_size", Invariant(transform.MinSizes[^1])),
            new("maskrcnn.max_size", Invariant(transform.MaxSize)),
            new("maskrcnn.size_divisible", Invariant(transform.SizeDivisible)),
            new("maskrcnn.image_mean", JsonSerializer.Serialize(transform.Mean ?? Heads.TransformOptions.ImageNetMean)),
            new("maskrcnn.image_std", JsonSerializer.Serialize(transform.Std ?? Heads.TransformOptions.ImageNetStd)),
            new("maskrcnn.suppress_contained", model.Config.SuppressContained is { } c ? Invariant(c) : "off"),
            new("maskrcnn.mask_scoring", model.Config.MaskScoring ? "on" : "off"),
            new("maskrcnn.mask_paste", model.Config.AlignedMaskPaste ? "aligned" : "torchvision"),
        };
        if (hasMasks)
        {
            list.Add(new("maskrcnn.mask_size", Invariant(MaskSize(model))));
        }

        return list;
    }

    private static string Invariant(double value) => value.ToString("R", CultureInfo.InvariantCulture);

    private static string Invariant(int value) => value.ToString(CultureInfo.InvariantCulture);

    private static string ProducerVersion() =>
        typeof(OnnxExporter).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
        ?? typeof(OnnxExporter).Assembly.GetName().Version?.ToString() ?? "";
}
