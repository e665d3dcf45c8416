using System.Collections.Concurrent;

namespace MaskRcnn.Net.Core.Detection;

/// <summary>
/// Anchors for a feature pyramid: on level i, every cell of the feature map gets one anchor per (size, aspect
/// ratio) of that level, centred on the cell's top-left pixel in image coordinates — the same anchors, order and
/// rounding as torchvision's <c>AnchorGenerator</c>. Results are cached per (image size, feature sizes, device).
/// </summary>
public sealed class AnchorGenerator : IDisposable
{
    private readonly ConcurrentDictionary<string, Tensor> cache = new();
    private readonly Tensor[] cellAnchors;

    /// <summary>torchvision's Mask R-CNN FPN defaults: sizes 32..512 (one per level), ratios 0.5/1/2 on every level.</summary>
    public static AnchorGenerator DefaultFpn() =>
        new([[32], [64], [128], [256], [512]], [[0.5, 1.0, 2.0], [0.5, 1.0, 2.0], [0.5, 1.0, 2.0], [0.5, 1.0, 2.0], [0.5, 1.0, 2.0]]);

    /// <summary>Creates the generator: <paramref name="sizes"/>[level] and <paramref name="aspectRatios"/>[level] (height/width).</summary>
    public AnchorGenerator(IReadOnlyList<IReadOnlyList<double>> sizes, IReadOnlyList<IReadOnlyList<double>> aspectRatios)
    {
        ArgumentNullException.ThrowIfNull(sizes);
        ArgumentNullException.ThrowIfNull(aspectRatios);
        if (sizes.Count == 0 || sizes.Count != aspectRatios.Count)
        {
            throw new ArgumentException($"sizes has {sizes.Count} levels but aspectRatios has {aspectRatios.Count}", nameof(aspectRatios));
        }

        for (var i = 0; i < sizes.Count; i++)
        {
            if (sizes[i].Count == 0 || sizes[i].Any(s => !(s > 0) || double.IsInfinity(s)))
            {
                throw new ArgumentException($"sizes[{i}] must be non-empty and positive", nameof(sizes));
            }

            if (aspectRatios[i].Count == 0 || aspectRatios[i].Any(r => !(r > 0) || double.IsInfinity(r)))
            {
                throw new ArgumentException($"aspectRatios[{i}] must be non-empty and positive", nameof(aspectRatios));
            }
        }

        Sizes = sizes;
        AspectRatios = aspectRatios;
        cellAnchors = sizes.Select((s, i) => CellAnchors(s, aspectRatios[i])).ToArray();
    }

    /// <summary>Anchor sizes (square-root of area, in pixels) per level.</summary>
    public IReadOnlyList<IReadOnlyList<double>> Sizes { get; }

    /// <summary>Aspect ratios (height / width) per level.</summary>
    public IReadOnlyList<IReadOnlyList<double>> AspectRatios { get; }

    /// <summary>Number of anchors per feature-map cell on each level.</summary>
    public IReadOnlyList<int> AnchorsPerLocation => Sizes.Select((s, i) => s.Count * AspectRatios[i].Count).ToArray();

    /// <summary>The zero-centred anchors of one cell on each level, [A, 4] (float32, CPU).</summary>
    public IReadOnlyList<Tensor> CellAnchorsPerLevel => cellAnchors;

    private static Tensor CellAnchors(IReadOnlyList<double> sizes, IReadOnlyList<double> ratios)
    {
        // Computed in float32 like torchvision: w = size / sqrt(ratio), h = size * sqrt(ratio), then rounded.
        using var scope = Torch.NewDisposeScope();
        var scales = Tensor.FromArray(sizes.Select(s => (float)s).ToArray());
        var hRatios = Tensor.FromArray(ratios.Select(r => (float)r).ToArray()).Sqrt();
        var wRatios = 1.0 / hRatios;
        var ws = (wRatios.Unsqueeze(1) * scales.Unsqueeze(0)).View(-1);
        var hs = (hRatios.Unsqueeze(1) * scales.Unsqueeze(0)).View(-1);
        var baseAnchors = Tensor.Stack([ws.Neg(), hs.Neg(), ws, hs], 1) / 2.0;
        return baseAnchors.Round().DetachFromDisposeScope();
    }

    /// <summary>
    /// Anchors [Σ H_i·W_i·A_i, 4] (xyxy, float32) for an image batch of padded size
    /// <paramref name="imageHeight"/>×<paramref name="imageWidth"/> and feature maps of the given sizes, level by
    /// level, row-major over cells, anchors of a cell contiguous. The result is a new tensor owned by the caller.
    /// </summary>
    public Tensor Generate(long imageHeight, long imageWidth, IReadOnlyList<(long Height, long Width)> featureSizes, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(featureSizes);
        if (featureSizes.Count != cellAnchors.Length)
        {
            throw new ArgumentException($"{featureSizes.Count} feature maps given but the generator has {cellAnchors.Length} levels", nameof(featureSizes));
        }

        if (imageHeight <= 0 || imageWidth <= 0 || featureSizes.Any(f => f.Height <= 0 || f.Width <= 0))
        {
            throw new ArgumentException($"image {imageHeight}x{imageWidth} and feature sizes must be positive", nameof(featureSizes));
        }

        var dev = device ?? Device.Cpu;
        var key = $"{imageHeight}x{imageWidth}|{string.Join(";", featureSizes.Select(f => $"{f.Height}x{f.Width}"))}|{dev}";
        var cached = cache.GetOrAdd(key, _ => Build(imageHeight, imageWidth, featureSizes, dev).DetachFromDisposeScope());
        return cached.Alias();
    }

    private Tensor Build(long imageHeight, long imageWidth, IReadOnlyList<(long Height, long Width)> featureSizes, Device device)
    {
        using var scope = Torch.NewDisposeScope();
        var levels = new List<Tensor>();
        for (var i = 0; i < featureSizes.Count; i++)
        {
            var (gh, gw) = featureSizes[i];
            long strideH = imageHeight / gh, strideW = imageWidth / gw;
            var shiftsX = Tensor.Arange(0, gw, 1, DType.Int64, device) * strideW;
            var shiftsY = Tensor.Arange(0, gh, 1, DType.Int64, device) * strideH;
            var grid = Tensor.Meshgrid([shiftsY, shiftsX]);
            var sy = grid[0].Reshape(-1);
            var sx = grid[1].Reshape(-1);
            var shifts = Tensor.Stack([sx, sy, sx, sy], 1);
            var baseAnchors = cellAnchors[i].To(device);
            levels.Add((shifts.View(-1, 1, 4) + baseAnchors.View(1, -1, 4)).Reshape(-1, 4));
        }

        return Tensor.Cat(levels).MoveToOuterDisposeScope();
    }

    /// <summary>Frees cached anchors.</summary>
    public void Dispose()
    {
        foreach (var t in cache.Values.Concat(cellAnchors))
        {
            t.Dispose();
        }

        cache.Clear();
    }
}
