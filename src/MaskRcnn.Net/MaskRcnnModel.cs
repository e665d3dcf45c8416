using MaskRcnn.Net.Backbones;
using MaskRcnn.Net.Core;
using MaskRcnn.Net.Core.Checkpoints;
using MaskRcnn.Net.Core.Detection;
using MaskRcnn.Net.Core.Imaging;
using MaskRcnn.Net.Core.Masks;
using MaskRcnn.Net.Core.NN;
using MaskRcnn.Net.Core.Structures;
using MaskRcnn.Net.Heads;

namespace MaskRcnn.Net;

/// <summary>
/// A Mask R-CNN: transform → backbone (+FPN) → region proposal network → RoI heads → detections at the original
/// image size (the orchestration is <see cref="GeneralizedRcnn"/>'s; this class adds the configuration, input checks,
/// conversion to .NET results and file I/O). Build one with <see cref="MaskRcnnBuilder"/> or <see cref="Load"/>.
/// State-dict keys equal torchvision's <c>maskrcnn_resnet50_fpn</c> (<c>backbone.*</c>, <c>rpn.*</c>, <c>roi_heads.*</c>).
/// </summary>
/// <remarks>
/// Thread safety: once in evaluation mode (the state after <see cref="MaskRcnnBuilder.Build"/> or <see cref="Load"/>),
/// <see cref="Predict(ImageSource)"/> may be called from several threads at once — each call runs in its own
/// dispose scope and inference mode and only reads the weights. Training, <see cref="Module.Train"/>,
/// <see cref="Module.To(Device)"/> and loading weights must not overlap with predictions.
/// </remarks>
public sealed class MaskRcnnModel : GeneralizedRcnn, ITrainableDetector, IInstanceSegmenter
{
    /// <summary>Safetensors metadata key under which <see cref="Save"/> stores the model configuration JSON.</summary>
    public const string ConfigMetadataKey = "maskrcnn.net.config";

    internal MaskRcnnModel(MaskRcnnConfig config, Module backbone, RegionProposalNetwork rpn, RoIHeads roiHeads)
        : base(new ImageTransform(config.Transform), backbone, rpn, roiHeads)
    {
        Config = config;
    }

    /// <summary>The configuration the model was built from.</summary>
    public MaskRcnnConfig Config { get; }

    /// <inheritdoc />
    Module ITrainableDetector.Module => this;

    /// <summary>The device the weights live on.</summary>
    public Device Device { get; private set; } = Device.Cpu;

    /// <summary>
    /// What <see cref="MaskRcnnBuilder.WithWeights"/> loaded: the keys that kept their initialisation (missing from the
    /// file, or skipped for their shape) and the file's keys the model does not have; null when the builder loaded no
    /// weights file.
    /// </summary>
    public LoadStateDictResult? WeightsLoadResult { get; internal set; }

    /// <summary>Moves the model to a device (inputs are moved there by <see cref="Predict(ImageSource)"/>).</summary>
    public MaskRcnnModel ToDevice(Device device)
    {
        To(device);
        Device = device;
        return this;
    }

    /// <summary>Detects and segments the objects in one image.</summary>
    /// <returns>The detections; an empty list when nothing scores above the threshold.</returns>
    /// <exception cref="ArgumentException">The image has no pixels, is so elongated that the model's resize would leave
    /// no row or column, or is so large that the full-size masks of <see cref="RoIHeadsOptions.DetectionsPerImage"/>
    /// detections (one byte per pixel each) would exceed one array of 2^31 bytes — e.g. a 10000 × 10000 image needs
    /// DetectionsPerImage ≤ 21. The message names the image and its size.</exception>
    /// <exception cref="Core.Imaging.ImageDecodeException">An encoded image cannot be decoded.</exception>
    public ImageDetections Predict(ImageSource image) => Predict([image])[0];

    /// <summary>Detects and segments the objects in several images, run as one batch.</summary>
    /// <exception cref="ArgumentException">An image is refused (see <see cref="Predict(ImageSource)"/>).</exception>
    /// <exception cref="Core.Imaging.ImageDecodeException">An encoded image cannot be decoded.</exception>
    public IReadOnlyList<ImageDetections> Predict(IReadOnlyList<ImageSource> images) => Predict(images, CancellationToken.None);

    /// <summary>Detects and segments the objects in one image, off the calling thread (see <see cref="Predict(ImageSource)"/>).</summary>
    /// <exception cref="OperationCanceledException">Cancelled before or between the model's stages.</exception>
    public async Task<ImageDetections> PredictAsync(ImageSource image, CancellationToken cancellationToken = default) =>
        (await PredictAsync([image], cancellationToken).ConfigureAwait(false))[0];

    /// <summary>Detects and segments the objects in several images as one batch, off the calling thread.</summary>
    /// <exception cref="OperationCanceledException">Cancelled before or between the model's stages.</exception>
    public Task<IReadOnlyList<ImageDetections>> PredictAsync(IReadOnlyList<ImageSource> images, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(images);
        return Task.Run(() => Predict(images, cancellationToken), cancellationToken);
    }

    /// <inheritdoc />
    public IReadOnlyList<string> ClassNames => Config.ClassNames ?? Enumerable.Range(0, Config.NumClasses).Select(Config.ClassName).ToArray();

    private IReadOnlyList<ImageDetections> Predict(IReadOnlyList<ImageSource> images, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.Count == 0)
        {
            return [];
        }

        using var inference = Torch.InferenceMode();
        using var scope = Torch.NewDisposeScope();
        var inputs = new Tensor[images.Count];
        for (var i = 0; i < inputs.Length; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            inputs[i] = LoadAsFloat(images[i]);
        }

        StageProfile.Mark("input");

        // Masks come back unpasted: pasting, the threshold and the suppression are the shared array code
        // (DetectionPostprocessing), the same as ONNX Runtime's path.
        var detections = Detect(inputs, cancellationToken, pasteMasks: false);
        var results = detections.Select((d, i) => Postprocess(d, (int)inputs[i].Size(2), (int)inputs[i].Size(1))).ToArray();
        StageProfile.Mark("paste");
        return results;
    }

    /// <summary>What <see cref="DetectionPostprocessing"/> applies after the network, from <see cref="Config"/>.</summary>
    public PostprocessingOptions Postprocessing => new()
    {
        ClassNames = Config.ClassNames,
        MaskThreshold = Config.MaskThreshold,
        SuppressContained = Config.SuppressContained,
        MaskScoring = Config.MaskScoring,
        AlignedMaskPaste = Config.AlignedMaskPaste,
    };

    /// <summary>One image's detections (boxes at the original size, masks [D, 1, M, M] unpasted) through the shared post-processing.</summary>
    private ImageDetections Postprocess(DetectionTensors d, int width, int height)
    {
        using var scope = Torch.NewDisposeScope();
        var labels = d.Labels.ToArray<long>();
        var masks = d.Masks is { } m && labels.Length > 0 ? m.To(DType.Float32).ToArray<float>() : [];
        return DetectionPostprocessing.ToImageDetections(width, height, d.Boxes.ToArray<float>(), labels, d.Scores.ToArray<float>(), masks, Postprocessing);
    }

    private Tensor LoadAsFloat(ImageSource source)
    {
        ArgumentNullException.ThrowIfNull(source);
        using var rgb = source.LoadRgb();
        CheckImageSize(rgb, source.Description); // before the 4-bytes-per-value float copy
        using var onDevice = rgb.To(Device, DType.Float32);
        return onDevice / 255.0;
    }

    /// <inheritdoc />
    protected override void CheckImage(Tensor image, string description) => CheckImageSize(image, description);

    /// <inheritdoc />
    private protected override bool AlignedMaskPaste => Config.AlignedMaskPaste;

    /// <summary>
    /// Refuses, before any work, an input whose height or width is 0, that the resize would shrink to nothing, or
    /// whose full-size masks could not be returned (see <see cref="Predict(ImageSource)"/>).
    /// </summary>
    private void CheckImageSize(Tensor image, string description)
    {
        ArgumentNullException.ThrowIfNull(image, description);
        var shape = image.Shape;
        if (shape.Length != 3)
        {
            throw new ArgumentException($"{description}: an image must be a [C, H, W] tensor, got [{string.Join(", ", shape)}]", "images");
        }

        long height = shape[1], width = shape[2];
        if (height < 1 || width < 1)
        {
            throw new ArgumentException($"{description}: the image is {width}x{height} (width x height) pixels; it needs at least one", "images");
        }

        // Masks are pasted at full size, one [H, W] plane per detection, and returned through one byte array.
        if (RoIHeads.MaskPredictor is not null)
        {
            var detections = RoIHeads.Options.DetectionsPerImage;
            if ((double)height * width * detections > Array.MaxLength)
            {
                throw new ArgumentException(
                    $"{description}: the image is {width}x{height} pixels; the full-size masks of up to {detections} detections " +
                    $"({nameof(RoIHeadsOptions)}.{nameof(RoIHeadsOptions.DetectionsPerImage)}) would need {(double)height * width * detections:0} bytes, " +
                    $"more than the {Array.MaxLength} one array holds. Downscale the image or lower DetectionsPerImage.", "images");
            }
        }

        // The resize (shorter side to MinSize, longer side at most MaxSize) must leave at least one row and column.
        var options = Transform.Options;
        var minSizes = IsTraining ? options.MinSizes : [options.MinSizes[^1]];
        foreach (var minSize in minSizes)
        {
            var scale = Transform.ScaleFor(height, width, minSize);
            var (resizedHeight, resizedWidth) = (Math.Floor(height * scale), Math.Floor(width * scale));
            if (resizedHeight < 1 || resizedWidth < 1)
            {
                throw new ArgumentException(
                    $"{description}: the image is {width}x{height} pixels, too elongated for the model's resize (shorter side " +
                    $"{minSize}, longer side at most {options.MaxSize}), which would leave {resizedWidth}x{resizedHeight} pixels", "images");
            }
        }
    }

    /// <summary>Converts tensor detections of one image to plain .NET objects (boxes, labels, scores, binary masks).</summary>
    public ImageDetections ToDotNet(DetectionTensors d, int width, int height)
    {
        ArgumentNullException.ThrowIfNull(d);
        if (d.Masks is { } maskTensor && (maskTensor.Size(-2) != height || maskTensor.Size(-1) != width))
        {
            throw new ArgumentException($"masks are {maskTensor.Size(-1)}x{maskTensor.Size(-2)} but the image size given is {width}x{height}", nameof(width));
        }

        if (d.Masks is { } allMasks && allMasks.NumEl > Array.MaxLength)
        {
            throw new ArgumentException(
                $"{allMasks.Size(0)} masks of {width}x{height} pixels are more than the {Array.MaxLength} bytes one array holds", nameof(d));
        }

        using var scope = Torch.NewDisposeScope();
        var boxes = d.Boxes.ToArray<float>();
        var scores = d.Scores.ToArray<float>();
        var labels = d.Labels.ToArray<long>();
        byte[]? maskBytes = null;
        float[]? confidences = null;
        if (d.Masks is { } m && labels.Length > 0)
        {
            maskBytes = m.Gt(Config.MaskThreshold).To(DType.UInt8).ToArray<byte>();
            if (Config.MaskScoring)
            {
                // The pasted probabilities, one plane at a time: the same confidence the shared post-processing computes.
                var probabilities = m.To(DType.Float32);
                confidences = new float[labels.Length];
                for (var i = 0; i < labels.Length; i++)
                {
                    confidences[i] = MaskScoring.Confidence(probabilities.Select(0, i).ToArray<float>(), Config.MaskThreshold);
                }
            }
        }

        var plane = (long)width * height;
        var list = new List<Detection>(labels.Length);
        for (var i = 0; i < labels.Length; i++)
        {
            BinaryMask? mask = maskBytes is null ? null : BinaryMask.FromBytes(maskBytes.AsSpan((int)(i * plane), (int)plane), height, width);
            var label = (int)labels[i];
            list.Add(new Detection(new BoundingBox(boxes[4 * i], boxes[4 * i + 1], boxes[4 * i + 2], boxes[4 * i + 3]),
                label, Config.ClassName(label), scores[i], mask));
        }

        return DetectionPostprocessing.Finish(width, height, confidences is null ? list : MaskScoring.Rescore(list, confidences), Postprocessing);
    }

    /// <summary>
    /// Loads torchvision weights (a <c>maskrcnn_resnet50_fpn</c> state dict as <c>.pth</c> — either torch.save
    /// format — or <c>.safetensors</c>), applying torchvision's legacy key renames. Strict by default: a missing,
    /// unexpected or wrong-shaped key throws <see cref="CheckpointMismatchException"/> naming it.
    /// </summary>
    /// <param name="path">The weights file.</param>
    /// <param name="strict">Fail on missing or unexpected keys.</param>
    /// <param name="skipShapeMismatches">Leave parameters whose shape differs from the file's at their
    /// initial values instead of failing (fine-tuning COCO weights for other classes: the class-specific layers
    /// <c>cls_score</c>, <c>bbox_pred</c> and <c>mask_fcn_logits</c> keep their fresh initialisation).
    /// Implies a non-strict load of those keys.</param>
    public LoadStateDictResult LoadTorchvisionWeights(string path, bool strict = true, bool skipShapeMismatches = false)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
        {
            var tensors = SafeTensors.Load(path);
            try
            {
                return LoadNormalized(tensors, strict, skipShapeMismatches);
            }
            finally
            {
                foreach (var t in tensors.Values)
                {
                    t.Dispose();
                }
            }
        }

        using var sd = TorchCheckpoint.Load(path);
        return LoadNormalized(sd, strict, skipShapeMismatches);
    }

    internal LoadStateDictResult LoadNormalized(IEnumerable<KeyValuePair<string, Tensor>> stateDict, bool strict, bool skipShapeMismatches)
    {
        var normalized = TorchvisionKeys.NormalizeFor(this, stateDict);
        if (!skipShapeMismatches)
        {
            return LoadStateDict(normalized, strict);
        }

        var own = StateDict().ToDictionary(kv => kv.Key, kv => kv.Value.Shape);
        var fitting = normalized.Where(kv => !own.TryGetValue(kv.Key, out var shape) || shape.SequenceEqual(kv.Value.Shape))
            .ToDictionary(kv => kv.Key, kv => kv.Value);
        var skipped = normalized.Keys.Where(k => !fitting.ContainsKey(k)).ToHashSet();
        var result = LoadStateDict(fitting, strict: false);
        var missing = result.MissingKeys.Where(k => !skipped.Contains(k)).ToList();
        if (strict && (missing.Count > 0 || result.UnexpectedKeys.Count > 0))
        {
            throw new CheckpointMismatchException(
                $"state dict does not match the model: missing {string.Join(", ", missing.Take(10))}; unexpected {string.Join(", ", result.UnexpectedKeys.Take(10))}")
            {
                MissingKeys = missing,
                UnexpectedKeys = result.UnexpectedKeys,
            };
        }

        return result;
    }

    /// <summary>
    /// Saves the weights as safetensors with the configuration in its metadata, plus the same configuration as a
    /// JSON file next to it (<c>model.safetensors</c> → <c>model.json</c>). <see cref="Load"/> restores both.
    /// </summary>
    /// <exception cref="InvalidOperationException">The model has parts made by builder factories, which the configuration
    /// cannot rebuild (<see cref="MaskRcnnBuilder.CustomPartsOf"/>); use <see cref="MaskRcnnModelWeights.SaveWeights"/>.</exception>
    public void Save(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        MaskRcnnBuilder.EnsureSavable(this);
        var json = Config.ToJson();
        var tensors = StateDict().ToDictionary(kv => kv.Key, kv => kv.Value);
        SafeTensors.Save(path, tensors, new Dictionary<string, string> { [ConfigMetadataKey] = json, ["format"] = "pt" });
        File.WriteAllText(Path.ChangeExtension(path, ".json"), json);
    }

    /// <summary>
    /// Writes the whole network as one ONNX file (opset 17) for ONNX Runtime: input <c>image</c> uint8 [3, height,
    /// width] (RGB, any size); the graph normalises, resizes and pads like <see cref="GeneralizedRcnn.Transform"/>, runs
    /// the backbone, RPN and RoI heads, and outputs <c>boxes</c> float32 [N, 4] (input pixels), <c>labels</c> int64
    /// [N], <c>scores</c> float32 [N] and <c>masks</c> float32 [N, 1, M, M] (each detection's class probabilities in its
    /// box, not pasted). Class names, thresholds and the input normalisation are in the file's metadata
    /// (<c>maskrcnn.*</c>).
    /// </summary>
    /// <param name="path">The file to write (replaced if it exists).</param>
    /// <param name="options">Export options (null: <see cref="Export.OnnxExportOptions.Default"/>).</param>
    /// <exception cref="NotSupportedException">A part of the model (a custom registered part, an unsupported
    /// setting) cannot be expressed in the graph; the message names it and no file is written.</exception>
    /// <exception cref="ArgumentException">An option is out of range.</exception>
    public void ExportOnnx(string path, Export.OnnxExportOptions? options = null) => Export.OnnxExporter.Export(this, path, options);

    /// <summary>True when <paramref name="path"/> is a safetensors file written by <see cref="Save"/>.</summary>
    public static bool IsSavedModel(string path) =>
        path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase) &&
        SafeTensors.ReadMetadata(path).ContainsKey(ConfigMetadataKey);

    /// <summary>Reads the configuration of a model written by <see cref="Save"/> without loading its weights.</summary>
    /// <exception cref="FileNotFoundException">The file has no embedded configuration and no <c>.json</c> beside it.</exception>
    public static MaskRcnnConfig ReadConfig(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var metadata = SafeTensors.ReadMetadata(path);
        if (metadata.TryGetValue(ConfigMetadataKey, out var embedded))
        {
            return MaskRcnnConfig.FromJson(embedded);
        }

        var sidecar = Path.ChangeExtension(path, ".json");
        if (!File.Exists(sidecar))
        {
            throw new FileNotFoundException($"{path} has no model configuration in its metadata and {sidecar} does not exist", sidecar);
        }

        return MaskRcnnConfig.FromJson(File.ReadAllText(sidecar));
    }

    /// <summary>Loads a model written by <see cref="Save"/> (weights + configuration) in evaluation mode.</summary>
    /// <param name="path">The saved model.</param>
    /// <param name="device">Where to put it (default: CPU).</param>
    /// <param name="configure">
    /// Changes to the saved configuration before the model is built — settings that do not change the weights'
    /// shapes, such as <see cref="MaskRcnnConfig.RoIHeads"/> score/NMS thresholds or the detections per image.
    /// </param>
    public static MaskRcnnModel Load(string path, Device? device = null, Func<MaskRcnnConfig, MaskRcnnConfig>? configure = null)
    {
        var config = ReadConfig(path);
        if (configure is not null)
        {
            config = configure(config) ?? throw new ArgumentException("configure returned null", nameof(configure));
        }

        var model = new MaskRcnnBuilder(config).WithDevice(Device.Cpu).Build();
        try
        {
            var tensors = SafeTensors.Load(path);
            try
            {
                model.LoadStateDict(tensors);
            }
            finally
            {
                foreach (var t in tensors.Values)
                {
                    t.Dispose();
                }
            }

            if (device is { } d)
            {
                model.ToDevice(d);
            }

            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }
}
