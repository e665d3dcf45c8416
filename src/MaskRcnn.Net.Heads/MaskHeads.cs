using MaskRcnn.Net.Core;
using MaskRcnn.Net.Core.NN;

namespace MaskRcnn.Net.Heads;

/// <summary>A replaceable mask head: pooled RoI features [K, C, 14, 14] → mask features [K, D, 14, 14]. Implementations derive from <see cref="Module"/>.</summary>
public interface IMaskHead
{
    /// <summary>Channels D of the output.</summary>
    int OutChannels { get; }

    /// <summary>Computes mask features.</summary>
    Tensor Forward(Tensor pooled);
}

/// <summary>A replaceable mask predictor: mask features → per-class mask logits [K, C, M, M].</summary>
public interface IMaskPredictor
{
    /// <summary>Number of classes including background.</summary>
    int NumClasses { get; }

    /// <summary>Predicts per-class mask logits.</summary>
    Tensor Forward(Tensor features);
}

/// <summary>
/// torchvision's MaskRCNNHeads: four 3×3 conv + ReLU layers (keys <c>{i}.0.weight</c>, legacy <c>mask_fcn{i+1}.weight</c>),
/// Kaiming-normal (fan-out) init.
/// </summary>
public sealed class MaskRcnnHead : Module, IMaskHead
{
    private readonly List<Conv2d> convs = [];

    /// <summary>Creates the head; <paramref name="layers"/> are the channel counts of the convs (default 4 × 256).</summary>
    public MaskRcnnHead(int inChannels, IReadOnlyList<int>? layers = null, int dilation = 1)
    {
        var next = inChannels;
        var i = 0;
        foreach (var ch in layers ?? [256, 256, 256, 256])
        {
            var conv = new Conv2d(next, ch, 3, padding: dilation, dilation: dilation);
            Init.KaimingNormalFanOut(conv.Weight);
            using (Torch.NoGrad())
            {
                conv.Bias!.ZeroInPlace();
            }

            var wrapper = RegisterModule((i++).ToString(System.Globalization.CultureInfo.InvariantCulture), new ModuleList<Conv2d>([conv]));
            _ = wrapper;
            convs.Add(conv);
            next = ch;
        }

        OutChannels = next;
    }

    /// <inheritdoc />
    public int OutChannels { get; }

    /// <inheritdoc />
    public Tensor Forward(Tensor pooled)
    {
        ArgumentNullException.ThrowIfNull(pooled);
        if (CpuInference.Applies(pooled) && pooled.Dim == 4)
        {
            // Prediction on the CPU: the four convolutions run in channels-last order (faster with oneDNN).
            using var channelsLast = pooled.Contiguous(MemoryFormat.ChannelsLast);   // no copy when it already is
            return Convolve(channelsLast);
        }

        return Convolve(pooled);
    }

    private Tensor Convolve(Tensor pooled)
    {
        var x = pooled;
        foreach (var conv in convs)
        {
            var y = conv.Forward(x).ReluInPlace();
            if (!ReferenceEquals(x, pooled))
            {
                x.Dispose();
            }

            x = y;
        }

        return ReferenceEquals(x, pooled) ? x.Alias() : x;
    }
}

/// <summary>
/// torchvision's MaskRCNNPredictor: 2× up-sampling transposed conv <c>conv5_mask</c> + ReLU, then a 1×1 conv
/// <c>mask_fcn_logits</c> with one channel per class.
/// </summary>
public sealed class MaskRcnnPredictor : Module, IMaskPredictor
{
    /// <summary>Creates the predictor.</summary>
    public MaskRcnnPredictor(int inChannels, int dimReduced, int numClasses)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(numClasses, 2);
        Conv5Mask = RegisterModule("conv5_mask", new ConvTranspose2d(inChannels, dimReduced, 2, stride: 2));
        MaskFcnLogits = RegisterModule("mask_fcn_logits", new Conv2d(dimReduced, numClasses, 1));
        Init.KaimingNormalFanOut(Conv5Mask.Weight);
        Init.KaimingNormalFanOut(MaskFcnLogits.Weight);
        using (Torch.NoGrad())
        {
            Conv5Mask.Bias!.ZeroInPlace();
            MaskFcnLogits.Bias!.ZeroInPlace();
        }

        NumClasses = numClasses;
    }

    /// <summary>Up-sampling layer.</summary>
    public ConvTranspose2d Conv5Mask { get; }

    /// <summary>Per-class logits layer.</summary>
    public Conv2d MaskFcnLogits { get; }

    /// <inheritdoc />
    public int NumClasses { get; }

    /// <inheritdoc />
    public Tensor Forward(Tensor features)
    {
        ArgumentNullException.ThrowIfNull(features);
        using var up = (CpuInference.Applies(features) && CpuInference.IsUpsampleBy2(Conv5Mask)
            ? CpuInference.UpsampleBy2(features, Conv5Mask)
            : Conv5Mask.Forward(features)).ReluInPlace();
        return MaskFcnLogits.Forward(up);
    }
}
