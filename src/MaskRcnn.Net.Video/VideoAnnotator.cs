namespace MaskRcnn.Net.Video;

/// <summary>How <see cref="VideoAnnotator"/> predicts, draws and encodes.</summary>
public sealed record VideoAnnotationOptions
{
    /// <summary>The defaults: overlay, every frame, batches of 4, H.264 (libx264, CRF 18, yuv420p), audio copied.</summary>
    public static VideoAnnotationOptions Default { get; } = new();

    /// <summary>Overlay (masks, boxes, labels) or Splash (grey outside the masks).</summary>
    public VideoStyle Style { get; init; } = VideoStyle.Overlay;

    /// <summary>Drawing options (opacity, line width, font, minimum score); null for the defaults.</summary>
    public VisualizerOptions? Visualizer { get; init; }

    /// <summary>Batch size, every Nth frame, ffmpeg location, clock.</summary>
    public VideoPredictionOptions Prediction { get; init; } = VideoPredictionOptions.Default;

    /// <summary>The output encoder (<see cref="VideoWriterOptions.Codec"/>, libx264).</summary>
    public string Codec { get; init; } = "libx264";

    /// <summary>The output CRF (<see cref="VideoWriterOptions.Quality"/>, 18).</summary>
    public int? Quality { get; init; } = 18;

    /// <summary>The output pixel format (<see cref="VideoWriterOptions.PixelFormat"/>, yuv420p: odd sizes padded to even).</summary>
    public string PixelFormat { get; init; } = "yuv420p";

    /// <summary>Copy the input's audio into the output (true).</summary>
    public bool CopyAudio { get; init; } = true;

    /// <summary>More ffmpeg output options (<see cref="VideoWriterOptions.ExtraArguments"/>).</summary>
    public IReadOnlyList<string> ExtraArguments { get; init; } = [];

    /// <summary>Checks the fields (and the nested options); throws <see cref="ArgumentException"/> naming the field.</summary>
    public void Validate()
    {
        if (!Enum.IsDefined(Style))
        {
            throw new ArgumentException($"VideoAnnotationOptions.Style must be Overlay or Splash, got {Style}", nameof(Style));
        }

        if (Prediction is null)
        {
            throw new ArgumentException("VideoAnnotationOptions.Prediction must not be null", nameof(Prediction));
        }

        Prediction.Validate();
        WriterOptions(1, 1, new FrameRate(1, 1), null).Validate();
    }

    /// <summary>The writer options for a video of this size and rate.</summary>
    internal VideoWriterOptions WriterOptions(int width, int height, FrameRate rate, string? audioFrom) => new(width, height, rate)
    {
        Codec = Codec,
        Quality = Quality,
        PixelFormat = PixelFormat,
        AudioFrom = audioFrom,
        ExtraArguments = ExtraArguments,
    };
}

/// <summary>What <see cref="VideoAnnotator.AnnotateAsync"/> did.</summary>
/// <param name="Input">What ffprobe said about the input.</param>
/// <param name="OutputPath">The video written.</param>
/// <param name="FramesRead">Frames decoded from the input.</param>
/// <param name="FramesPredicted">Frames the model ran on.</param>
/// <param name="FramesWritten">Frames encoded into the output.</param>
/// <param name="Cancelled">True when the run was cancelled: the output is a playable video of the first
/// <paramref name="FramesWritten"/> frames.</param>
/// <param name="OutputWidth">Width of the output video (the input's, made even for yuv420p).</param>
/// <param name="OutputHeight">Height of the output video (the input's, made even for yuv420p).</param>
public sealed record VideoAnnotationResult(VideoInfo Input, string OutputPath, long FramesRead, long FramesPredicted, long FramesWritten, bool Cancelled,
    int OutputWidth, int OutputHeight);

/// <summary>Predicts every frame of a video, draws the detections and encodes the result (the demo's splash video).</summary>
public static class VideoAnnotator
{
    /// <summary>
    /// Reads <paramref name="input"/>, predicts its frames (<see cref="VideoPredictor"/>), draws each frame
    /// (<see cref="VideoRenderer.Render"/>) and encodes <paramref name="output"/> with the input's frame rate and
    /// displayed size (padded to even for yuv420p), the input's audio copied. On cancellation it stops feeding frames,
    /// lets ffmpeg finish a playable file of the frames written so far and returns with
    /// <see cref="VideoAnnotationResult.Cancelled"/> true (it does not throw).
    /// </summary>
    /// <param name="model">Any segmenter (libtorch <c>MaskRcnnModel</c>, ONNX Runtime <c>OnnxMaskRcnn</c>).</param>
    /// <param name="input">The video to read.</param>
    /// <param name="output">The video to write (overwritten; the container follows the extension).</param>
    /// <param name="options">Style, prediction, codec; null for <see cref="VideoAnnotationOptions.Default"/>.</param>
    /// <param name="progress">Receives <see cref="VideoProgress"/> after every batch.</param>
    /// <param name="onFrame">Called with every frame's detections, in order, before the frame is encoded (e.g. to
    /// write a JSON line).</param>
    /// <param name="cancellationToken">Stops the run; the output is still finished.</param>
    /// <exception cref="FileNotFoundException">The input does not exist.</exception>
    /// <exception cref="VideoFormatException">The input is not a readable video (the message names it).</exception>
    /// <exception cref="FfmpegNotFoundException">ffmpeg/ffprobe cannot be started.</exception>
    /// <exception cref="FfmpegException">Encoding failed.</exception>
    /// <exception cref="OperationCanceledException">Cancelled before the input was opened and the output started
    /// (there is no file to finish yet); once frames flow, cancelling returns normally.</exception>
    public static async Task<VideoAnnotationResult> AnnotateAsync(IInstanceSegmenter model, string input, string output, VideoAnnotationOptions? options = null,
        IProgress<VideoProgress>? progress = null, Func<VideoFrameDetections, ValueTask>? onFrame = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrWhiteSpace(input);
        ArgumentException.ThrowIfNullOrWhiteSpace(output);
        var o = options ?? VideoAnnotationOptions.Default;
        o.Validate();
        if (string.Equals(Path.GetFullPath(input), Path.GetFullPath(output), StringComparison.Ordinal))
        {
            throw new ArgumentException($"the output {output} is the input: ffmpeg would overwrite the video it reads", nameof(output));
        }

        var ffmpeg = o.Prediction.Ffmpeg ?? FfmpegOptions.Default;
        await using var reader = await VideoFrameReader.OpenAsync(input, ffmpeg, cancellationToken).ConfigureAwait(false);
        var info = reader.Info;
        var writerOptions = o.WriterOptions(info.Width, info.Height, info.FrameRate, o.CopyAudio && info.HasAudio ? input : null);
        await using var writer = await VideoWriter.CreateAsync(output, writerOptions, ffmpeg, cancellationToken).ConfigureAwait(false);
        long read = 0, predicted = 0;
        var cancelled = false;
        try
        {
            await foreach (var frame in VideoPredictor.PredictVideoAsync(model, reader, o.Prediction, progress, cancellationToken).ConfigureAwait(false))
            {
                read++;
                predicted += frame.Predicted ? 1 : 0;
                if (onFrame is not null)
                {
                    await onFrame(frame).ConfigureAwait(false);
                }

                // Once a frame is decoded and predicted it is written whole, cancelled or not; the loop stops after it.
                await writer.WriteFrameAsync(VideoRenderer.Render(frame.Frame, frame.Detections, o.Style, o.Visualizer), CancellationToken.None).ConfigureAwait(false);
                if (cancellationToken.IsCancellationRequested)
                {
                    cancelled = true;
                    break;
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            cancelled = true;
        }

        // Leaving the loop has killed the decoder; the encoder gets end-of-input and finishes the file.
        await writer.CompleteAsync(CancellationToken.None).ConfigureAwait(false);
        return new VideoAnnotationResult(info, output, read, predicted, writer.FramesWritten, cancelled, writerOptions.EncodedWidth, writerOptions.EncodedHeight);
    }
}
