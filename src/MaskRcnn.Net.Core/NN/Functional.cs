using MaskRcnn.Net.Core;

namespace MaskRcnn.Net.Core.NN;

/// <summary>How a loss reduces its per-element values (libtorch's <c>at::Reduction</c> codes).</summary>
public enum Reduction
{
    /// <summary>Keep per-element losses.</summary>
    None = 0,

    /// <summary>Average.</summary>
    Mean = 1,

    /// <summary>Sum.</summary>
    Sum = 2,
}

/// <summary>Interpolation modes of <see cref="Functional.Interpolate(Tensor, long, long, InterpolationMode, bool)"/>.</summary>
public enum InterpolationMode
{
    /// <summary>Nearest neighbour (PyTorch's "nearest").</summary>
    Nearest = 0,

    /// <summary>Bilinear.</summary>
    Bilinear = 1,
}

/// <summary>
/// Stateless neural-network functions (the torch.nn.functional subset Mask R-CNN needs). Reduced precision: when the
/// input is bfloat16 or float16 and a weight, bias or statistic is another floating-point type (the model's float32
/// parameters), that tensor is converted to the input's type for the call, so a model keeps its float32 weights and
/// runs in the precision of the activations it is given.
/// </summary>
public static class Functional
{
    /// <summary>A copy of <paramref name="parameter"/> in <paramref name="input"/>'s reduced-precision type, or null when none is needed.</summary>
    private static Tensor? Follow(Tensor input, Tensor? parameter) =>
        parameter is not null && input.DType.IsReducedFloat() && parameter.DType != input.DType && parameter.DType.IsFloatingPoint()
            ? parameter.To(input.DType)
            : null;

    /// <summary>2-D convolution of [N, C, H, W] input with [O, C/groups, kH, kW] weights.</summary>
    public static unsafe Tensor Conv2d(Tensor input, Tensor weight, Tensor? bias = null, int stride = 1, int padding = 0,
        int dilation = 1, int groups = 1) =>
        Conv2d(input, weight, bias, (stride, stride), (padding, padding), (dilation, dilation), groups);

    /// <summary>2-D convolution with per-axis stride, padding and dilation.</summary>
    public static unsafe Tensor Conv2d(Tensor input, Tensor weight, Tensor? bias, (int H, int W) stride,
        (int H, int W) padding, (int H, int W) dilation, int groups = 1)
    {
        long* s = stackalloc long[] { stride.H, stride.W };
        long* p = stackalloc long[] { padding.H, padding.W };
        long* d = stackalloc long[] { dilation.H, dilation.W };
        using var w = Follow(input, weight);
        using var b = Follow(input, bias);
        return new Tensor(NativeMethods.mr_conv2d(input.Handle, (w ?? weight).Handle, Tensor.HandleOf(b ?? bias), s, p, d, groups));
    }

    /// <summary>2-D transposed convolution of [N, C, H, W] input with [C, O/groups, kH, kW] weights.</summary>
    public static unsafe Tensor ConvTranspose2d(Tensor input, Tensor weight, Tensor? bias = null, int stride = 1,
        int padding = 0, int outputPadding = 0, int groups = 1, int dilation = 1)
    {
        long* s = stackalloc long[] { stride, stride };
        long* p = stackalloc long[] { padding, padding };
        long* o = stackalloc long[] { outputPadding, outputPadding };
        long* d = stackalloc long[] { dilation, dilation };
        using var w = Follow(input, weight);
        using var b = Follow(input, bias);
        return new Tensor(NativeMethods.mr_conv_transpose2d(input.Handle, (w ?? weight).Handle, Tensor.HandleOf(b ?? bias), s, p, o, groups, d));
    }

    /// <summary>Batch normalisation; in training mode updates the running statistics in place.</summary>
    public static Tensor BatchNorm(Tensor input, Tensor? runningMean, Tensor? runningVar, Tensor? weight = null,
        Tensor? bias = null, bool training = false, double momentum = 0.1, double eps = 1e-5)
    {
        ArgumentNullException.ThrowIfNull(input);
        using var w = Follow(input, weight);
        using var b = Follow(input, bias);
        using var m = training ? null : Follow(input, runningMean);   // training updates the statistics in place
        using var v = training ? null : Follow(input, runningVar);
        return new(NativeMethods.mr_batch_norm(input.Handle, Tensor.HandleOf(w ?? weight), Tensor.HandleOf(b ?? bias),
            Tensor.HandleOf(m ?? runningMean), Tensor.HandleOf(v ?? runningVar), training ? 1 : 0, momentum, eps));
    }

    /// <summary>Group normalisation over <paramref name="groups"/> channel groups.</summary>
    public static Tensor GroupNorm(Tensor input, int groups, Tensor? weight = null, Tensor? bias = null, double eps = 1e-5)
    {
        ArgumentNullException.ThrowIfNull(input);
        using var w = Follow(input, weight);
        using var b = Follow(input, bias);
        return new(NativeMethods.mr_group_norm(input.Handle, groups, Tensor.HandleOf(w ?? weight), Tensor.HandleOf(b ?? bias), eps));
    }

    /// <summary>max(x, 0).</summary>
    public static Tensor Relu(Tensor input) => input.Relu();

    /// <summary>2-D max pooling.</summary>
    public static unsafe Tensor MaxPool2d(Tensor input, int kernelSize, int? stride = null, int padding = 0,
        int dilation = 1, bool ceilMode = false)
    {
        var st = stride ?? kernelSize;
        long* k = stackalloc long[] { kernelSize, kernelSize };
        long* s = stackalloc long[] { st, st };
        long* p = stackalloc long[] { padding, padding };
        long* d = stackalloc long[] { dilation, dilation };
        return new Tensor(NativeMethods.mr_max_pool2d(input.Handle, k, s, p, d, ceilMode ? 1 : 0));
    }

    /// <summary>2-D average pooling.</summary>
    public static unsafe Tensor AvgPool2d(Tensor input, int kernelSize, int? stride = null, int padding = 0,
        bool ceilMode = false, bool countIncludePad = true)
    {
        var st = stride ?? kernelSize;
        long* k = stackalloc long[] { kernelSize, kernelSize };
        long* s = stackalloc long[] { st, st };
        long* p = stackalloc long[] { padding, padding };
        return new Tensor(NativeMethods.mr_avg_pool2d(input.Handle, k, s, p, ceilMode ? 1 : 0, countIncludePad ? 1 : 0));
    }

    /// <summary>Average pooling to a fixed output size.</summary>
    public static unsafe Tensor AdaptiveAvgPool2d(Tensor input, long outputHeight, long outputWidth)
    {
        long* s = stackalloc long[] { outputHeight, outputWidth };
        return new Tensor(NativeMethods.mr_adaptive_avg_pool2d(input.Handle, s));
    }

    /// <summary>Resamples [N, C, H, W] input to the given size.</summary>
    public static Tensor Interpolate(Tensor input, long outputHeight, long outputWidth,
        InterpolationMode mode = InterpolationMode.Nearest, bool alignCorners = false)
    {
        if (alignCorners && mode == InterpolationMode.Nearest)
        {
            throw new ArgumentException("alignCorners applies to bilinear interpolation only", nameof(alignCorners));
        }

        if (outputHeight <= 0 || outputWidth <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(outputHeight), $"output size {outputHeight}x{outputWidth} must be positive");
        }

        return new Tensor(NativeMethods.mr_interpolate(input.Handle, outputHeight, outputWidth, (int)mode, alignCorners ? 1 : 0, 0, 0));
    }

    /// <summary>
    /// Resamples by scale factors. Output size is floor(size·scale). With <paramref name="recomputeScaleFactor"/> the
    /// kernel uses the ratio of sizes (PyTorch's recompute_scale_factor=True), otherwise the given factors.
    /// </summary>
    public static Tensor Interpolate(Tensor input, double scaleHeight, double scaleWidth,
        InterpolationMode mode = InterpolationMode.Nearest, bool alignCorners = false, bool recomputeScaleFactor = false)
    {
        if (!(scaleHeight > 0) || !(scaleWidth > 0) || double.IsInfinity(scaleHeight) || double.IsInfinity(scaleWidth))
        {
            throw new ArgumentOutOfRangeException(nameof(scaleHeight), $"scale factors {scaleHeight}, {scaleWidth} must be positive and finite");
        }

        var shape = input.Shape;
        if (shape.Length != 4)
        {
            throw new ArgumentException($"input must be [N, C, H, W], got [{string.Join(", ", shape)}]", nameof(input));
        }

        var h = (long)Math.Floor(shape[2] * scaleHeight);
        var w = (long)Math.Floor(shape[3] * scaleWidth);
        return new Tensor(NativeMethods.mr_interpolate(input.Handle, h, w, (int)mode, alignCorners ? 1 : 0,
            recomputeScaleFactor ? 0 : scaleHeight, recomputeScaleFactor ? 0 : scaleWidth));
    }

    /// <summary>x·Wᵀ + b.</summary>
    public static Tensor Linear(Tensor input, Tensor weight, Tensor? bias = null)
    {
        ArgumentNullException.ThrowIfNull(input);
        using var w = Follow(input, weight);
        using var b = Follow(input, bias);
        return new(NativeMethods.mr_linear(input.Handle, (w ?? weight).Handle, Tensor.HandleOf(b ?? bias)));
    }

    /// <summary>Zeroes elements with probability <paramref name="p"/> in training (scaling the rest by 1/(1-p)).</summary>
    public static Tensor Dropout(Tensor input, double p = 0.5, bool training = true)
    {
        if (p is < 0 or > 1)
        {
            throw new ArgumentOutOfRangeException(nameof(p), p, "dropout probability must be in [0, 1]");
        }

        return new Tensor(NativeMethods.mr_dropout(input.Handle, p, training ? 1 : 0));
    }

    /// <summary>Softmax along a dimension.</summary>
    public static Tensor Softmax(Tensor input, long dim) => new(NativeMethods.mr_softmax(input.Handle, dim, 0));

    /// <summary>Log-softmax along a dimension.</summary>
    public static Tensor LogSoftmax(Tensor input, long dim) => new(NativeMethods.mr_softmax(input.Handle, dim, 1));

    /// <summary>Cross entropy of [N, C] logits against int64 class indices [N].</summary>
    public static Tensor CrossEntropy(Tensor input, Tensor target, Tensor? weight = null,
        Reduction reduction = Reduction.Mean, long ignoreIndex = -100, double labelSmoothing = 0) =>
        new(NativeMethods.mr_cross_entropy(input.Handle, target.Handle, Tensor.HandleOf(weight), (int)reduction,
            ignoreIndex, labelSmoothing));

    /// <summary>Binary cross entropy of logits against probabilities in [0, 1].</summary>
    public static Tensor BinaryCrossEntropyWithLogits(Tensor input, Tensor target, Tensor? weight = null,
        Tensor? posWeight = null, Reduction reduction = Reduction.Mean) =>
        new(NativeMethods.mr_bce_with_logits(input.Handle, target.Handle, Tensor.HandleOf(weight),
            Tensor.HandleOf(posWeight), (int)reduction));

    /// <summary>Smooth L1 (Huber-like) loss with transition point <paramref name="beta"/>.</summary>
    public static Tensor SmoothL1Loss(Tensor input, Tensor target, Reduction reduction = Reduction.Mean, double beta = 1.0)
    {
        if (beta < 0 || double.IsNaN(beta))
        {
            throw new ArgumentOutOfRangeException(nameof(beta), beta, "beta must be non-negative");
        }

        return new Tensor(NativeMethods.mr_smooth_l1(input.Handle, target.Handle, (int)reduction, beta));
    }

    /// <summary>Mean absolute error.</summary>
    public static Tensor L1Loss(Tensor input, Tensor target, Reduction reduction = Reduction.Mean) =>
        new(NativeMethods.mr_l1(input.Handle, target.Handle, (int)reduction));

    /// <summary>Mean squared error.</summary>
    public static Tensor MseLoss(Tensor input, Tensor target, Reduction reduction = Reduction.Mean) =>
        new(NativeMethods.mr_mse(input.Handle, target.Handle, (int)reduction));
}
