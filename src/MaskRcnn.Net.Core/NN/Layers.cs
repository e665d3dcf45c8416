namespace MaskRcnn.Net.Core.NN;

/// <summary>Weight initialisation helpers (PyTorch's defaults and the ones detection heads use).</summary>
public static class Init
{
    /// <summary>Fan-in of a weight of shape [out, in, kH, kW] or [out, in].</summary>
    public static long FanIn(Tensor weight)
    {
        var s = weight.Shape;
        return s.Length < 2 ? s[0] : s[1] * s.Skip(2).Aggregate(1L, (a, b) => a * b);
    }

    /// <summary>PyTorch's default layer init: U(−b, b) with b = 1/sqrt(fan_in) (kaiming_uniform with a = √5).</summary>
    public static void DefaultUniform(Tensor weight, Tensor? bias)
    {
        using var _ = Torch.NoGrad();
        var bound = 1.0 / Math.Sqrt(Math.Max(1, FanIn(weight)));
        weight.UniformInPlace(-bound, bound);
        bias?.UniformInPlace(-bound, bound);
    }

    /// <summary>Kaiming normal with fan_out and ReLU gain (torchvision's ResNet/FPN conv init).</summary>
    public static void KaimingNormalFanOut(Tensor weight)
    {
        using var _ = Torch.NoGrad();
        var s = weight.Shape;
        var fanOut = s[0] * s.Skip(2).Aggregate(1L, (a, b) => a * b);
        weight.NormalInPlace(0, Math.Sqrt(2.0 / fanOut));
    }

    /// <summary>Kaiming uniform with a = 1 (torchvision's FPN and RPN-head init: bound = sqrt(3/fan_in)).</summary>
    public static void KaimingUniformA1(Tensor weight)
    {
        using var _ = Torch.NoGrad();
        var bound = Math.Sqrt(3.0 / Math.Max(1, FanIn(weight)));
        weight.UniformInPlace(-bound, bound);
    }
}

/// <summary>2-D convolution layer (<c>weight</c> [out, in/groups, k, k], optional <c>bias</c> [out]).</summary>
public sealed class Conv2d : Module
{
    /// <summary>Creates the layer with PyTorch's default initialisation.</summary>
    public Conv2d(int inChannels, int outChannels, int kernelSize, int stride = 1, int padding = 0, int dilation = 1,
        int groups = 1, bool bias = true)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(inChannels, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(outChannels, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(kernelSize, 1);
        if (inChannels % groups != 0 || outChannels % groups != 0)
        {
            throw new ArgumentException($"channels {inChannels}->{outChannels} are not divisible by groups {groups}", nameof(groups));
        }

        (Stride, Padding, Dilation, Groups) = (stride, padding, dilation, groups);
        Weight = RegisterParameter("weight", Tensor.Empty([outChannels, inChannels / groups, kernelSize, kernelSize]));
        Bias = bias ? RegisterParameter("bias", Tensor.Empty([outChannels])) : null;
        Init.DefaultUniform(Weight, Bias);
    }

    /// <summary>Stride.</summary>
    public int Stride { get; }

    /// <summary>Zero padding on each side.</summary>
    public int Padding { get; }

    /// <summary>Dilation.</summary>
    public int Dilation { get; }

    /// <summary>Groups.</summary>
    public int Groups { get; }

    /// <summary>[out, in/groups, k, k].</summary>
    public Tensor Weight { get; }

    /// <summary>[out], or null.</summary>
    public Tensor? Bias { get; }

    /// <summary>Applies the convolution to [N, C, H, W].</summary>
    public Tensor Forward(Tensor input) => Functional.Conv2d(input, Weight, Bias, Stride, Padding, Dilation, Groups);
}

/// <summary>2-D transposed convolution layer (<c>weight</c> [in, out, k, k]).</summary>
public sealed class ConvTranspose2d : Module
{
    /// <summary>Creates the layer with PyTorch's default initialisation.</summary>
    public ConvTranspose2d(int inChannels, int outChannels, int kernelSize, int stride = 1, int padding = 0,
        int outputPadding = 0, bool bias = true)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(inChannels, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(outChannels, 1);
        (Stride, Padding, OutputPadding) = (stride, padding, outputPadding);
        Weight = RegisterParameter("weight", Tensor.Empty([inChannels, outChannels, kernelSize, kernelSize]));
        Bias = bias ? RegisterParameter("bias", Tensor.Empty([outChannels])) : null;
        Init.DefaultUniform(Weight, Bias);
    }

    /// <summary>Stride.</summary>
    public int Stride { get; }

    /// <summary>Padding.</summary>
    public int Padding { get; }

    /// <summary>Extra size added to one side of the output.</summary>
    public int OutputPadding { get; }

    /// <summary>[in, out, k, k].</summary>
    public Tensor Weight { get; }

    /// <summary>[out], or null.</summary>
    public Tensor? Bias { get; }

    /// <summary>Applies the transposed convolution to [N, C, H, W].</summary>
    public Tensor Forward(Tensor input) => Functional.ConvTranspose2d(input, Weight, Bias, Stride, Padding, OutputPadding);
}

/// <summary>Fully connected layer y = x·Wᵀ + b (<c>weight</c> [out, in]).</summary>
public sealed class Linear : Module
{
    /// <summary>Creates the layer with PyTorch's default initialisation.</summary>
    public Linear(int inFeatures, int outFeatures, bool bias = true)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(inFeatures, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(outFeatures, 1);
        Weight = RegisterParameter("weight", Tensor.Empty([outFeatures, inFeatures]));
        Bias = bias ? RegisterParameter("bias", Tensor.Empty([outFeatures])) : null;
        Init.DefaultUniform(Weight, Bias);
    }

    /// <summary>[out, in].</summary>
    public Tensor Weight { get; }

    /// <summary>[out], or null.</summary>
    public Tensor? Bias { get; }

    /// <summary>Applies the layer to [..., in].</summary>
    public Tensor Forward(Tensor input) => Functional.Linear(input, Weight, Bias);
}

/// <summary>Batch normalisation over channels of [N, C, H, W] with running statistics (PyTorch's BatchNorm2d).</summary>
public sealed class BatchNorm2d : Module
{
    /// <summary>Creates the layer: weight 1, bias 0, running mean 0, running var 1.</summary>
    public BatchNorm2d(int channels, double eps = 1e-5, double momentum = 0.1)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(channels, 1);
        (Eps, Momentum) = (eps, momentum);
        Weight = RegisterParameter("weight", Tensor.Ones([channels]));
        Bias = RegisterParameter("bias", Tensor.Zeros([channels]));
        RunningMean = RegisterBuffer("running_mean", Tensor.Zeros([channels]));
        RunningVar = RegisterBuffer("running_var", Tensor.Ones([channels]));
        NumBatchesTracked = RegisterBuffer("num_batches_tracked", Tensor.Scalar(0L));
    }

    /// <summary>Added to the variance for stability.</summary>
    public double Eps { get; }

    /// <summary>Running-statistics update factor.</summary>
    public double Momentum { get; }

    /// <summary>Scale γ [C].</summary>
    public Tensor Weight { get; }

    /// <summary>Shift β [C].</summary>
    public Tensor Bias { get; }

    /// <summary>Running mean [C].</summary>
    public Tensor RunningMean { get; }

    /// <summary>Running variance [C].</summary>
    public Tensor RunningVar { get; }

    /// <summary>Number of training batches seen (int64 scalar).</summary>
    public Tensor NumBatchesTracked { get; }

    /// <summary>Normalises with batch statistics in training mode, running statistics otherwise.</summary>
    public Tensor Forward(Tensor input)
    {
        if (IsTraining)
        {
            using var _ = Torch.NoGrad();
            NumBatchesTracked.AddInPlace(1);
        }

        return Functional.BatchNorm(input, RunningMean, RunningVar, Weight, Bias, IsTraining, Momentum, Eps);
    }
}

/// <summary>Group normalisation layer.</summary>
public sealed class GroupNorm : Module
{
    /// <summary>Creates the layer: weight 1, bias 0.</summary>
    public GroupNorm(int groups, int channels, double eps = 1e-5)
    {
        if (groups < 1 || channels % groups != 0)
        {
            throw new ArgumentException($"{channels} channels cannot be split into {groups} groups", nameof(groups));
        }

        (Groups, Eps) = (groups, eps);
        Weight = RegisterParameter("weight", Tensor.Ones([channels]));
        Bias = RegisterParameter("bias", Tensor.Zeros([channels]));
    }

    /// <summary>Number of groups.</summary>
    public int Groups { get; }

    /// <summary>Stability epsilon.</summary>
    public double Eps { get; }

    /// <summary>Scale [C].</summary>
    public Tensor Weight { get; }

    /// <summary>Shift [C].</summary>
    public Tensor Bias { get; }

    /// <summary>Normalises [N, C, H, W].</summary>
    public Tensor Forward(Tensor input) => Functional.GroupNorm(input, Groups, Weight, Bias, Eps);
}

/// <summary>An indexed list of modules named "0", "1", … (torchvision's ModuleList/Sequential key layout).</summary>
/// <typeparam name="T">Element module type.</typeparam>
public sealed class ModuleList<T> : Module where T : Module
{
    private readonly List<T> items = [];

    /// <summary>Creates the list from modules.</summary>
    public ModuleList(IEnumerable<T>? modules = null)
    {
        foreach (var m in modules ?? [])
        {
            Add(m);
        }
    }

    /// <summary>Appends a module (named by its index).</summary>
    public void Add(T module) => items.Add(RegisterModule(items.Count.ToString(System.Globalization.CultureInfo.InvariantCulture), module));

    /// <summary>Number of modules.</summary>
    public int Count => items.Count;

    /// <summary>The module at <paramref name="index"/>.</summary>
    public T this[int index] => items[index];

    /// <summary>The modules in order.</summary>
    public IReadOnlyList<T> Items => items;
}
