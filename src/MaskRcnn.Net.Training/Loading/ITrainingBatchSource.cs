namespace MaskRcnn.Net.Training;

/// <summary>
/// Where the <see cref="Trainer"/> gets its batches: a fixed number of batches per epoch, reproducible per epoch so
/// that an interrupted epoch can be resumed from any batch. <see cref="DataLoader"/> is the standard implementation.
/// </summary>
public interface ITrainingBatchSource
{
    /// <summary>Number of batches in every epoch.</summary>
    int BatchCount { get; }

    /// <summary>
    /// The batches of epoch <paramref name="epoch"/> from batch <paramref name="firstBatch"/> on — the same batches,
    /// in the same order, as the tail of a full pass over that epoch. Each batch is owned (and disposed) by the caller.
    /// </summary>
    IEnumerable<TrainingBatch> GetBatches(int epoch, int firstBatch, CancellationToken cancellationToken = default);
}
