using MaskRcnn.Net.Core;
using MaskRcnn.Net.Core.Detection;
using MaskRcnn.Net.Core.NN;
using MaskRcnn.Net.Core.Structures;

namespace MaskRcnn.Net.Heads;

/// <summary>Options of <see cref="ImageTransform"/> (torchvision's GeneralizedRCNNTransform).</summary>
/// <param name="MinSizes">Target sizes of the shorter side; training picks one at random, inference uses the last.</param>
/// <param name="MaxSize">Upper bound of the longer side.</param>
/// <param name="Mean">Per-channel mean subtracted from images in [0, 1].</param>
/// <param name="Std">Per-channel standard deviation images are divided by.</param>
/// <param name="SizeDivisible">The padded batch size is a multiple of this.</param>
public sealed record TransformOptions(
    IReadOnlyList<int> MinSizes,
    int MaxSize = 1333,
    IReadOnlyList<double>? Mean = null,
    IReadOnlyList<double>? Std = null,
    int SizeDivisible = 32)
{
    /// <summary>torchvision's defaults: shorter side 800, longer side at most 1333, ImageNet mean/std, pad to ×32.</summary>
    public static TransformOptions Default { get; } = new([800]);

    /// <summary>ImageNet channel means.</summary>
    public static IReadOnlyList<double> ImageNetMean { get; } = [0.485, 0.456, 0.406];

    /// <summary>ImageNet channel standard deviations.</summary>
    public static IReadOnlyList<double> ImageNetStd { get; } = [0.229, 0.224, 0.225];

    /// <summary>Checks the ranges; throws <see cref="ArgumentException"/> naming the field and its value.</summary>
    public void Validate()
    {
        if (MinSizes is null || MinSizes.Count == 0 || MinSizes.Any(s => s < 1))
        {
            throw new ArgumentException(
                $"TransformOptions.MinSizes must be a non-empty list of positive sizes, got [{string.Join(", ", MinSizes ?? [])}]", nameof(MinSizes));
        }

        if (MaxSize < 1)
        {
            throw new ArgumentException($"TransformOptions.MaxSize must be at least 1, got {MaxSize}", nameof(MaxSize));
        }

        if (SizeDivisible < 1)
        {
            throw new ArgumentException($"TransformOptions.SizeDivisible must be at least 1, got {SizeDivisible}", nameof(SizeDivisible));
        }

        var mean = Mean ?? ImageNetMean;
        var std = Std ?? ImageNetStd;
        if (mean.Count == 0 || mean.Any(m => !double.IsFinite(m)))
        {
            throw new ArgumentException($"TransformOptions.Mean must be a non-empty list of finite values, got [{string.Join(", ", mean)}]", nameof(Mean));
        }

        if (std.Count != mean.Count || std.Any(s => !(s > 0) || !double.IsFinite(s)))
        {
            throw new ArgumentException(
                $"TransformOptions.Std must have one positive finite value per Mean channel ({mean.Count}), got [{string.Join(", ", std)}]", nameof(Std));
        }
    }

    /// <inheritdoc/>
    public bool Equals(TransformOptions? other) =>
        other is not null && ValueLists.Equal(MinSizes, other.MinSizes) && MaxSize == other.MaxSize &&
        ValueLists.Equal(Mean, other.Mean) && ValueLists.Equal(Std, other.Std) && SizeDivisible == other.SizeDivisible;

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(ValueLists.Hash(MinSizes), MaxSize, ValueLists.Hash(Mean), ValueLists.Hash(Std), SizeDivisible);
}

/// <summary>Element-wise equality and hashing of the (possibly null) lists inside option records.</summary>
internal static class ValueLists
{
    /// <summary>True when both are null or both hold equal elements in the same order.</summary>
    public static bool Equal<T>(IReadOnlyList<T>? a, IReadOnlyList<T>? b) =>
        ReferenceEquals(a, b) || (a is not null && b is not null && a.SequenceEqual(b));

    /// <summary>A hash of the elements (0 for null).</summary>
    public static int Hash<T>(IReadOnlyList<T>? list)
    {
        if (list is null)
        {
            return 0;
        }

        var hash = new HashCode();
        foreach (var item in list)
        {
            hash.Add(item);
        }

        return hash.ToHashCode();
    }
}

/// <summary>
/// Normalises, resizes (shorter side to MinSize, longer side at most MaxSize) and batches images with padding, and
/// maps detections back to the original image sizes (pasting masks at full size) — torchvision's
/// <c>GeneralizedRCNNTransform</c>.
/// </summary>
public sealed class ImageTransform
{
    private readonly double[] mean;
    private readonly double[] std;

    /// <summary>Creates the transform.</summary>
    /// <exception cref="ArgumentException">A setting is out of range (see <see cref="TransformOptions.Validate"/>).</exception>
    public ImageTransform(TransformOptions options)
    {
        Options = options ?? throw new ArgumentNullException(nameof(options));
        options.Validate();
        mean = (options.Mean ?? TransformOptions.ImageNetMean).ToArray();
        std = (options.Std ?? TransformOptions.ImageNetStd).ToArray();
    }

    /// <summary>The options.</summary>
    public TransformOptions Options { get; }

    /// <summary>
    /// Prepares images ([C, H, W] float in [0, 1], any sizes) and optional targets (boxes and masks resized along).
    /// Returns the padded batch and the resized targets (new tensors; the inputs are untouched).
    /// </summary>
    public (ImageBatch Batch, IReadOnlyList<DetectionTarget>? Targets) Forward(IReadOnlyList<Tensor> images,
        IReadOnlyList<DetectionTarget>? targets = null, bool training = false)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.Count == 0)
        {
            throw new ArgumentException("at least one image is needed", nameof(images));
        }

        if (targets is not null && targets.Count != images.Count)
        {
            throw new ArgumentException($"{images.Count} images but {targets.Count} targets", nameof(targets));
        }

        using var scope = Torch.NewDisposeScope();
        var resized = new List<Tensor>();
        var newTargets = targets is null ? null : new List<DetectionTarget>();
        for (var i = 0; i < images.Count; i++)
        {
            var image = images[i];
            var s = image.Shape;
            if (s.Length != 3 || s[0] != mean.Length || s[1] == 0 || s[2] == 0)
            {
                throw new ArgumentException($"images[{i}] must be [{mean.Length}, H, W] with H, W > 0, got [{string.Join(", ", s)}]", nameof(images));
            }

            if (!image.DType.IsFloatingPoint())
            {
                throw new ArgumentException($"images[{i}] must be floating point in [0, 1], got {image.DType}", nameof(images));
            }

            var normalized = Normalize(image);
            var minSize = training ? Options.MinSizes[ChooseIndex(Options.MinSizes.Count)] : Options.MinSizes[^1];
            var (img, scale) = Resize(normalized, minSize);
            resized.Add(img);
            if (targets is not null)
            {
                newTargets!.Add(ResizeTarget(targets[i], (s[1], s[2]), (img.Size(1), img.Size(2)), scale));
            }
        }

        var sizes = resized.Select(r => new ImageSize((int)r.Size(1), (int)r.Size(2))).ToArray();
        var batch = new ImageBatch(Batch(resized).MoveToOuterDisposeScope(), sizes);
        if (newTargets is not null)
        {
            foreach (var t in newTargets)
            {
                t.Boxes.MoveToOuterDisposeScope();
                t.Labels.MoveToOuterDisposeScope();
                t.Masks?.MoveToOuterDisposeScope();
            }
        }

        return (batch, newTargets);
    }

    private static int ChooseIndex(int count)
    {
        using var u = Tensor.Empty([1]).UniformInPlace(0, count);
        return Math.Min((int)u.ItemDouble(), count - 1);
    }

    private Tensor Normalize(Tensor image)
    {
        var dtype = image.DType;
        using var m = Tensor.FromArray(mean.Select(v => (float)v).ToArray(), mean.Length, 1, 1).To(image.Device, dtype);
        using var sd = Tensor.FromArray(std.Select(v => (float)v).ToArray(), std.Length, 1, 1).To(image.Device, dtype);
        using var centered = image - m;
        return centered / sd;
    }

    /// <summary>
    /// The resize factor torchvision uses: min(min_size / shorter, max_size / longer) in float32. PyTorch evaluates
    /// <c>number / tensor</c> as <c>reciprocal(tensor) * number</c>, so the same two float32 roundings are made here
    /// (a correctly rounded division differs in the last bit and can change the output size by one pixel).
    /// </summary>
    public double ScaleFor(long height, long width, int minSize)
    {
        var shorter = (float)Math.Min(height, width);
        var longer = (float)Math.Max(height, width);
        var r1 = 1f / shorter;
        var r2 = 1f / longer;
        var s1 = r1 * minSize;
        var s2 = r2 * Options.MaxSize;
        return Math.Min(s1, s2);
    }

    private (Tensor Image, double Scale) Resize(Tensor image, int minSize)
    {
        var scale = ScaleFor(image.Size(1), image.Size(2), minSize);
        using var batched = image.Unsqueeze(0);
        using var r = Functional.Interpolate(batched, scale, scale, InterpolationMode.Bilinear, alignCorners: false, recomputeScaleFactor: true);
        return (r.Select(0, 0), scale);
    }

    private static DetectionTarget ResizeTarget(DetectionTarget target, (long H, long W) from, (long H, long W) to, double scale)
    {
        var boxes = ResizeBoxes(target.Boxes, from, to);
        Tensor? masks = null;
        if (target.Masks is { } m)
        {
            if (m.Size(0) == 0)
            {
                masks = Tensor.Zeros([0, to.H, to.W], DType.UInt8, m.Device);
            }
            else
            {
                using var f = m.Unsqueeze(1).To(DType.Float32);
                using var r = Functional.Interpolate(f, scale, scale, InterpolationMode.Nearest, recomputeScaleFactor: true);
                using var sq = r.Select(1, 0);
                masks = sq.To(DType.UInt8);
            }
        }

        return new DetectionTarget(boxes, target.Labels.Alias(), masks);
    }

    /// <summary>Scales [N, 4] boxes from one image size to another (ratios in float32, as torchvision).</summary>
    public static Tensor ResizeBoxes(Tensor boxes, (long H, long W) from, (long H, long W) to)
    {
        using var scope = Torch.NewDisposeScope();
        var rh = (float)to.H / (float)from.H;
        var rw = (float)to.W / (float)from.W;
        var c = boxes.Unbind(1);
        var ratioW = Tensor.Scalar(rw, DType.Float32, boxes.Device);
        var ratioH = Tensor.Scalar(rh, DType.Float32, boxes.Device);
        return Tensor.Stack([c[0] * ratioW, c[1] * ratioH, c[2] * ratioW, c[3] * ratioH], 1).MoveToOuterDisposeScope();
    }

    private Tensor Batch(IReadOnlyList<Tensor> images)
    {
        var c = images[0].Size(0);
        var h = images.Max(i => i.Size(1));
        var w = images.Max(i => i.Size(2));
        var d = Options.SizeDivisible;
        h = (long)Math.Ceiling(h / (double)d) * d;
        w = (long)Math.Ceiling(w / (double)d) * d;
        var batch = Tensor.Zeros([images.Count, c, h, w], images[0].DType, images[0].Device);
        for (var i = 0; i < images.Count; i++)
        {
            using var dst = batch.Select(0, i).Slice(1, 0, images[i].Size(1)).Slice(2, 0, images[i].Size(2));
            dst.CopyFrom(images[i]);
        }

        return batch;
    }

    /// <summary>
    /// Maps detections from the resized image back to its original size: boxes are rescaled and masks
    /// ([D, 1, M, M] probabilities) are pasted into [D, 1, H, W] full-size masks.
    /// </summary>
    public DetectionTensors Postprocess(DetectionTensors detections, ImageSize resizedSize, ImageSize originalSize) =>
        Postprocess(detections, resizedSize, originalSize, pasteMasks: true);

    /// <summary>
    /// <see cref="Postprocess(DetectionTensors, ImageSize, ImageSize)"/>; with <paramref name="pasteMasks"/> false the
    /// masks are returned as given ([D, 1, M, M] probabilities in their boxes), for a caller that pastes them itself.
    /// </summary>
    public DetectionTensors Postprocess(DetectionTensors detections, ImageSize resizedSize, ImageSize originalSize, bool pasteMasks)
    {
        ArgumentNullException.ThrowIfNull(detections);
        using var scope = Torch.NewDisposeScope();
        var boxes = ResizeBoxes(detections.Boxes, (resizedSize.Height, resizedSize.Width), (originalSize.Height, originalSize.Width));
        Tensor? masks = null;
        if (detections.Masks is { } m)
        {
            masks = pasteMasks ? MaskPaster.Paste(m, boxes, originalSize.Height, originalSize.Width).MoveToOuterDisposeScope()
                : m.Alias().MoveToOuterDisposeScope();
        }

        return new DetectionTensors(boxes.MoveToOuterDisposeScope(), detections.Scores.Alias().MoveToOuterDisposeScope(),
            detections.Labels.Alias().MoveToOuterDisposeScope(), masks);
    }
}
