using MaskRcnn.Net.Core;
using MaskRcnn.Net.Core.NN;

namespace MaskRcnn.Net.Heads;

/// <summary>
/// The same functions as the heads' layers, computed as oneDNN convolutions when that is faster: on the CPU, without
/// gradients (prediction), for a non-empty batch. libtorch 1.13 runs <c>linear</c> through the BLAS (OpenBLAS here)
/// and a transposed convolution through im2col + BLAS, while convolutions go to oneDNN's JIT kernels, measured
/// several times faster on the heads' shapes (see docs/benchmarks.md). Results equal the plain layers up to float
/// summation order; training keeps the plain layers.
/// </summary>
internal static class CpuInference
{
    /// <summary>Whether <paramref name="input"/> takes the convolution path.</summary>
    public static bool Applies(Tensor input) =>
        input.Device.Type == DeviceType.Cpu && !Torch.IsGradEnabled && input.Size(0) > 0;

    /// <summary>
    /// <c>linear(flatten(input), weight, bias)</c> for [K, C, H, W] <paramref name="input"/> (or [K, F]) as one
    /// convolution whose kernel covers the whole input window. Returns [K, out].
    /// </summary>
    public static Tensor Linear(Tensor input, Linear layer)
    {
        using var x = input.Dim == 4 ? input.Alias() : input.Reshape(input.Size(0), -1, 1, 1);
        var outFeatures = layer.Weight.Size(0);
        if (x.Size(1) * x.Size(2) * x.Size(3) != layer.Weight.Size(1))
        {
            throw new ArgumentException($"input [{string.Join(", ", input.Shape)}] does not flatten to the layer's {layer.Weight.Size(1)} input features", nameof(input));
        }

        using var kernel = layer.Weight.View(outFeatures, x.Size(1), x.Size(2), x.Size(3));
        using var y = Functional.Conv2d(x, kernel, layer.Bias);
        return y.Flatten(1);
    }

    /// <summary>
    /// A transposed convolution with kernel 2, stride 2, no padding (the mask predictor's up-sampling), as a 1×1
    /// convolution to 4·out channels followed by a pixel shuffle. Each output pixel comes from exactly one input pixel:
    /// <c>y[n, o, 2i+a, 2j+b] = bias[o] + Σ_c x[n, c, i, j]·W[c, o, a, b]</c>. Returns [N, out, 2H, 2W] in channels-last
    /// memory order.
    /// </summary>
    public static Tensor UpsampleBy2(Tensor input, ConvTranspose2d layer)
    {
        using var scope = Torch.NewDisposeScope();
        long n = input.Size(0), h = input.Size(2), w = input.Size(3);
        var o = layer.Weight.Size(1);
        // Kernel rows ordered (a, b, o), so that in channels-last memory each (i, j, a, b) holds o contiguous values.
        var kernel = layer.Weight.Permute(2, 3, 1, 0).Reshape(4 * o, layer.Weight.Size(0), 1, 1);
        var bias = layer.Bias?.Repeat(4);
        var z = Functional.Conv2d(input, kernel, bias).View(n, 2, 2, o, h, w);    // (n, a, b, o, i, j)
        var up = z.Permute(0, 4, 1, 5, 2, 3).Contiguous().View(n, 2 * h, 2 * w, o)  // (n, i, a, j, b, o) in memory
            .Permute(0, 3, 1, 2);
        return scope.MoveToOuter(up);
    }

    /// <summary>Whether <paramref name="layer"/> is the kernel-2, stride-2 up-sampling <see cref="UpsampleBy2"/> computes.</summary>
    public static bool IsUpsampleBy2(ConvTranspose2d layer) =>
        layer.Weight.Size(2) == 2 && layer.Weight.Size(3) == 2 && layer.Stride == 2 && layer.Padding == 0 && layer.OutputPadding == 0;
}
