using System.Runtime.InteropServices;

namespace MaskRcnn.Net.Core;

/// <summary>P/Invoke declarations of the shim's detection kernels (NMS, RoIAlign, RoIPool) and value checks.</summary>
internal static partial class NativeMethods
{
    [LibraryImport(Lib)] internal static partial nint mr_nms(TensorHandle boxes, TensorHandle scores, double iouThreshold);
    [LibraryImport(Lib)] internal static partial nint mr_batched_nms(TensorHandle boxes, TensorHandle scores, TensorHandle classes, double iouThreshold);

    /// <summary>RoIAlign; <paramref name="path"/>: 0 automatic, 1 CPU kernel, 2 tensor operations.</summary>
    [LibraryImport(Lib)] internal static partial nint mr_roi_align(TensorHandle input, TensorHandle rois, long pooledHeight, long pooledWidth, double spatialScale, long samplingRatio, int aligned, int path);
    /// <summary>
    /// Multi-scale RoIAlign: RoI k is pooled from <c>features[levels[k]]</c> at <c>scales[levels[k]]</c>
    /// (<paramref name="levels"/> int64 [K]); one fused native pass when no gradient is needed.
    /// </summary>
    [LibraryImport(Lib)] internal static unsafe partial nint mr_multi_scale_roi_align(nint* features, double* scales, int numLevels, TensorHandle rois, TensorHandle levels, long pooledHeight, long pooledWidth, long samplingRatio, int aligned);
    [LibraryImport(Lib)] internal static partial nint mr_roi_pool(TensorHandle input, TensorHandle rois, long pooledHeight, long pooledWidth, double spatialScale);

    /// <summary>1 when every element is finite, 0 otherwise, -1 on error.</summary>
    [LibraryImport(Lib)] internal static partial int mr_all_finite(TensorHandle h);

    /// <summary>1 when some element is NaN, 0 otherwise, -1 on error.</summary>
    [LibraryImport(Lib)] internal static partial int mr_any_nan(TensorHandle h);

    /// <summary>0 valid, 1 non-finite values, 2 a batch index that is not an integer in [0, batch); -1 on error.</summary>
    [LibraryImport(Lib)] internal static partial int mr_check_rois(TensorHandle rois, long batch);
}
