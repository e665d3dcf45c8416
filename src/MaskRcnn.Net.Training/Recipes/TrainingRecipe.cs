using System.Globalization;
using MaskRcnn.Net.Backbones;
using MaskRcnn.Net.Heads;
using MaskRcnn.Net.Training;

namespace MaskRcnn.Net;

/// <summary>Where the backbone's starting weights come from when no <see cref="RecipeRequest.Weights"/> are given.</summary>
public enum PretrainedChoice
{
    /// <summary>The ImageNet ResNet-18 when its file is found (<see cref="PretrainedBackbone.FindResNet18"/>), else from scratch.</summary>
    Auto,

    /// <summary>The ImageNet ResNet-18 (an error when its file is not found).</summary>
    ImageNetResNet18,

    /// <summary>Random initialisation: the from-scratch recipe (ResNet-18 with GroupNorm).</summary>
    None,
}

/// <summary>What a caller tells <see cref="TrainingRecipe.For"/> besides the data.</summary>
public sealed record RecipeRequest
{
    /// <summary>Weights to fine-tune (torchvision's COCO <c>maskrcnn_resnet50_fpn</c>), or null.</summary>
    public string? Weights { get; init; }

    /// <summary>The backbone's starting point when <see cref="Weights"/> is null (default <see cref="PretrainedChoice.Auto"/>).</summary>
    public PretrainedChoice Pretrained { get; init; } = PretrainedChoice.Auto;

    /// <summary>ResNet18.onnx, when not in a default location.</summary>
    public string? PretrainedPath { get; init; }

    /// <summary>Train for this long (the schedule is planned to end in time), or null.</summary>
    public TimeSpan? TimeBudget { get; init; }

    /// <summary>Train for this many epochs (with <see cref="TimeBudget"/>: a cap), or null for the recipe's choice.</summary>
    public int? Epochs { get; init; }

    /// <summary>
    /// The optimizer (default <see cref="OptimizerKind.Sgd"/>); with <see cref="OptimizerKind.AdamW"/> the recipe
    /// picks AdamW's usual detection learning rate and weight decay (<see cref="TrainingRecipe.AdamWLearningRate"/>,
    /// <see cref="TrainingRecipe.AdamWWeightDecay"/>).
    /// </summary>
    public OptimizerKind Optimizer { get; init; } = OptimizerKind.Sgd;
}

/// <summary>One decision of a recipe: the setting, its value and why.</summary>
/// <param name="Setting">The setting (named as the CLI option that overrides it).</param>
/// <param name="Value">The value chosen.</param>
/// <param name="Reason">Why, in terms of the data or the request.</param>
public sealed record RecipeChoice(string Setting, string Value, string Reason)
{
    /// <inheritdoc/>
    public override string ToString() => $"{Setting} {Value}: {Reason}";
}

/// <summary>
/// Training settings chosen from the dataset and what the caller has (weights to fine-tune, the pretrained
/// ImageNet ResNet-18, a time budget): image size from the images' sizes, anchors from the objects' sizes at that
/// scale, backbone, norm layers, heads, sampling and schedule fitted to the starting point. The CLI's
/// <c>maskrcnn train</c> and <c>maskrcnn demo</c> use the same recipe, so C# and the CLI agree; every value is a
/// plain property to change with <c>with { … }</c>, and <see cref="Choices"/> says why each was picked.
/// </summary>
public sealed record TrainingRecipe
{
    /// <summary>Weights to fine-tune, or null.</summary>
    public string? Weights { get; init; }

    /// <summary>ResNet18.onnx to start the body from, or null (no ImageNet pretraining).</summary>
    public string? PretrainedPath { get; init; }

    /// <summary>ResNet depth (the pretrained file fixes 18).</summary>
    public int Depth { get; init; } = 18;

    /// <summary>Norm layers of the body.</summary>
    public NormKind Norm { get; init; } = NormKind.GroupNorm;

    /// <summary>Body stages trained (0–5).</summary>
    public int TrainableLayers { get; init; } = 5;

    /// <summary>FPN (and RPN head) channels.</summary>
    public int FpnChannels { get; init; } = 128;

    /// <summary>Shorter-side target of the resize.</summary>
    public int ImageSize { get; init; } = 256;

    /// <summary>Longer-side limit of the resize.</summary>
    public int MaxSize { get; init; } = 256;

    /// <summary>One anchor size per FPN level.</summary>
    public IReadOnlyList<double> AnchorSizes { get; init; } = [16, 32, 64, 128, 256];

    /// <summary>RoIs sampled per image for the box and mask heads.</summary>
    public int RoIsPerImage { get; init; } = 64;

    /// <summary>Box head representation size.</summary>
    public int BoxHeadSize { get; init; } = 256;

    /// <summary>Mask head convolution channels per layer.</summary>
    public IReadOnlyList<int> MaskHead { get; init; } = [128, 128, 128, 128];

    /// <summary>Initialisation of the box and mask predictors.</summary>
    public PredictorInit PredictorInit { get; init; } = PredictorInit.SmallNormal;

    /// <summary>Images per batch.</summary>
    public int BatchSize { get; init; } = 4;

    /// <summary>The optimizer.</summary>
    public OptimizerKind Optimizer { get; init; } = OptimizerKind.Sgd;

    /// <summary>Base learning rate (SGD with momentum 0.9, or AdamW).</summary>
    public double LearningRate { get; init; } = 0.02;

    /// <summary>Weight decay (SGD: L2 on the gradient; AdamW: decoupled), not applied to norm layers and biases.</summary>
    public double WeightDecay { get; init; } = 1e-4;

    /// <summary>Linear warm-up steps.</summary>
    public int WarmupSteps { get; init; } = 50;

    /// <summary>Decay after warm-up.</summary>
    public LearningRateDecay Decay { get; init; } = LearningRateDecay.Cosine;

    /// <summary>
    /// The trained model's duplicate suppression (<see cref="MaskRcnnConfig.SuppressContained"/>): drop a detection lying
    /// at least this fraction inside a higher-scoring one of its class, or null (off).
    /// </summary>
    public double? SuppressContained { get; init; }

    /// <summary>
    /// The trained model's mask scoring (<see cref="MaskRcnnConfig.MaskScoring"/>): scores multiplied by the masks'
    /// confidence. On for the ImageNet-pretrained recipe (measured), off otherwise.
    /// </summary>
    public bool MaskScoring { get; init; }

    /// <summary>
    /// RoIAlign's half-pixel correction in the poolers and the mask targets (<see cref="MaskRcnnBuilder.WithAlignedRoIAlign"/>),
    /// saved with the model.
    /// </summary>
    public bool AlignedRoIAlign { get; init; }

    /// <summary>
    /// Brightness and contrast jitter of the training images (<see cref="Training.ColorJitter"/>, both strengths), 0 for
    /// none; horizontal flips (p = 0.5) are always on. See <see cref="CreateAugmentation"/>.
    /// </summary>
    public double ColorJitter { get; init; }

    /// <summary>Epochs (with <see cref="TimeBudget"/>: an upper bound).</summary>
    public int Epochs { get; init; } = 8;

    /// <summary>Time budget, or null.</summary>
    public TimeSpan? TimeBudget { get; init; }

    /// <summary>The decisions and their reasons, in the order they were made.</summary>
    public IReadOnlyList<RecipeChoice> Choices { get; init; } = [];

    /// <summary>A time budget from which training from ImageNet or scratch upscales the images 1.5x.</summary>
    public static readonly TimeSpan LongRun = TimeSpan.FromMinutes(15);

    /// <summary>An epoch count from which training from ImageNet or scratch upscales the images 1.5x.</summary>
    public const int LongRunEpochs = 16;

    /// <summary>
    /// SGD's learning rate for long runs (<see cref="LongRun"/>, <see cref="LongRunEpochs"/>) from ImageNet or scratch:
    /// 0.01, half the short runs' 0.02. A short run decays from 0.02 within a few hundred steps; a long one stays near its
    /// peak for hundreds of steps, and at 0.02 on the shipped MRI data (384 px, 25 minutes) the mask loss stayed at
    /// 0.55–0.65 for the first 250 steps and validation mask AP was 0.001 after 4 epochs, against 0.426 at 0.01.
    /// </summary>
    public const double LongRunLearningRate = 0.01;

    /// <summary>
    /// RoIs sampled per image in long runs from ImageNet or scratch (at least): 128, twice the short runs' 64 for images
    /// with few objects. Measured on the shipped MRI data, 25 minutes, seeds 0 and 1: mask AP 0.531 / AP50 0.916 with 64,
    /// 0.535 / 0.933 with 128, about the same number of steps.
    /// </summary>
    public const int LongRunRoIsPerImage = 128;

    /// <summary>
    /// Brightness/contrast jitter strength of long runs from ImageNet or scratch: 0.2. Slices of other patients differ in
    /// brightness and contrast. Measured on the shipped MRI data (25 minutes, seeds 0 and 1, the recipe otherwise
    /// unchanged): mask AP 0.551 / AP50 0.911 without, 0.568 / 0.956 with (the parts that one held-out patient's large
    /// tumours are split into score lower, below most whole tumours); see <c>README.md</c>.
    /// </summary>
    public const double LongRunColorJitter = 0.2;

    /// <summary>
    /// AdamW's learning rate: 1e-4, as MMDetection's Mask R-CNN Swin-T config
    /// (<c>configs/swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py</c>: AdamW, lr 0.0001, betas 0.9/0.999, weight decay
    /// 0.05, no decay on norm layers) and detectron2's default AdamW (<c>configs/common/optim.py</c>: lr 1e-4, weight decay 0.1) use.
    /// Adam's per-weight step normalisation makes it far less sensitive to the batch size than SGD's rate, so it is
    /// not scaled.
    /// </summary>
    public const double AdamWLearningRate = 1e-4;

    /// <summary>AdamW's decoupled weight decay: 0.05, as MMDetection's Mask R-CNN Swin-T config (see <see cref="AdamWLearningRate"/>).</summary>
    public const double AdamWWeightDecay = 0.05;

    /// <summary>Picks the settings for training on <paramref name="train"/>.</summary>
    /// <exception cref="ArgumentException">The dataset is empty.</exception>
    /// <exception cref="FileNotFoundException"><see cref="PretrainedChoice.ImageNetResNet18"/> was asked for and its file is missing.</exception>
    public static TrainingRecipe For(IDetectionDataset train, RecipeRequest? request = null)
    {
        ArgumentNullException.ThrowIfNull(train);
        request ??= new RecipeRequest();
        if (train.Count == 0)
        {
            throw new ArgumentException("the training set has no images", nameof(train));
        }

        var choices = new List<RecipeChoice>();
        void Choose(string setting, object value, string reason) =>
            choices.Add(new RecipeChoice(setting, Convert.ToString(value, CultureInfo.InvariantCulture) ?? "", reason));

        var recipe = new TrainingRecipe();
        // ---- starting point, backbone and schedule ----
        if (request.Weights is { } weights)
        {
            recipe = recipe with
            {
                Weights = weights, Depth = 50, Norm = NormKind.FrozenBatchNorm, TrainableLayers = 3, FpnChannels = 256,
                BoxHeadSize = 1024, MaskHead = [256, 256, 256, 256], PredictorInit = PredictorInit.Torchvision,
                LearningRate = 0.02 * 4 / 16, WarmupSteps = 100, Decay = LearningRateDecay.Step, Epochs = 12,
            };
            Choose("--weights", weights, "fine-tune as torchvision does: ResNet-50 with frozen batch norm, 3 trainable stages, torchvision's heads");
            Choose("--lr", recipe.LearningRate, "torchvision's 0.02 for 16 images per batch, scaled to 4");
        }
        else
        {
            var path = request.Pretrained switch
            {
                PretrainedChoice.None => null,
                PretrainedChoice.ImageNetResNet18 => request.PretrainedPath ?? PretrainedBackbone.FindResNet18() ?? throw new FileNotFoundException(
                    $"--pretrained imagenet-resnet18: ResNet18.onnx not found in {string.Join(", ", PretrainedBackbone.ResNet18Candidates())}; " +
                    $"restore a project with <PackageDownload Include=\"{PretrainedBackbone.ResNet18PackageId}\" Version=\"[{PretrainedBackbone.ResNet18PackageVersion}]\" />"),
                _ => request.PretrainedPath ?? PretrainedBackbone.FindResNet18(),
            };
            if (path is not null)
            {
                recipe = recipe with { PretrainedPath = path, Norm = NormKind.FrozenBatchNorm, TrainableLayers = 5, MaskScoring = true, AlignedRoIAlign = true };
                Choose("--pretrained", "imagenet-resnet18", $"ImageNet ResNet-18 found ({path}): its body with frozen batch norm, all stages fine-tuned");
                Choose("--suppress-contained", "off",
                    "measured with this recipe on the shipped MRI data (4 runs), dropping detections lying >= 80 % inside a better one " +
                    "cost 0.012 mask AP on average (more than the 0.01 allowed) while it gained 0.025 Dice: give 0.8 for cleaner pictures and counts");
                Choose("--aligned-roi-align", "on",
                    "pooled features, mask targets and pasted masks share one pixel geometry (detectron2's ROIAlignV2 and paste): torchvision's " +
                    "unaligned targets and rounded paste shift and stretch masks by about a pixel, which costs small objects at high IoU thresholds");
                Choose("--mask-scoring", "on",
                    "measured on the shipped MRI validation split with 3 models this recipe trained: scores times the masks' confidence " +
                    "raised mask AP by 0.013-0.022 (mean 0.016) and box AP by 0.010-0.015, AP50 unchanged");
            }
            else
            {
                Choose("--pretrained", "none", request.Pretrained == PretrainedChoice.None
                    ? "asked for: ResNet-18 with GroupNorm from scratch"
                    : $"no ImageNet ResNet-18 found ({PretrainedBackbone.ResNet18PackageId} not restored): ResNet-18 with GroupNorm from scratch");
            }

            Choose("--lr", recipe.LearningRate, "SGD with batch 4, 50 warm-up steps, cosine decay to the end of the run");
        }

        // ---- optimizer ----
        if (request.Optimizer == OptimizerKind.AdamW)
        {
            recipe = recipe with { Optimizer = OptimizerKind.AdamW, LearningRate = AdamWLearningRate, WeightDecay = AdamWWeightDecay };
            choices.RemoveAll(c => c.Setting == "--lr"); // the SGD rate chosen with the starting point
            Choose("--optimizer", "adamw", "asked for: AdamW (betas 0.9/0.999) with decoupled weight decay, none on norm layers and biases");
            Choose("--lr", recipe.LearningRate,
                $"AdamW's detection setting (MMDetection's Mask R-CNN Swin-T: lr 1e-4, weight decay {AdamWWeightDecay}), with the same warm-up and decay as SGD");
        }
        else if (!Enum.IsDefined(request.Optimizer))
        {
            throw new ArgumentException($"unknown optimizer {request.Optimizer}: expected Sgd or AdamW", nameof(request));
        }
        else
        {
            Choose("--optimizer", "sgd", "torchvision's detection reference: SGD with momentum 0.9 and weight decay 1e-4 (none on norm layers and biases)");
        }

        // ---- image size from the images ----
        var samples = Enumerable.Range(0, train.Count).Select(train.GetSample).ToList();
        var longer = Median(samples.Select(s => (double)Math.Max(s.Width, s.Height)));
        var cap = request.Weights is null ? 512 : 800;
        var target = (int)Math.Clamp(Math.Round(longer / 32) * 32, 128, cap);
        var longRun = request.TimeBudget is { } time ? time >= LongRun : (request.Epochs ?? recipe.Epochs) >= LongRunEpochs;
        if (request.Weights is null && longRun && target < cap)
        {
            // Measured on the shipped MRI data (2 cores): at the native 256 px the model stopped improving after 16
            // epochs (mask AP 0.488 after 25 minutes, 28 epochs); at 1.5x the masks and boxes are finer.
            var upscaled = (int)Math.Min(cap, Math.Round(longer * 1.5 / 32) * 32);
            recipe = recipe with { ImageSize = upscaled, MaxSize = upscaled };
            Choose("--min-size/--max-size", upscaled,
                $"the median image's longer side is {longer:0} px and the run is long (>= {LongRun.TotalMinutes:0} minutes or {LongRunEpochs} epochs): " +
                $"longer sides are resized to 1.5x, {upscaled} px (multiple of 32, at most {cap}), for finer masks; at the native size training plateaus sooner");
            if (recipe.Optimizer == OptimizerKind.Sgd)
            {
                recipe = recipe with { LearningRate = LongRunLearningRate };
                choices.RemoveAll(c => c.Setting == "--lr"); // the short runs' rate chosen with the starting point
                Choose("--lr", recipe.LearningRate,
                    "SGD with batch 4, 50 warm-up steps, cosine decay to the end of the run; a long run stays near its peak rate for hundreds " +
                    "of steps, where 0.02 was unstable on the shipped MRI data (mask AP 0.001 after 4 epochs of a 25-minute run, 0.426 at 0.01)");
            }
        }
        else
        {
            recipe = recipe with { ImageSize = target, MaxSize = target };
            Choose("--min-size/--max-size", target,
                $"the median image's longer side is {longer:0} px: longer sides are resized to {target} px (multiple of 32, at most {cap})");
        }

        target = recipe.ImageSize;

        // ---- anchors from the objects at that scale ----
        var objects = new List<double>();
        foreach (var s in samples)
        {
            var scale = Math.Min((double)target / Math.Min(s.Width, s.Height), (double)target / Math.Max(s.Width, s.Height));
            objects.AddRange(s.Annotations.Where(a => !a.IsCrowd).Select(a => Math.Sqrt(Math.Max(1e-6, a.Box.Width * a.Box.Height)) * scale));
        }

        if (objects.Count > 0)
        {
            objects.Sort();
            var small = objects[(int)(0.05 * (objects.Count - 1))];
            var large = objects[^1];
            var smallest = Math.Clamp(Math.Pow(2, Math.Floor(Math.Log2(small))), 8, 64);
            recipe = recipe with { AnchorSizes = Enumerable.Range(0, 5).Select(k => smallest * (1 << k)).ToArray() };
            Choose("--anchor-sizes", string.Join(",", recipe.AnchorSizes),
                $"objects are {objects[0]:0}–{large:0} px at that scale (5th percentile {small:0} px): five octaves from the power of two at or below it, so the smallest objects have anchors their size or smaller");
        }
        else
        {
            recipe = recipe with { AnchorSizes = [32, 64, 128, 256, 512] };
            Choose("--anchor-sizes", "32,64,128,256,512", "no annotated objects: torchvision's anchors");
        }

        // ---- augmentation ----
        if (request.Weights is null && longRun)
        {
            recipe = recipe with { ColorJitter = LongRunColorJitter };
            Choose("--color-jitter", LongRunColorJitter,
                "the run is long: brightness and contrast of the training images vary by up to ±20 % (horizontal flips always), " +
                "as slices of other patients do; measured on the shipped MRI data (25 minutes, 2 seeds) mask AP / AP50 rose from 0.551 / 0.911 to 0.568 / 0.956");
        }

        // ---- sampling from the objects per image ----
        var perImage = samples.Max(s => s.Annotations.Count);
        if (request.Weights is null)
        {
            var rois = perImage <= 4 ? 64 : perImage <= 16 ? 128 : 256;
            var why = $"at most {perImage} objects per image; small heads (FPN 128, box head 256, mask head 4×128) fit 2 CPU cores";
            if (longRun && rois < LongRunRoIsPerImage)
            {
                // Measured on the shipped MRI data (25 minutes, seeds 0 and 1, mask scoring on): 64 RoIs gave mask AP
                // 0.531 / AP50 0.916, 128 gave 0.535 / 0.933 at about the same number of steps.
                rois = LongRunRoIsPerImage;
                why = $"at most {perImage} objects per image, and the run is long: {LongRunRoIsPerImage} RoIs give the box and mask heads more " +
                    "negatives and more positive crops per step; measured on the shipped MRI data (25 minutes, 2 seeds) mask AP50 rose from 0.916 to 0.933 against 64";
            }

            recipe = recipe with { RoIsPerImage = rois };
            Choose("--rois-per-image", rois, why);
        }
        else
        {
            recipe = recipe with { RoIsPerImage = perImage <= 16 ? 256 : 512 };
            Choose("--rois-per-image", recipe.RoIsPerImage, $"at most {perImage} objects per image");
        }

        // ---- length ----
        var batches = (train.Count + recipe.BatchSize - 1) / recipe.BatchSize;
        if (request.TimeBudget is { } budget)
        {
            recipe = recipe with { TimeBudget = budget, Epochs = request.Epochs ?? 1000 };
            Choose("--minutes", budget.TotalMinutes.ToString("0.#", CultureInfo.InvariantCulture), "the step count is planned from the measured step time so that the decay ends in time");
        }
        else if (request.Epochs is { } epochs)
        {
            recipe = recipe with { Epochs = epochs };
        }
        else
        {
            Choose("--epochs", recipe.Epochs, $"{recipe.Epochs * batches} steps of {recipe.BatchSize} images");
        }

        recipe = recipe with { WarmupSteps = Math.Min(recipe.WarmupSteps, Math.Max(1, batches * 2)) };
        return recipe with { Choices = choices };
    }

    /// <summary>A builder for this recipe's model (classes from the dataset: index 0 is the background).</summary>
    public MaskRcnnBuilder CreateBuilder(IReadOnlyList<string> classNames)
    {
        ArgumentNullException.ThrowIfNull(classNames);
        var builder = new MaskRcnnBuilder()
            .WithClasses([.. classNames.Skip(1)])
            .WithBackbone(Depth, Norm, TrainableLayers, outChannels: FpnChannels)
            .WithImageSize(ImageSize, MaxSize)
            .WithAnchors(AnchorSizes.Select(a => (IReadOnlyList<double>)[a]).ToArray(),
                Enumerable.Repeat<IReadOnlyList<double>>([0.5, 1.0, 2.0], AnchorSizes.Count).ToArray())
            .WithRpn(new RpnOptions(PreNmsTopNTrain: 1000, PostNmsTopNTrain: 1000, PreNmsTopNTest: 1000, PostNmsTopNTest: 500))
            .WithRoIHeads(new RoIHeadsOptions(BatchSizePerImage: RoIsPerImage))
            .WithHeadSizes(BoxHeadSize, MaskHead, MaskHead[^1])
            .WithPredictorInit(PredictorInit)
            .WithDuplicateSuppression(SuppressContained)
            .WithMaskScoring(MaskScoring)
            .WithAlignedRoIAlign(AlignedRoIAlign);
        if (PretrainedPath is not null)
        {
            builder.WithPretrainedBackbone(PretrainedPath);
        }

        if (Weights is not null)
        {
            builder.WithWeights(Weights, strict: true, skipShapeMismatches: true);
        }

        return builder;
    }

    /// <summary>
    /// The training images' augmentation: horizontal flips (p = 0.5), then brightness/contrast jitter when
    /// <see cref="ColorJitter"/> is above 0. Give it to <see cref="DataLoaderOptions.Augmentation"/>.
    /// </summary>
    /// <exception cref="ArgumentException"><see cref="ColorJitter"/> is negative, infinite or NaN.</exception>
    public ITransform CreateAugmentation()
    {
        if (!double.IsFinite(ColorJitter) || ColorJitter < 0)
        {
            throw new ArgumentException(
                $"ColorJitter (--color-jitter) must be a finite strength >= 0, got {ColorJitter.ToString(CultureInfo.InvariantCulture)}", nameof(ColorJitter));
        }

        return ColorJitter > 0
            ? new Compose(new RandomHorizontalFlip(0.5), new Training.ColorJitter(ColorJitter, ColorJitter))
            : new RandomHorizontalFlip(0.5);
    }

    /// <summary>The trainer's options for this recipe (checkpointing and the like added by the caller).</summary>
    public TrainerOptions CreateTrainerOptions() =>
        new(Epochs: Epochs, LearningRate: LearningRate, WeightDecay: WeightDecay, WarmupIterations: WarmupSteps)
        {
            Optimizer = Optimizer,
            Decay = Decay,
            TimeBudget = TimeBudget,
        };

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }
}
