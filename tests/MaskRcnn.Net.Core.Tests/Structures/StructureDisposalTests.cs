using MaskRcnn.Net.Core.Detection;
using MaskRcnn.Net.Core.Structures;

namespace MaskRcnn.Net.Core.Tests.Structures;

/// <summary>The tensor-holding records dispose exactly the tensors they hold, share them with their <c>with</c> copies, and tolerate a second dispose.</summary>
public class StructureDisposalTests
{
    private static DetectionTarget Target() => new(Tensor.FromArray(new float[] { 1, 2, 10, 20 }, 1, 4), Tensor.FromArray(new long[] { 1 }), Tensor.Zeros([1, 8, 8], DType.UInt8));

    [Fact]
    public void Disposing_a_target_disposes_its_boxes_labels_and_masks()
    {
        var target = Target();
        target.Boxes.IsDisposed.Should().BeFalse();
        target.Dispose();
        target.Boxes.IsDisposed.Should().BeTrue();
        target.Labels.IsDisposed.Should().BeTrue();
        target.Masks!.IsDisposed.Should().BeTrue();

        var boxOnly = new DetectionTarget(Tensor.Zeros([0, 4]), Tensor.Zeros([0], DType.Int64), null);
        boxOnly.Dispose();
        boxOnly.Boxes.IsDisposed.Should().BeTrue();
        boxOnly.Labels.IsDisposed.Should().BeTrue();
    }

    [Fact]
    public void A_with_copy_shares_the_tensors_it_did_not_replace()
    {
        var original = Target();
        var masks = original.Masks!;
        var copy = original with { Masks = null };
        copy.Boxes.Should().BeSameAs(original.Boxes);
        copy.Labels.Should().BeSameAs(original.Labels);

        copy.Dispose();
        original.Boxes.IsDisposed.Should().BeTrue("the copy's boxes are the original's");
        original.Labels.IsDisposed.Should().BeTrue();
        masks.IsDisposed.Should().BeFalse("the copy replaced the masks, so it does not hold them");

        FluentActions.Invoking(original.Dispose).Should().NotThrow("disposing the shared tensors again is harmless");
        masks.IsDisposed.Should().BeTrue();
    }

    [Fact]
    public void Disposing_twice_or_after_the_scope_released_the_tensors_is_harmless()
    {
        var target = Target();
        target.Dispose();
        FluentActions.Invoking(target.Dispose).Should().NotThrow();

        DetectionTensors detections;
        using (var scope = Torch.NewDisposeScope())
        {
            detections = new DetectionTensors(Tensor.Zeros([2, 4]), Tensor.Zeros([2]), Tensor.Zeros([2], DType.Int64), Tensor.Zeros([2, 1, 4, 4]));
            scope.Count.Should().Be(4);
        }

        detections.Boxes.IsDisposed.Should().BeTrue("the scope owned them");
        FluentActions.Invoking(detections.Dispose).Should().NotThrow();
    }

    [Fact]
    public void Disposing_inside_a_scope_releases_the_tensors_early_and_the_scope_does_not_dispose_them_again()
    {
        using var scope = Torch.NewDisposeScope();
        var batch = new ImageBatch(Tensor.Zeros([1, 3, 32, 32]), [new ImageSize(30, 31)]);
        var kept = Tensor.Ones([2]);
        scope.Count.Should().Be(2);
        batch.Dispose();
        batch.Images.IsDisposed.Should().BeTrue();
        scope.Count.Should().Be(1, "a disposed tensor leaves its scope");
        kept.IsDisposed.Should().BeFalse();
    }

    [Fact]
    public void Disposing_detection_tensors_disposes_all_four()
    {
        var d = new DetectionTensors(Tensor.Zeros([2, 4]), Tensor.Zeros([2]), Tensor.Zeros([2], DType.Int64), Tensor.Zeros([2, 1, 4, 4]));
        var copy = d with { };
        copy.Dispose();
        new[] { d.Boxes, d.Scores, d.Labels, d.Masks! }.Should().OnlyContain(t => t.IsDisposed, "an unchanged copy shares all four tensors");
        FluentActions.Invoking(d.Dispose).Should().NotThrow();
    }

    [Fact]
    public void Disposing_a_loss_dictionary_disposes_its_values_but_not_a_total_taken_before()
    {
        var losses = new LossDictionary
        {
            [LossDictionary.Objectness] = Tensor.FromArray(new float[] { 0.25f }),
            [LossDictionary.Mask] = Tensor.FromArray(new float[] { 0.5f }),
        };
        using var total = losses.Total();
        losses.Dispose();
        losses.Values.Should().OnlyContain(t => t.IsDisposed);
        total.IsDisposed.Should().BeFalse("Total returns a new tensor the caller owns separately");
        total.ToArray<float>().Should().Equal(0.75f);
        FluentActions.Invoking(losses.Dispose).Should().NotThrow();
    }

    [Fact]
    public void Disposing_feature_maps_disposes_every_map()
    {
        var maps = new FeatureMaps([("0", Tensor.Zeros([1, 4, 8, 8])), ("pool", Tensor.Zeros([1, 4, 4, 4]))]);
        maps.Dispose();
        maps.Tensors.Should().OnlyContain(t => t.IsDisposed);
        FluentActions.Invoking(maps.Dispose).Should().NotThrow();
    }
}
