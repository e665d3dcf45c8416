using MaskRcnn.Net.Core;
using MaskRcnn.Net.Core.NN;
using MaskRcnn.Net.Core.Structures;

namespace MaskRcnn.Net.Backbones;

/// <summary>
/// A ResNet body with an FPN on top (torchvision's <c>BackboneWithFPN</c> over all four stages): children
/// <c>body</c> and <c>fpn</c>, so keys are <c>body.layer1.0.conv1.weight</c>, <c>fpn.inner_blocks.0.0.weight</c>, ….
/// The stage outputs C2..C5 enter the FPN as "0".."3".
/// </summary>
public sealed class BackboneWithFpn : Module, IBackbone
{
    /// <summary>Wires a body and an FPN whose input channels match the body's stages.</summary>
    /// <param name="body">The ResNet body (child <c>body</c>).</param>
    /// <param name="fpn">The pyramid (child <c>fpn</c>) over all four stages.</param>
    public BackboneWithFpn(ResNet body, FeaturePyramidNetwork fpn)
    {
        ArgumentNullException.ThrowIfNull(body);
        ArgumentNullException.ThrowIfNull(fpn);
        if (!body.StageChannels.SequenceEqual(fpn.InChannels))
        {
            throw new ArgumentException(
                $"FPN input channels [{string.Join(", ", fpn.InChannels)}] do not match the body's stages [{string.Join(", ", body.StageChannels)}]",
                nameof(fpn));
        }

        Body = RegisterModule("body", body);
        Fpn = RegisterModule("fpn", fpn);
        LevelNames = Enumerable.Range(0, body.StageChannels.Count)
            .Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        FeatureNames = LevelNames.Concat(fpn.ExtraBlock?.Names ?? []).ToArray();
    }

    /// <summary>The ResNet body.</summary>
    public ResNet Body { get; }

    /// <summary>The feature pyramid.</summary>
    public FeaturePyramidNetwork Fpn { get; }

    /// <summary>Names given to the body's stage outputs ("0".."3"); the RoI pooler samples these levels.</summary>
    public IReadOnlyList<string> LevelNames { get; }

    /// <inheritdoc />
    public int OutChannels => Fpn.OutChannels;

    /// <inheritdoc />
    public IReadOnlyList<string> FeatureNames { get; }

    /// <summary>Runs body and FPN.</summary>
    /// <param name="images">[N, 3, H, W] normalised images (H, W multiples of 32 keep every level aligned).</param>
    /// <returns>
    /// "0" [N, 256, H/4, W/4], "1" [N, 256, H/8, W/8], "2" [N, 256, H/16, W/16], "3" [N, 256, H/32, W/32],
    /// "pool" [N, 256, H/64, W/64] (with <see cref="LastLevelMaxPool"/>; sizes rounded up).
    /// </returns>
    public FeatureMaps Forward(Tensor images)
    {
        using var scope = Torch.NewDisposeScope();
        var stages = Body.Forward(images);
        StageProfile.Mark("backbone");
        var maps = Fpn.Forward(new FeatureMaps(LevelNames.Zip(stages, (n, t) => (n, t))));
        StageProfile.Mark("fpn");
        return maps.MoveToOuterDisposeScope();
    }
}

/// <summary>Builds torchvision-compatible ResNet-FPN backbones (<c>resnet_fpn_backbone</c>).</summary>
public static class ResNetFpn
{
    /// <summary>FPN channel count used by Mask R-CNN.</summary>
    public const int DefaultOutChannels = 256;

    /// <summary>torchvision's default number of trainable backbone stages for detection.</summary>
    public const int DefaultTrainableLayers = 3;

    /// <summary>
    /// A ResNet body plus FPN with <see cref="LastLevelMaxPool"/>, with the first stages frozen per
    /// <paramref name="trainableLayers"/> (see <see cref="ResNet.SetTrainableLayers"/>). The FPN stays trainable.
    /// </summary>
    /// <param name="options">Depth and norm layer of the body.</param>
    /// <param name="trainableLayers">0–5 trainable stages counted from layer4 (torchvision's default 3).</param>
    /// <param name="outChannels">FPN channels (256).</param>
    public static BackboneWithFpn Create(ResNetOptions options, int trainableLayers = DefaultTrainableLayers,
        int outChannels = DefaultOutChannels)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfLessThan(trainableLayers, 0);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(trainableLayers, 5);
        var body = new ResNet(options);
        FeaturePyramidNetwork? fpn = null;
        try
        {
            body.SetTrainableLayers(trainableLayers);
            fpn = new FeaturePyramidNetwork(body.StageChannels, outChannels, new LastLevelMaxPool());
            return new BackboneWithFpn(body, fpn);
        }
        catch
        {
            body.Dispose();
            fpn?.Dispose();
            throw;
        }
    }

    /// <summary>Shorthand for <see cref="Create(ResNetOptions, int, int)"/> with default norm settings.</summary>
    /// <param name="depth">18, 34, 50, 101 or 152.</param>
    /// <param name="norm">Norm layer (torchvision's detection default is frozen BN).</param>
    /// <param name="trainableLayers">0–5 trainable stages counted from layer4.</param>
    public static BackboneWithFpn Create(int depth, NormKind norm = NormKind.FrozenBatchNorm,
        int trainableLayers = DefaultTrainableLayers) =>
        Create(new ResNetOptions(depth, norm), trainableLayers);
}
