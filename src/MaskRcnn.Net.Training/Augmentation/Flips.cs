using MaskRcnn.Net.Core;
using MaskRcnn.Net.Core.Masks;

namespace MaskRcnn.Net.Training;

/// <summary>
/// Mirrors the image left-right with probability <see cref="Probability"/>, with its boxes
/// (x1' = W − x2, x2' = W − x1) and masks, as torchvision's detection reference <c>RandomHorizontalFlip</c>.
/// </summary>
public sealed class RandomHorizontalFlip : ITransform
{
    /// <summary>Creates the transform.</summary>
    /// <param name="probability">Chance of flipping, in [0, 1] (default 0.5).</param>
    public RandomHorizontalFlip(double probability = 0.5)
    {
        Probability = Flip.CheckProbability(probability);
    }

    /// <summary>Chance of flipping.</summary>
    public double Probability { get; }

    /// <inheritdoc />
    /// <remarks>Draws exactly one number from <paramref name="random"/>.</remarks>
    public DetectionExample Apply(DetectionExample example, Random random)
    {
        ArgumentNullException.ThrowIfNull(example);
        ArgumentNullException.ThrowIfNull(random);
        return random.NextDouble() < Probability ? Flip.Horizontal(example) : example;
    }
}

/// <summary>Mirrors the image top-bottom with probability <see cref="Probability"/>, with its boxes and masks.</summary>
public sealed class RandomVerticalFlip : ITransform
{
    /// <summary>Creates the transform.</summary>
    /// <param name="probability">Chance of flipping, in [0, 1] (default 0.5).</param>
    public RandomVerticalFlip(double probability = 0.5)
    {
        Probability = Flip.CheckProbability(probability);
    }

    /// <summary>Chance of flipping.</summary>
    public double Probability { get; }

    /// <inheritdoc />
    /// <remarks>Draws exactly one number from <paramref name="random"/>.</remarks>
    public DetectionExample Apply(DetectionExample example, Random random)
    {
        ArgumentNullException.ThrowIfNull(example);
        ArgumentNullException.ThrowIfNull(random);
        return random.NextDouble() < Probability ? Flip.Vertical(example) : example;
    }
}

/// <summary>Deterministic flips of an example (image, boxes and masks).</summary>
public static class Flip
{
    /// <summary>Mirrors left-right. The input image is disposed; the returned one is new and owned by the caller.</summary>
    /// <param name="example">The example; its annotations' masks must have the image's size.</param>
    public static DetectionExample Horizontal(DetectionExample example) => Apply(example, horizontal: true);

    /// <summary>Mirrors top-bottom. The input image is disposed; the returned one is new and owned by the caller.</summary>
    /// <param name="example">The example; its annotations' masks must have the image's size.</param>
    public static DetectionExample Vertical(DetectionExample example) => Apply(example, horizontal: false);

    /// <summary>A mask mirrored left-right (column x goes to W − 1 − x).</summary>
    public static BinaryMask Horizontal(BinaryMask mask)
    {
        ArgumentNullException.ThrowIfNull(mask);
        var (h, w) = (mask.Height, mask.Width);
        var src = mask.ToBytes();
        var dst = new byte[src.Length];
        for (var y = 0; y < h; y++)
        {
            var row = y * w;
            for (var x = 0; x < w; x++)
            {
                dst[row + w - 1 - x] = src[row + x];
            }
        }

        return BinaryMask.FromBytes(dst, h, w);
    }

    /// <summary>A mask mirrored top-bottom (row y goes to H − 1 − y).</summary>
    public static BinaryMask Vertical(BinaryMask mask)
    {
        ArgumentNullException.ThrowIfNull(mask);
        var (h, w) = (mask.Height, mask.Width);
        var src = mask.ToBytes();
        var dst = new byte[src.Length];
        for (var y = 0; y < h; y++)
        {
            Array.Copy(src, y * w, dst, (h - 1 - y) * w, w);
        }

        return BinaryMask.FromBytes(dst, h, w);
    }

    internal static double CheckProbability(double p) =>
        p is >= 0 and <= 1 ? p : throw new ArgumentOutOfRangeException(nameof(p), p, "probability must be in [0, 1]");

    private static DetectionExample Apply(DetectionExample example, bool horizontal)
    {
        ArgumentNullException.ThrowIfNull(example);
        var (h, w) = (example.Height, example.Width);
        var annotations = new Annotation[example.Annotations.Count];
        for (var i = 0; i < annotations.Length; i++)
        {
            var a = example.Annotations[i];
            if (a.HasMask && (a.MaskHeight != h || a.MaskWidth != w))
            {
                throw new ArgumentException(
                    $"annotation {i} has a {a.MaskHeight}x{a.MaskWidth} mask but the image is {h}x{w}", nameof(example));
            }

            var mask = a.GetMask();
            annotations[i] = horizontal
                ? a.With(a.Box.FlipHorizontal(w), mask is null ? null : Horizontal(mask))
                : a.With(a.Box.FlipVertical(h), mask is null ? null : Vertical(mask));
        }

        var image = example.Image.Flip(horizontal ? -1 : -2);
        example.Image.Dispose();
        return new DetectionExample(image, annotations);
    }
}
