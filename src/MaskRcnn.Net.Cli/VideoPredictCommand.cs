using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using MaskRcnn.Net.Video;

namespace MaskRcnn.Net.Cli;

/// <summary>
/// <c>maskrcnn predict (--weights W | --onnx M.onnx) --video IN --out OUT.mp4 [--every N] [--json OUT.jsonl]
/// [--style overlay|splash] [--batch-size B]</c>: every frame of a video through the model (MaskRcnn.Net.Video's
/// <see cref="VideoAnnotator"/>, frames piped through the system ffmpeg as raw RGB), the detections drawn on the
/// frames and encoded with the input's frame rate and size, its audio copied. <c>--json</c> writes one line per frame
/// (<see cref="PredictionJson.Frame"/>). Progress with frames/s and ETA on standard error. The first Ctrl+C (or
/// SIGTERM) stops reading, finishes a playable OUT.mp4 holding the frames done so far and exits 130; a file that is
/// not a readable video exits 1 with a message naming it.
/// </summary>
internal static class VideoPredictCommand
{
    /// <summary>The exit code after Ctrl+C/SIGTERM: the output was finished up to the frame reached (128 + SIGINT).</summary>
    public const int InterruptedExitCode = 130;

    /// <summary>A <c>predict --video</c> run, as given on the command line.</summary>
    /// <param name="Input">The video to read (any file ffmpeg decodes).</param>
    /// <param name="Output">The annotated video to write (container from the extension, H.264), or null for JSON only.</param>
    /// <param name="JsonPath">The JSON Lines file, one line per frame, or null.</param>
    /// <param name="Every">Predict every Nth frame (1: all); the frames between carry the last prediction over.</param>
    /// <param name="Style">How the detections are drawn on the output.</param>
    /// <param name="BatchSize">Frames per model call; null for the library's default.</param>
    internal sealed record Settings(string Input, string? Output, string? JsonPath, int Every = 1, VideoStyle Style = VideoStyle.Overlay, int? BatchSize = null)
    {
        /// <summary>Checks the fields; throws <see cref="ArgumentException"/> naming the option.</summary>
        public Settings Validate()
        {
            if (string.IsNullOrWhiteSpace(Input))
            {
                throw new ArgumentException("--video needs a file");
            }

            if (Output is null && JsonPath is null)
            {
                throw new ArgumentException($"predict --video {Input} needs --out OUT.mp4 (the annotated video) and/or --json OUT.jsonl (the detections per frame)");
            }

            if (Every < 1)
            {
                throw new ArgumentException($"--every {Every}: expected a whole number of frames, at least 1");
            }

            if (BatchSize is < 1)
            {
                throw new ArgumentException($"--batch-size {BatchSize}: expected at least 1");
            }

            if (!Enum.IsDefined(Style))
            {
                throw new ArgumentException($"--style {Style}: expected overlay or splash");
            }

            foreach (var (name, path) in new[] { ("--out", Output), ("--json", JsonPath) })
            {
                if (path is not null && string.Equals(Path.GetFullPath(path), Path.GetFullPath(Input), StringComparison.Ordinal))
                {
                    throw new ArgumentException($"{name} {path} is the input video itself: give another file");
                }
            }

            if (Output is not null && JsonPath is not null && string.Equals(Path.GetFullPath(Output), Path.GetFullPath(JsonPath), StringComparison.Ordinal))
            {
                throw new ArgumentException($"--out and --json are the same file ({Output})");
            }

            return this;
        }
    }

    /// <summary>The options <c>predict</c> takes for videos.</summary>
    internal sealed class VideoOptions
    {
        private readonly Option<string?> video = new("--video") { Description = "segment every frame of this video (instead of IMAGE arguments); needs --out and/or --json" };
        private readonly Option<string?> output = new("--out") { Description = "with --video: the annotated video to write (MP4/H.264, the input's frame rate and size, its audio copied)" };
        private readonly Option<int> every = new("--every") { Description = "with --video: predict every Nth frame, the frames between carry the last masks over", DefaultValueFactory = _ => 1 };
        private readonly Option<string> style = new("--style") { Description = "with --video: overlay (masks, boxes, labels) or splash (grey frame, colour inside the masks)", DefaultValueFactory = _ => "overlay" };
        private readonly Option<int?> batchSize = new("--batch-size") { Description = "with --video: frames per model call (default: the library's)" };

        /// <summary>Adds the options to <paramref name="command"/>.</summary>
        public void AddTo(Command command)
        {
            command.Options.Add(video);
            command.Options.Add(output);
            command.Options.Add(every);
            command.Options.Add(style);
            command.Options.Add(batchSize);
        }

        /// <summary>
        /// The video run the arguments ask for, or null for images. Throws <see cref="ArgumentException"/> when they mix
        /// images and a video, or give a video option without <c>--video</c> (or an image option with it).
        /// </summary>
        public Settings? Parse(ParseResult parse, string[] images, string? json, IEnumerable<(Option Option, bool Given)> imageOnly)
        {
            var path = parse.GetValue(video);
            var videoOnly = new (Option Option, bool Given)[]
            {
                (output, parse.GetValue(output) is not null), (every, parse.GetResult(every) is { Implicit: false }),
                (style, parse.GetResult(style) is { Implicit: false }), (batchSize, parse.GetValue(batchSize) is not null),
            };
            if (path is null)
            {
                if (videoOnly.FirstOrDefault(o => o.Given).Option is { } given)
                {
                    throw new ArgumentException($"{given.Name} applies to --video FILE");
                }

                if (images.Length == 0)
                {
                    throw new ArgumentException("predict needs IMAGE arguments (JPEG or PNG files) or --video FILE");
                }

                return null;
            }

            if (images.Length > 0)
            {
                throw new ArgumentException($"predict --video {path} takes no IMAGE arguments (got {images.Length}: {string.Join(", ", images.Take(3))}): predict images and a video in separate runs");
            }

            if (imageOnly.FirstOrDefault(o => o.Given).Option is { } imageOption)
            {
                throw new ArgumentException($"{imageOption.Name} applies to IMAGE arguments; with --video the drawn frames go to --out OUT.mp4");
            }

            return new Settings(path, parse.GetValue(output), json, parse.GetValue(every), ParseStyle(parse.GetValue(style)!), parse.GetValue(batchSize)).Validate();
        }
    }

    /// <summary>Creates the video options of <c>predict</c>.</summary>
    public static VideoOptions CreateOptions() => new();

    /// <summary>Parses a <c>--style</c> value (case-insensitive).</summary>
    internal static VideoStyle ParseStyle(string value) => value.ToLowerInvariant() switch
    {
        "overlay" => VideoStyle.Overlay,
        "splash" => VideoStyle.Splash,
        _ => throw new ArgumentException($"--style {value}: expected overlay or splash"),
    };

    /// <summary>Runs <paramref name="settings"/> with <paramref name="model"/>; returns the exit code (0, or 130 after Ctrl+C).</summary>
    /// <param name="model">The model (libtorch or ONNX Runtime).</param>
    /// <param name="settings">The run.</param>
    /// <param name="minScore">Drops detections scoring at most this (for an ONNX export with a higher threshold than its own), or null.</param>
    public static int Run(IInstanceSegmenter model, Settings settings, double? minScore = null) =>
        RunAsync(model, settings, minScore, Program.Link(CancellationToken.None)).GetAwaiter().GetResult();

    private static async Task<int> RunAsync(IInstanceSegmenter model, Settings s, double? minScore, CancellationToken ct)
    {
        // Probed first: a file that is not a video fails here with a message naming it, before any output is created.
        var info = await VideoProbe.ProbeAsync(s.Input, cancellationToken: ct);
        var total = info.EstimatedFrameCount;
        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{s.Input}: {info.Width}x{info.Height}, {info.FrameRate.Value:0.###} frames/s, {(total is { } t ? $"{t} frames" : "frame count unknown")}, {info.Codec}{(info.HasAudio ? $" + {info.AudioCodec} audio" : "")}" +
            $"{(s.Every > 1 ? $", predicting every {s.Every}th frame" : "")}{(s.Output is null ? "" : $" -> {s.Output} ({s.Style.ToString().ToLowerInvariant()})")}"));

        var timed = new TimedSegmenter(model, minScore);
        var prediction = new VideoPredictionOptions { Every = s.Every };
        if (s.BatchSize is { } b)
        {
            prediction = prediction with { BatchSize = b };
        }

        StreamWriter? jsonl = null;
        if (s.JsonPath is not null)
        {
            var dir = Path.GetDirectoryName(Path.GetFullPath(s.JsonPath));
            if (!string.IsNullOrEmpty(dir))
            {
                Directory.CreateDirectory(dir);
            }

            jsonl = new StreamWriter(s.JsonPath, append: false, new UTF8Encoding(false));
        }

        long frames = 0, predicted = 0;
        ValueTask OnFrame(VideoFrameDetections f)
        {
            var seconds = f.Predicted ? timed.TakeSeconds() : 0;
            jsonl?.WriteLine(JsonSerializer.Serialize(PredictionJson.Frame(f.FrameIndex, f.Timestamp, f.Predicted, s.Input, f.Detections, seconds), PredictionJson.Options));
            frames++;
            predicted += f.Predicted ? 1 : 0;
            return ValueTask.CompletedTask;
        }

        var clock = Stopwatch.StartNew();
        var cancelled = false;
        using (var progress = new VideoProgressPrinter(ConsoleLogger.IsTerminal))
        await using (jsonl)
        {
            if (s.Output is not null)
            {
                var dir = Path.GetDirectoryName(Path.GetFullPath(s.Output));
                if (!string.IsNullOrEmpty(dir))
                {
                    Directory.CreateDirectory(dir);
                }

                var result = await VideoAnnotator.AnnotateAsync(timed, s.Input, s.Output, new VideoAnnotationOptions { Style = s.Style, Prediction = prediction },
                    progress, OnFrame, ct);
                cancelled = result.Cancelled;
            }
            else
            {
                try
                {
                    await foreach (var f in VideoPredictor.PredictVideoAsync(timed, s.Input, prediction, progress, ct))
                    {
                        await OnFrame(f);
                    }
                }
                catch (OperationCanceledException) when (ct.IsCancellationRequested)
                {
                    cancelled = true;
                }
            }
        }

        var seconds = clock.Elapsed.TotalSeconds;
        var written = string.Join(" and ", new[] { s.Output, s.JsonPath }.OfType<string>());
        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{s.Input}: {frames} frames ({predicted} predicted) in {seconds:0.0} s, {(seconds > 0 ? frames / seconds : 0):0.00} frames/s -> {written}"));
        if (cancelled)
        {
            Console.Error.WriteLine($"maskrcnn: interrupted: {written} hold{(written.Contains(" and ", StringComparison.Ordinal) ? "" : "s")} the first {frames} frames (exit code {InterruptedExitCode})");
            return InterruptedExitCode;
        }

        return 0;
    }

    /// <summary>
    /// The model as the video pipeline sees it: records each predicted frame's share of its batch's time (for the
    /// JSON's <c>seconds</c>, in frame order) and drops detections scoring at most <c>minScore</c> when given.
    /// </summary>
    private sealed class TimedSegmenter(IInstanceSegmenter inner, double? minScore) : IInstanceSegmenter
    {
        private readonly System.Collections.Concurrent.ConcurrentQueue<double> seconds = new();

        public IReadOnlyList<string> ClassNames => inner.ClassNames;

        /// <summary>The next predicted frame's seconds (0 when none was recorded).</summary>
        public double TakeSeconds() => seconds.TryDequeue(out var s) ? s : 0;

        public ImageDetections Predict(ImageSource image) => Predict([image])[0];

        public IReadOnlyList<ImageDetections> Predict(IReadOnlyList<ImageSource> images) => Timed(images.Count, () => inner.Predict(images));

        public async Task<ImageDetections> PredictAsync(ImageSource image, CancellationToken cancellationToken = default) =>
            (await PredictAsync([image], cancellationToken))[0];

        public async Task<IReadOnlyList<ImageDetections>> PredictAsync(IReadOnlyList<ImageSource> images, CancellationToken cancellationToken = default)
        {
            var clock = Stopwatch.StartNew();
            var results = await inner.PredictAsync(images, cancellationToken);
            return Record(results, clock.Elapsed.TotalSeconds);
        }

        private IReadOnlyList<ImageDetections> Timed(int count, Func<IReadOnlyList<ImageDetections>> predict)
        {
            var clock = Stopwatch.StartNew();
            var results = predict();
            return Record(results, clock.Elapsed.TotalSeconds);
        }

        private IReadOnlyList<ImageDetections> Record(IReadOnlyList<ImageDetections> results, double elapsed)
        {
            foreach (var _ in results)
            {
                seconds.Enqueue(elapsed / Math.Max(1, results.Count));
            }

            return minScore is { } t ? results.Select(r => r with { Detections = r.Detections.Where(d => d.Score > t).ToArray() }).ToArray() : results;
        }
    }
}

/// <summary>
/// Video progress on standard error: on a terminal a redrawn line with a bar, frames/s and ETA; otherwise (a log, a
/// pipe) a line for the first report and then at most one every <see cref="LineInterval"/>.
/// </summary>
internal sealed class VideoProgressPrinter(bool terminal) : IProgress<VideoProgress>, IDisposable
{
    /// <summary>The least time between two progress lines when standard error is not a terminal.</summary>
    public static readonly TimeSpan LineInterval = TimeSpan.FromSeconds(2);

    private const int Width = 24;
    private readonly Lock gate = new();
    private readonly Stopwatch sinceLine = new();
    private bool drawn;

    public void Report(VideoProgress p)
    {
        var fraction = p.TotalFrames is { } total and > 0 ? Math.Clamp((double)p.FramesDone / total, 0, 1) : (double?)null;
        var eta = p.Eta is { } e ? (e.TotalHours >= 1 ? $"{(int)e.TotalHours}h{e.Minutes:D2}m" : $"{e.Minutes}m{e.Seconds:D2}s") : "?";
        var text = string.Create(CultureInfo.InvariantCulture,
            $"frame {p.FramesDone}{(p.TotalFrames is { } n ? $"/{n}" : "")}{(fraction is { } f ? $" ({f * 100:0}%)" : "")}, {p.FramesPerSecond:0.0} frames/s, eta {eta}");
        lock (gate)
        {
            if (terminal)
            {
                var filled = (int)Math.Round((fraction ?? 0) * Width);
                Console.Error.Write($"\r\u001b[K[{new string('#', filled)}{new string('-', Width - filled)}] {text}");
                drawn = true;
            }
            else if (!sinceLine.IsRunning || sinceLine.Elapsed >= LineInterval)
            {
                Console.Error.WriteLine($"video: {text}");
                sinceLine.Restart();
            }
        }
    }

    public void Dispose()
    {
        lock (gate)
        {
            if (drawn)
            {
                Console.Error.WriteLine();
                drawn = false;
            }
        }
    }
}
