using System.CommandLine;
using MaskRcnn.Net.Training;
using Microsoft.Extensions.Logging;

namespace MaskRcnn.Net.Cli;

/// <summary>Dataset formats the CLI reads.</summary>
internal enum DatasetFormat
{
    /// <summary>COCO instances JSON.</summary>
    Coco,

    /// <summary>VIA 1.x / 2.x project JSON.</summary>
    Via,

    /// <summary>A folder of LabelMe JSON files.</summary>
    LabelMe,
}

/// <summary>Loads a dataset given on the command line.</summary>
internal static class DatasetLoader
{
    /// <summary>Prints the readers' warnings (skipped annotations and images) to standard error.</summary>
    public static ILogger Logger { get; } = new ConsoleLogger();

    /// <summary>The <c>--bad-annotations Skip|Fail</c> option of <c>train</c> and <c>eval</c>.</summary>
    public static Option<BadAnnotationPolicy> BadAnnotationsOption() => new("--bad-annotations")
    {
        Description = "Skip: warn about and drop bad annotations (unknown class, degenerate shape, missing image file) and go on; Fail: stop at the first",
        DefaultValueFactory = _ => BadAnnotationPolicy.Skip,
    };

    /// <summary>
    /// Reads a COCO, VIA or LabelMe dataset; bad annotations are skipped or fatal as <paramref name="badAnnotations"/>
    /// says, and the warnings go to <paramref name="logger"/> (default <see cref="Logger"/>, standard error).
    /// </summary>
    public static IDetectionDataset Load(DatasetFormat format, string annotations, string? images, string? defaultClass, string? classAttribute,
        BadAnnotationPolicy badAnnotations = BadAnnotationPolicy.Skip, ILogger? logger = null)
    {
        logger ??= Logger;
        switch (format)
        {
            case DatasetFormat.Coco:
                return CocoDataset.Load(annotations, images ?? Path.Combine(Path.GetDirectoryName(Path.GetFullPath(annotations))!, "images"),
                    new CocoOptions { BadAnnotations = badAnnotations, Logger = logger });
            case DatasetFormat.Via:
                return ViaDataset.Load(annotations, images ?? Path.GetDirectoryName(Path.GetFullPath(annotations))!,
                    new ViaOptions { ClassAttribute = classAttribute, DefaultClass = defaultClass ?? "object", BadAnnotations = badAnnotations, Logger = logger });
            default:
                return LabelMeDataset.Load(annotations, new LabelMeOptions { BadAnnotations = badAnnotations, Logger = logger });
        }
    }
}
