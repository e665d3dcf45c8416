using System.CommandLine;
using MaskRcnn.Net.Training;

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
    public static IDetectionDataset Load(DatasetFormat format, string annotations, string? images, string? defaultClass, string? classAttribute)
    {
        switch (format)
        {
            case DatasetFormat.Coco:
                return CocoDataset.Load(annotations, images ?? Path.Combine(Path.GetDirectoryName(Path.GetFullPath(annotations))!, "images"));
            case DatasetFormat.Via:
                return ViaDataset.Load(annotations, images ?? Path.GetDirectoryName(Path.GetFullPath(annotations))!,
                    new ViaOptions { ClassAttribute = classAttribute, DefaultClass = defaultClass ?? "object" });
            default:
                return LabelMeDataset.Load(annotations);
        }
    }
}
