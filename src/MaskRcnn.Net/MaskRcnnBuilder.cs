using MaskRcnn.Net.Backbones;
using MaskRcnn.Net.Core;
using MaskRcnn.Net.Core.Detection;
using MaskRcnn.Net.Core.NN;
using MaskRcnn.Net.Heads;
using MaskRcnn.Net.RoIAlign;

namespace MaskRcnn.Net;

/// <summary>
/// Fluent construction of a <see cref="MaskRcnnModel"/>. Defaults are torchvision's <c>maskrcnn_resnet50_fpn</c>
/// (91 COCO classes, ResNet-50 + FPN with frozen batch norm, 800/1333 resizing). Every stage can be replaced with a
/// factory (backbone, RPN head, box head, box predictor, mask head, mask predictor, poolers).
/// </summary>
/// <example>
/// <code>
/// using var model = new MaskRcnnBuilder()
///     .WithClasses("tumor")
///     .WithImageSize(512, 853)
///     .WithWeights("maskrcnn_resnet50_fpn_coco.pth", strict: true, skipShapeMismatches: true) // class layers stay freshly initialised
///     .Build();
/// var result = model.Predict("scan.jpg");
/// </code>
/// </example>
public sealed class MaskRcnnBuilder
{
    private MaskRcnnConfig config;
    private Device device = Device.Cpu;
    private PredictorInit predictorInit = PredictorInit.Torchvision;
    private ulong? seed;
    private string? weightsPath;
    private bool weightsStrict = true;
    private bool weightsSkipShapeMismatches;
    private Func<MaskRcnnConfig, Module>? backboneFactory;
    private Func<int, int, IRpnHead>? rpnHeadFactory;
    private Func<int, int, IBoxHead>? boxHeadFactory;
    private Func<int, int, IBoxPredictor>? boxPredictorFactory;
    private Func<int, IMaskHead>? maskHeadFactory;
    private Func<int, int, IMaskPredictor>? maskPredictorFactory;
    private IRoIPooler? boxPooler;
    private IRoIPooler? maskPooler;
    private PretrainedBackbone? pretrained;
    private bool ownsPretrained;

    /// <summary>Starts from torchvision's defaults.</summary>
    public MaskRcnnBuilder() : this(new MaskRcnnConfig())
    {
    }

    /// <summary>Starts from a configuration (e.g. one saved with a model).</summary>
    public MaskRcnnBuilder(MaskRcnnConfig config) => this.config = config ?? throw new ArgumentNullException(nameof(config));

    /// <summary>The configuration as set so far.</summary>
    public MaskRcnnConfig Config => config;

    /// <summary>Applies any change to the configuration.</summary>
    public MaskRcnnBuilder Configure(Func<MaskRcnnConfig, MaskRcnnConfig> change)
    {
        ArgumentNullException.ThrowIfNull(change);
        config = change(config) ?? throw new ArgumentException("the change returned null", nameof(change));
        return this;
    }

    /// <summary>ResNet depth (18/34/50/101), normalisation, trainable stages (0–5) and FPN channels.</summary>
    public MaskRcnnBuilder WithBackbone(int depth = 50, NormKind norm = NormKind.FrozenBatchNorm, int trainableLayers = 3,
        double normEps = 1e-5, int outChannels = 256) =>
        Configure(c => c with { Backbone = new BackboneConfig(depth, norm, normEps, trainableLayers, outChannels) });

    /// <summary>
    /// Starts the ResNet body from ImageNet-pretrained weights: the ResNet-18 ML.NET ships as ONNX
    /// (<see cref="PretrainedBackbone.ImageNetResNet18"/>; its block layout [2, 2, 2, 3], frozen batch norm and input
    /// normalisation replace the backbone's depth, norm and the transform's mean/std; trainable layers and FPN
    /// channels stay as set). Later <see cref="WithWeights"/> weights override these.
    /// </summary>
    /// <param name="path">ResNet18.onnx, or null to find it (<see cref="PretrainedBackbone.ResNet18Candidates"/>).</param>
    /// <exception cref="FileNotFoundException">The file is not there; the message says how to get its package.</exception>
    /// <exception cref="Core.Checkpoints.CheckpointFormatException">The file is not the expected network.</exception>
    public MaskRcnnBuilder WithPretrainedBackbone(string? path = null)
    {
        var loaded = PretrainedBackbone.ImageNetResNet18(path);
        WithPretrainedBackbone(loaded);
        ownsPretrained = true;
        return this;
    }

    /// <summary>
    /// Starts the ResNet body from <paramref name="weights"/> (the caller keeps ownership; keep it alive until
    /// <see cref="Build"/>). See <see cref="WithPretrainedBackbone(string?)"/>.
    /// </summary>
    public MaskRcnnBuilder WithPretrainedBackbone(PretrainedBackbone weights)
    {
        ArgumentNullException.ThrowIfNull(weights);
        if (ownsPretrained)
        {
            pretrained?.Dispose();
        }

        pretrained = weights;
        ownsPretrained = false;
        var o = weights.Options;
        return Configure(c => c with
        {
            Backbone = c.Backbone with { Depth = o.Depth, Norm = o.Norm, NormEps = o.NormEps, StageBlocks = o.StageBlocks },
            Transform = c.Transform with { Mean = weights.PixelMean, Std = weights.PixelStd },
        });
    }

    /// <summary>Replaces the backbone: the factory returns a <see cref="Module"/> implementing <see cref="IBackbone"/>.</summary>
    public MaskRcnnBuilder WithBackbone(Func<MaskRcnnConfig, Module> factory)
    {
        backboneFactory = factory ?? throw new ArgumentNullException(nameof(factory));
        return this;
    }

    /// <summary>Number of classes including background, without names.</summary>
    public MaskRcnnBuilder WithNumClasses(int numClasses) => Configure(c => c with { NumClasses = numClasses, ClassNames = null });

    /// <summary>The object classes (background is added as class 0): <c>WithClasses("cat", "dog")</c> → 3 classes.</summary>
    public MaskRcnnBuilder WithClasses(params string[] names)
    {
        ArgumentNullException.ThrowIfNull(names);
        if (names.Length == 0 || names.Any(string.IsNullOrWhiteSpace))
        {
            throw new ArgumentException("class names must be non-empty", nameof(names));
        }

        return Configure(c => c with { NumClasses = names.Length + 1, ClassNames = ["__background__", .. names] });
    }

    /// <summary>Shorter-side target size(s) (training picks one at random) and the longer-side limit.</summary>
    public MaskRcnnBuilder WithImageSize(int minSize, int maxSize = 1333, params int[] moreMinSizes) =>
        Configure(c => c with { Transform = c.Transform with { MinSizes = [minSize, .. moreMinSizes], MaxSize = maxSize } });

    /// <summary>Anchor sizes and aspect ratios per FPN level.</summary>
    public MaskRcnnBuilder WithAnchors(IReadOnlyList<IReadOnlyList<double>> sizes, IReadOnlyList<IReadOnlyList<double>> aspectRatios) =>
        Configure(c => c with { AnchorSizes = sizes, AnchorAspectRatios = aspectRatios });

    /// <summary>RPN options.</summary>
    public MaskRcnnBuilder WithRpn(RpnOptions options) => Configure(c => c with { Rpn = options ?? throw new ArgumentNullException(nameof(options)) });

    /// <summary>RoI heads options.</summary>
    public MaskRcnnBuilder WithRoIHeads(RoIHeadsOptions options) => Configure(c => c with { RoIHeads = options ?? throw new ArgumentNullException(nameof(options)) });

    /// <summary>Minimum score of a detection.</summary>
    public MaskRcnnBuilder WithScoreThreshold(double threshold) => Configure(c => c with { RoIHeads = c.RoIHeads with { ScoreThreshold = threshold } });

    /// <summary>IoU threshold of the final per-class NMS.</summary>
    public MaskRcnnBuilder WithNmsThreshold(double threshold) => Configure(c => c with { RoIHeads = c.RoIHeads with { NmsThreshold = threshold } });

    /// <summary>Maximum detections per image.</summary>
    public MaskRcnnBuilder WithDetectionsPerImage(int count) => Configure(c => c with { RoIHeads = c.RoIHeads with { DetectionsPerImage = count } });

    /// <summary>Sizes the heads: box head representation size, mask head conv channels per layer, mask predictor channels.</summary>
    public MaskRcnnBuilder WithHeadSizes(int boxHeadSize = 1024, IReadOnlyList<int>? maskHeadLayers = null, int maskPredictorChannels = 256) =>
        Configure(c => c with { BoxHeadSize = boxHeadSize, MaskHeadLayers = maskHeadLayers ?? [256, 256, 256, 256], MaskPredictorChannels = maskPredictorChannels });

    /// <summary>Mask probability threshold of the returned binary masks.</summary>
    public MaskRcnnBuilder WithMaskThreshold(double threshold) => Configure(c => c with { MaskThreshold = threshold });

    /// <summary>
    /// Drops nested duplicates: detections lying at least <paramref name="containment"/> inside a higher-scoring
    /// detection of the same class (null: off). See <see cref="DuplicateSuppression"/>.
    /// </summary>
    public MaskRcnnBuilder WithDuplicateSuppression(double? containment) => Configure(c => c with { SuppressContained = containment });

    /// <summary>
    /// Weights to load after building: a torchvision state dict (.pth / .safetensors) or a model saved with
    /// <see cref="MaskRcnnModel.Save"/>. With <paramref name="skipShapeMismatches"/>, layers whose shape differs
    /// (the class-specific predictors when fine-tuning COCO weights on other classes) keep their initialisation.
    /// </summary>
    public MaskRcnnBuilder WithWeights(string path, bool strict = true, bool skipShapeMismatches = false)
    {
        weightsPath = path ?? throw new ArgumentNullException(nameof(path));
        weightsStrict = strict;
        weightsSkipShapeMismatches = skipShapeMismatches;
        return this;
    }

    /// <summary>
    /// How the final layers of the box and mask heads are initialised (see <see cref="PredictorInit"/>); ignored for
    /// parameters loaded with <see cref="WithWeights"/>.
    /// </summary>
    public MaskRcnnBuilder WithPredictorInit(PredictorInit init)
    {
        if (!Enum.IsDefined(init))
        {
            throw new ArgumentOutOfRangeException(nameof(init), init, "unknown predictor initialisation");
        }

        predictorInit = init;
        return this;
    }

    /// <summary>
    /// Initialises the weights from a private random stream with this seed (a <see cref="RandomGenerator"/>): the same
    /// seed builds the same model whatever else in the process draws random numbers, and the same weights as
    /// <see cref="Torch.ManualSeed"/>(<paramref name="seed"/>) followed by a build without a seed. Without it the
    /// weights come from <see cref="RandomGenerator.Current"/>, or libtorch's default generator.
    /// </summary>
    public MaskRcnnBuilder WithSeed(ulong seed)
    {
        this.seed = seed;
        return this;
    }

    /// <summary>The device to run on.</summary>
    public MaskRcnnBuilder WithDevice(Device device)
    {
        this.device = device;
        return this;
    }

    /// <summary>Replaces the RPN head: factory(inChannels, anchorsPerLocation).</summary>
    public MaskRcnnBuilder WithRpnHead(Func<int, int, IRpnHead> factory) => Set(ref rpnHeadFactory, factory);

    /// <summary>Replaces the box head: factory(inChannels, poolerResolution).</summary>
    public MaskRcnnBuilder WithBoxHead(Func<int, int, IBoxHead> factory) => Set(ref boxHeadFactory, factory);

    /// <summary>Replaces the box predictor: factory(representationSize, numClasses).</summary>
    public MaskRcnnBuilder WithBoxPredictor(Func<int, int, IBoxPredictor> factory) => Set(ref boxPredictorFactory, factory);

    /// <summary>Replaces the mask head: factory(inChannels).</summary>
    public MaskRcnnBuilder WithMaskHead(Func<int, IMaskHead> factory) => Set(ref maskHeadFactory, factory);

    /// <summary>Replaces the mask predictor: factory(maskHeadChannels, numClasses).</summary>
    public MaskRcnnBuilder WithMaskPredictor(Func<int, int, IMaskPredictor> factory) => Set(ref maskPredictorFactory, factory);

    /// <summary>Replaces the RoI poolers (defaults: 7×7 and 14×14 multi-scale RoIAlign, sampling ratio 2).</summary>
    public MaskRcnnBuilder WithPoolers(IRoIPooler box, IRoIPooler? mask = null)
    {
        boxPooler = box ?? throw new ArgumentNullException(nameof(box));
        maskPooler = mask;
        return this;
    }

    /// <summary>Normal(0, σ) weights and zero biases for the class scores (σ 0.01), box deltas and mask logits (σ 0.001).</summary>
    private static void InitPredictorsSmall(MaskRcnnModel model)
    {
        using var noGrad = Torch.NoGrad();
        foreach (var (name, p) in model.NamedParameters())
        {
            double? std = name switch
            {
                "roi_heads.box_predictor.cls_score.weight" => 0.01,
                "roi_heads.box_predictor.bbox_pred.weight" or "roi_heads.mask_predictor.mask_fcn_logits.weight" => 0.001,
                _ => null,
            };
            if (std is { } s)
            {
                p.NormalInPlace(0, s);
            }
            else if (name is "roi_heads.box_predictor.cls_score.bias" or "roi_heads.box_predictor.bbox_pred.bias" or "roi_heads.mask_predictor.mask_fcn_logits.bias")
            {
                p.ZeroInPlace();
            }
        }
    }

    private static void LoadPretrained(MaskRcnnModel model, PretrainedBackbone weights)
    {
        const string Prefix = "backbone.body.";
        var keys = model.StateDict().Select(kv => kv.Key).Where(k => k.StartsWith(Prefix, StringComparison.Ordinal)).ToHashSet(StringComparer.Ordinal);
        var prefixed = weights.StateDict.ToDictionary(kv => Prefix + kv.Key, kv => kv.Value, StringComparer.Ordinal);
        var missing = keys.Where(k => !prefixed.ContainsKey(k)).ToList();
        var unexpected = prefixed.Keys.Where(k => !keys.Contains(k)).ToList();
        if (missing.Count > 0 || unexpected.Count > 0)
        {
            throw new ArgumentException(
                $"the pretrained backbone ({weights.Source}) does not fit the model's body: missing {string.Join(", ", missing.Take(5))}, " +
                $"unexpected {string.Join(", ", unexpected.Take(5))} (a custom backbone factory cannot take {weights.Name} weights)");
        }

        model.LoadStateDict(prefixed, strict: false);
    }

    private MaskRcnnBuilder Set<T>(ref T? field, T value) where T : class
    {
        field = value ?? throw new ArgumentNullException(nameof(value));
        return this;
    }

    /// <summary>Builds the model (evaluation mode, on the chosen device, weights loaded if given).</summary>
    public MaskRcnnModel Build()
    {
        config.Validate();
        using var generator = seed is { } s ? new RandomGenerator(s) : null;
        using var generatorScope = generator is null ? null : RandomGenerator.Use(generator);
        var disposables = new List<Module>();
        T Track<T>(T part)
        {
            if (part is Module m)
            {
                disposables.Add(m);
            }

            return part;
        }

        try
        {
            var backbone = Track(backboneFactory?.Invoke(config) ?? ResNetFpn.Create(
                config.Backbone.ToResNetOptions(),
                config.Backbone.TrainableLayers, config.Backbone.OutChannels));
            var channels = (backbone as IBackbone ?? throw new ArgumentException("the backbone factory must return an IBackbone")).OutChannels;
            var anchors = new AnchorGenerator(config.AnchorSizes, config.AnchorAspectRatios);
            var rpnHead = Track(rpnHeadFactory?.Invoke(channels, anchors.AnchorsPerLocation[0]) ?? new RpnHead(channels, anchors.AnchorsPerLocation[0]));
            var rpn = Track(new RegionProposalNetwork(anchors, rpnHead, config.Rpn));
            var bp = boxPooler ?? new MultiScaleRoIAlign(7, 2);
            var boxHead = Track(boxHeadFactory?.Invoke(channels, bp.OutputSize.Height) ?? new TwoMlpHead(channels * bp.OutputSize.Height * bp.OutputSize.Width, config.BoxHeadSize));
            var boxPredictor = Track(boxPredictorFactory?.Invoke(boxHead.RepresentationSize, config.NumClasses) ?? new FastRcnnPredictor(boxHead.RepresentationSize, config.NumClasses));
            IRoIPooler? mp = null;
            IMaskHead? maskHead = null;
            IMaskPredictor? maskPredictor = null;
            if (config.Masks)
            {
                mp = maskPooler ?? new MultiScaleRoIAlign(14, 2);
                maskHead = Track(maskHeadFactory?.Invoke(channels) ?? new MaskRcnnHead(channels, config.MaskHeadLayers));
                maskPredictor = Track(maskPredictorFactory?.Invoke(maskHead.OutChannels, config.NumClasses) ?? new MaskRcnnPredictor(maskHead.OutChannels, config.MaskPredictorChannels, config.NumClasses));
            }

            var heads = new RoIHeads(bp, boxHead, boxPredictor, mp, maskHead, maskPredictor, config.RoIHeads);
            var model = new MaskRcnnModel(config, backbone, rpn, heads);
            disposables.Clear();
            disposables.Add(model);
            model.Eval();
            if (predictorInit == PredictorInit.SmallNormal)
            {
                InitPredictorsSmall(model);
            }

            if (pretrained is not null)
            {
                LoadPretrained(model, pretrained);
            }

            if (weightsPath is not null)
            {
                if (MaskRcnnModel.IsSavedModel(weightsPath))
                {
                    var tensors = Core.Checkpoints.SafeTensors.Load(weightsPath);
                    try
                    {
                        model.WeightsLoadResult = model.LoadNormalized(tensors, weightsStrict, weightsSkipShapeMismatches);
                    }
                    finally
                    {
                        foreach (var t in tensors.Values)
                        {
                            t.Dispose();
                        }
                    }
                }
                else
                {
                    model.WeightsLoadResult = model.LoadTorchvisionWeights(weightsPath, weightsStrict, weightsSkipShapeMismatches);
                }
            }

            if (device != Device.Cpu)
            {
                model.ToDevice(device);
            }

            return model;
        }
        catch
        {
            foreach (var m in disposables)
            {
                m.Dispose();
            }

            throw;
        }
    }
}
