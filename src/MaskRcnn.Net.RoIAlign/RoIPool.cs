using MaskRcnn.Net.Core;

namespace MaskRcnn.Net.RoIAlign;

/// <summary>
/// RoIPool (Fast R-CNN) with the semantics of <c>torchvision.ops.roi_pool</c>: RoI corners are rounded to whole
/// pixels, each bin covers the pixels from floor(start) to ceil(end), and its value is their maximum (0 for an empty
/// bin). The backward pass routes each bin's gradient to the pixel that held the maximum. Native CPU kernel for
/// float32/float64; tensors on other devices are pooled on a host copy (differentiably).
/// </summary>
public static class RoIPool
{
    /// <summary>Max-pools every RoI to a fixed <paramref name="outputHeight"/> × <paramref name="outputWidth"/> grid.</summary>
    /// <param name="input">[N, C, H, W] float32 or float64 feature maps.</param>
    /// <param name="rois">
    /// [K, 5] regions (batch index, x1, y1, x2, y2), same dtype and device as <paramref name="input"/>; batch
    /// indices must be integers in [0, N) and every value finite. K may be 0.
    /// </param>
    /// <param name="outputHeight">Number of bins along y (positive).</param>
    /// <param name="outputWidth">Number of bins along x (positive).</param>
    /// <param name="spatialScale">Factor mapping RoI coordinates onto the feature map, positive.</param>
    /// <returns>[K, C, outputHeight, outputWidth] pooled features.</returns>
    /// <exception cref="ArgumentException">An argument has the wrong shape, dtype, device or values.</exception>
    public static Tensor Apply(Tensor input, Tensor rois, int outputHeight, int outputWidth, double spatialScale)
    {
        RoIValidation.Check(input, rois, outputHeight, outputWidth, spatialScale);
        if (input.DType is not (DType.Float32 or DType.Float64))
        {
            throw new ArgumentException($"RoIPool supports float32 and float64 input, got {input.DType}", nameof(input));
        }

        return new Tensor(NativeMethods.mr_roi_pool(input.Handle, rois.Handle, outputHeight, outputWidth, spatialScale));
    }
}
