using MaskRcnn.Net.Core.Checkpoints;

namespace MaskRcnn.Net;

/// <summary>Saving only the weights of a model, for models whose configuration cannot rebuild them.</summary>
public static class MaskRcnnModelWeights
{
    /// <summary>
    /// Writes the model's state dict as safetensors without a configuration: the way to keep a model with custom parts
    /// (builder factories), which <see cref="MaskRcnnModel.Save"/> refuses. Reload by building the same model —
    /// <c>new MaskRcnnBuilder(model.Config)</c> with the same factories — and <c>.WithWeights(path)</c>.
    /// </summary>
    /// <param name="model">The model.</param>
    /// <param name="path">The <c>.safetensors</c> file to write.</param>
    public static void SaveWeights(this MaskRcnnModel model, string path)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(path);
        if (!path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
        {
            throw new ArgumentException($"weights are written as safetensors; the path must end in .safetensors, got {path}", nameof(path));
        }

        var tensors = model.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value);
        SafeTensors.Save(path, tensors, new Dictionary<string, string> { ["format"] = "pt" });
    }
}
