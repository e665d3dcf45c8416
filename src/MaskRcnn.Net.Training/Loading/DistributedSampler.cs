namespace MaskRcnn.Net.Training;

/// <summary>
/// Which share of every epoch one process (rank) of a data-parallel run loads, with the semantics of torch's
/// <c>torch.utils.data.DistributedSampler</c>: the epoch's global order (the same on every rank) is padded to a
/// multiple of <see cref="WorldSize"/> by repeating it from its start — padded position <c>p</c> holds
/// <c>order[p % n]</c> for a dataset of <c>n</c> images, so when <c>n</c> is below the world size the order is
/// repeated as often as needed — or, with <see cref="DropLast"/>, its tail is cut to the largest multiple of the world
/// size; rank <c>r</c> then takes the padded positions <c>r, r + W, r + 2W, …</c>.
/// </summary>
/// <remarks>
/// Set it as <see cref="DataLoaderOptions.Sampler"/>; every rank uses the same <see cref="DataLoaderOptions.Seed"/>,
/// so all ranks agree on the global order and together visit every image once per epoch (plus the padding repeats).
/// A positional record can be copied with <c>with</c> to invalid values; <see cref="Validate"/> (called by
/// <see cref="DataLoader"/> and by every member that computes positions) reports them.
/// </remarks>
/// <param name="Rank">This process's rank, in [0, <paramref name="WorldSize"/>).</param>
/// <param name="WorldSize">Number of processes (≥ 1).</param>
public sealed record DistributedSampler(int Rank, int WorldSize)
{
    /// <summary>
    /// Cut the padded order's tail so that every rank gets ⌊n / <see cref="WorldSize"/>⌋ images instead of padding it
    /// to ⌈n / <see cref="WorldSize"/>⌉ (torch's <c>drop_last=True</c>; default false). This is independent of
    /// <see cref="DataLoaderOptions.DropLast"/>, which drops a rank's last partial batch.
    /// </summary>
    public bool DropLast { get; init; }

    /// <summary>
    /// Checks that <see cref="WorldSize"/> is at least 1 and <see cref="Rank"/> is in [0, <see cref="WorldSize"/>);
    /// throws <see cref="ArgumentOutOfRangeException"/> (an <see cref="ArgumentException"/>) naming both otherwise.
    /// </summary>
    public void Validate()
    {
        if (WorldSize < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(WorldSize), WorldSize,
                $"DistributedSampler: the world size must be at least 1, got {WorldSize} (rank {Rank})");
        }

        if (Rank < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(Rank), Rank,
                $"DistributedSampler: rank {Rank} is negative (world size {WorldSize})");
        }

        if (Rank >= WorldSize)
        {
            throw new ArgumentOutOfRangeException(nameof(Rank), Rank,
                $"DistributedSampler: rank {Rank} is not below the world size {WorldSize}");
        }
    }

    /// <summary>
    /// Number of images every rank loads per epoch from a dataset of <paramref name="datasetSize"/> images:
    /// ⌈n / W⌉, or ⌊n / W⌋ with <see cref="DropLast"/> (torch's <c>num_samples</c>; the same on every rank).
    /// </summary>
    /// <param name="datasetSize">Number of images in the dataset (≥ 0).</param>
    public int SamplesPerRank(int datasetSize)
    {
        Validate();
        ArgumentOutOfRangeException.ThrowIfNegative(datasetSize);
        return DropLast ? datasetSize / WorldSize : (int)(((long)datasetSize + WorldSize - 1) / WorldSize);
    }

    /// <summary>
    /// This rank's positions in the padded global order of an epoch, in the order it visits them:
    /// <c>Rank + i · WorldSize</c> for i in [0, <see cref="SamplesPerRank"/>). Positions at or beyond
    /// <paramref name="datasetSize"/> are padding and hold <c>order[p % n]</c>.
    /// </summary>
    /// <param name="datasetSize">Number of images in the dataset (≥ 0).</param>
    public IReadOnlyList<int> GlobalPositions(int datasetSize)
    {
        var count = SamplesPerRank(datasetSize);
        var positions = new int[count];
        for (var i = 0; i < count; i++)
        {
            positions[i] = checked(Rank + i * WorldSize);
        }

        return positions;
    }
}
