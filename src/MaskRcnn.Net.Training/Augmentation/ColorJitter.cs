using MaskRcnn.Net.Core;

namespace MaskRcnn.Net.Training;

/// <summary>
/// Random brightness and contrast changes of a float image in [0, 1], with torchvision's formulas: brightness
/// multiplies by a factor b, contrast blends with the mean gray level m by a factor c (c·x + (1 − c)·m); results are
/// clamped to [0, 1]. Factors are drawn uniformly from [max(0, 1 − s), 1 + s] for a strength s. Boxes and masks are
/// unchanged.
/// </summary>
public sealed class ColorJitter : ITransform
{
    /// <summary>Creates the transform.</summary>
    /// <param name="brightness">Brightness strength s ≥ 0 (0 leaves brightness alone).</param>
    /// <param name="contrast">Contrast strength s ≥ 0 (0 leaves contrast alone).</param>
    public ColorJitter(double brightness = 0, double contrast = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(brightness);
        ArgumentOutOfRangeException.ThrowIfNegative(contrast);
        Brightness = brightness;
        Contrast = contrast;
    }

    /// <summary>Brightness strength.</summary>
    public double Brightness { get; }

    /// <summary>Contrast strength.</summary>
    public double Contrast { get; }

    /// <inheritdoc />
    /// <remarks>Draws one number per non-zero strength (brightness first), then applies brightness, then contrast.</remarks>
    /// <exception cref="ArgumentException">The image is not floating point.</exception>
    public DetectionExample Apply(DetectionExample example, Random random)
    {
        ArgumentNullException.ThrowIfNull(example);
        ArgumentNullException.ThrowIfNull(random);
        if (!example.Image.DType.IsFloatingPoint())
        {
            throw new ArgumentException($"ColorJitter needs a floating-point image in [0, 1], got {example.Image.DType}", nameof(example));
        }

        var b = Brightness > 0 ? Draw(random, Brightness) : 1;
        var c = Contrast > 0 ? Draw(random, Contrast) : 1;
        var image = example.Image;
        if (b != 1)
        {
            var next = AdjustBrightness(image, b);
            image.Dispose();
            image = next;
        }

        if (c != 1)
        {
            var next = AdjustContrast(image, c);
            image.Dispose();
            image = next;
        }

        return ReferenceEquals(image, example.Image) ? example : example with { Image = image };
    }

    /// <summary>min(max(factor · image, 0), 1) as a new tensor (torchvision's <c>adjust_brightness</c> for float images).</summary>
    public static Tensor AdjustBrightness(Tensor image, double factor)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentOutOfRangeException.ThrowIfNegative(factor);
        using var scaled = image * factor;
        return scaled.Clamp(0, 1);
    }

    /// <summary>
    /// Blends the image with its mean gray level: clamp(factor · image + (1 − factor) · mean, 0, 1) as a new tensor,
    /// the gray level of RGB being 0.2989 R + 0.587 G + 0.114 B (torchvision's <c>adjust_contrast</c>).
    /// </summary>
    public static Tensor AdjustContrast(Tensor image, double factor)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentOutOfRangeException.ThrowIfNegative(factor);
        var channels = image.Size(-3);
        double mean;
        if (channels == 3)
        {
            using var r = image.Select(-3, 0);
            using var g = image.Select(-3, 1);
            using var bl = image.Select(-3, 2);
            using var rm = r.Mean();
            using var gm = g.Mean();
            using var bm = bl.Mean();
            mean = 0.2989 * rm.ItemDouble() + 0.587 * gm.ItemDouble() + 0.114 * bm.ItemDouble();
        }
        else
        {
            using var m = image.Mean();
            mean = m.ItemDouble();
        }

        using var scaled = image * factor;
        using var shifted = scaled + (1 - factor) * mean;
        return shifted.Clamp(0, 1);
    }

    private static double Draw(Random random, double strength)
    {
        var low = Math.Max(0, 1 - strength);
        return low + random.NextDouble() * (1 + strength - low);
    }
}
