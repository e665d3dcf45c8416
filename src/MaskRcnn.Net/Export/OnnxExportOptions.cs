namespace MaskRcnn.Net.Export;

/// <summary>Options of <see cref="MaskRcnnModel.ExportOnnx"/>.</summary>
/// <param name="Opset">The default-domain (<c>ai.onnx</c>) opset of the graph. Only 17 is supported: the graph uses
/// opset-17 operator signatures (RoiAlign 16, ReduceMax with an axes attribute).</param>
public sealed record OnnxExportOptions(int Opset = 17)
{
    /// <summary>The opsets the exporter can write.</summary>
    public static IReadOnlyList<int> SupportedOpsets { get; } = [17];

    /// <summary>The defaults (opset 17).</summary>
    public static OnnxExportOptions Default { get; } = new();

    /// <summary>
    /// Test hook: extra graph outputs exposing intermediate values (the transformed batch, the feature maps). Not
    /// part of the public format; a file written with it is still a complete model when the heads are available.
    /// </summary>
    internal OnnxDebugOutputs DebugOutputs { get; init; }

    /// <summary>Checks the settings; throws <see cref="ArgumentException"/> naming the field.</summary>
    public void Validate()
    {
        if (!SupportedOpsets.Contains(Opset))
        {
            throw new ArgumentException(
                $"OnnxExportOptions.Opset must be one of [{string.Join(", ", SupportedOpsets)}], got {Opset}", nameof(Opset));
        }
    }
}

/// <summary>Intermediate values <see cref="OnnxExporter"/> can add as graph outputs (tests only).</summary>
[Flags]
internal enum OnnxDebugOutputs
{
    /// <summary>No extra outputs.</summary>
    None = 0,

    /// <summary>
    /// <c>debug_images</c>: the normalised, resized, padded batch float32 [1, 3, Hp, Wp]; <c>debug_resized_size</c>:
    /// int64 [2] (height, width after the resize).
    /// </summary>
    Transform = 1,

    /// <summary><c>debug_feature_{level}</c>: every backbone level (<c>0</c>…<c>3</c>, <c>pool</c>), float32 [1, C, h, w].</summary>
    Features = 2,
}
