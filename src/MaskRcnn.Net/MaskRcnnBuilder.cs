using System.Runtime.CompilerServices;
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
    private Precision precision;

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
        WithBackbone(new ResNetOptions(depth, norm) { NormEps = normEps }, trainableLayers, outChannels);

    /// <summary>
    /// A ResNet body with every setting of <see cref="ResNetOptions"/> (e.g. <c>GroupNormGroups</c>,
    /// <c>StageBlocks</c>), trainable stages (0–5) and FPN channels. All of it is saved with the model.
    /// </summary>
    public MaskRcnnBuilder WithBackbone(ResNetOptions body, int trainableLayers = ResNetFpn.DefaultTrainableLayers,
        int outChannels = ResNetFpn.DefaultOutChannels)
    {
        ArgumentNullException.ThrowIfNull(body);
        return Configure(c => c with { Backbone = new BackboneConfig(body, trainableLayers, outChannels) });
    }

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
            Backbone = c.Backbone with { Body = o },
            Transform = c.Transform with { Mean = weights.PixelMean, Std = weights.PixelStd },
        });
    }

    /// <summary>
    /// Replaces the backbone: the factory returns a <see cref="Module"/> implementing <see cref="IBackbone"/>. The
    /// configuration cannot describe custom code, so <see cref="MaskRcnnModel.Save"/> refuses such a model (see
    /// <see cref="CustomPartsOf"/>); save its weights with <see cref="MaskRcnnModelWeights.SaveWeights"/> instead.
    /// </summary>
    public MaskRcnnBuilder WithBackbone(Func<MaskRcnnConfig, Module> factory) =>
        SetFactory(ref backboneFactory, factory, p => p with { Backbone = null });

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
    /// Multiplies each detection's score by its mask's confidence and sorts by the result (default off, as torchvision).
    /// See <see cref="MaskScoring"/>.
    /// </summary>
    public MaskRcnnBuilder WithMaskScoring(bool on = true) => Configure(c => c with { MaskScoring = on });

    /// <summary>
    /// RoIAlign's half-pixel correction (detectron2's <c>ROIAlignV2</c>) on the box and mask poolers
    /// (<see cref="RoIPoolerOptions.Aligned"/>) and on the mask targets (<see cref="RoIHeadsOptions.AlignedMaskTargets"/>),
    /// and the matching exact mask paste (<see cref="MaskRcnnConfig.AlignedMaskPaste"/>): boxes, pooled features, targets
    /// and pasted masks then share one pixel geometry (pixel k covers [k, k + 1)).
    /// Default off, as torchvision's Mask R-CNN and its COCO checkpoint; a model trained with it must be run with it (saved
    /// with the model). Like <see cref="WithScoreThreshold"/>, it changes the current settings: call it after
    /// <see cref="WithRoIHeads"/> and <c>WithPoolers</c>, which replace them.
    /// </summary>
    public MaskRcnnBuilder WithAlignedRoIAlign(bool on = true) => Configure(c => c with
    {
        BoxPooler = c.BoxPooler with { Aligned = on },
        MaskPooler = c.MaskPooler with { Aligned = on },
        RoIHeads = c.RoIHeads with { AlignedMaskTargets = on },
        AlignedMaskPaste = on,
    });

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

    /// <summary>
    /// The number format prediction computes in (<see cref="GeneralizedRcnn.Precision"/>; default float32). Checked
    /// when the model is built: <see cref="Precision.BFloat16"/> on a CPU without native bfloat16 instructions throws
    /// <see cref="NotSupportedException"/>.
    /// </summary>
    public MaskRcnnBuilder WithPrecision(Precision precision)
    {
        _ = precision.ComputeType();
        this.precision = precision;
        return this;
    }

    /// <summary>The device to run on.</summary>
    public MaskRcnnBuilder WithDevice(Device device)
    {
        this.device = device;
        return this;
    }

    /// <summary>
    /// Replaces the RPN head: factory(inChannels, anchorsPerLocation). <see cref="MaskRcnnModel.Save"/> refuses the model
    /// (custom code); register the factory in <see cref="PartRegistry"/> and use <see cref="WithRpnHead(string, IReadOnlyDictionary{string, string}?)"/> to save it.
    /// </summary>
    public MaskRcnnBuilder WithRpnHead(Func<int, int, IRpnHead> factory) => SetFactory(ref rpnHeadFactory, factory, p => p with { RpnHead = null });

    /// <summary>
    /// Replaces the box head: factory(inChannels, poolerResolution). <see cref="MaskRcnnModel.Save"/> refuses the model
    /// (custom code); register the factory in <see cref="PartRegistry"/> and use <see cref="WithBoxHead(string, IReadOnlyDictionary{string, string}?)"/> to save it.
    /// </summary>
    public MaskRcnnBuilder WithBoxHead(Func<int, int, IBoxHead> factory) => SetFactory(ref boxHeadFactory, factory, p => p with { BoxHead = null });

    /// <summary>
    /// Replaces the box predictor: factory(representationSize, numClasses). <see cref="MaskRcnnModel.Save"/> refuses the
    /// model (custom code); register the factory in <see cref="PartRegistry"/> and use <see cref="WithBoxPredictor(string, IReadOnlyDictionary{string, string}?)"/> to save it.
    /// </summary>
    public MaskRcnnBuilder WithBoxPredictor(Func<int, int, IBoxPredictor> factory) => SetFactory(ref boxPredictorFactory, factory, p => p with { BoxPredictor = null });

    /// <summary>
    /// Replaces the mask head: factory(inChannels). <see cref="MaskRcnnModel.Save"/> refuses the model (custom code);
    /// register the factory in <see cref="PartRegistry"/> and use <see cref="WithMaskHead(string, IReadOnlyDictionary{string, string}?)"/> to save it.
    /// </summary>
    public MaskRcnnBuilder WithMaskHead(Func<int, IMaskHead> factory) => SetFactory(ref maskHeadFactory, factory, p => p with { MaskHead = null });

    /// <summary>
    /// Replaces the mask predictor: factory(maskHeadChannels, numClasses). <see cref="MaskRcnnModel.Save"/> refuses the
    /// model (custom code); register the factory in <see cref="PartRegistry"/> and use <see cref="WithMaskPredictor(string, IReadOnlyDictionary{string, string}?)"/> to save it.
    /// </summary>
    public MaskRcnnBuilder WithMaskPredictor(Func<int, int, IMaskPredictor> factory) => SetFactory(ref maskPredictorFactory, factory, p => p with { MaskPredictor = null });

    /// <summary>The backbone registered as <paramref name="name"/> (<see cref="PartRegistry.RegisterBackbone"/>); saved with the model.</summary>
    public MaskRcnnBuilder WithBackbone(string name, IReadOnlyDictionary<string, string>? settings = null)
    {
        backboneFactory = null;
        return SetNamed(p => p with { Backbone = new NamedPart(name, settings) });
    }

    /// <summary>The RPN head registered as <paramref name="name"/> (<see cref="PartRegistry.RegisterRpnHead"/>); saved with the model.</summary>
    public MaskRcnnBuilder WithRpnHead(string name, IReadOnlyDictionary<string, string>? settings = null)
    {
        rpnHeadFactory = null;
        return SetNamed(p => p with { RpnHead = new NamedPart(name, settings) });
    }

    /// <summary>The box head registered as <paramref name="name"/> (<see cref="PartRegistry.RegisterBoxHead"/>); saved with the model.</summary>
    public MaskRcnnBuilder WithBoxHead(string name, IReadOnlyDictionary<string, string>? settings = null)
    {
        boxHeadFactory = null;
        return SetNamed(p => p with { BoxHead = new NamedPart(name, settings) });
    }

    /// <summary>The box predictor registered as <paramref name="name"/> (<see cref="PartRegistry.RegisterBoxPredictor"/>); saved with the model.</summary>
    public MaskRcnnBuilder WithBoxPredictor(string name, IReadOnlyDictionary<string, string>? settings = null)
    {
        boxPredictorFactory = null;
        return SetNamed(p => p with { BoxPredictor = new NamedPart(name, settings) });
    }

    /// <summary>The mask head registered as <paramref name="name"/> (<see cref="PartRegistry.RegisterMaskHead"/>); saved with the model.</summary>
    public MaskRcnnBuilder WithMaskHead(string name, IReadOnlyDictionary<string, string>? settings = null)
    {
        maskHeadFactory = null;
        return SetNamed(p => p with { MaskHead = new NamedPart(name, settings) });
    }

    /// <summary>The mask predictor registered as <paramref name="name"/> (<see cref="PartRegistry.RegisterMaskPredictor"/>); saved with the model.</summary>
    public MaskRcnnBuilder WithMaskPredictor(string name, IReadOnlyDictionary<string, string>? settings = null)
    {
        maskPredictorFactory = null;
        return SetNamed(p => p with { MaskPredictor = new NamedPart(name, settings) });
    }

    private MaskRcnnBuilder SetNamed(Func<CustomPartsConfig, CustomPartsConfig> change) =>
        Configure(c => c with { Parts = change(c.Parts ?? new CustomPartsConfig()) is { IsEmpty: false } parts ? parts : null });

    private MaskRcnnBuilder SetFactory<T>(ref T? field, T factory, Func<CustomPartsConfig, CustomPartsConfig> clearNamed) where T : class
    {
        field = factory ?? throw new ArgumentNullException(nameof(factory));
        return config.Parts is null ? this : SetNamed(clearNamed);
    }

    /// <summary>
    /// Settings of the multi-scale RoIAlign poolers (defaults: 7×7 and 14×14, sampling ratio 2); null leaves the mask
    /// pooler as it is. Saved with the model.
    /// </summary>
    public MaskRcnnBuilder WithPoolers(RoIPoolerOptions box, RoIPoolerOptions? mask = null)
    {
        ArgumentNullException.ThrowIfNull(box);
        boxPooler = null;
        if (mask is not null)
        {
            maskPooler = null;
        }

        return Configure(c => c with { BoxPooler = box, MaskPooler = mask ?? c.MaskPooler });
    }

    /// <summary>
    /// Replaces the RoI poolers with instances (null <paramref name="mask"/>: the configured mask pooler). A
    /// <see cref="MultiScaleRoIAlign"/> is recorded by its <see cref="MultiScaleRoIAlign.Options"/> (as
    /// <see cref="WithPoolers(RoIPoolerOptions, RoIPoolerOptions?)"/>); any other <see cref="IRoIPooler"/> is custom code,
    /// which <see cref="MaskRcnnModel.Save"/> refuses (see <see cref="CustomPartsOf"/>).
    /// </summary>
    public MaskRcnnBuilder WithPoolers(IRoIPooler box, IRoIPooler? mask = null)
    {
        ArgumentNullException.ThrowIfNull(box);
        if (box is MultiScaleRoIAlign boxAlign)
        {
            boxPooler = null;
            Configure(c => c with { BoxPooler = boxAlign.Options });
        }
        else
        {
            boxPooler = box;
        }

        if (mask is MultiScaleRoIAlign maskAlign)
        {
            maskPooler = null;
            Configure(c => c with { MaskPooler = maskAlign.Options });
        }
        else if (mask is not null)
        {
            maskPooler = mask;
        }

        return this;
    }

    /// <summary>
    /// The parts of <paramref name="model"/> that a builder factory (or a custom pooler instance) made, described as
    /// "custom mask head (WithMaskHead factory)"; empty for a model the configuration alone rebuilds (built without
    /// factories, or loaded). <see cref="MaskRcnnModel.Save"/> refuses a model with custom parts.
    /// </summary>
    public static IReadOnlyList<string> CustomPartsOf(MaskRcnnModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return CustomParts.TryGetValue(model, out var parts) ? parts : [];
    }

    /// <summary>
    /// Throws when <paramref name="model"/> has parts its configuration cannot rebuild (called by
    /// <see cref="MaskRcnnModel.Save"/>).
    /// </summary>
    /// <exception cref="InvalidOperationException">The model has custom parts; the message names them and the way out.</exception>
    internal static void EnsureSavable(MaskRcnnModel model)
    {
        var parts = CustomPartsOf(model);
        if (parts.Count > 0)
        {
            throw new InvalidOperationException(
                $"this model has {string.Join(", ", parts)}; Save cannot record how to rebuild custom code, so MaskRcnnModel.Load " +
                "would build the default part in its place. Register the factory by name (PartRegistry.RegisterMaskHead(\"my-head\", …) " +
                "and the builder's WithMaskHead(\"my-head\", settings), likewise for the other parts) so that the configuration records " +
                "it, or save the weights only with model.SaveWeights(path) and rebuild with the same factories: " +
                "new MaskRcnnBuilder(model.Config).With…(factory).WithWeights(path).Build().");
        }
    }

    /// <summary>Custom parts of the models this class built (weakly keyed: no model is kept alive by it).</summary>
    private static readonly ConditionalWeakTable<MaskRcnnModel, IReadOnlyList<string>> CustomParts = new();

    private List<string> DescribeCustomParts()
    {
        var parts = new List<string>();
        void Add(object? factory, string what, string how)
        {
            if (factory is not null)
            {
                parts.Add($"a custom {what} ({how})");
            }
        }

        Add(backboneFactory, "backbone", "WithBackbone factory");
        Add(rpnHeadFactory, "RPN head", "WithRpnHead factory");
        Add(boxPooler, "box pooler", $"WithPoolers instance of {boxPooler?.GetType().Name}");
        Add(boxHeadFactory, "box head", "WithBoxHead factory");
        Add(boxPredictorFactory, "box predictor", "WithBoxPredictor factory");
        if (config.Masks)
        {
            Add(maskPooler, "mask pooler", $"WithPoolers instance of {maskPooler?.GetType().Name}");
            Add(maskHeadFactory, "mask head", "WithMaskHead factory");
            Add(maskPredictorFactory, "mask predictor", "WithMaskPredictor factory");
        }

        return parts;
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

    private static T? Named<T>(NamedPart? part, string kind, string field) where T : Delegate =>
        part is null ? null : PartRegistry.Resolve<T>(kind, part, field);

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
            var parts = config.Parts ?? new CustomPartsConfig();
            var backbone = Track(backboneFactory?.Invoke(config) ?? Named<Func<MaskRcnnConfig, IReadOnlyDictionary<string, string>, Module>>(parts.Backbone, "backbone", nameof(parts.Backbone))?.Invoke(config, parts.Backbone!.SettingsOrEmpty) ?? ResNetFpn.Create(
                config.Backbone.ToResNetOptions(),
                config.Backbone.TrainableLayers, config.Backbone.OutChannels));
            var backboneParts = backbone as IBackbone ?? throw new ArgumentException("the backbone factory must return an IBackbone");
            var channels = backboneParts.OutChannels;
            if (backboneParts.FeatureNames.Count != config.AnchorSizes.Count)
            {
                throw new ArgumentException(
                    $"AnchorSizes has {config.AnchorSizes.Count} levels but the backbone returns {backboneParts.FeatureNames.Count} feature maps " +
                    $"({string.Join(", ", backboneParts.FeatureNames)}); give one anchor level per map", nameof(MaskRcnnConfig.AnchorSizes));
            }

            var anchors = new AnchorGenerator(config.AnchorSizes, config.AnchorAspectRatios);
            var rpnHead = Track(rpnHeadFactory?.Invoke(channels, anchors.AnchorsPerLocation[0]) ??
                Named<Func<int, int, IReadOnlyDictionary<string, string>, IRpnHead>>(parts.RpnHead, "RPN head", nameof(parts.RpnHead))?.Invoke(channels, anchors.AnchorsPerLocation[0], parts.RpnHead!.SettingsOrEmpty) ??
                new RpnHead(channels, anchors.AnchorsPerLocation[0]));
            var rpn = Track(new RegionProposalNetwork(anchors, rpnHead, config.Rpn));
            var bp = boxPooler ?? new MultiScaleRoIAlign(config.BoxPooler);
            var boxHead = Track(boxHeadFactory?.Invoke(channels, bp.OutputSize.Height) ??
                Named<Func<int, int, IReadOnlyDictionary<string, string>, IBoxHead>>(parts.BoxHead, "box head", nameof(parts.BoxHead))?.Invoke(channels, bp.OutputSize.Height, parts.BoxHead!.SettingsOrEmpty) ??
                new TwoMlpHead(channels * bp.OutputSize.Height * bp.OutputSize.Width, config.BoxHeadSize));
            var boxPredictor = Track(boxPredictorFactory?.Invoke(boxHead.RepresentationSize, config.NumClasses) ??
                Named<Func<int, int, IReadOnlyDictionary<string, string>, IBoxPredictor>>(parts.BoxPredictor, "box predictor", nameof(parts.BoxPredictor))?.Invoke(boxHead.RepresentationSize, config.NumClasses, parts.BoxPredictor!.SettingsOrEmpty) ??
                new FastRcnnPredictor(boxHead.RepresentationSize, config.NumClasses));
            IRoIPooler? mp = null;
            IMaskHead? maskHead = null;
            IMaskPredictor? maskPredictor = null;
            if (config.Masks)
            {
                mp = maskPooler ?? new MultiScaleRoIAlign(config.MaskPooler);
                maskHead = Track(maskHeadFactory?.Invoke(channels) ??
                    Named<Func<int, IReadOnlyDictionary<string, string>, IMaskHead>>(parts.MaskHead, "mask head", nameof(parts.MaskHead))?.Invoke(channels, parts.MaskHead!.SettingsOrEmpty) ??
                    new MaskRcnnHead(channels, config.MaskHeadLayers));
                maskPredictor = Track(maskPredictorFactory?.Invoke(maskHead.OutChannels, config.NumClasses) ??
                    Named<Func<int, int, IReadOnlyDictionary<string, string>, IMaskPredictor>>(parts.MaskPredictor, "mask predictor", nameof(parts.MaskPredictor))?.Invoke(maskHead.OutChannels, config.NumClasses, parts.MaskPredictor!.SettingsOrEmpty) ??
                    new MaskRcnnPredictor(maskHead.OutChannels, config.MaskPredictorChannels, config.NumClasses));
            }

            var heads = new RoIHeads(bp, boxHead, boxPredictor, mp, maskHead, maskPredictor, config.RoIHeads);
            var model = new MaskRcnnModel(config, backbone, rpn, heads);
            disposables.Clear();
            disposables.Add(model);
            if (DescribeCustomParts() is { Count: > 0 } custom)
            {
                CustomParts.AddOrUpdate(model, custom);
            }

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

            model.Precision = precision;
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
