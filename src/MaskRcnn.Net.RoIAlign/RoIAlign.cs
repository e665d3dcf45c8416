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

    /// <summary>RoIAlign with an explicit implementation choice (tests compare the two paths).</summary>
    internal static Tensor Apply(Tensor input, Tensor rois, int outputHeight, int outputWidth, double spatialScale,
        int samplingRatio, bool aligned, Path path)
    {
        RoIValidation.Check(input, rois, outputHeight, outputWidth, spatialScale);
        return new Tensor(NativeMethods.mr_roi_align(input.Handle, rois.Handle, outputHeight, outputWidth, spatialScale,
            samplingRatio, aligned ? 1 : 0, (int)path));
    }
}
