using System.Globalization;
using System.Text.Json;

namespace MaskRcnn.Net.Video;

/// <summary>Reads a video's size, frame rate, duration, rotation and streams with ffprobe (<c>-of json</c>).</summary>
public static class VideoProbe
{
    /// <summary>Probes <paramref name="path"/>.</summary>
    /// <param name="path">The video file.</param>
    /// <param name="ffmpeg">Where ffprobe is and the probe timeout; null for the defaults.</param>
    /// <param name="cancellationToken">Kills ffprobe and throws <see cref="OperationCanceledException"/>.</param>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="VideoFormatException">ffprobe cannot read it, or it has no video stream (the message names the
    /// file and quotes ffprobe).</exception>
    /// <exception cref="FfmpegNotFoundException">ffprobe cannot be started.</exception>
    /// <exception cref="TimeoutException">ffprobe ran past <see cref="FfmpegOptions.ProbeTimeout"/> (it is killed).</exception>
    public static async Task<VideoInfo> ProbeAsync(string path, FfmpegOptions? ffmpeg = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var options = ffmpeg ?? FfmpegOptions.Default;
        options.Validate();
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"video file not found: {path}", path);
        }

        string[] args = ["-v", "error", "-of", "json", "-show_format", "-show_streams", FfmpegPaths.FileUrl(path)];
        var (exitCode, json, stderr) = await FfmpegTools.RunToEndAsync(options.FfprobePath, args, options.ProbeTimeout, path, cancellationToken).ConfigureAwait(false);
        if (exitCode != 0)
        {
            var said = stderr;
            throw new VideoFormatException(path, $"{path} is not a readable video: ffprobe exited with code {exitCode}" +
                (string.IsNullOrWhiteSpace(said) ? "" : $" and said: {said.Trim()}"));
        }

        return Parse(path, json, stderr);
    }

    /// <summary>Turns ffprobe's JSON (<c>-show_format -show_streams</c>) into a <see cref="VideoInfo"/>.</summary>
    internal static VideoInfo Parse(string path, string json, string stderr = "")
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json);
        }
        catch (JsonException e)
        {
            throw new VideoFormatException(path, $"{path}: ffprobe's output is not JSON ({e.Message})", e);
        }

        using (doc)
        {
            var root = doc.RootElement;
            var streams = root.TryGetProperty("streams", out var s) && s.ValueKind == JsonValueKind.Array ? s.EnumerateArray().ToList() : [];
            var video = streams.FirstOrDefault(e => Str(e, "codec_type") == "video" && !IsAttachedPicture(e) && Int(e, "width") > 0 && Int(e, "height") > 0);
            if (video.ValueKind != JsonValueKind.Object)
            {
                var kinds = streams.Select(e => Str(e, "codec_type") ?? "?").ToList();
                throw new VideoFormatException(path, $"{path} has no video stream (" +
                    (kinds.Count == 0 ? "ffprobe found no stream at all" : $"its streams: {string.Join(", ", kinds)}") + ")" +
                    (string.IsNullOrWhiteSpace(stderr) ? "" : $"; ffprobe said: {stderr.Trim()}"));
            }

            var audio = streams.FirstOrDefault(e => Str(e, "codec_type") == "audio");
            int storedWidth = Int(video, "width")!.Value, storedHeight = Int(video, "height")!.Value;
            var rotation = Rotation(video);
            var (width, height) = rotation % 180 == 90 ? (storedHeight, storedWidth) : (storedWidth, storedHeight);
            if (!FrameRate.TryParse(Str(video, "avg_frame_rate"), out var rate) && !FrameRate.TryParse(Str(video, "r_frame_rate"), out rate))
            {
                throw new VideoFormatException(path, $"{path}: ffprobe reports no frame rate for its video stream (avg_frame_rate '{Str(video, "avg_frame_rate")}', r_frame_rate '{Str(video, "r_frame_rate")}')");
            }

            var format = root.TryGetProperty("format", out var f) ? f : default;
            var duration = Seconds(video, "duration") ?? (format.ValueKind == JsonValueKind.Object ? Seconds(format, "duration") : null);
            var frames = long.TryParse(Str(video, "nb_frames"), NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0 ? n : (long?)null;
            return new VideoInfo(path, width, height, rate, duration, frames, rotation, Str(video, "codec_name") ?? "unknown",
                audio.ValueKind == JsonValueKind.Object ? Str(audio, "codec_name") ?? "unknown" : null, storedWidth, storedHeight);
        }
    }

    /// <summary>
    /// The display rotation, counter-clockwise degrees in {0, 90, 180, 270}: the display matrix's (ffprobe's
    /// <c>rotation</c> side data, what ffmpeg's autorotation undoes), else the legacy <c>rotate</c> tag (clockwise).
    /// </summary>
    private static int Rotation(JsonElement video)
    {
        double? degrees = null;
        if (video.TryGetProperty("side_data_list", out var sides) && sides.ValueKind == JsonValueKind.Array)
        {
            foreach (var side in sides.EnumerateArray())
            {
                if (side.TryGetProperty("rotation", out var r) && r.TryGetDouble(out var d))
                {
                    degrees = d;
                    break;
                }
            }
        }

        if (degrees is null && video.TryGetProperty("tags", out var tags) && tags.ValueKind == JsonValueKind.Object
            && double.TryParse(Str(tags, "rotate"), NumberStyles.Float, CultureInfo.InvariantCulture, out var tag))
        {
            degrees = -tag;
        }

        var quarter = (int)Math.Round((degrees ?? 0) / 90.0);
        return (quarter % 4 + 4) % 4 * 90;
    }

    private static bool IsAttachedPicture(JsonElement stream) =>
        stream.TryGetProperty("disposition", out var d) && d.ValueKind == JsonValueKind.Object
        && d.TryGetProperty("attached_pic", out var a) && a.ValueKind == JsonValueKind.Number && a.GetInt32() == 1;

    private static string? Str(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) ? v.ValueKind switch
        {
            JsonValueKind.String => v.GetString(),
            JsonValueKind.Number => v.GetRawText(),
            _ => null,
        } : null;

    private static int? Int(JsonElement e, string name) => e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out var i) ? i : null;

    private static TimeSpan? Seconds(JsonElement e, string name) =>
        double.TryParse(Str(e, name), NumberStyles.Float, CultureInfo.InvariantCulture, out var s) && s > 0 && s < TimeSpan.MaxValue.TotalSeconds ? TimeSpan.FromSeconds(s) : null;
}
