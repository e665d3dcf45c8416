using MaskRcnn.Net.Imaging;
using MaskRcnn.Net.SkiaSharp;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace MaskRcnn.Net.Onnx;

/// <summary>
/// A Mask R-CNN exported by MaskRcnn.Net to ONNX (<c>maskrcnn export</c>, <c>MaskRcnnModel.ExportOnnx</c>), run with
/// ONNX Runtime — no libtorch, no native shim. The graph takes one uint8 [3, H, W] RGB image and does the whole
/// network (normalise, resize, backbone, RPN, RoI heads, mask head); its outputs — boxes, labels, scores and each
/// detection's M×M mask probabilities — go through <see cref="DetectionPostprocessing"/>, the same array code the
/// libtorch <c>MaskRcnnModel.Predict</c> uses for mask pasting, the threshold and the duplicate suppression, with the
/// settings read from the file's metadata (<see cref="Metadata"/>).
/// </summary>
/// <remarks>
/// Thread safety: <see cref="Predict(ImageSource)"/> and its overloads may be called from several threads at once
/// (ONNX Runtime's <c>InferenceSession.Run</c> is thread-safe; each call has its own input, outputs and run options).
/// <see cref="Dispose"/> must not overlap with a prediction. Encoded images (files, streams, bytes) are decoded with
/// SkiaSharp (<see cref="SkiaImageDecoder"/>).
/// </remarks>
public sealed class OnnxMaskRcnn : IInstanceSegmenter, IDisposable
{
    /// <summary>The graph's input: uint8 [3, height, width] RGB.</summary>
    public const string ImageInput = "image";

    /// <summary>The graph's outputs: boxes float [N, 4], labels int64 [N], scores float [N], masks float [N, 1, M, M].</summary>
    public static readonly IReadOnlyList<string> OutputNames = ["boxes", "labels", "scores", "masks"];

    private static readonly TensorElementType[] OutputTypes = [TensorElementType.Float, TensorElementType.Int64, TensorElementType.Float, TensorElementType.Float];
    private static readonly int[] OutputRanks = [2, 1, 1, 4];

    private readonly InferenceSession session;
    private readonly PostprocessingOptions postprocessing;
    private volatile bool disposed;

    private OnnxMaskRcnn(string path, InferenceSession session, OnnxModelMetadata metadata, OnnxMaskRcnnOptions options)
    {
        Path = path;
        this.session = session;
        Metadata = metadata;
        Options = options;
        postprocessing = metadata.Postprocessing;
    }

    /// <summary>The model file.</summary>
    public string Path { get; }

    /// <summary>The export's metadata: class names, thresholds and the settings baked into the graph.</summary>
    public OnnxModelMetadata Metadata { get; }

    /// <summary>The session settings.</summary>
    public OnnxMaskRcnnOptions Options { get; }

    /// <inheritdoc />
    public IReadOnlyList<string> ClassNames => Metadata.ClassNames;

    /// <summary>
    /// Loads an exported model: checks that ONNX Runtime can load it, that its metadata is a MaskRcnn.Net export of the
    /// supported format (<see cref="OnnxModelMetadata.Parse"/>) and that it has the input <c>image</c> (uint8, rank 3)
    /// and the outputs <c>boxes</c>, <c>labels</c>, <c>scores</c>, <c>masks</c> with their element types and ranks.
    /// </summary>
    /// <param name="path">The .onnx file.</param>
    /// <param name="options">Session settings (null: <see cref="OnnxMaskRcnnOptions.Default"/>).</param>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="OnnxModelFormatException">The file is not ONNX, is truncated or corrupt, or is not a
    /// MaskRcnn.Net export (metadata key, input or output missing or wrong); the message names the file and the key.</exception>
    /// <exception cref="ArgumentException">An option is out of range (names the field).</exception>
    public static OnnxMaskRcnn Load(string path, OnnxMaskRcnnOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        options ??= OnnxMaskRcnnOptions.Default;
        options.Validate();
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"ONNX model {path} does not exist", path);
        }

        using var sessionOptions = new SessionOptions
        {
            IntraOpNumThreads = options.IntraOpThreads,
            InterOpNumThreads = options.InterOpThreads,
            ExecutionMode = options.ParallelExecution ? ExecutionMode.ORT_PARALLEL : ExecutionMode.ORT_SEQUENTIAL,
            GraphOptimizationLevel = options.OptimizeGraph ? GraphOptimizationLevel.ORT_ENABLE_ALL : GraphOptimizationLevel.ORT_DISABLE_ALL,
        };
        InferenceSession session;
        try
        {
            session = new InferenceSession(path, sessionOptions);
        }
        catch (OnnxRuntimeException e)
        {
            throw new OnnxModelFormatException(path, null, $"not an ONNX model ONNX Runtime can load (not ONNX, truncated or corrupt): {e.Message}", e);
        }

        try
        {
            var modelMetadata = session.ModelMetadata;
            var metadata = OnnxModelMetadata.Parse(modelMetadata.CustomMetadataMap, path, modelMetadata.ProducerName, modelMetadata.Version.ToString(System.Globalization.CultureInfo.InvariantCulture));
            CheckInterface(session, path);
            return new OnnxMaskRcnn(path, session, metadata, options);
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }

    private static void CheckInterface(InferenceSession session, string path)
    {
        if (!session.InputMetadata.TryGetValue(ImageInput, out var input) || session.InputMetadata.Count != 1)
        {
            throw new OnnxModelFormatException(path, ImageInput,
                $"a MaskRcnn.Net export has exactly one input '{ImageInput}', the model has [{string.Join(", ", session.InputMetadata.Keys)}]");
        }

        if (!input.IsTensor || input.ElementDataType != TensorElementType.UInt8 || input.Dimensions.Length != 3 || input.Dimensions[0] is not (3 or -1))
        {
            throw new OnnxModelFormatException(path, ImageInput,
                $"input '{ImageInput}' must be a uint8 [3, height, width] tensor, the model's is {Describe(input)}");
        }

        for (var i = 0; i < OutputNames.Count; i++)
        {
            var name = OutputNames[i];
            if (!session.OutputMetadata.TryGetValue(name, out var output))
            {
                throw new OnnxModelFormatException(path, name,
                    $"the output '{name}' is missing (a MaskRcnn.Net export has {string.Join(", ", OutputNames)}; the model has [{string.Join(", ", session.OutputMetadata.Keys)}])");
            }

            if (!output.IsTensor || output.ElementDataType != OutputTypes[i] || output.Dimensions.Length != OutputRanks[i])
            {
                throw new OnnxModelFormatException(path, name,
                    $"output '{name}' must be a rank-{OutputRanks[i]} {OutputTypes[i]} tensor, the model's is {Describe(output)}");
            }
        }
    }

    private static string Describe(NodeMetadata node) =>
        node.IsTensor ? $"{node.ElementDataType} [{string.Join(", ", node.Dimensions.Select((d, i) => d >= 0 ? d.ToString(System.Globalization.CultureInfo.InvariantCulture) : node.SymbolicDimensions[i] is { Length: > 0 } s ? s : "?"))}]" : node.OnnxValueType.ToString();

    /// <summary>Detects and segments the objects in one image.</summary>
    /// <returns>The detections (boxes, labels, class names, scores, full-size masks), sorted by decreasing score.</returns>
    /// <exception cref="ArgumentException">The image is too elongated for the model's resize (the message names it).</exception>
    /// <exception cref="IOException">An encoded image cannot be read or decoded (the message names it).</exception>
    /// <exception cref="NotSupportedException">A kind of <see cref="ImageSource"/> this runtime cannot read (a libtorch tensor).</exception>
    /// <exception cref="ObjectDisposedException">The model was disposed.</exception>
    public ImageDetections Predict(ImageSource image) => Predict(image, CancellationToken.None);

    /// <summary>Detects and segments the objects in one decoded image (see <see cref="Predict(ImageSource)"/>).</summary>
    public ImageDetections Predict(RgbImage image) => Predict(ImageSource.FromImage(image), CancellationToken.None);

    /// <summary>
    /// Detects and segments the objects in several images; results in input order. The graph takes one image per run,
    /// so the images run one after the other (ONNX Runtime parallelises inside each run).
    /// </summary>
    /// <exception cref="ArgumentException">An image is refused (see <see cref="Predict(ImageSource)"/>).</exception>
    /// <exception cref="IOException">An encoded image cannot be read or decoded.</exception>
    public IReadOnlyList<ImageDetections> Predict(IReadOnlyList<ImageSource> images) => Predict(images, CancellationToken.None);

    /// <summary>Detects and segments the objects in several decoded images; results in input order.</summary>
    public IReadOnlyList<ImageDetections> Predict(IReadOnlyList<RgbImage> images)
    {
        ArgumentNullException.ThrowIfNull(images);
        return Predict(images.Select(ImageSource.FromImage).ToArray(), CancellationToken.None);
    }

    /// <inheritdoc />
    public Task<ImageDetections> PredictAsync(ImageSource image, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(image);
        return Task.Run(() => Predict(image, cancellationToken), cancellationToken);
    }

    /// <inheritdoc />
    public Task<IReadOnlyList<ImageDetections>> PredictAsync(IReadOnlyList<ImageSource> images, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(images);
        return Task.Run(() => Predict(images, cancellationToken), cancellationToken);
    }

    private IReadOnlyList<ImageDetections> Predict(IReadOnlyList<ImageSource> images, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(images);
        var results = new ImageDetections[images.Count];
        for (var i = 0; i < results.Length; i++)
        {
            results[i] = Predict(images[i] ?? throw new ArgumentNullException(nameof(images), $"images[{i}] is null"), cancellationToken);
        }

        return results;
    }

    private ImageDetections Predict(ImageSource source, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(source);
        ObjectDisposedException.ThrowIf(disposed, this);
        cancellationToken.ThrowIfCancellationRequested();
        var image = Decode(source);
        CheckImageSize(image, source.Description);
        cancellationToken.ThrowIfCancellationRequested();
        return Run(image, cancellationToken);
    }

    private RgbImage Decode(ImageSource source)
    {
        try
        {
            return source switch
            {
                PixelImageSource p => p.Image,
                FileImageSource f => SkiaImageDecoder.Decode(f.Path, Options.MaxImagePixels),
                StreamImageSource s => SkiaImageDecoder.Decode(s.Stream, Options.MaxImagePixels),
                EncodedImageSource b => SkiaImageDecoder.Decode(b.Bytes, Options.MaxImagePixels),
                _ => throw new NotSupportedException($"{source.Description}: images of type {source.GetType().Name} are not supported by the ONNX Runtime model"),
            };
        }
        catch (InvalidDataException e)
        {
            // IInstanceSegmenter's contract: undecodable data is an IOException.
            throw new IOException($"{source.Description}: cannot decode the image: {e.Message}", e);
        }
    }

    /// <summary>
    /// Refuses an image the graph's resize (shorter side to min_size, longer side at most max_size, float32 arithmetic
    /// as the libtorch model) would shrink to no row or column — the message names the image, as the libtorch model's.
    /// </summary>
    private void CheckImageSize(RgbImage image, string description)
    {
        if (Metadata.MinSize is not { } minSize || Metadata.MaxSize is not { } maxSize)
        {
            return;
        }

        var shorter = (float)Math.Min(image.Height, image.Width);
        var longer = (float)Math.Max(image.Height, image.Width);
        var scale = Math.Min(1f / shorter * minSize, 1f / longer * maxSize);
        var (h, w) = (Math.Floor(image.Height * (double)scale), Math.Floor(image.Width * (double)scale));
        if (h < 1 || w < 1)
        {
            throw new ArgumentException(
                $"{description}: the image is {image.Width}x{image.Height} pixels, too elongated for the model's resize (shorter side " +
                $"{minSize}, longer side at most {maxSize}), which would leave {w}x{h} pixels", "images");
        }
    }

    private ImageDetections Run(RgbImage image, CancellationToken cancellationToken)
    {
        var (width, height) = (image.Width, image.Height);
        var planar = ToPlanar(image);
        using var input = OrtValue.CreateTensorValueFromMemory(planar, [3, height, width]);
        using var runOptions = new RunOptions();
        using var registration = cancellationToken.Register(() => runOptions.Terminate = true);
        IDisposableReadOnlyCollection<OrtValue> outputs;
        try
        {
            outputs = session.Run(runOptions, [ImageInput], [input], [.. OutputNames]);
        }
        catch (OnnxRuntimeException) when (cancellationToken.IsCancellationRequested)
        {
            throw new OperationCanceledException("the ONNX Runtime run was cancelled", cancellationToken);
        }

        using (outputs)
        {
            var boxes = outputs[0];
            var labels = outputs[1];
            var scores = outputs[2];
            var masks = outputs[3];
            var n = Shape(labels)[0];
            CheckShape(boxes, OutputNames[0], [n, 4]);
            CheckShape(scores, OutputNames[2], [n]);
            var maskShape = Shape(masks);
            if (maskShape[0] != n || maskShape[1] != 1 || maskShape[2] != maskShape[3] || (n > 0 && maskShape[2] < 1))
            {
                throw new OnnxModelFormatException(Path, OutputNames[3], $"output 'masks' is [{string.Join(", ", maskShape)}], expected [{n}, 1, M, M] for {n} detections");
            }

            return DetectionPostprocessing.ToImageDetections(width, height,
                boxes.GetTensorDataAsSpan<float>(), labels.GetTensorDataAsSpan<long>(), scores.GetTensorDataAsSpan<float>(),
                n == 0 ? [] : masks.GetTensorDataAsSpan<float>(), postprocessing);
        }
    }

    private static long[] Shape(OrtValue value) => value.GetTensorTypeAndShape().Shape;

    private void CheckShape(OrtValue value, string name, long[] expected)
    {
        var shape = Shape(value);
        if (!shape.SequenceEqual(expected))
        {
            throw new OnnxModelFormatException(Path, name, $"output '{name}' is [{string.Join(", ", shape)}], expected [{string.Join(", ", expected)}]");
        }
    }

    /// <summary>Interleaved RGB (H, W, 3) to planar (3, H, W), the graph's input layout.</summary>
    internal static byte[] ToPlanar(RgbImage image)
    {
        var plane = image.Width * image.Height;
        var planar = new byte[3 * plane];
        var pixels = image.Pixels;
        for (int i = 0, j = 0; i < plane; i++, j += 3)
        {
            planar[i] = pixels[j];
            planar[plane + i] = pixels[j + 1];
            planar[2 * plane + i] = pixels[j + 2];
        }

        return planar;
    }

    /// <summary>Releases the ONNX Runtime session. Must not overlap with a prediction.</summary>
    public void Dispose()
    {
        if (!disposed)
        {
            disposed = true;
            session.Dispose();
        }
    }
}
