using System.Runtime.CompilerServices;
using MaskRcnn.Net.Imaging;

namespace MaskRcnn.Net.Video;

/// <summary>How <see cref="VideoPredictor"/> runs a model over a video.</summary>
public sealed record VideoPredictionOptions
{
    /// <summary>The defaults.</summary>
    public static VideoPredictionOptions Default { get; } = new();

    /// <summary>Frames predicted per call of <see cref="IInstanceSegmenter.PredictAsync(IReadOnlyList{ImageSource}, CancellationToken)"/> (4).</summary>
    public int BatchSize { get; init; } = 4;

    /// <summary>
    /// Predict every Nth frame (frames 0, N, 2N, …); the frames in between carry the last prediction over
    /// (<see cref="VideoFrameDetections.Predicted"/> false). 1 (every frame) by default.
    /// </summary>
    public int Every { get; init; } = 1;

    /// <summary>Where ffmpeg/ffprobe are; null for <see cref="FfmpegOptions.Default"/>.</summary>
    public FfmpegOptions? Ffmpeg { get; init; }

    /// <summary>The clock of <see cref="VideoProgress.FramesPerSecond"/> and the ETA; null for the system clock.</summary>
    public TimeProvider? Clock { get; init; }

    /// <summary>Checks the fields; throws <see cref="ArgumentException"/> naming the field and its value.</summary>
    public void Validate()
    {
        if (BatchSize < 1)
        {
            throw new ArgumentException($"VideoPredictionOptions.BatchSize must be at least 1, got {BatchSize}", nameof(BatchSize));
        }

        if (Every < 1)
        {
            throw new ArgumentException($"VideoPredictionOptions.Every must be at least 1 (1 = every frame), got {Every}", nameof(Every));
        }

        Ffmpeg?.Validate();
    }
}

/// <summary>Progress of a video run, reported after every batch.</summary>
/// <param name="FramesDone">Frames decoded and handled so far (predicted or carried over).</param>
/// <param name="TotalFrames">The video's frame count when known (<see cref="VideoInfo.EstimatedFrameCount"/>).</param>
/// <param name="FramesPerSecond">Frames handled per second of elapsed time since the start.</param>
/// <param name="Eta">Time left at that rate, when the total is known.</param>
/// <param name="Elapsed">Time since the start.</param>
public sealed record VideoProgress(long FramesDone, long? TotalFrames, double FramesPerSecond, TimeSpan? Eta, TimeSpan Elapsed);

/// <summary>One frame and its detections.</summary>
/// <param name="FrameIndex">0-based frame index.</param>
/// <param name="Timestamp">The frame's presentation time (<see cref="VideoFrame.Timestamp"/>).</param>
/// <param name="Frame">The decoded frame, as displayed.</param>
/// <param name="Detections">The detections of this frame, or (when <paramref name="Predicted"/> is false) those of the
/// last predicted frame before it.</param>
/// <param name="Predicted">True when the model ran on this frame; false when the detections were carried over
/// (<see cref="VideoPredictionOptions.Every"/> &gt; 1).</param>
public sealed record VideoFrameDetections(long FrameIndex, TimeSpan Timestamp, RgbImage Frame, ImageDetections Detections, bool Predicted);

/// <summary>Runs an <see cref="IInstanceSegmenter"/> over the frames of a video.</summary>
public static class VideoPredictor
{
    /// <summary>
    /// Decodes <paramref name="path"/> and yields every frame with its detections, in order. Frames are streamed (at
    /// most <see cref="VideoPredictionOptions.BatchSize"/> × <see cref="VideoPredictionOptions.Every"/> of them in
    /// memory) and predicted in batches through
    /// <see cref="IInstanceSegmenter.PredictAsync(IReadOnlyList{ImageSource}, CancellationToken)"/>.
    /// </summary>
    /// <exception cref="ArgumentException">The options are invalid (the message names the field).</exception>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="VideoFormatException">Not a readable video (the message names the file).</exception>
    /// <exception cref="FfmpegNotFoundException">ffmpeg/ffprobe cannot be started.</exception>
    /// <exception cref="OperationCanceledException">Cancelled (ffmpeg is killed).</exception>
    public static IAsyncEnumerable<VideoFrameDetections> PredictVideoAsync(IInstanceSegmenter model, string path, VideoPredictionOptions? options = null,
        IProgress<VideoProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrEmpty(path);
        var o = options ?? VideoPredictionOptions.Default;
        o.Validate();
        return OpenAndPredictAsync(model, path, o, progress, cancellationToken);
    }

    /// <summary>
    /// <see cref="PredictVideoAsync(IInstanceSegmenter, string, VideoPredictionOptions, IProgress{VideoProgress}, CancellationToken)"/>
    /// over an opened reader (whose <see cref="VideoFrameReader.Info"/> the caller has already used); the reader's
    /// frames can be read only once, and the caller disposes the reader. <see cref="VideoPredictionOptions.Ffmpeg"/>
    /// is not used (the reader has its own).
    /// </summary>
    public static IAsyncEnumerable<VideoFrameDetections> PredictVideoAsync(IInstanceSegmenter model, VideoFrameReader reader, VideoPredictionOptions? options = null,
        IProgress<VideoProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(reader);
        var o = options ?? VideoPredictionOptions.Default;
        o.Validate();
        return PredictCoreAsync(model, reader, o, progress, cancellationToken);
    }

    private static async IAsyncEnumerable<VideoFrameDetections> OpenAndPredictAsync(IInstanceSegmenter model, string path, VideoPredictionOptions options,
        IProgress<VideoProgress>? progress, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await using var reader = await VideoFrameReader.OpenAsync(path, options.Ffmpeg, cancellationToken).ConfigureAwait(false);
        await foreach (var frame in PredictCoreAsync(model, reader, options, progress, cancellationToken).ConfigureAwait(false))
        {
            yield return frame;
        }
    }

    private static async IAsyncEnumerable<VideoFrameDetections> PredictCoreAsync(IInstanceSegmenter model, VideoFrameReader reader, VideoPredictionOptions options,
        IProgress<VideoProgress>? progress, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var clock = options.Clock ?? TimeProvider.System;
        var start = clock.GetTimestamp();
        var total = reader.Info.EstimatedFrameCount;
        var pending = new List<VideoFrame>(options.BatchSize * options.Every);
        var keys = 0;
        ImageDetections? last = null;
        long done = 0;
        await foreach (var frame in reader.ReadFramesAsync(cancellationToken).ConfigureAwait(false))
        {
            var isKey = frame.Index % options.Every == 0;
            if (isKey && keys == options.BatchSize)
            {
                await foreach (var result in FlushAsync().ConfigureAwait(false))
                {
                    yield return result;
                }
            }

            pending.Add(frame);
            keys += isKey ? 1 : 0;
        }

        await foreach (var result in FlushAsync().ConfigureAwait(false))
        {
            yield return result;
        }

        // Predicts the key frames of the pending ones as one batch and yields every pending frame in order.
        async IAsyncEnumerable<VideoFrameDetections> FlushAsync()
        {
            if (pending.Count == 0)
            {
                yield break;
            }

            var batch = pending.Where(f => f.Index % options.Every == 0).Select(f => ImageSource.FromImage(f.Image)).ToList();
            IReadOnlyList<ImageDetections> predicted = batch.Count == 0 ? Array.Empty<ImageDetections>() : await model.PredictAsync(batch, cancellationToken).ConfigureAwait(false);
            if (predicted.Count != batch.Count)
            {
                throw new InvalidOperationException($"the model returned {predicted.Count} results for a batch of {batch.Count} frames");
            }

            var next = 0;
            var frames = pending.ToArray();
            pending.Clear();
            keys = 0;
            foreach (var f in frames)
            {
                var isKey = f.Index % options.Every == 0;
                if (isKey)
                {
                    last = predicted[next++];
                }

                // Before the first key frame (only when a reader starts mid-stream) there is nothing to carry: no detections.
                var detections = last ?? new ImageDetections(f.Image.Width, f.Image.Height, []);
                done++;
                yield return new VideoFrameDetections(f.Index, f.Timestamp, f.Image, detections, isKey);
            }

            if (progress is not null)
            {
                var elapsed = clock.GetElapsedTime(start);
                var fps = elapsed > TimeSpan.Zero ? done / elapsed.TotalSeconds : 0;
                TimeSpan? eta = total is { } t && fps > 0 ? TimeSpan.FromSeconds(Math.Max(0, t - done) / fps) : null;
                progress.Report(new VideoProgress(done, total, fps, eta, elapsed));
            }
        }
    }
}
