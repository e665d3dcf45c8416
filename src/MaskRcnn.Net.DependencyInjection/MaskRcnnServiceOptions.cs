namespace MaskRcnn.Net.DependencyInjection;

/// <summary>
/// What <see cref="MaskRcnnServiceCollectionExtensions.AddMaskRcnn"/> loads: a model saved by <c>maskrcnn train</c> or
/// <see cref="MaskRcnnModel.Save"/> (<see cref="ModelPath"/>), or a model built by <see cref="Builder"/> (for example
/// torchvision COCO weights through <see cref="MaskRcnnBuilder.WithWeights"/>). Exactly one of the two.
/// </summary>
public sealed class MaskRcnnServiceOptions
{
    /// <summary>A saved model (<c>model.safetensors</c> with its configuration).</summary>
    public string? ModelPath { get; set; }

    /// <summary>Changes to the saved configuration that keep the weights' shapes (thresholds, detections per image); with <see cref="ModelPath"/>.</summary>
    public Func<MaskRcnnConfig, MaskRcnnConfig>? Configure { get; set; }

    /// <summary>Builds the model instead (called once, on first use).</summary>
    public Func<MaskRcnnBuilder>? Builder { get; set; }

    /// <summary>Loads the model when the service is first resolved rather than on the first prediction.</summary>
    public bool LoadOnResolve { get; set; }

    /// <summary>Throws when the options cannot produce a model.</summary>
    /// <exception cref="ArgumentException">Neither or both of <see cref="ModelPath"/> and <see cref="Builder"/> are set,
    /// or <see cref="Configure"/> is set without <see cref="ModelPath"/>.</exception>
    public void Validate()
    {
        if ((ModelPath is null) == (Builder is null))
        {
            throw new ArgumentException($"AddMaskRcnn: set exactly one of {nameof(ModelPath)} (a saved model) and {nameof(Builder)} (a MaskRcnnBuilder factory)");
        }

        if (ModelPath is not null && string.IsNullOrWhiteSpace(ModelPath))
        {
            throw new ArgumentException($"AddMaskRcnn: {nameof(ModelPath)} is empty");
        }

        if (Configure is not null && ModelPath is null)
        {
            throw new ArgumentException($"AddMaskRcnn: {nameof(Configure)} changes a saved model's configuration; with {nameof(Builder)}, configure the builder");
        }
    }
}
