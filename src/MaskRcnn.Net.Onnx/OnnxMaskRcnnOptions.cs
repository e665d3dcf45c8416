using MaskRcnn.Net.SkiaSharp;

namespace MaskRcnn.Net.Onnx;

/// <summary>Session settings of <see cref="OnnxMaskRcnn"/>.</summary>
/// <param name="IntraOpThreads">Threads ONNX Runtime uses inside one operator; 0 (default): ONNX Runtime's choice
/// (the physical cores).</param>
/// <param name="InterOpThreads">Threads that run independent operators in parallel (only with
/// <paramref name="ParallelExecution"/>); 0 (default): ONNX Runtime's choice.</param>
/// <param name="ParallelExecution">Run independent branches of the graph in parallel (ONNX Runtime's
/// <c>ExecutionMode.ORT_PARALLEL</c>); default sequential.</param>
/// <param name="OptimizeGraph">Apply ONNX Runtime's graph optimisations (all levels; default true). False runs the
/// graph as exported (<c>ORT_DISABLE_ALL</c>).</param>
/// <param name="MaxImagePixels">The largest encoded image decoded (width × height, checked on the header before the
/// pixels are allocated); default <see cref="SkiaImageDecoder.DefaultMaxPixels"/>.</param>
public sealed record OnnxMaskRcnnOptions(
    int IntraOpThreads = 0,
    int InterOpThreads = 0,
    bool ParallelExecution = false,
    bool OptimizeGraph = true,
    long MaxImagePixels = SkiaImageDecoder.DefaultMaxPixels)
{
    /// <summary>The defaults.</summary>
    public static OnnxMaskRcnnOptions Default { get; } = new();

    /// <summary>Checks the ranges; throws <see cref="ArgumentException"/> naming the field and its value.</summary>
    public void Validate()
    {
        if (IntraOpThreads < 0)
        {
            throw new ArgumentException($"OnnxMaskRcnnOptions.IntraOpThreads must be 0 (ONNX Runtime's choice) or positive, got {IntraOpThreads}", nameof(IntraOpThreads));
        }

        if (InterOpThreads < 0)
        {
            throw new ArgumentException($"OnnxMaskRcnnOptions.InterOpThreads must be 0 (ONNX Runtime's choice) or positive, got {InterOpThreads}", nameof(InterOpThreads));
        }

        if (MaxImagePixels < 1)
        {
            throw new ArgumentException($"OnnxMaskRcnnOptions.MaxImagePixels must be at least 1, got {MaxImagePixels}", nameof(MaxImagePixels));
        }
    }
}
