namespace MaskRcnn.Net.Training.Tests;

/// <summary>What the data path hands out owns its tensors: disposing a batch or an example releases them, once.</summary>
public class BatchDisposalTests
{
    [Fact]
    public void Disposing_a_loaded_batch_disposes_its_images_and_every_target_tensor()
    {
        var dataset = CocoDataset.Load(TestFiles.BrainTumorJson, TestFiles.BrainTumorImages);
        var loader = new DataLoader(dataset, new DataLoaderOptions(BatchSize: 2, Shuffle: false, Prefetch: 0));
        var batch = loader.LoadBatch([0, 1]);
        var tensors = batch.Images.Concat(batch.Targets.SelectMany(t => new[] { t.Boxes, t.Labels, t.Masks! })).ToList();
        tensors.Should().HaveCount(8).And.OnlyContain(t => !t.IsDisposed, "a batch lives outside any dispose scope until disposed");

        batch.Dispose();
        batch.IsDisposed.Should().BeTrue();
        tensors.Should().OnlyContain(t => t.IsDisposed);
        FluentActions.Invoking(batch.Dispose).Should().NotThrow();
    }

    [Fact]
    public void Disposing_an_example_disposes_its_image_and_a_with_copy_shares_it()
    {
        var example = new DetectionExample(Tensor.Zeros([3, 4, 5]), []);
        var copy = example with { Annotations = [] };
        copy.Image.Should().BeSameAs(example.Image);
        copy.Dispose();
        example.Image.IsDisposed.Should().BeTrue();
        FluentActions.Invoking(example.Dispose).Should().NotThrow();
    }
}
