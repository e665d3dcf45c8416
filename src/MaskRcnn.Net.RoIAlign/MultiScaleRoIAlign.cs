using MaskRcnn.Net.Core;
using MaskRcnn.Net.Core.Detection;

namespace MaskRcnn.Net.RoIAlign;

/// <summary>Pools a fixed-size feature for each box from a list of feature maps (an FPN).</summary>
public interface IRoIPooler
{
    /// <summary>Output height and width of each pooled feature.</summary>
    (int Height, int Width) OutputSize { get; }

    /// <summary>
    /// Pools [K, C, outH, outW] features for the boxes of every image (<paramref name="boxes"/>[i] is [Kᵢ, 4] xyxy
    /// in the padded batch's pixels), from the feature maps of the whole batch; <paramref name="imageSizes"/> are
    /// the images' sizes inside the batch.
    /// </summary>
    Tensor Forward(IReadOnlyList<Tensor> features, IReadOnlyList<Tensor> boxes, IReadOnlyList<ImageSize> imageSizes);
}

/// <summary>Which per-level pooling kernel <see cref="MultiScaleRoIAlign"/> uses.</summary>
public enum PoolingKernel
{
    /// <summary>RoIAlign (bilinear sampling, Mask R-CNN).</summary>
    RoIAlign,

    /// <summary>RoIPool (max over quantised bins, Fast/Faster R-CNN) — for comparisons.</summary>
    RoIPool,
}

/// <summary>
/// Assigns boxes to FPN levels: level = floor(4 + log2(sqrt(area) / 224) + 1e-6), clamped to [kMin, kMax]
/// (torchvision's LevelMapper, equation 1 of the FPN paper).
/// </summary>
public sealed class LevelMapper
{
    /// <summary>Creates the mapper for levels <paramref name="kMin"/>..<paramref name="kMax"/>.</summary>
    public LevelMapper(int kMin, int kMax, double canonicalScale = 224, int canonicalLevel = 4, double eps = 1e-6)
    {
        if (kMin > kMax)
        {
            throw new ArgumentException($"kMin {kMin} must not exceed kMax {kMax}", nameof(kMin));
        }

        (KMin, KMax, CanonicalScale, CanonicalLevel, Eps) = (kMin, kMax, canonicalScale, canonicalLevel, eps);
    }

    /// <summary>Lowest level.</summary>
    public int KMin { get; }

    /// <summary>Highest level.</summary>
    public int KMax { get; }

    /// <summary>Box size mapped to <see cref="CanonicalLevel"/>.</summary>
    public double CanonicalScale { get; }

    /// <summary>Level of a box of the canonical size.</summary>
    public int CanonicalLevel { get; }

    /// <summary>Added before the floor.</summary>
    public double Eps { get; }

    /// <summary>Level index (0-based, relative to <see cref="KMin"/>) of each box, int64 [ΣKᵢ].</summary>
    public Tensor Map(IReadOnlyList<Tensor> boxes)
    {
        using var scope = Torch.NewDisposeScope();
        var s = Tensor.Cat(boxes.Select(Boxes.Area).ToArray()).Sqrt();
        var eps = Tensor.Scalar(Eps, s.DType, s.Device);
        var lvl = ((s / CanonicalScale).Log2() + CanonicalLevel + eps).Floor().Clamp(KMin, KMax);
        return (lvl.To(DType.Int64) - (long)KMin).MoveToOuterDisposeScope();
    }
}

/// <summary>Settings of a <see cref="MultiScaleRoIAlign"/> (torchvision's <c>MultiScaleRoIAlign</c> arguments).</summary>
/// <param name="OutputSize">Side of the square pooled feature (box head: 7, mask head: 14).</param>
/// <param name="SamplingRatio">Bilinear samples per bin side (torchvision: 2); 0 or less: adaptive, ceil(bin size).</param>
/// <param name="Kernel">RoIAlign (Mask R-CNN) or RoIPool.</param>
/// <param name="CanonicalScale">Box side mapped to <paramref name="CanonicalLevel"/> by the <see cref="LevelMapper"/> (224).</param>
/// <param name="CanonicalLevel">FPN level of a box of <paramref name="CanonicalScale"/> pixels (4).</param>
public sealed record RoIPoolerOptions(
    int OutputSize = 7,
    int SamplingRatio = 2,
    PoolingKernel Kernel = PoolingKernel.RoIAlign,
    int CanonicalScale = 224,
    int CanonicalLevel = 4)
{
    /// <summary>
    /// RoIAlign's half-pixel correction (torchvision's <c>roi_align(..., aligned=True)</c>, detectron2's
    /// <c>ROIAlignV2</c>): a box's corners are shifted by -0.5 feature pixels after scaling, so bins sample the pixels
    /// the box covers (pixel centres at +0.5) instead of a half-pixel-shifted grid. Off by default, as torchvision's
    /// Mask R-CNN (and its COCO checkpoint) expects; the ImageNet training recipe turns it on. Only for
    /// <see cref="PoolingKernel.RoIAlign"/>.
    /// </summary>
    public bool Aligned { get; init; }

    /// <summary>torchvision's box pooler: 7×7, sampling ratio 2.</summary>
    public static RoIPoolerOptions BoxDefault { get; } = new(7);

    /// <summary>torchvision's mask pooler: 14×14, sampling ratio 2.</summary>
    public static RoIPoolerOptions MaskDefault { get; } = new(14);

    /// <summary>Checks the ranges; throws <see cref="ArgumentException"/> naming the field and its value.</summary>
    public void Validate()
    {
        if (OutputSize < 1)
        {
            throw new ArgumentException($"RoIPoolerOptions.OutputSize must be at least 1, got {OutputSize}", nameof(OutputSize));
        }

        if (!Enum.IsDefined(Kernel))
        {
            throw new ArgumentException($"RoIPoolerOptions.Kernel is not a known pooling kernel: {Kernel}", nameof(Kernel));
        }

        if (Aligned && Kernel != PoolingKernel.RoIAlign)
        {
            throw new ArgumentException($"RoIPoolerOptions.Aligned applies to the RoIAlign kernel only, not {Kernel}", nameof(Aligned));
        }

        if (CanonicalScale < 1)
        {
            throw new ArgumentException($"RoIPoolerOptions.CanonicalScale must be at least 1, got {CanonicalScale}", nameof(CanonicalScale));
        }

        if (CanonicalLevel < 0)
        {
            throw new ArgumentException($"RoIPoolerOptions.CanonicalLevel must not be negative, got {CanonicalLevel}", nameof(CanonicalLevel));
        }
    }
}

/// <summary>
/// Multi-scale RoIAlign over FPN levels (torchvision's <c>MultiScaleRoIAlign</c>): infers each level's scale from
/// its size relative to the largest image, assigns every box to a level with <see cref="LevelMapper"/>, and pools
/// it there. 7×7 for the box head, 14×14 for the mask head, sampling ratio 2 by default.
/// </summary>
public sealed class MultiScaleRoIAlign : IRoIPooler
{
    /// <summary>Creates the pooler.</summary>
    /// <exception cref="ArgumentException">A setting is out of range (see <see cref="RoIPoolerOptions.Validate"/>).</exception>
    public MultiScaleRoIAlign(int outputSize = 7, int samplingRatio = 2, PoolingKernel kernel = PoolingKernel.RoIAlign,
        int canonicalScale = 224, int canonicalLevel = 4)
        : this(new RoIPoolerOptions(outputSize, samplingRatio, kernel, canonicalScale, canonicalLevel))
    {
    }

    /// <summary>Creates the pooler from its options.</summary>
    /// <exception cref="ArgumentException">A setting is out of range (see <see cref="RoIPoolerOptions.Validate"/>).</exception>
    public MultiScaleRoIAlign(RoIPoolerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        Options = options;
        OutputSize = (options.OutputSize, options.OutputSize);
        SamplingRatio = options.SamplingRatio;
        Kernel = options.Kernel;
        CanonicalScale = options.CanonicalScale;
        CanonicalLevel = options.CanonicalLevel;
        Aligned = options.Aligned;
    }

    /// <summary>The settings this pooler was made from (what a saved model configuration records).</summary>
    public RoIPoolerOptions Options { get; }

    /// <inheritdoc />
    public (int Height, int Width) OutputSize { get; }

    /// <summary>Samples per bin side (≤ 0: adaptive).</summary>
    public int SamplingRatio { get; }

    /// <summary>RoIAlign or RoIPool.</summary>
    public PoolingKernel Kernel { get; }

    /// <summary>Canonical box size of the level mapper.</summary>
    public int CanonicalScale { get; }

    /// <summary>Canonical level of the level mapper.</summary>
    public int CanonicalLevel { get; }

    /// <summary>Whether RoIAlign applies the half-pixel correction (<see cref="RoIPoolerOptions.Aligned"/>).</summary>
    public bool Aligned { get; }

    /// <summary>The scale (feature size / image size, a power of two) of a feature map.</summary>
    public static double InferScale(Tensor feature, ImageSize largestImage)
    {
        var approx = feature.Size(-2) / (double)largestImage.Height;
        // torchvision rounds log2 of the float32 ratio.
        return Math.Pow(2, Math.Round(Math.Log2((float)approx), MidpointRounding.ToEven));
    }

    /// <inheritdoc />
    public Tensor Forward(IReadOnlyList<Tensor> features, IReadOnlyList<Tensor> boxes, IReadOnlyList<ImageSize> imageSizes)
    {
        ArgumentNullException.ThrowIfNull(features);
        ArgumentNullException.ThrowIfNull(boxes);
        ArgumentNullException.ThrowIfNull(imageSizes);
        if (features.Count == 0)
        {
            throw new ArgumentException("at least one feature map is needed", nameof(features));
        }

        if (boxes.Count != imageSizes.Count)
        {
            throw new ArgumentException($"{boxes.Count} box lists but {imageSizes.Count} image sizes", nameof(boxes));
        }

        using var scope = Torch.NewDisposeScope();
        var largest = new ImageSize(imageSizes.Max(s => s.Height), imageSizes.Max(s => s.Width));
        var scales = features.Select(f => InferScale(f, largest)).ToArray();
        var rois = ToRois(boxes, features[0]);
        if (features.Count == 1)
        {
            return Pool(features[0], rois, scales[0]).MoveToOuterDisposeScope();
        }

        var lvlMin = (int)-Math.Log2((float)scales[0]);
        var lvlMax = (int)-Math.Log2((float)scales[^1]);
        var levels = new LevelMapper(lvlMin, lvlMax, CanonicalScale, CanonicalLevel).Map(boxes);
        if (Kernel == PoolingKernel.RoIAlign)
        {
            return MaskRcnn.Net.RoIAlign.RoIAlign.ApplyMultiLevel(features, scales, rois, levels, OutputSize.Height,
                OutputSize.Width, SamplingRatio, aligned: Aligned).MoveToOuterDisposeScope();
        }

        var numRois = rois.Size(0);
        var channels = features[0].Size(1);
        var result = Tensor.Zeros([numRois, channels, OutputSize.Height, OutputSize.Width], features[0].DType, features[0].Device);
        for (var level = 0; level < features.Count; level++)
        {
            var idx = levels.Eq((long)level).Nonzero().Select(1, 0);
            if (idx.NumEl == 0)
            {
                continue;
            }

            var pooled = Pool(features[level], rois.Index(idx), scales[level]);
            result.IndexPutInPlace([idx], pooled);
        }

        return result.MoveToOuterDisposeScope();
    }

    private Tensor Pool(Tensor feature, Tensor rois, double scale) => Kernel == PoolingKernel.RoIAlign
        ? MaskRcnn.Net.RoIAlign.RoIAlign.Apply(feature, rois, OutputSize.Height, OutputSize.Width, scale, SamplingRatio, aligned: Aligned)
        : RoIPool.Apply(feature, rois, OutputSize.Height, OutputSize.Width, scale);

    /// <summary>Concatenates per-image boxes into [K, 5] RoIs (batch index, x1, y1, x2, y2).</summary>
    public static Tensor ToRois(IReadOnlyList<Tensor> boxes, Tensor like)
    {
        using var scope = Torch.NewDisposeScope();
        var parts = new List<Tensor>();
        for (var i = 0; i < boxes.Count; i++)
        {
            Boxes.Check(boxes[i], $"boxes[{i}]");
            var b = boxes[i].To(like.Device, like.DType);
            parts.Add(Tensor.Cat([Tensor.Full([b.Size(0), 1], (double)i, like.DType, like.Device), b], 1));
        }

        return Tensor.Cat(parts).MoveToOuterDisposeScope();
    }
}
