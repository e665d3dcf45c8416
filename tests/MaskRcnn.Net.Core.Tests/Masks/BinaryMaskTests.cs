using MaskRcnn.Net.Core.Masks;

namespace MaskRcnn.Net.Core.Tests.Masks;

public class BinaryMaskTests
{
    [Fact]
    public void Pixels_are_row_major_and_round_trip_through_bytes_and_bools()
    {
        // 2×3 mask:  1 0 0
        //            0 1 1
        byte[] values = [1, 0, 0, 0, 7, 1];
        var mask = BinaryMask.FromBytes(values, 2, 3);
        mask.Height.Should().Be(2);
        mask.Width.Should().Be(3);
        mask.Area.Should().Be(3);
        mask[0, 0].Should().BeTrue();
        mask[0, 1].Should().BeFalse();
        mask[1, 1].Should().BeTrue();
        mask[1, 2].Should().BeTrue();
        mask.ToBytes().Should().Equal(1, 0, 0, 0, 1, 1);
        mask.ToBools().Should().Equal(true, false, false, false, true, true);
        BinaryMask.FromBools(mask.ToBools(), 2, 3).Should().Be(mask);
        mask.GetBoundingBox().Should().Be(new MaskBoundingBox(0, 0, 3, 2));
    }

    [Fact]
    public void Is_immutable_with_respect_to_its_inputs_and_outputs()
    {
        var values = new byte[] { 1, 0, 1, 0 };
        var mask = BinaryMask.FromBytes(values, 2, 2);
        values[1] = 1;
        mask.ToBytes()[0] = 0;
        mask.ToBytes().Should().Equal(1, 0, 1, 0);
    }

    [Fact]
    public void Converts_to_and_from_tensors()
    {
        using var scope = Torch.NewDisposeScope();
        var random = new Random(11);
        var mask = MaskTestSupport.RandomMask(random, 13, 70, 0.4);
        var asBool = mask.ToTensor();
        asBool.DType.Should().Be(DType.Bool);
        asBool.Shape.Should().Equal(13, 70);
        var asByte = mask.ToTensor(DType.UInt8);
        asByte.ToArray<byte>().Should().Equal(mask.ToBytes());
        mask.ToTensor(DType.Float32).ToArray<float>().Should().Equal(mask.ToBytes().Select(b => (float)b));
        asBool.ToBinaryMask().Should().Be(mask);
        var tripled = Tensor.FromArray(mask.ToBytes().Select(b => (byte)(3 * b)).ToArray(), 13, 70);
        tripled.ToBinaryMask().Should().Be(mask, "any non-zero byte is a set pixel");
        asByte.Transpose(0, 1).ToBinaryMask().Should().Be(BinaryMask.FromBytes(Transpose(mask.ToBytes(), 13, 70), 70, 13));
    }

    [Fact]
    public void FromTensor_rejects_bad_shapes_and_dtypes()
    {
        using var scope = Torch.NewDisposeScope();
        var act3d = () => Tensor.Zeros([1, 2, 2], DType.Bool).ToBinaryMask();
        act3d.Should().Throw<ArgumentException>().WithParameterName("mask").WithMessage("*[H, W]*");
        var actFloat = () => Tensor.Zeros([2, 2]).ToBinaryMask();
        actFloat.Should().Throw<ArgumentException>().WithParameterName("mask").WithMessage("*Float32*");
    }

    [Fact]
    public void Validates_sizes_and_lengths()
    {
        var negative = () => BinaryMask.Empty(-1, 3);
        negative.Should().Throw<ArgumentOutOfRangeException>().WithParameterName("height");
        var negativeWidth = () => BinaryMask.FromBytes([], 0, -2);
        negativeWidth.Should().Throw<ArgumentOutOfRangeException>().WithParameterName("width");
        var huge = () => BinaryMask.Empty(100_000, 100_000);
        huge.Should().Throw<ArgumentException>().WithMessage("*pixels*");
        var shortData = () => BinaryMask.FromBytes(new byte[5], 2, 3);
        shortData.Should().Throw<ArgumentException>().WithParameterName("values").WithMessage("*5 values*6*");
        var outside = () => BinaryMask.Empty(2, 2)[2, 0];
        outside.Should().Throw<ArgumentOutOfRangeException>().WithParameterName("y");
    }

    [Fact]
    public void Empty_and_zero_sized_masks_behave()
    {
        var empty = BinaryMask.Empty(4, 5);
        empty.Area.Should().Be(0);
        empty.GetBoundingBox().Should().Be(default(MaskBoundingBox));
        empty.GetBoundingBox().IsEmpty.Should().BeTrue();
        var none = BinaryMask.Empty(0, 7);
        none.Area.Should().Be(0);
        none.ToBytes().Should().BeEmpty();
        none.ToRle().Counts.ToArray().Should().Equal(0); // pycocotools' rleEncode always emits the first run
    }

    [Fact]
    public void Bounding_box_is_the_extent_of_set_pixels()
    {
        var random = new Random(5);
        for (var trial = 0; trial < 200; trial++)
        {
            int h = random.Next(1, 40), w = random.Next(1, 40);
            var mask = MaskTestSupport.RandomMask(random, h, w, random.NextDouble() * 0.05, clustered: trial % 2 == 0);
            var pixels = mask.ToBools();
            int xMin = int.MaxValue, xMax = -1, yMin = int.MaxValue, yMax = -1;
            for (var y = 0; y < h; y++)
            {
                for (var x = 0; x < w; x++)
                {
                    if (pixels[y * w + x])
                    {
                        (xMin, xMax, yMin, yMax) = (Math.Min(xMin, x), Math.Max(xMax, x), Math.Min(yMin, y), Math.Max(yMax, y));
                    }
                }
            }

            var expected = xMax < 0 ? default : new MaskBoundingBox(xMin, yMin, xMax - xMin + 1, yMax - yMin + 1);
            mask.GetBoundingBox().Should().Be(expected);
            mask.ToRle().ToBoundingBox().Should().Be(expected);
        }
    }

    [Fact]
    public void Equality_and_hash_follow_the_pixels()
    {
        var a = MaskTestSupport.Square(9, 2, 5);
        var b = MaskTestSupport.Square(9, 2, 5);
        a.Should().Be(b);
        a.GetHashCode().Should().Be(b.GetHashCode());
        a.Should().NotBe(MaskTestSupport.Square(9, 2, 6));
        BinaryMask.Empty(2, 3).Should().NotBe(BinaryMask.Empty(3, 2));
        a.ToString().Should().Be("BinaryMask(9x9, area 9)");
    }

    private static byte[] Transpose(byte[] values, int h, int w)
    {
        var result = new byte[values.Length];
        for (var y = 0; y < h; y++)
        {
            for (var x = 0; x < w; x++)
            {
                result[x * h + y] = values[y * w + x];
            }
        }

        return result;
    }
}
