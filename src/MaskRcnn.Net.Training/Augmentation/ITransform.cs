using MaskRcnn.Net.Core;

namespace MaskRcnn.Net.Training;

/// <summary>
/// An image with its annotations, as it flows through an augmentation pipeline. Ownership: the record holds its
/// image tensor, it does not copy it; whoever holds the example last (see <see cref="ITransform"/>) owns the image and
/// disposes it with <see cref="Dispose"/> (idempotent), unless a dispose scope owns it. A copy made with <c>with</c>
/// shares the image unless it replaces it: dispose exactly one of the two.
/// </summary>
/// <param name="Image">[C, H, W] image tensor (the <see cref="DataLoader"/> passes float32 in [0, 1]).</param>
/// <param name="Annotations">The annotations in the image's pixel coordinates; masks have the image's size.</param>
public sealed record DetectionExample(Tensor Image, IReadOnlyList<Annotation> Annotations) : IDisposable
{
    /// <summary>Disposes <see cref="Image"/> (idempotent). The annotations are plain .NET data.</summary>
    public void Dispose() => Image.Dispose();

    /// <summary>Image height (the size of dimension −2).</summary>
    public int Height => checked((int)Image.Size(-2));

    /// <summary>Image width (the size of dimension −1).</summary>
    public int Width => checked((int)Image.Size(-1));
}

/// <summary>
/// A training-time augmentation of an image and its annotations. Randomness comes only from the
/// <see cref="Random"/> passed in, so a pipeline is reproducible for a given seed.
/// </summary>
/// <remarks>
/// Ownership: <see cref="Apply"/> takes over <c>example.Image</c>. It returns an example whose image is either that
/// same tensor or a new one, in which case it has disposed the input image. The caller owns the returned image.
/// </remarks>
public interface ITransform
{
    /// <summary>Transforms <paramref name="example"/>, drawing random decisions from <paramref name="random"/>.</summary>
    /// <param name="example">The input; its image is taken over (see the remarks of <see cref="ITransform"/>).</param>
    /// <param name="random">The source of randomness.</param>
    /// <returns>The transformed example, owned by the caller.</returns>
    DetectionExample Apply(DetectionExample example, Random random);
}

/// <summary>Applies transforms one after the other.</summary>
public sealed class Compose : ITransform
{
    private readonly ITransform[] transforms;

    /// <summary>Creates the pipeline.</summary>
    /// <param name="transforms">The transforms in the order they run.</param>
    public Compose(params IEnumerable<ITransform> transforms)
    {
        ArgumentNullException.ThrowIfNull(transforms);
        this.transforms = transforms.ToArray();
        if (this.transforms.Any(t => t is null))
        {
            throw new ArgumentException("a transform is null", nameof(transforms));
        }
    }

    /// <summary>The transforms in the order they run.</summary>
    public IReadOnlyList<ITransform> Transforms => transforms;

    /// <inheritdoc />
    public DetectionExample Apply(DetectionExample example, Random random)
    {
        foreach (var t in transforms)
        {
            example = t.Apply(example, random);
        }

        return example;
    }
}
