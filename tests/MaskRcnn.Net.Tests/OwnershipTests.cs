using MaskRcnn.Net.Backbones;
using MaskRcnn.Net.Core.Structures;
using MaskRcnn.Net.Heads;

namespace MaskRcnn.Net.Tests;

/// <summary>What the model returns as tensors belongs to the caller, and disposing the returned record releases it.</summary>
public class OwnershipTests
{
    private static MaskRcnnModel Small() => new MaskRcnnBuilder()
        .WithBackbone(18, NormKind.FrozenBatchNorm)
        .WithClasses("tumor")
        .WithImageSize(96, 128)
        .WithScoreThreshold(0.0)
        .WithDetectionsPerImage(5)
        .Build();

    [Fact]
    public void Detect_results_outlive_the_call_and_their_dispose_releases_them()
    {
        using var model = Small();
        using var image = Tensor.Rand([3, 90, 110]);
        var results = model.Detect([image]);
        var d = results.Should().ContainSingle().Subject;
        var tensors = new[] { d.Boxes, d.Scores, d.Labels, d.Masks! };
        tensors.Should().OnlyContain(t => !t.IsDisposed, "the caller owns the detections");
        d.Masks!.Shape.Should().Equal(d.Boxes.Size(0), 1, 90, 110);

        d.Dispose();
        tensors.Should().OnlyContain(t => t.IsDisposed);
        image.IsDisposed.Should().BeFalse("the input stays the caller's");
    }

    [Fact]
    public void Detect_inside_a_scope_hands_its_results_to_that_scope_only()
    {
        using var model = Small();
        using var image = Tensor.Rand([3, 90, 110]);
        IReadOnlyList<DetectionTensors> results;
        using (var scope = Torch.NewDisposeScope())
        {
            results = model.Detect([image, image]);
            scope.Count.Should().Be(2 * 4, "boxes, scores, labels and masks of each image, nothing else left behind");
        }

        results.SelectMany(d => new[] { d.Boxes, d.Scores, d.Labels, d.Masks! }).Should().OnlyContain(t => t.IsDisposed);
    }

    [Fact]
    public void ComputeLosses_returns_a_dictionary_the_caller_disposes()
    {
        using var model = Small();
        model.Train();
        using var image = Tensor.Rand([3, 90, 110]);
        using var target = new DetectionTarget(Tensor.FromArray(new float[] { 20, 10, 60, 50 }, 1, 4), Tensor.FromArray(new long[] { 1 }), Tensor.Ones([1, 90, 110], DType.UInt8));
        var losses = model.ComputeLosses([image], [target]);
        losses.Should().HaveCount(5);
        losses.Values.Should().OnlyContain(t => !t.IsDisposed);
        losses.Dispose();
        losses.Values.Should().OnlyContain(t => t.IsDisposed);
        target.Boxes.IsDisposed.Should().BeFalse("the targets stay the caller's");
    }

    [Fact]
    public void An_rpn_head_output_disposes_every_level()
    {
        using var head = new RpnHead(8, 3);
        using var features = Tensor.Rand([1, 8, 6, 6]);
        using var small = Tensor.Rand([1, 8, 3, 3]);
        var output = head.Forward([features, small]);
        var tensors = output.Objectness.Concat(output.BoxDeltas).ToList();
        tensors.Should().HaveCount(4).And.OnlyContain(t => !t.IsDisposed);
        output.Dispose();
        tensors.Should().OnlyContain(t => t.IsDisposed);
        FluentActions.Invoking(output.Dispose).Should().NotThrow();
    }
}
