using MaskRcnn.Net.Core;

namespace MaskRcnn.Net.RoIAlign;

/// <summary>Argument checks shared by <see cref="RoIAlign"/> and <see cref="RoIPool"/>.</summary>
internal static class RoIValidation
{
    internal static void Check(Tensor input, Tensor rois, int outputHeight, int outputWidth, double spatialScale)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(rois);
        var x = input.Shape;
        if (x.Length != 4)
        {
            throw new ArgumentException($"input must have shape [N, C, H, W], got [{string.Join(", ", x)}]", nameof(input));
        }

        if (!input.DType.IsFloatingPoint())
        {
            throw new ArgumentException($"input must be a floating-point tensor, got {input.DType}", nameof(input));
        }

        var r = rois.Shape;
        if (r.Length != 2 || r[1] != 5)
        {
            throw new ArgumentException(
                $"rois must have shape [K, 5] (batch index, x1, y1, x2, y2), got [{string.Join(", ", r)}]", nameof(rois));
        }

        if (rois.DType != input.DType)
        {
            throw new ArgumentException($"rois are {rois.DType} but input is {input.DType}", nameof(rois));
        }

        if (rois.Device != input.Device)
        {
            throw new ArgumentException($"rois are on {rois.Device}, input on {input.Device}", nameof(rois));
        }

        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(outputHeight);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(outputWidth);
        if (!double.IsFinite(spatialScale) || spatialScale <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(spatialScale), spatialScale, "the spatial scale must be a positive number");
        }

        if (r[0] == 0)
        {
            return;
        }

        switch (Native.Check(NativeMethods.mr_check_rois(rois.Handle, x[0])))
        {
            case 1:
                throw new ArgumentException("rois contain NaN or infinite values", nameof(rois));
            case 2:
                throw new ArgumentException(
                    $"rois column 0 must hold integer batch indices in [0, {x[0]})", nameof(rois));
        }
    }
}
