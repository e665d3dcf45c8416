using System.Globalization;
using System.Text.Json;
using MaskRcnn.Net.Core;
using MaskRcnn.Net.Core.Checkpoints;
using MaskRcnn.Net.Core.NN;
using MaskRcnn.Net.Core.Optim;

namespace MaskRcnn.Net.Training;

/// <summary>Where a training run stands: the position to continue from and the plan.</summary>
/// <param name="Epoch">Epoch to continue in.</param>
/// <param name="NextBatch">First batch of that epoch not yet trained on.</param>
/// <param name="Step">Optimizer steps done.</param>
/// <param name="TotalSteps">Optimizer steps planned.</param>
/// <param name="ElapsedSeconds">Training time spent so far.</param>
/// <param name="BatchesPerEpoch">Batches per epoch of the run (must match on resume).</param>
/// <param name="GradientAccumulation">Batches per optimizer step of the run (must match on resume).</param>
public sealed record TrainingState(int Epoch, int NextBatch, long Step, long TotalSteps, double ElapsedSeconds, int BatchesPerEpoch, int GradientAccumulation)
{
    /// <summary>The number of data-parallel ranks that wrote the checkpoint (1 for one process; checkpoints from before distributed training have none and read as 1).</summary>
    public int WorldSize { get; init; } = 1;
}

/// <summary>
/// A resumable training checkpoint: one safetensors file with the module's state dict under <c>model.</c>, the
/// optimizer's state under <c>optimizer.</c>, the run's CPU random stream as <c>rng.cpu</c>, and the
/// <see cref="TrainingState"/> as JSON in the metadata key <see cref="StateKey"/>, and the optimizer's type (e.g.
/// <c>Sgd</c>, <c>AdamW</c>) in <see cref="OptimizerKey"/>: SGD's momentum buffers or AdamW's <c>exp_avg</c>,
/// <c>exp_avg_sq</c> and <c>step</c> are restored only into the same optimizer. Written atomically (a temporary
/// file renamed over the old one), so an interrupted write never destroys the previous checkpoint.
/// </summary>
public static class TrainingCheckpoint
{
    /// <summary>Metadata key of the <see cref="TrainingState"/> JSON.</summary>
    public const string StateKey = "maskrcnn.training_state";

    /// <summary>Metadata key of the optimizer's type name (<c>Sgd</c>, <c>AdamW</c>) whose state the checkpoint holds.</summary>
    public const string OptimizerKey = "maskrcnn.optimizer";

    private const string ModelPrefix = "model.";
    private const string OptimizerPrefix = "optimizer.";
    private const string RngKey = "rng.cpu";

    /// <summary>
    /// Writes a checkpoint. The random state saved is <paramref name="generator"/>'s CPU stream, or libtorch's default
    /// CPU generator's when it is null.
    /// </summary>
    public static void Save(string path, Module module, Optimizer optimizer, TrainingState state, IReadOnlyDictionary<string, string>? metadata = null,
        RandomGenerator? generator = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(optimizer);
        ArgumentNullException.ThrowIfNull(state);
        using var scope = Torch.NewDisposeScope();
        var tensors = new Dictionary<string, Tensor>();
        foreach (var (k, v) in module.StateDict())
        {
            tensors[ModelPrefix + k] = v;
        }

        foreach (var (k, v) in optimizer.StateDict())
        {
            tensors[OptimizerPrefix + k] = v;
        }

        tensors[RngKey] = generator?.GetState() ?? Torch.GetRngState();
        var meta = new Dictionary<string, string>(metadata ?? new Dictionary<string, string>())
        {
            [StateKey] = JsonSerializer.Serialize(state),
            [OptimizerKey] = optimizer.GetType().Name,
        };
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(dir))
        {
            Directory.CreateDirectory(dir);
        }

        var temp = path + ".tmp";
        SafeTensors.Save(temp, tensors, meta);
        File.Move(temp, path, overwrite: true);
    }

    /// <summary>Reads the <see cref="TrainingState"/> of a checkpoint without loading its tensors.</summary>
    /// <exception cref="CheckpointFormatException">The file is not a training checkpoint.</exception>
    public static TrainingState ReadState(string path)
    {
        var metadata = SafeTensors.ReadMetadata(path);
        if (!metadata.TryGetValue(StateKey, out var json))
        {
            throw new CheckpointFormatException(path, $"not a training checkpoint (no '{StateKey}' metadata)");
        }

        try
        {
            return JsonSerializer.Deserialize<TrainingState>(json) ?? throw new JsonException("null state");
        }
        catch (JsonException e)
        {
            throw new CheckpointFormatException(path, $"invalid training state '{json}': {e.Message}", StateKey, e);
        }
    }

    /// <summary>The string metadata of a checkpoint (including what <see cref="TrainerOptions.CheckpointMetadata"/> added).</summary>
    public static IReadOnlyDictionary<string, string> ReadMetadata(string path) => SafeTensors.ReadMetadata(path);

    /// <summary>
    /// Restores the module's weights, the optimizer's state and the random state (into <paramref name="generator"/>,
    /// or libtorch's default CPU generator when it is null) from a checkpoint and returns its
    /// <see cref="TrainingState"/>. The module must have the same architecture (strict: a missing, unexpected or
    /// wrong-shaped key throws <see cref="CheckpointMismatchException"/>).
    /// </summary>
    /// <exception cref="InvalidOperationException">
    /// The checkpoint holds another optimizer's state than <paramref name="optimizer"/>'s type (the message names
    /// both). Checkpoints written before the optimizer was recorded are taken as they are.
    /// </exception>
    public static TrainingState Restore(string path, Module module, Optimizer? optimizer, RandomGenerator? generator = null)
    {
        ArgumentNullException.ThrowIfNull(module);
        var state = ReadState(path);
        if (optimizer is not null && SafeTensors.ReadMetadata(path).TryGetValue(OptimizerKey, out var written) &&
            !string.Equals(written, optimizer.GetType().Name, StringComparison.Ordinal))
        {
            throw new InvalidOperationException(
                $"{path} holds the state of the {written} optimizer but this run uses {optimizer.GetType().Name}: " +
                $"resume with the optimizer the checkpoint was written with ({written}), or start a new run");
        }

        var tensors = SafeTensors.Load(path);
        try
        {
            var model = tensors.Where(kv => kv.Key.StartsWith(ModelPrefix, StringComparison.Ordinal))
                .ToDictionary(kv => kv.Key[ModelPrefix.Length..], kv => kv.Value);
            module.LoadStateDict(model, strict: true);
            if (optimizer is not null)
            {
                var optim = tensors.Where(kv => kv.Key.StartsWith(OptimizerPrefix, StringComparison.Ordinal))
                    .ToDictionary(kv => kv.Key[OptimizerPrefix.Length..], kv => kv.Value);
                optimizer.LoadStateDict(optim, state.Step);
            }

            if (tensors.TryGetValue(RngKey, out var rng))
            {
                if (generator is null)
                {
                    Torch.SetRngState(rng);
                }
                else
                {
                    generator.SetState(rng);
                }
            }
        }
        finally
        {
            foreach (var t in tensors.Values)
            {
                t.Dispose();
            }
        }

        return state;
    }

    internal static string Describe(TrainingState s) =>
        string.Create(CultureInfo.InvariantCulture, $"epoch {s.Epoch}, batch {s.NextBatch}, step {s.Step}/{s.TotalSteps}, {s.ElapsedSeconds / 60:F1} min trained");
}
