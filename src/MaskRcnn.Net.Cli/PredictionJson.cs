using System.Text.Json;

namespace MaskRcnn.Net.Cli;

/// <summary>
/// The JSON of one image's predictions, written by <c>maskrcnn predict --json</c> (one per image under "results") and
/// returned by <c>maskrcnn serve</c>'s <c>POST /predict</c>: image, width, height, seconds, and per detection its
/// label, score, box [x1, y1, x2, y2] and mask as COCO compressed RLE (null without a mask).
/// </summary>
internal static class PredictionJson
{
    /// <summary>Serializer settings of every JSON the CLI writes for predictions (compact).</summary>
    public static readonly JsonSerializerOptions Options = new() { WriteIndented = false };

    /// <summary>The JSON object of one image's predictions.</summary>
    public static object Result(string image, ImageDetections result, double seconds) => new
    {
        image,
        width = result.Width,
        height = result.Height,
        seconds,
        detections = result.Detections.Select(d => new
        {
            label = d.Label,
            score = d.Score,
            box = new[] { d.Box.X1, d.Box.Y1, d.Box.X2, d.Box.Y2 },
            mask_rle = d.ToRle() is { } rle ? new { size = new[] { rle.Height, rle.Width }, counts = rle.ToCompressedString() } : null,
        }).ToArray(),
    };
}
