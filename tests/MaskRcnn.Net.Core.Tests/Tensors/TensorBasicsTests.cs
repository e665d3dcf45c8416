namespace MaskRcnn.Net.Core.Tests.Tensors;

public class TensorBasicsTests
{
    [Fact]
    public void Channels_last_keeps_shape_and_values_and_changes_strides()
    {
        using var scope = Torch.NewDisposeScope();
        var x = Tensor.Arange(2 * 3 * 4 * 5).Reshape(2, 3, 4, 5).To(DType.Float32);
        var cl = x.Contiguous(MemoryFormat.ChannelsLast);
        cl.Shape.Should().Equal(2, 3, 4, 5);
        cl.IsContiguousIn(MemoryFormat.ChannelsLast).Should().BeTrue();
        cl.IsContiguous.Should().BeFalse();
        cl.ToArray<float>().Should().Equal(x.ToArray<float>(), "logical order is unchanged");
        // In NHWC memory the channels of a pixel are adjacent: permuting to [N, H, W, C] is then a contiguous view.
        cl.Permute(0, 2, 3, 1).IsContiguous.Should().BeTrue();
        var back = cl.Contiguous(MemoryFormat.Contiguous);
        back.IsContiguous.Should().BeTrue();
        back.ToArray<float>().Should().Equal(x.ToArray<float>());
        FluentActions.Invoking(() => Tensor.Zeros([3, 4]).Contiguous(MemoryFormat.ChannelsLast)).Should().Throw<TorchException>();
    }

    [Fact]
    public void FromArray_round_trips_values_shape_and_dtype()
    {
        using var t = Tensor.FromArray(new float[] { 1, 2, 3, 4, 5, 6 }, 2, 3);
        t.Shape.Should().Equal(2, 3);
        t.DType.Should().Be(DType.Float32);
        t.Device.Should().Be(Device.Cpu);
        t.ToArray<float>().Should().Equal(1, 2, 3, 4, 5, 6);
        t.ToArray<long>().Should().Equal(1, 2, 3, 4, 5, 6);
    }

    [Theory]
    [InlineData(DType.UInt8)]
    [InlineData(DType.Int32)]
    [InlineData(DType.Int64)]
    [InlineData(DType.Float16)]
    [InlineData(DType.Float64)]
    [InlineData(DType.Bool)]
    public void Every_dtype_converts_and_back(DType dtype)
    {
        using var src = Tensor.FromArray(new double[] { 0, 1, 2, 3 });
        using var t = src.To(dtype);
        t.DType.Should().Be(dtype);
        t.ToBytes().Length.Should().Be(4 * dtype.ElementSize());
        var expected = dtype == DType.Bool ? new double[] { 0, 1, 1, 1 } : [0, 1, 2, 3];
        t.ToArray<double>().Should().Equal(expected);
    }

    [Fact]
    public void FromBytes_reads_little_endian_elements()
    {
        var bytes = BitConverter.GetBytes(1.5f).Concat(BitConverter.GetBytes(-2f)).ToArray();
        using var t = Tensor.FromBytes(bytes, DType.Float32, [2]);
        t.ToArray<float>().Should().Equal(1.5f, -2f);
        t.ToBytes().Should().Equal(bytes);
    }

    [Fact]
    public void Shape_mismatch_throws_ArgumentException_naming_shape()
    {
        var act = () => Tensor.FromArray(new float[] { 1, 2, 3 }, 2, 2);
        act.Should().Throw<ArgumentException>().WithMessage("*[2, 2]*4 elements*3*");
    }

    [Fact]
    public void Integer_scalars_keep_integer_dtype_and_floats_promote()
    {
        using var i = Tensor.FromArray(new long[] { 1, 2, 3 });
        using var a = i + 1;
        a.DType.Should().Be(DType.Int64);
        a.ToArray<long>().Should().Equal(2, 3, 4);
        using var b = i * 0.5;
        b.DType.Should().Be(DType.Float32);
        b.ToArray<float>().Should().Equal(0.5f, 1f, 1.5f);
        using var c = 10L - i;
        c.ToArray<long>().Should().Equal(9, 8, 7);
    }

    [Fact]
    public void Broadcasting_arithmetic_matches_hand_computed()
    {
        using var col = Tensor.FromArray(new float[] { 1, 2 }, 2, 1);
        using var row = Tensor.FromArray(new float[] { 10, 20, 30 }, 1, 3);
        using var sum = col + row;
        sum.Shape.Should().Equal(2, 3);
        sum.ToArray<float>().Should().Equal(11, 21, 31, 12, 22, 32);
        using var gt = sum.Gt(21.5);
        gt.DType.Should().Be(DType.Bool);
        gt.ToArray<bool>().Should().Equal(false, false, true, false, true, true);
    }

    [Fact]
    public void Conv2d_with_wrong_shapes_throws_TorchException_and_process_survives()
    {
        using var x = Tensor.Zeros([1, 3, 8, 8]);
        using var w = Tensor.Zeros([4, 5, 3, 3]);
        var act = () => MaskRcnn.Net.Core.NN.Functional.Conv2d(x, w);
        act.Should().Throw<TorchException>().Where(e => e.Message.Contains("channels", StringComparison.OrdinalIgnoreCase));
        using var ok = Tensor.Zeros([4, 3, 3, 3]);
        using var y = MaskRcnn.Net.Core.NN.Functional.Conv2d(x, ok, padding: 1);
        y.Shape.Should().Equal(1, 4, 8, 8);
    }

    [Fact]
    public void Using_a_disposed_tensor_throws_ObjectDisposedException()
    {
        var t = Tensor.Zeros([2]);
        t.Dispose();
        t.IsDisposed.Should().BeTrue();
        var act = () => t.Shape;
        act.Should().Throw<ObjectDisposedException>();
        t.Dispose();
    }
}
