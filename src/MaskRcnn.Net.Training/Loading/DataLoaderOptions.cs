namespace MaskRcnn.Net.Training;

/// <summary>Options of a <see cref="DataLoader"/>.</summary>
/// <param name="BatchSize">Images per batch (≥ 1).</param>
/// <param name="Shuffle">Visit the images in a random order that depends only on <paramref name="Seed"/> and the epoch.</param>
/// <param name="Seed">Seed of the order and of the augmentation's random decisions.</param>
/// <param name="Prefetch">Batches loaded ahead on a background task (0 loads each batch on the consumer's thread when it is asked for).</param>
/// <param name="Augmentation">Transform applied to every image (float32 in [0, 1]) and its annotations, or null.</param>
public sealed record DataLoaderOptions(int BatchSize = 2, bool Shuffle = true, int Seed = 0, int Prefetch = 2, ITransform? Augmentation = null)
{
    /// <summary>Leave out the last batch when it has fewer than <see cref="BatchSize"/> images (default false).</summary>
    public bool DropLast { get; init; }

    /// <summary>
    /// Put crowd annotations (<see cref="Annotation.IsCrowd"/>) into the targets (default false: torchvision's
    /// reference drops them for training).
    /// </summary>
    public bool IncludeCrowd { get; init; }

    /// <summary>
    /// Give every target a [G, H, W] mask tensor (default true; annotations without a mask get an all-zero mask).
    /// When false, <see cref="Core.Structures.DetectionTarget.Masks"/> is null (box-only training).
    /// </summary>
    public bool IncludeMasks { get; init; } = true;

    /// <summary>
    /// The share of every epoch this process loads in data-parallel training (torch's <c>DistributedSampler</c>
    /// semantics: the seeded global order, padded to a multiple of the world size, strided by rank), or null for the
    /// whole dataset (default). Every rank must use the same <see cref="Seed"/> and <see cref="Shuffle"/>. Setting
    /// it validates it (<see cref="DistributedSampler.Validate"/>).
    /// </summary>
    public DistributedSampler? Sampler
    {
        get;
        init
        {
            value?.Validate();
            field = value;
        }
    }
}
