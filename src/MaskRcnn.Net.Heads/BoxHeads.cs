using MaskRcnn.Net.Core;
using MaskRcnn.Net.Core.NN;

namespace MaskRcnn.Net.Heads;

/// <summary>A replaceable box head: pooled RoI features [K, C, 7, 7] → representations [K, D]. Implementations derive from <see cref="Module"/>.</summary>
public interface IBoxHead
{
    /// <summary>Size D of the representation.</summary>
    int RepresentationSize { get; }

    /// <summary>Maps pooled features to representations.</summary>
    Tensor Forward(Tensor pooled);
}

/// <summary>A replaceable box predictor: representations [K, D] → class logits [K, C] and box deltas [K, 4·C].</summary>
public interface IBoxPredictor
{
    /// <summary>Number of classes including background.</summary>
    int NumClasses { get; }

    /// <summary>Predicts logits and per-class box deltas.</summary>
    (Tensor ClassLogits, Tensor BoxDeltas) Forward(Tensor representation);
}

/// <summary>torchvision's TwoMLPHead: flatten, fc6 + ReLU, fc7 + ReLU (keys <c>fc6.*</c>, <c>fc7.*</c>).</summary>
public sealed class TwoMlpHead : Module, IBoxHead
{
    /// <summary>Creates the head for flattened inputs of <paramref name="inFeatures"/> values (channels × resolution²).</summary>
    public TwoMlpHead(int inFeatures, int representationSize = 1024)
    {
        Fc6 = RegisterModule("fc6", new Linear(inFeatures, representationSize));
        Fc7 = RegisterModule("fc7", new Linear(representationSize, representationSize));
        RepresentationSize = representationSize;
    }

    /// <summary>First fully connected layer.</summary>
    public Linear Fc6 { get; }

    /// <summary>Second fully connected layer.</summary>
    public Linear Fc7 { get; }

    /// <inheritdoc />
    public int RepresentationSize { get; }

    /// <inheritdoc />
    public Tensor Forward(Tensor pooled)
    {
        ArgumentNullException.ThrowIfNull(pooled);
        if (CpuInference.Applies(pooled))
        {
            using var h6 = CpuInference.Linear(pooled, Fc6).ReluInPlace();
            return CpuInference.Linear(h6, Fc7).ReluInPlace();
        }

        using var flat = pooled.Flatten(1);
        using var h = Fc6.Forward(flat).ReluInPlace();
        return Fc7.Forward(h).ReluInPlace();
    }
}

/// <summary>torchvision's FastRCNNPredictor: <c>cls_score</c> [C] and <c>bbox_pred</c> [4·C] linear layers.</summary>
public sealed class FastRcnnPredictor : Module, IBoxPredictor
{
    /// <summary>Creates the predictor.</summary>
    public FastRcnnPredictor(int inFeatures, int numClasses)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(numClasses, 2);
        ClsScore = RegisterModule("cls_score", new Linear(inFeatures, numClasses));
        BboxPred = RegisterModule("bbox_pred", new Linear(inFeatures, numClasses * 4));
        NumClasses = numClasses;
    }

    /// <summary>Classifier layer.</summary>
    public Linear ClsScore { get; }

    /// <summary>Box regression layer.</summary>
    public Linear BboxPred { get; }

    /// <inheritdoc />
    public int NumClasses { get; }

    /// <inheritdoc />
    public (Tensor ClassLogits, Tensor BoxDeltas) Forward(Tensor representation)
    {
        ArgumentNullException.ThrowIfNull(representation);
        using var x = representation.Flatten(1);
        if (CpuInference.Applies(x))
        {
            return (CpuInference.Linear(x, ClsScore), CpuInference.Linear(x, BboxPred));
        }

        return (ClsScore.Forward(x), BboxPred.Forward(x));
    }
}
