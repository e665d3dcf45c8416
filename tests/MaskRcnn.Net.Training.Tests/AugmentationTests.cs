using MaskRcnn.Net.Core.Masks;

namespace MaskRcnn.Net.Training.Tests;

public class AugmentationTests
{
    // A 1-channel 2x3 image [[0, 1, 2], [3, 4, 5]] with one annotation: the mask pixels (0,0), (1,0), (1,1)
    // and its exact box (0, 0, 2, 2).
    private static DetectionExample Small()
    {
        var image = Tensor.FromArray(new float[] { 0, 1, 2, 3, 4, 5 }, 1, 2, 3);
        var mask = BinaryMask.FromBytes([1, 0, 0, 1, 1, 0], 2, 3);
        return new DetectionExample(image, [new Annotation(new BoundingBox(0, 0, 2, 2), 1, mask)]);
    }

    [Fact]
    public void HorizontalFlipByHand()
    {
        var flipped = Flip.Horizontal(Small());
        using var image = flipped.Image;
        image.ToArray<float>().Should().Equal(2, 1, 0, 5, 4, 3);
        var a = flipped.Annotations.Single();
        a.Box.Should().Be(new BoundingBox(1, 0, 3, 2), "x1' = W - x2 = 1, x2' = W - x1 = 3");
        a.GetMask()!.ToBytes().Should().Equal(0, 0, 1, 0, 1, 1);
        a.Label.Should().Be(1);
    }

    [Fact]
    public void VerticalFlipByHand()
    {
        var flipped = Flip.Vertical(Small());
        using var image = flipped.Image;
        image.ToArray<float>().Should().Equal(3, 4, 5, 0, 1, 2);
        var a = flipped.Annotations.Single();
        a.Box.Should().Be(new BoundingBox(0, 0, 2, 2));
        a.GetMask()!.ToBytes().Should().Equal(1, 1, 0, 1, 0, 0);
    }

    [Fact]
    public void FlipTwiceIsTheIdentity()
    {
        var dataset = CocoDataset.Load(TestFiles.BrainTumorJson, TestFiles.BrainTumorImages);
        var sample = dataset.GetSample(5);
        using var original = dataset.LoadImage(5);
        var example = new DetectionExample(original.Clone(), sample.Annotations);

        using var scope = Torch.NewDisposeScope();
        var twice = Flip.Vertical(Flip.Vertical(Flip.Horizontal(Flip.Horizontal(example))));
        using var back = twice.Image;
        back.Eq(original).All().ItemBool().Should().BeTrue();
        for (var i = 0; i < sample.Annotations.Count; i++)
        {
            twice.Annotations[i].Box.Should().Be(sample.Annotations[i].Box);
            twice.Annotations[i].GetMask().Should().Be(sample.Annotations[i].GetMask());
        }
    }

    [Fact]
    public void FlippedBoxIsTheBoxOfTheFlippedMask()
    {
        var dataset = CocoDataset.Load(TestFiles.BrainTumorJson, TestFiles.BrainTumorImages);
        var sample = dataset.GetSample(0);
        var mask = sample.Annotations[0].GetMask()!;
        var mb = mask.GetBoundingBox();
        var exact = new Annotation(new BoundingBox(mb.X, mb.Y, mb.X + mb.Width, mb.Y + mb.Height), 1, mask);
        using var image = Tensor.Zeros([3, sample.Height, sample.Width]);

        foreach (var flip in new Func<DetectionExample, DetectionExample>[] { Flip.Horizontal, Flip.Vertical })
        {
            var flipped = flip(new DetectionExample(image.Clone(), [exact]));
            flipped.Image.Dispose();
            var a = flipped.Annotations[0];
            var fb = a.GetMask()!.GetBoundingBox();
            a.Box.Should().Be(new BoundingBox(fb.X, fb.Y, fb.X + fb.Width, fb.Y + fb.Height));
            a.GetMask()!.Area.Should().Be(mask.Area);
        }
    }

    [Fact]
    public void RandomFlipsFollowTheProbabilityAndTheSeed()
    {
        var never = new RandomHorizontalFlip(0).Apply(Small(), new Random(1));
        never.Image.ToArray<float>().Should().Equal(0, 1, 2, 3, 4, 5);
        never.Image.Dispose();

        var always = new RandomVerticalFlip(1).Apply(Small(), new Random(1));
        always.Image.ToArray<float>().Should().Equal(3, 4, 5, 0, 1, 2);
        always.Image.Dispose();

        static bool[] Decisions(int seed)
        {
            var random = new Random(seed);
            var flip = new RandomHorizontalFlip();
            return Enumerable.Range(0, 64).Select(_ =>
            {
                var input = Small();
                var output = flip.Apply(input, random);
                var flipped = !ReferenceEquals(output, input);
                output.Image.Dispose();
                return flipped;
            }).ToArray();
        }

        Decisions(7).Should().Equal(Decisions(7));
        Decisions(7).Count(d => d).Should().BeInRange(16, 48);

        var bad = () => new RandomHorizontalFlip(1.5);
        bad.Should().Throw<ArgumentOutOfRangeException>();
    }

    [Fact]
    public void BrightnessAndContrastByHand()
    {
        // RGB 1x2 image: pixel A = (0.2, 0.4, 0.6), pixel B = (0.8, 1.0, 0.0).
        using var image = Tensor.FromArray(new float[] { 0.2f, 0.8f, 0.4f, 1.0f, 0.6f, 0.0f }, 3, 1, 2);

        using var bright = ColorJitter.AdjustBrightness(image, 1.5);
        bright.ToArray<float>().Should().BeEquivalentTo(new[] { 0.3f, 1.0f, 0.6f, 1.0f, 0.9f, 0.0f },
            o => o.Using<float>(c => c.Subject.Should().BeApproximately(c.Expectation, 1e-6f)).WhenTypeIs<float>());

        // Gray mean = 0.2989·mean(R) + 0.587·mean(G) + 0.114·mean(B) = 0.2989·0.5 + 0.587·0.7 + 0.114·0.3.
        const double m = 0.2989 * 0.5 + 0.587 * 0.7 + 0.114 * 0.3;
        using var contrast = ColorJitter.AdjustContrast(image, 0.5);
        var expected = new[] { 0.2, 0.8, 0.4, 1.0, 0.6, 0.0 }.Select(v => (float)Math.Clamp(0.5 * v + 0.5 * m, 0, 1)).ToArray();
        contrast.ToArray<float>().Should().BeEquivalentTo(expected,
            o => o.Using<float>(c => c.Subject.Should().BeApproximately(c.Expectation, 1e-6f)).WhenTypeIs<float>());

        using var same = ColorJitter.AdjustContrast(image, 1);
        same.ToArray<float>().Should().Equal(image.ToArray<float>());
    }

    [Fact]
    public void ColorJitterIsReproducibleAndLeavesAnnotationsAlone()
    {
        var jitter = new ColorJitter(brightness: 0.4, contrast: 0.4);
        float[] Run(int seed)
        {
            var input = Small();
            var output = jitter.Apply(input with { Image = input.Image / 5.0 }, new Random(seed));
            input.Image.Dispose();
            output.Annotations.Should().BeSameAs(input.Annotations);
            using var image = output.Image;
            return image.ToArray<float>();
        }

        Run(3).Should().Equal(Run(3));
        Run(3).Should().NotEqual(Run(4));
        Run(3).Should().AllSatisfy(v => v.Should().BeInRange(0, 1));

        using var scope = Torch.NewDisposeScope();
        var onBytes = () => jitter.Apply(new DetectionExample(Tensor.Zeros([3, 2, 2], DType.UInt8), []), new Random(1));
        onBytes.Should().Throw<ArgumentException>();
    }

    [Fact]
    public void ComposeRunsInOrder()
    {
        var pipeline = new Compose(new RandomHorizontalFlip(1), new RandomVerticalFlip(1));
        pipeline.Transforms.Should().HaveCount(2);
        var result = pipeline.Apply(Small(), new Random(0));
        using var image = result.Image;
        image.ToArray<float>().Should().Equal(5, 4, 3, 2, 1, 0);
        result.Annotations[0].GetMask()!.ToBytes().Should().Equal(0, 1, 1, 0, 0, 1);
        result.Annotations[0].Box.Should().Be(new BoundingBox(1, 0, 3, 2));
    }
}
