using MaskRcnn.Net.Core.NN;

namespace MaskRcnn.Net.Core.Tests.Tensors;

/// <summary>
/// oneDNN's Winograd convolutions (the native library's fast path for 3×3 stride-1 convolutions at prediction) against
/// libtorch's direct convolution on the same inputs. Runs alone: the switch and the counters are process-wide.
/// </summary>
[Collection("memory")]
public class WinogradConvolutionTests
{
    private static Tensor R(ulong seed, params long[] shape)
    {
        Torch.ManualSeed(seed);
        return Tensor.Randn(shape);
    }

    private static void RequireAvailable() =>
        WinogradConvolution.IsAvailable.Should().BeTrue(
            "the native library must be built with oneDNN's headers (Debian 12: apt-get install libdnnl-dev, as scripts/setup.sh does; then rebuild)");

    /// <summary>libtorch's convolution of the same call, with the Winograd path switched off.</summary>
    private static Tensor Direct(Tensor x, Tensor w, Tensor? b, int stride = 1, int padding = 1, int groups = 1)
    {
        WinogradConvolution.Enabled = false;
        try
        {
            return Functional.Conv2d(x, w, b, stride, padding, 1, groups);
        }
        finally
        {
            WinogradConvolution.Enabled = true;
        }
    }

    private static void ShouldMatch(Tensor actual, Tensor expected)
    {
        actual.Shape.Should().Equal(expected.Shape);
        var a = actual.Contiguous().ToArray<float>();
        var e = expected.Contiguous().ToArray<float>();
        var scale = e.Max(Math.Abs);
        var worst = a.Zip(e, (p, q) => Math.Abs(p - q)).Max();
        worst.Should().BeLessThanOrEqualTo(1e-5f * scale, "Winograd differs from the direct algorithm by float rounding only");
    }

    [Theory]
    [InlineData(1, 64, 64, 37, 29, false, true)]     // odd sizes: partial F(2,3)/F(4,3) tiles at the borders
    [InlineData(1, 256, 256, 50, 68, true, true)]    // an FPN level in channels-last, as the model calls it
    [InlineData(3, 32, 48, 14, 14, true, false)]     // a batch (the mask head's shape), no bias
    [InlineData(2, 128, 16, 9, 11, false, false)]
    public void Eligible_convolutions_take_the_Winograd_path_and_equal_the_direct_one(int n, int c, int o, int h, int w, bool channelsLast, bool bias)
    {
        RequireAvailable();
        using var input0 = R(1, n, c, h, w);
        using var input = channelsLast ? input0.Contiguous(MemoryFormat.ChannelsLast) : input0.Alias();
        using var weight = R(2, o, c, 3, 3) * (1.0 / Math.Sqrt(9 * c));
        using var b = bias ? R(3, o) : null;
        using var expected = Direct(input, weight, b);
        using var noGrad = Torch.NoGrad();
        var before = WinogradConvolution.Statistics;
        using var actual = Functional.Conv2d(input, weight, b, 1, 1);
        var after = WinogradConvolution.Statistics;
        (after.Convolutions - before.Convolutions).Should().Be(1, "the call is eligible: 3×3, stride 1, padding 1, channels multiples of 16, float32, no gradient");
        after.Unsupported.Should().Be(before.Unsupported, "this CPU has AVX-512 Winograd kernels");
        ShouldMatch(actual, expected);
        actual.IsContiguousIn(MemoryFormat.ChannelsLast).Should().Be(channelsLast, "the output keeps the input's memory order, as libtorch's does");
    }

    [Fact]
    public void A_call_that_records_gradients_keeps_libtorchs_convolution()
    {
        RequireAvailable();
        using var x = R(4, 1, 32, 12, 10);
        using var w = (R(5, 32, 32, 3, 3) * 0.1).RequiresGrad_(true);
        var before = WinogradConvolution.Statistics.Convolutions;
        using var y = Functional.Conv2d(x, w, null, 1, 1);
        WinogradConvolution.Statistics.Convolutions.Should().Be(before, "autograd needs libtorch's op");
        using var loss = y.Sum();
        loss.Backward();
        using var grad = w.Grad!;
        grad.Shape.Should().Equal(32, 32, 3, 3);
        using var noGrad = Torch.NoGrad();
        using var fast = Functional.Conv2d(x, w, null, 1, 1);
        WinogradConvolution.Statistics.Convolutions.Should().Be(before + 1, "the same call without gradients takes the fast path");
        ShouldMatch(fast, y);
    }

    [Theory]
    [InlineData(32, 32, 3, 2, 1, 1, "stride 2")]
    [InlineData(32, 32, 5, 1, 2, 1, "a 5×5 kernel")]
    [InlineData(32, 32, 3, 1, 0, 1, "no padding")]
    [InlineData(8, 8, 3, 1, 1, 1, "8 channels")]
    [InlineData(32, 32, 3, 1, 1, 2, "2 groups")]
    public void Other_convolutions_keep_libtorchs(int c, int o, int k, int stride, int padding, int groups, string why)
    {
        using var x = R(6, 1, c, 15, 13);
        using var w = R(7, o, c / groups, k, k);
        using var expected = Direct(x, w, null, stride, padding, groups);
        using var noGrad = Torch.NoGrad();
        var before = WinogradConvolution.Statistics;
        using var actual = Functional.Conv2d(x, w, null, stride, padding, 1, groups);
        WinogradConvolution.Statistics.Should().Be(before, why + " is not a Winograd shape");
        actual.ToArray<float>().Should().Equal(expected.ToArray<float>());
    }

    [Fact]
    public void Float64_and_a_switched_off_path_keep_libtorchs_convolution()
    {
        using var x = R(8, 1, 16, 8, 8);
        using var w = R(9, 16, 16, 3, 3);
        using var x64 = x.To(DType.Float64);
        using var w64 = w.To(DType.Float64);
        using var noGrad = Torch.NoGrad();
        var before = WinogradConvolution.Statistics;
        using var y64 = Functional.Conv2d(x64, w64, null, 1, 1);
        WinogradConvolution.Statistics.Should().Be(before, "float64 is not a Winograd type");
        WinogradConvolution.Enabled = false;
        try
        {
            WinogradConvolution.Enabled.Should().BeFalse();
            using var y = Functional.Conv2d(x, w, null, 1, 1);
            WinogradConvolution.Statistics.Should().Be(before, "the path is switched off");
        }
        finally
        {
            WinogradConvolution.Enabled = true;
        }
    }

    [Fact]
    public void Weights_are_transformed_once_per_value_and_again_when_they_change()
    {
        RequireAvailable();
        using var x = R(10, 1, 48, 20, 24);
        using var w = R(11, 48, 48, 3, 3) * 0.1;
        using var noGrad = Torch.NoGrad();
        var start = WinogradConvolution.Statistics.WeightTransforms;
        using (Functional.Conv2d(x, w, null, 1, 1))
        using (Functional.Conv2d(x, w, null, 1, 1))
        {
        }

        WinogradConvolution.Statistics.WeightTransforms.Should().Be(start + 1, "the second call finds the transformed weights");
        WinogradConvolution.Statistics.CachedBytes.Should().BeGreaterThanOrEqualTo(48 * 48 * 16 * 4, "at least an F(2,3) transform of these weights is cached");
        using (var same = w * 1.0)       // a new tensor with the same values (a folded batch norm at every call)
        using (Functional.Conv2d(x, same, null, 1, 1))
        {
        }

        WinogradConvolution.Statistics.WeightTransforms.Should().Be(start + 1, "equal values share the transform");

        // Written in place behind libtorch's back (no version bump): the next call must see the new values.
        w.AsSpan<float>()[5] += 1f;
        using var changed = Functional.Conv2d(x, w, null, 1, 1);
        WinogradConvolution.Statistics.WeightTransforms.Should().Be(start + 2, "changed values are transformed again");
        using var expected = Direct(x, w, null);
        ShouldMatch(changed, expected);
    }

    [Theory]
    [InlineData("0", false)]
    [InlineData("1", true)]
    [InlineData(" 1 ", true)]
    public void The_environment_switch_reads_0_and_1(string value, bool on) =>
        WinogradConvolution.ParseEnvironment(value).Should().Be(on);

    [Theory]
    [InlineData("off")]
    [InlineData("true")]
    [InlineData("")]
    public void Any_other_environment_value_is_refused_naming_the_variable(string value) =>
        FluentActions.Invoking(() => WinogradConvolution.ParseEnvironment(value)).Should().Throw<InvalidOperationException>()
            .WithMessage($"*{WinogradConvolution.EnvironmentVariable}={value}*expected 0 (off) or 1 (on)*");
}
