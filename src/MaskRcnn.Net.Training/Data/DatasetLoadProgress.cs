namespace MaskRcnn.Net.Training;

/// <summary>Progress of reading an annotation file, reported through <see cref="IProgress{T}"/>.</summary>
/// <param name="Stage">What is being read (<c>"images"</c>, <c>"annotations"</c>, <c>"files"</c>).</param>
/// <param name="Completed">Items of this stage done so far.</param>
/// <param name="Total">Items of this stage in all.</param>
public readonly record struct DatasetLoadProgress(string Stage, int Completed, int Total)
{
    /// <summary>Completed / Total in [0, 1] (1 for an empty stage).</summary>
    public double Fraction => Total == 0 ? 1 : (double)Completed / Total;
}
