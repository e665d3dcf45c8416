using System.Text.Json;

namespace MaskRcnn.Net.Cli;

/// <summary>
/// The JSON of one image's predictions, written by <c>maskrcnn predict --json</c> (one per image under "results") and
/// returned by <c>maskrcnn serve</c>'s <c>POST /predict</c>: image, width, height, seconds, and per detection its
/// label, score, box [x1, y1, x2, y2] and mask as COCO compressed RLE (null without a mask). <c>predict --video</c>
/// writes the same object per frame, one per line, with <c>frame</c>, <c>timestamp</c> and <c>predicted</c> first.
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
        detections = Detections(result),
    };

    /// <summary>The JSON object of one image's predictions with the seconds each stage of the model took (<c>predict --profile</c>).</summary>
    public static object Result(string image, ImageDetections result, double seconds, IReadOnlyDictionary<string, double> stages) => new
    {
        image,
        width = result.Width,
        height = result.Height,
        seconds,
        stages,
        detections = Detections(result),
    };

    /// <summary>
    /// The JSON object of one video frame's predictions: <c>frame</c> (0-based index), <c>timestamp</c> (seconds from
    /// the start of the stream), <c>predicted</c> (false when <c>--every</c> carried the last prediction over), then the
    /// fields of <see cref="Result(string, ImageDetections, double)"/> (<c>image</c> is the video file, <c>seconds</c> the frame's share of its batch's
    /// prediction time, 0 when carried over).
    /// </summary>
    public static object Frame(long frame, TimeSpan timestamp, bool predicted, string video, ImageDetections result, double seconds) => new
    {
        frame,
        timestamp = timestamp.TotalSeconds,
        predicted,
        image = video,
        width = result.Width,
        height = result.Height,
        seconds,
        detections = Detections(result),
    };

    private static object[] Detections(ImageDetections result) => result.Detections.Select(d => (object)new
    {
        label = d.Label,
        score = d.Score,
        box = new[] { d.Box.X1, d.Box.Y1, d.Box.X2, d.Box.Y2 },
        mask_rle = d.ToRle() is { } rle ? new { size = new[] { rle.Height, rle.Width }, counts = rle.ToCompressedString() } : null,
    }).ToArray();
}
