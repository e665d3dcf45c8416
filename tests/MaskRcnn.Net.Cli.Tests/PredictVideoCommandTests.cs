using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using MaskRcnn.Net.Backbones;
using MaskRcnn.Net.Core.Masks;
using MaskRcnn.Net.Imaging;
using MaskRcnn.Net.Tests;

namespace MaskRcnn.Net.Cli.Tests;

/// <summary>
/// A seeded model that detects on any image, and short lossless test videos made at test time with ffmpeg from the
/// shipped validation MRI slices, each scaled to 160x128 (FFV1 in Matroska, 10 frames/s, with an AAC tone as audio).
/// </summary>
public sealed class VideoFixture : IDisposable
{
    /// <summary>Frames of <see cref="Video"/>.</summary>
    public const int Frames = 12;

    /// <summary>Frames of <see cref="LongVideo"/>.</summary>
    public const int LongFrames = 600;

    /// <summary>The frame size and rate of the test videos.</summary>
    public const int Width = 160, Height = 128, Rate = 10;

    public VideoFixture()
    {
        Dir = Directory.CreateTempSubdirectory("mr_video_cli_").FullName;
        Model = Path.Combine(Dir, "detector.safetensors");
        using (var model = new MaskRcnnBuilder().WithBackbone(18, NormKind.FrozenBatchNorm).WithClasses("tumor", "other")
                   .WithImageSize(128, 160).WithScoreThreshold(0.0).WithDetectionsPerImage(10).WithSeed(3).Build())
        {
            model.Save(Model);
        }

        var slices = Path.Combine(Dir, "slices");
        Directory.CreateDirectory(slices);
        var sources = Directory.GetFiles(RepoPaths.Get("data", "brain-tumor", "val", "images"), "*.jpg").Order(StringComparer.Ordinal).ToArray();
        for (var i = 0; i < Frames; i++)
        {
            // Every third slice: neighbouring frames differ, so a carried-over prediction is not the frame's own.
            File.Copy(sources[i * 3 % sources.Length], Path.Combine(slices, $"{i:D3}.jpg"));
        }

        Video = Path.Combine(Dir, "slices.mkv");
        Media.Ffmpeg("-framerate", $"{Rate}", "-i", Path.Combine(slices, "%03d.jpg"), "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
            "-map", "0:v", "-map", "1:a", "-shortest", "-vf", $"scale={Width}:{Height},format=rgb24", "-c:v", "ffv1", "-c:a", "aac", Video);
        LongVideo = Path.Combine(Dir, "long.mkv");
        Media.Ffmpeg("-stream_loop", $"{LongFrames / Frames - 1}", "-i", Video, "-map", "0:v", "-c:v", "ffv1", LongVideo);
    }

    /// <summary>Up to 10 detections with masks per image at score threshold 0 (seeded random weights).</summary>
    public string Model { get; }

    /// <summary>12 frames, 160x128, 10 frames/s, lossless, with audio.</summary>
    public string Video { get; }

    /// <summary><see cref="Video"/>'s frames looped to 600 (no audio): a run that is still going when it is interrupted.</summary>
    public string LongVideo { get; }

    /// <summary>A scratch folder removed with the fixture.</summary>
    public string Dir { get; }

    public void Dispose() => Directory.Delete(Dir, true);
}

/// <summary>
/// <c>maskrcnn predict --video</c>: the output video keeps the input's frame count, size and rate (ffprobe), the JSON
/// Lines equal <c>maskrcnn predict --json</c> on each frame decoded by ffmpeg, <c>--every</c> carries predictions over,
/// bad files exit 1 naming the file without leaving an ffmpeg process, and Ctrl+C leaves a playable shorter video.
/// </summary>
[Collection("cli")]
public sealed class PredictVideoCommandTests(VideoFixture video) : IClassFixture<VideoFixture>, IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("mr_video_run_").FullName;

    public void Dispose() => Directory.Delete(dir, true);

    private sealed record Det(int Label, double Score, float[] Box, BinaryMask Mask);

    private sealed record FrameLine(long Frame, double Timestamp, bool Predicted, string Image, int Width, int Height, string DetectionsJson, List<Det> Detections);

    private static List<Det> Detections(JsonElement result)
    {
        var (width, height) = (result.GetProperty("width").GetInt32(), result.GetProperty("height").GetInt32());
        return result.GetProperty("detections").EnumerateArray().Select(d =>
        {
            var rle = d.GetProperty("mask_rle");
            rle.GetProperty("size").EnumerateArray().Select(v => v.GetInt32()).Should().Equal(height, width);
            return new Det(d.GetProperty("label").GetInt32(), d.GetProperty("score").GetDouble(),
                d.GetProperty("box").EnumerateArray().Select(v => v.GetSingle()).ToArray(),
                Rle.FromCompressedString(rle.GetProperty("counts").GetString()!, height, width).Decode());
        }).ToList();
    }

    private static List<FrameLine> ReadJsonLines(string path) => File.ReadLines(path).Select(line =>
    {
        using var doc = JsonDocument.Parse(line);
        var r = doc.RootElement;
        return new FrameLine(r.GetProperty("frame").GetInt64(), r.GetProperty("timestamp").GetDouble(), r.GetProperty("predicted").GetBoolean(),
            r.GetProperty("image").GetString()!, r.GetProperty("width").GetInt32(), r.GetProperty("height").GetInt32(),
            r.GetProperty("detections").GetRawText(), Detections(r));
    }).ToList();

    /// <summary>
    /// Runs the built CLI in a child process and waits for exit code 0. Child processes, because libtorch's thread
    /// settings are per process (and per OpenMP thread): this test process has run other commands with other
    /// <c>--threads</c>, and two runs compare bit for bit only at the same settings.
    /// </summary>
    private static async Task RunCliAsync(params string[] args)
    {
        await using var cli = CliProcess.Start(args);
        (await cli.WaitForExitAsync()).Should().Be(0, $"maskrcnn {string.Join(' ', args)}; stderr:\n{cli.Log}");
    }

    /// <summary>The input's frames decoded by ffmpeg to PNG and run through <c>maskrcnn predict --json</c>: the truth per frame.</summary>
    private async Task<List<List<Det>>> PredictDecodedFramesAsync(string input)
    {
        var frames = Path.Combine(dir, "frames");
        Directory.CreateDirectory(frames);
        Media.Ffmpeg("-i", input, "-map", "0:v", "-pix_fmt", "rgb24", "-start_number", "0", Path.Combine(frames, "%03d.png"));
        var pngs = Directory.GetFiles(frames, "*.png").Order(StringComparer.Ordinal).ToArray();
        pngs.Should().HaveCount(VideoFixture.Frames);
        var json = Path.Combine(dir, "frames.json");
        await RunCliAsync(["predict", "--weights", video.Model, "--json", json, .. pngs]);
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        return doc.RootElement.GetProperty("results").EnumerateArray().Select(Detections).ToList();
    }

    /// <summary>As the image predict tests compare: same count, labels, boxes, masks; scores to 1e-6.</summary>
    private static void ShouldEqual(List<Det> actual, List<Det> expected, string what)
    {
        expected.Should().NotBeEmpty($"{what}: the model detects something, so the comparison is not of two empty lists");
        actual.Should().HaveCount(expected.Count, what);
        for (var i = 0; i < expected.Count; i++)
        {
            actual[i].Label.Should().Be(expected[i].Label, what);
            actual[i].Score.Should().BeApproximately(expected[i].Score, 1e-6, what);
            actual[i].Box.Should().Equal(expected[i].Box, what);
            actual[i].Mask.Should().Be(expected[i].Mask, what);
        }
    }

    [Fact]
    public async Task Predict_video_keeps_frame_count_size_rate_and_audio_and_its_json_lines_equal_predict_on_each_decoded_frame()
    {
        var output = Path.Combine(dir, "out", "annotated.mp4");
        var jsonl = Path.Combine(dir, "out", "frames.jsonl");
        // Batches of 1: each frame goes through the model alone, as each PNG does in `predict`, so the results are
        // bit-identical (a batch of several frames runs other convolution kernels: scores agree to ~1e-5 only).
        await RunCliAsync("predict", "--weights", video.Model, "--video", video.Video, "--out", output, "--json", jsonl, "--batch-size", "1", "--style", "splash");

        var input = Media.Probe(video.Video);
        input.Should().Be(new Media.Streams(VideoFixture.Frames, VideoFixture.Width, VideoFixture.Height, $"{VideoFixture.Rate}/1", HasAudio: true));
        Media.Probe(output).Should().Be(input, "the output has the input's frame count, size, rate and audio");

        var lines = ReadJsonLines(jsonl);
        lines.Select(l => l.Frame).Should().Equal(Enumerable.Range(0, VideoFixture.Frames).Select(i => (long)i));
        lines.Select(l => l.Timestamp).Should().Equal(Enumerable.Range(0, VideoFixture.Frames).Select(i => i / (double)VideoFixture.Rate),
            (a, b) => Math.Abs(a - b) < 1e-9);
        lines.Should().OnlyContain(l => l.Predicted && l.Image == video.Video && l.Width == VideoFixture.Width && l.Height == VideoFixture.Height);

        var truth = await PredictDecodedFramesAsync(video.Video);
        for (var i = 0; i < VideoFixture.Frames; i++)
        {
            ShouldEqual(lines[i].Detections, truth[i], $"frame {i}");
        }

        truth.Select(t => t[0].Box).Distinct(new BoxComparer()).Should().HaveCountGreaterThan(1, "the frames differ, so their detections do");
    }

    [Fact]
    public async Task Every_third_frame_is_predicted_in_batches_and_the_frames_between_carry_its_detections_over()
    {
        // JSON only (no --out): the frames go through VideoPredictor alone, nothing is encoded.
        var jsonl = Path.Combine(dir, "every3.jsonl");
        Program.Main(["predict", "--weights", video.Model, "--video", video.Video, "--every", "3", "--batch-size", "2", "--json", jsonl]).Should().Be(0);
        Directory.GetFiles(dir).Should().Equal([jsonl], "without --out no video is written");

        var lines = ReadJsonLines(jsonl);
        lines.Should().HaveCount(VideoFixture.Frames);
        lines.Where(l => l.Predicted).Select(l => l.Frame).Should().Equal(0, 3, 6, 9);
        lines.Count(l => l.Predicted).Should().Be(VideoFixture.Frames / 3, "a third of the frames are predicted");
        for (var i = 0; i < VideoFixture.Frames; i++)
        {
            lines[i].DetectionsJson.Should().Be(lines[i - i % 3].DetectionsJson, $"frame {i} carries frame {i - i % 3}'s masks over");
        }

        // The predicted frames ran two to a batch: their detections match `predict` on the decoded frame to batch
        // precision (same labels, boxes to 0.01 px, scores to 1e-4, masks' IoU >= 0.98).
        var truth = await PredictDecodedFramesAsync(video.Video);
        foreach (var i in new[] { 0, 3, 6, 9 })
        {
            var (actual, expected) = (lines[i].Detections, truth[i]);
            actual.Should().HaveCount(expected.Count, $"frame {i}");
            for (var d = 0; d < expected.Count; d++)
            {
                actual[d].Label.Should().Be(expected[d].Label, $"frame {i} detection {d}");
                actual[d].Score.Should().BeApproximately(expected[d].Score, 1e-4, $"frame {i} detection {d}");
                actual[d].Box.Zip(expected[d].Box).Should().OnlyContain(p => Math.Abs(p.First - p.Second) < 0.01f, $"frame {i} detection {d}");
                Rle.Iou(actual[d].Mask.ToRle(), expected[d].Mask.ToRle(), isCrowd: false).Should().BeGreaterThanOrEqualTo(0.98, $"frame {i} detection {d}");
            }
        }

        lines[1].Detections[0].Box.Should().NotEqual(truth[1][0].Box, "frame 1 is another slice: its own detections differ from the ones carried over");
    }

    [Fact]
    public async Task A_truncated_or_non_video_file_exits_1_naming_the_file_and_leaves_no_ffmpeg_process()
    {
        var notVideo = Path.Combine(dir, "notes-not-a-video.mp4");
        await File.WriteAllTextAsync(notVideo, "this is a text file, not a video\n");
        var mp4 = Path.Combine(dir, "whole.mp4");
        Media.Ffmpeg("-i", video.Video, "-map", "0:v", "-c:v", "libx264", "-pix_fmt", "yuv420p", mp4);
        var truncatedMp4 = Path.Combine(dir, "truncated-cut.mp4");
        var bytes = await File.ReadAllBytesAsync(mp4);
        await File.WriteAllBytesAsync(truncatedMp4, bytes[..(bytes.Length / 2)]);
        // With the index first (+faststart): the header declares 12 frames, the data ends after about half of them.
        var fastStart = Path.Combine(dir, "whole-faststart.mp4");
        Media.Ffmpeg("-i", video.Video, "-map", "0:v", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-movflags", "+faststart", fastStart);
        var truncatedData = Path.Combine(dir, "truncated-data.mp4");
        bytes = await File.ReadAllBytesAsync(fastStart);
        await File.WriteAllBytesAsync(truncatedData, bytes[..(bytes.Length / 2)]);

        // Matroska declares no frame count: the decoder's "File ended prematurely" and the duration tell.
        var truncatedMkv = Path.Combine(dir, "truncated-cut.mkv");
        bytes = await File.ReadAllBytesAsync(video.Video);
        await File.WriteAllBytesAsync(truncatedMkv, bytes[..(bytes.Length / 2)]);

        foreach (var bad in new[] { notVideo, truncatedMp4, truncatedData, truncatedMkv })
        {
            var output = Path.Combine(dir, Path.GetFileNameWithoutExtension(bad) + "-out.mp4");
            await using var cli = CliProcess.Start("predict", "--weights", video.Model, "--video", bad, "--out", output, "--json", output + ".jsonl");
            var exit = await cli.WaitForExitAsync();
            exit.Should().Be(1, $"{bad}: stderr:\n{cli.Log}");
            cli.Log.Should().Contain(bad, "the message names the file").And.NotContain("Unhandled exception");
            Media.ProcessesMentioning(bad).Should().BeEmpty("no ffmpeg/ffprobe process is left behind");
        }

        using var error = new StringWriter();
        var previous = Console.Error;
        Console.SetError(error);
        try
        {
            Program.Main(["predict", "--weights", video.Model, "--video", notVideo, "--json", Path.Combine(dir, "x.jsonl")]).Should().Be(1);
        }
        finally
        {
            Console.SetError(previous);
        }

        error.ToString().Should().Contain(notVideo);
        Media.ChildProcesses(Environment.ProcessId).Should().NotContain(p => p.Name == "ffmpeg" || p.Name == "ffprobe", "in-process: no child ffmpeg either");
    }

    /// <summary>
    /// SIGINT is sent once the CLI has reported its first frames of a 600-frame video (it handles a few frames per
    /// second here, so it is far from the end): it must finish a playable MP4 of the frames done so far and exit 130.
    /// </summary>
    [Fact]
    public async Task Ctrl_c_finishes_a_playable_video_of_the_frames_done_and_exits_130()
    {
        var output = Path.Combine(dir, "interrupted.mp4");
        var jsonl = Path.Combine(dir, "interrupted.jsonl");
        await using var cli = CliProcess.Start("predict", "--weights", video.Model, "--video", video.LongVideo, "--out", output, "--json", jsonl,
            "--batch-size", "2", "--threads", "1");
        (await cli.WaitForLogAsync("video: frame ")).Should().BeTrue($"the CLI reports progress; stderr:\n{cli.Log}");
        // A process started in the background by a non-interactive shell inherits SIGINT as ignored: SIGTERM then
        // (the CLI handles both with the same handler).
        cli.Signal(Media.SignalIgnored(cli.Id, 2) ? "TERM" : "INT");
        var exit = await cli.WaitForExitAsync();
        exit.Should().Be(130, $"stderr:\n{cli.Log}");
        cli.Log.Should().Contain("interrupted").And.Contain("finishing the output up to the current frame");

        var written = Media.Probe(output);
        written.Frames.Should().BeGreaterThan(0).And.BeLessThan(VideoFixture.LongFrames, "a playable video of the frames done before Ctrl+C");
        (written.Width, written.Height, written.Rate).Should().Be((VideoFixture.Width, VideoFixture.Height, $"{VideoFixture.Rate}/1"));
        File.ReadLines(jsonl).Count().Should().Be((int)written.Frames, "one JSON line per frame written");
        Media.ProcessesMentioning(video.LongVideo).Should().BeEmpty("no ffmpeg process is left behind");
    }

    /// <summary>
    /// <c>predict --onnx --video</c>: the fixture model exported by <c>maskrcnn export</c>, run by ONNX Runtime over the
    /// video, gives per frame what <c>predict --onnx</c> gives on the frame decoded to PNG.
    /// </summary>
    [Fact]
    public async Task Predict_video_with_an_onnx_export_equals_predict_onnx_on_each_decoded_frame()
    {
        var onnx = Path.Combine(dir, "detector.onnx");
        Program.Main(["export", "--weights", video.Model, "--onnx", onnx]).Should().Be(0);
        var jsonl = Path.Combine(dir, "onnx.jsonl");
        await RunCliAsync("predict", "--onnx", onnx, "--video", video.Video, "--json", jsonl, "--threads", "1");

        var frames = Path.Combine(dir, "frames");
        Directory.CreateDirectory(frames);
        Media.Ffmpeg("-i", video.Video, "-map", "0:v", "-pix_fmt", "rgb24", "-start_number", "0", Path.Combine(frames, "%03d.png"));
        var json = Path.Combine(dir, "onnx-frames.json");
        await RunCliAsync(["predict", "--onnx", onnx, "--threads", "1", "--json", json, .. Directory.GetFiles(frames, "*.png").Order(StringComparer.Ordinal)]);
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        var truth = doc.RootElement.GetProperty("results").EnumerateArray().Select(Detections).ToList();

        var lines = ReadJsonLines(jsonl);
        lines.Should().HaveCount(VideoFixture.Frames);
        truth.Should().HaveCount(VideoFixture.Frames);
        for (var i = 0; i < VideoFixture.Frames; i++)
        {
            ShouldEqual(lines[i].Detections, truth[i], $"frame {i} (ONNX Runtime)");
        }
    }

    [Fact]
    public void Images_and_a_video_are_not_mixed_and_video_options_need_a_video()
    {
        string Refusal(params string[] args)
        {
            using var error = new StringWriter();
            var previous = Console.Error;
            Console.SetError(error);
            try
            {
                Program.Main(["predict", "--weights", video.Model, .. args]).Should().Be(1, string.Join(' ', args));
            }
            finally
            {
                Console.SetError(previous);
            }

            return error.ToString();
        }

        var image = RepoPaths.MriImage(0);
        var mp4 = Path.Combine(dir, "o.mp4");
        Refusal("--video", video.Video, "--out", mp4, image).Should().Contain("takes no IMAGE arguments").And.Contain(image);
        Refusal("--json", Path.Combine(dir, "o.json"), "--every", "2", image).Should().Contain("--every applies to --video");
        Refusal("--json", Path.Combine(dir, "o.json"), "--out", mp4, image).Should().Contain("--out applies to --video");
        Refusal("--video", video.Video).Should().Contain("needs --out OUT.mp4").And.Contain("--json OUT.jsonl");
        Refusal("--video", video.Video, "--out", mp4, "--overlay-dir", dir).Should().Contain("--overlay-dir applies to IMAGE arguments");
        Refusal("--video", video.Video, "--out", mp4, "--every", "0").Should().Contain("--every 0");
        Refusal("--video", video.Video, "--out", mp4, "--style", "sepia").Should().Contain("--style sepia").And.Contain("overlay or splash");
        Refusal("--video", video.Video, "--out", video.Video).Should().Contain("is the input video itself");
        Refusal("--json", Path.Combine(dir, "o.json")).Should().Contain("IMAGE arguments").And.Contain("--video");
        Refusal(image).Should().Contain("--json");
        File.Exists(mp4).Should().BeFalse("every refusal comes before any output");
    }

    [Fact]
    public async Task The_demo_splash_video_holds_each_slice_letterboxed_to_one_size()
    {
        var images = Directory.GetFiles(RepoPaths.Get("data", "brain-tumor", "val", "images"), "*.jpg").Order(StringComparer.Ordinal).Take(5).ToList();
        images.Add(RepoPaths.Get("data", "brain-tumor", "val", "images", "00291_22.jpg")); // 416x512: scaled down, unlike the 256-px ones
        var output = Path.Combine(dir, "splash.mp4");
        using (var model = MaskRcnnModel.Load(video.Model))
        {
            (await DemoVideo.WriteSplashAsync(model, images, output, CancellationToken.None)).Should().Be(images.Count);
        }

        Media.Probe(output).Should().Be(new Media.Streams(images.Count, DemoVideo.Size, DemoVideo.Size, $"{DemoVideo.FramesPerSecond}/1", HasAudio: false));
    }

    [Fact]
    public void Letterbox_keeps_the_aspect_ratio_centres_on_black_and_copies_pixels_at_scale_1()
    {
        // 2 wide, 4 high into 4x4: scale 1, columns 1-2 hold the image, columns 0 and 3 are black.
        var pixels = Enumerable.Range(0, 2 * 4 * 3).Select(i => (byte)(10 + i)).ToArray();
        var boxed = DemoVideo.Letterbox(new RgbImage(2, 4, pixels), 4);
        for (var y = 0; y < 4; y++)
        {
            boxed.Pixels.AsSpan((y * 4 + 1) * 3, 6).ToArray().Should().Equal(pixels.AsSpan(y * 6, 6).ToArray(), $"row {y}");
            boxed.Pixels.AsSpan(y * 4 * 3, 3).ToArray().Should().Equal(new byte[3]);
            boxed.Pixels.AsSpan((y * 4 + 3) * 3, 3).ToArray().Should().Equal(new byte[3]);
        }

        // 416x512 of one colour into 256x256: scale 0.5 -> 208x256 centred (24 black columns each side).
        var grey = DemoVideo.Letterbox(RgbImage.Filled(416, 512, 90, 120, 150), 256);
        for (var x = 0; x < 256; x++)
        {
            var expected = x is >= 24 and < 232 ? new byte[] { 90, 120, 150 } : new byte[3];
            grey.Pixels.AsSpan((100 * 256 + x) * 3, 3).ToArray().Should().Equal(expected, $"column {x}");
        }
    }

    private sealed class BoxComparer : IEqualityComparer<float[]>
    {
        public bool Equals(float[]? x, float[]? y) => x!.SequenceEqual(y!);

        public int GetHashCode(float[] obj) => obj.Length == 0 ? 0 : obj[0].GetHashCode();
    }
}

/// <summary>ffmpeg/ffprobe for the tests, and the process table.</summary>
internal static class Media
{
    /// <summary>What ffprobe counts in a file: decoded video frames, size, rate, whether there is audio.</summary>
    public sealed record Streams(long Frames, int Width, int Height, string Rate, bool HasAudio);

    /// <summary>Runs ffmpeg (overwriting, quiet) and fails with its stderr when it fails.</summary>
    public static void Ffmpeg(params string[] args) => Run("ffmpeg", ["-y", "-nostdin", "-v", "error", .. args]);

    /// <summary>Counts the decoded frames of the first video stream (ffprobe -count_frames) and reads its size and rate.</summary>
    public static Streams Probe(string path)
    {
        var json = Run("ffprobe", ["-v", "error", "-count_frames", "-show_entries", "stream=codec_type,width,height,r_frame_rate,nb_read_frames", "-of", "json", path]);
        using var doc = JsonDocument.Parse(json);
        var streams = doc.RootElement.GetProperty("streams").EnumerateArray().ToList();
        var v = streams.First(s => s.GetProperty("codec_type").GetString() == "video");
        return new Streams(long.Parse(v.GetProperty("nb_read_frames").GetString()!, CultureInfo.InvariantCulture), v.GetProperty("width").GetInt32(),
            v.GetProperty("height").GetInt32(), v.GetProperty("r_frame_rate").GetString()!, streams.Any(s => s.GetProperty("codec_type").GetString() == "audio"));
    }

    private static string Run(string exe, string[] args)
    {
        var start = new ProcessStartInfo(exe) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
        {
            start.ArgumentList.Add(a);
        }

        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        var stdout = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{exe} {string.Join(' ', args)} exited with {process.ExitCode}: {stderr.Result}");
        }

        return stdout;
    }

    /// <summary>Processes (pid, name) whose parent is <paramref name="pid"/>, from /proc.</summary>
    public static List<(int Pid, string Name)> ChildProcesses(int pid) => Pids()
        .Select(p => (Pid: p, Stat: Read($"/proc/{p}/stat")))
        .Where(p => p.Stat is not null && ParentOf(p.Stat) == pid)
        .Select(p => (p.Pid, Name: Read($"/proc/{p.Pid}/comm")?.Trim() ?? "")).ToList();

    /// <summary>Every running process (pid, command line) whose command line mentions <paramref name="path"/>.</summary>
    public static List<(int Pid, string CommandLine)> ProcessesMentioning(string path) => Pids()
        .Select(p => (Pid: p, CommandLine: Read($"/proc/{p}/cmdline")?.Replace('\0', ' ') ?? ""))
        .Where(p => p.Pid != Environment.ProcessId && p.CommandLine.Contains(path, StringComparison.Ordinal) && !p.CommandLine.Contains("maskrcnn.dll", StringComparison.Ordinal))
        .ToList();

    /// <summary>True when <paramref name="pid"/> ignores signal <paramref name="number"/> (SigIgn in /proc/PID/status).</summary>
    public static bool SignalIgnored(int pid, int number)
    {
        var line = File.ReadLines($"/proc/{pid}/status").Single(l => l.StartsWith("SigIgn:", StringComparison.Ordinal));
        var mask = ulong.Parse(line["SigIgn:".Length..].Trim(), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        return (mask & (1UL << (number - 1))) != 0;
    }

    private static IEnumerable<int> Pids() => Directory.EnumerateDirectories("/proc")
        .Select(d => int.TryParse(Path.GetFileName(d), NumberStyles.None, CultureInfo.InvariantCulture, out var p) ? p : -1).Where(p => p > 0);

    /// <summary>The parent pid from /proc/PID/stat ("pid (comm) state ppid ...": comm may hold spaces and parentheses).</summary>
    private static int ParentOf(string stat) =>
        int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[1], CultureInfo.InvariantCulture);

    private static string? Read(string path)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null; // the process ended while the table was read
        }
    }
}

/// <summary>
/// The built CLI as a child process (<c>dotnet maskrcnn.dll ARGS</c>) with its standard error collected line by line;
/// disposing kills it (and its children) if it still runs.
/// </summary>
internal sealed class CliProcess : IAsyncDisposable
{
    /// <summary>Hang guard of every wait (the runs take seconds).</summary>
    private static readonly TimeSpan HangGuard = TimeSpan.FromMinutes(3);

    private readonly Process process;
    private readonly StringBuilder errors = new();
    private readonly Task stderr;
    private readonly Task<string> stdout;

    private CliProcess(Process process)
    {
        this.process = process;
        stderr = Task.Run(async () =>
        {
            while (await process.StandardError.ReadLineAsync() is { } line)
            {
                lock (errors)
                {
                    errors.AppendLine(line);
                }
            }
        });
        stdout = process.StandardOutput.ReadToEndAsync();
    }

    /// <summary>The process id.</summary>
    public int Id => process.Id;

    /// <summary>Standard error so far.</summary>
    public string Log
    {
        get
        {
            lock (errors)
            {
                return errors.ToString();
            }
        }
    }

    public static CliProcess Start(params string[] args) => Start(new Dictionary<string, string>(), args);

    /// <summary>Starts another executable (e.g. a shell that runs the CLI) with the same output handling.</summary>
    public static CliProcess StartExecutable(string exe, params string[] args)
    {
        var start = new ProcessStartInfo(exe) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in args)
        {
            start.ArgumentList.Add(a);
        }

        return new CliProcess(Process.Start(start)!);
    }

    /// <summary>Starts the CLI with extra environment variables.</summary>
    public static CliProcess Start(IReadOnlyDictionary<string, string> environment, params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var (k, v) in environment)
        {
            start.Environment[k] = v;
        }

        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "maskrcnn.dll"));
        foreach (var a in args)
        {
            start.ArgumentList.Add(a);
        }

        return new CliProcess(Process.Start(start)!);
    }

    /// <summary>Waits until standard error holds <paramref name="text"/> (false if the process ends first or the hang guard).</summary>
    public async Task<bool> WaitForLogAsync(string text)
    {
        using var guard = new CancellationTokenSource(HangGuard);
        while (!Log.Contains(text, StringComparison.Ordinal) && !process.HasExited && !guard.IsCancellationRequested)
        {
            await Task.Delay(20, CancellationToken.None);
        }

        return Log.Contains(text, StringComparison.Ordinal);
    }

    /// <summary>Sends a signal ("INT", "TERM") with kill(1).</summary>
    public void Signal(string name)
    {
        using var kill = Process.Start("kill", [$"-{name}", process.Id.ToString(CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
        kill.ExitCode.Should().Be(0, $"kill -{name} reaches the CLI");
    }

    /// <summary>Waits for the exit (null past the hang guard) and the end of its output.</summary>
    public async Task<int?> WaitForExitAsync()
    {
        using var guard = new CancellationTokenSource(HangGuard);
        try
        {
            await process.WaitForExitAsync(guard.Token);
        }
        catch (OperationCanceledException)
        {
            return null;
        }

        await stderr;
        await stdout;
        return process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        if (!process.HasExited)
        {
            try
            {
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync(CancellationToken.None);
            }
            catch (InvalidOperationException)
            {
                // already exited
            }
        }

        await stderr;
        await stdout;
        process.Dispose();
    }
}
