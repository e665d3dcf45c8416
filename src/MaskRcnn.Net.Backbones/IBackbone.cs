using MaskRcnn.Net.Core;
using MaskRcnn.Net.Core.Structures;

namespace MaskRcnn.Net.Backbones;

/// <summary>
/// What the detection heads need from a backbone: multi-scale feature maps with a common channel count.
/// Implementations are <see cref="Core.NN.Module"/>s (so they can be registered as a child named <c>backbone</c>);
/// <see cref="BackboneWithFpn"/> is the standard one.
/// </summary>
public interface IBackbone
{
    /// <summary>Channels of every returned feature map (256 for the FPN).</summary>
    int OutChannels { get; }

    /// <summary>Names of the maps <see cref="Forward"/> returns, in order (e.g. "0", "1", "2", "3", "pool").</summary>
    IReadOnlyList<string> FeatureNames { get; }

    /// <summary>Computes the feature maps of a batch.</summary>
    /// <param name="images">[N, 3, H, W] normalised, padded images.</param>
    /// <returns>Maps named <see cref="FeatureNames"/>, each [N, <see cref="OutChannels"/>, h_i, w_i], finest first.</returns>
    FeatureMaps Forward(Tensor images);
}
