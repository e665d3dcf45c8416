using MaskRcnn.Net.Core;

namespace MaskRcnn.Net.RoIAlign;

/// <summary>
/// RoIAlign (Mask R-CNN) with the semantics of <c>torchvision.ops.roi_align</c>: every output bin averages
/// bilinearly interpolated samples taken on a regular grid inside the bin. Float32/float64 CPU tensors run a native
/// kernel (parallel over RoIs) whose backward pass gives <c>input</c> its gradient; other devices and dtypes run an
/// equivalent composition of tensor operations that autograd differentiates.
/// </summary>
public static class RoIAlign
{
    /// <summary>Which implementation <see cref="Apply(Tensor, Tensor, int, int, double, int, bool, Path)"/> runs.</summary>
    internal enum Path
    {
        /// <summary>The native kernel for float32/float64 CPU tensors, tensor operations otherwise.</summary>
        Auto = 0,

        /// <summary>The native CPU kernel (fails for other devices or dtypes).</summary>
        Kernel = 1,

        /// <summary>The device-agnostic tensor-operation path, on any device.</summary>
        TensorOps = 2,
    }

    /// <summary>Pools every RoI to a fixed <paramref name="outputHeight"/> × <paramref name="outputWidth"/> grid.</summary>
    /// <param name="input">[N, C, H, W] feature maps.</param>
    /// <param name="rois">
    /// [K, 5] regions (batch index, x1, y1, x2, y2) in input-image coordinates, same dtype and device as
    /// <paramref name="input"/>; batch indices must be integers in [0, N) and every value finite. K may be 0.
    /// </param>
    /// <param name="outputHeight">Number of bins along y (positive).</param>
    /// <param name="outputWidth">Number of bins along x (positive).</param>
    /// <param name="spatialScale">Factor mapping RoI coordinates onto the feature map (e.g. 1/16), positive.</param>
    /// <param name="samplingRatio">
    /// Samples per bin along each axis; 0 or less chooses ceil(RoI size / output size) per RoI.
    /// </param>
    /// <param name="aligned">
    /// True shifts the RoI by -0.5 pixel (pixel centres at half-integers, Detectron2); false keeps the legacy
    /// behaviour, which also widens degenerate RoIs to at least 1×1.
    /// </param>
    /// <returns>[K, C, outputHeight, outputWidth] pooled features.</returns>
    /// <exception cref="ArgumentException">An argument has the wrong shape, dtype, device or values.</exception>
    public static Tensor Apply(Tensor input, Tensor rois, int outputHeight, int outputWidth, double spatialScale,
        int samplingRatio, bool aligned) =>
        Apply(input, rois, outputHeight, outputWidth, spatialScale, samplingRatio, aligned, Path.Auto);

    /// <summary>
    /// Pools each RoI from the feature map its level names: RoI k from <paramref name="features"/>[levels[k]] at
    /// <paramref name="spatialScales"/>[levels[k]], into row k of the [K, C, outputHeight, outputWidth] result.
    /// Without gradients, float32/float64 CPU maps run one fused native pass (each level transposed to channels-last
    /// at most once, every RoI written straight into its row); otherwise the levels are pooled one by one.
    /// </summary>
    /// <param name="features">[N, C, Hₗ, Wₗ] feature maps of one batch (same N, C, dtype and device).</param>
    /// <param name="spatialScales">The scale of each feature map (positive).</param>
    /// <param name="rois">[K, 5] regions (batch index, x1, y1, x2, y2), as for <see cref="Apply(Tensor, Tensor, int, int, double, int, bool)"/>.</param>
    /// <param name="levels">int64 [K]: the index into <paramref name="features"/> of each RoI.</param>
    /// <param name="outputHeight">Number of bins along y (positive).</param>
    /// <param name="outputWidth">Number of bins along x (positive).</param>
    /// <param name="samplingRatio">Samples per bin along each axis; 0 or less: adaptive.</param>
    /// <param name="aligned">Half-pixel offset (see <see cref="Apply(Tensor, Tensor, int, int, double, int, bool)"/>).</param>
    /// <returns>[K, C, outputHeight, outputWidth] pooled features.</returns>
    /// <exception cref="ArgumentException">An argument has the wrong shape, dtype, device or values.</exception>
    internal static unsafe Tensor ApplyMultiLevel(IReadOnlyList<Tensor> features, IReadOnlyList<double> spatialScales,
        Tensor rois, Tensor levels, int outputHeight, int outputWidth, int samplingRatio, bool aligned)
    {
        ArgumentNullException.ThrowIfNull(features);
        ArgumentNullException.ThrowIfNull(spatialScales);
        ArgumentNullException.ThrowIfNull(levels);
        if (features.Count == 0)
        {
            throw new ArgumentException("at least one feature map is needed", nameof(features));
        }

        if (spatialScales.Count != features.Count)
        {
            throw new ArgumentException($"{features.Count} feature maps but {spatialScales.Count} scales", nameof(spatialScales));
        }

        RoIValidation.Check(features[0], rois, outputHeight, outputWidth, spatialScales[0]);
        var first = features[0].Shape;
        for (var l = 1; l < features.Count; l++)
        {
            ArgumentNullException.ThrowIfNull(features[l], $"{nameof(features)}[{l}]");
            var f = features[l].Shape;
            if (f.Length != 4 || f[0] != first[0] || f[1] != first[1])
            {
                throw new ArgumentException(
                    $"features[{l}] must have shape [{first[0]}, {first[1]}, H, W] like features[0], got [{string.Join(", ", f)}]",
                    nameof(features));
            }

            if (features[l].DType != features[0].DType || features[l].Device != features[0].Device)
            {
                throw new ArgumentException(
                    $"features[{l}] is {features[l].DType} on {features[l].Device}, features[0] {features[0].DType} on {features[0].Device}",
                    nameof(features));
            }

            if (!double.IsFinite(spatialScales[l]) || spatialScales[l] <= 0)
            {
                throw new ArgumentOutOfRangeException(nameof(spatialScales), spatialScales[l], $"spatialScales[{l}] must be a positive number");
            }
        }

        var k = rois.Size(0);
        if (levels.DType != DType.Int64 || levels.Shape is not [var count] || count != k || levels.Device != rois.Device)
        {
            throw new ArgumentException(
                $"levels must be an int64 [{k}] tensor on {rois.Device}, got {levels.DType} [{string.Join(", ", levels.Shape)}] on {levels.Device}",
                nameof(levels));
        }

        if (k > 0)
        {
            using var min = levels.Min();
            using var max = levels.Max();
            if (min.ItemLong() < 0 || max.ItemLong() >= features.Count)
            {
                throw new ArgumentException($"levels must lie in [0, {features.Count}), got [{min.ItemLong()}, {max.ItemLong()}]", nameof(levels));
            }
        }

        var hs = Tensor.Handles(features);
        var scales = spatialScales.ToArray();
        fixed (nint* h = hs)
        fixed (double* s = scales)
        {
            var result = new Tensor(NativeMethods.mr_multi_scale_roi_align(h, s, hs.Length, rois.Handle, levels.Handle,
                outputHeight, outputWidth, samplingRatio, aligned ? 1 : 0));
            GC.KeepAlive(features);
            return result;
        }
    }

    /// <summary>RoIAlign with an explicit implementation choice (tests compare the two paths).</summary>
    internal static Tensor Apply(Tensor input, Tensor rois, int outputHeight, int outputWidth, double spatialScale,
        int samplingRatio, bool aligned, Path path)
    {
        RoIValidation.Check(input, rois, outputHeight, outputWidth, spatialScale);
        return new Tensor(NativeMethods.mr_roi_align(input.Handle, rois.Handle, outputHeight, outputWidth, spatialScale,
            samplingRatio, aligned ? 1 : 0, (int)path));
    }
}
