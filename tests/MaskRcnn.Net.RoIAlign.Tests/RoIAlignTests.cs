using Xunit.Abstractions;

namespace MaskRcnn.Net.RoIAlign.Tests;

/// <summary>RoIAlign (kernel and tensor-op paths) against torchvision.ops.roi_align: forward and input gradient.</summary>
public class RoIAlignTests(ITestOutputHelper output)
{
    private static readonly (bool Aligned, int Sampling, double Scale, int Height, int Width)[] Configs =
    [
        (false, 0, 0.5, 7, 7),
        (false, 2, 0.5, 7, 7),
        (true, 0, 0.5, 7, 7),
        (true, 2, 0.5, 7, 7),
        (true, 0, 0.25, 3, 5),
        (false, 1, 1.0, 2, 4),
        (true, 3, 1.0, 14, 14),
    ];

    /// <summary>
    /// RoIs over a batch of two 24×32 images (feature map 12×16 at scale 0.5): random ones plus boxes partly and fully
    /// outside the map, degenerate and inverted boxes, and boxes touching the borders.
    /// </summary>
    internal static Tensor MakeRois(int seed, int randomCount)
    {
        var rng = new Random(seed);
        var rows = new List<float>
        {
            0, -8, -6, 10, 12,      // partly outside (top-left)
            1, 20, 18, 40, 36,      // partly outside (bottom-right)
            0, -50, -50, -20, -20,  // fully outside, before the map
            1, 100, 90, 140, 130,   // fully outside, beyond the map
            0, 5, 5, 5, 5,          // zero size
            1, 7, 3, 6, 2,          // inverted
            0, 0, 0, 32, 24,        // whole image
            1, 31, 23, 32, 24,      // last pixel
            0, 3.3f, 4.7f, 3.9f, 5.1f, // tiny
            1, -2, 10, 34, 11,      // thin, wider than the map
        };
        for (var i = 0; i < randomCount; i++)
        {
            var x1 = (float)((rng.NextDouble() * 40) - 6);
            var y1 = (float)((rng.NextDouble() * 30) - 4);
            rows.AddRange([rng.Next(2), x1, y1, x1 + (float)(rng.NextDouble() * 20), y1 + (float)(rng.NextDouble() * 16)]);
        }

        return Tensor.FromArray(rows.ToArray(), rows.Count / 5, 5);
    }

    internal static double MaxAbsDiff(Tensor actual, (double[] Data, long[] Shape) expected) =>
        actual.ToArray<double>().Zip(expected.Data, (a, e) => Math.Abs(a - e)).DefaultIfEmpty(0).Max();

    // 3 channels run the planar CPU kernel, 16 channels (with this many RoIs) the channels-last one; 37 channels
    // leave partial vector and channel blocks in the channels-last forward and backward.
    [Theory]
    [InlineData(3)]
    [InlineData(16)]
    [InlineData(37)]
    public void Forward_and_input_gradient_match_torchvision_on_both_paths(int channels)
    {
        using var scope = Torch.NewDisposeScope();
        Torch.ManualSeed(7);
        var x = Tensor.Randn([2, channels, 12, 16]);
        var rois = MakeRois(1, 30);
        var inputs = new Dictionary<string, Tensor> { ["x"] = x, ["rois"] = rois };
        for (var i = 0; i < Configs.Length; i++)
        {
            var c = Configs[i];
            inputs[$"g{i}"] = Tensor.Randn([rois.Size(0), channels, c.Height, c.Width]);
        }

        var configs = string.Join(", ", Configs.Select(c =>
            $"({(c.Aligned ? "True" : "False")}, {c.Sampling}, {c.Scale.ToString(System.Globalization.CultureInfo.InvariantCulture)}, {c.Height}, {c.Width})"));
        var expected = PythonOracle.Compute($$"""
            from torchvision.ops import roi_align
            for i, (aligned, sr, scale, h, w) in enumerate([{{configs}}]):
                x = inp['x'].float().requires_grad_()
                y = roi_align(x, inp['rois'].float(), (h, w), scale, sr, aligned)
                y.backward(inp[f'g{i}'].float())
                out[f'y{i}'] = y
                out[f'gx{i}'] = x.grad
            """, inputs);

        foreach (var path in new[] { RoIAlign.Path.Kernel, RoIAlign.Path.TensorOps })
        {
            for (var i = 0; i < Configs.Length; i++)
            {
                using var inner = Torch.NewDisposeScope();
                var c = Configs[i];
                var xg = x.Detach().RequiresGrad_();
                var y = RoIAlign.Apply(xg, rois, c.Height, c.Width, c.Scale, c.Sampling, c.Aligned, path);
                y.Backward(inputs[$"g{i}"]);
                var grad = xg.Grad!;
                var what = $"{path} aligned={c.Aligned} sampling={c.Sampling} scale={c.Scale} out={c.Height}x{c.Width}";
                Assertions.AllClose(y, expected[$"y{i}"], atol: 1e-5, what: $"forward {what}");
                // The tensor-op fallback accumulates gradients with index_put (a different summation order than
                // torchvision's serial loop), so its float32 sums may differ in the last bits: 5e-5 there, 1e-5 for the kernel.
                Assertions.AllClose(grad, expected[$"gx{i}"], atol: path == RoIAlign.Path.Kernel ? 1e-5 : 5e-5, what: $"gradient {what}");
                output.WriteLine($"{what}: max |Δ| forward {MaxAbsDiff(y, expected[$"y{i}"]):E2}, gradient {MaxAbsDiff(grad, expected[$"gx{i}"]):E2}");
            }
        }
    }

    [Fact]
    public void Public_entry_point_uses_the_kernel_and_matches_the_tensor_op_path()
    {
        using var scope = Torch.NewDisposeScope();
        Torch.ManualSeed(3);
        var x = Tensor.Rand([2, 4, 12, 16]);
        var rois = MakeRois(5, 60);
        var a = RoIAlign.Apply(x, rois, 7, 7, 0.5, 0, false);
        var b = RoIAlign.Apply(x, rois, 7, 7, 0.5, 0, false, RoIAlign.Path.Kernel);
        var c = RoIAlign.Apply(x, rois, 7, 7, 0.5, 0, false, RoIAlign.Path.TensorOps);
        a.ToArray<float>().Should().Equal(b.ToArray<float>());
        Assertions.AllClose(c.ToArray<double>(), b.ToArray<double>(), atol: 1e-6, what: "tensor ops vs kernel");
        a.RequiresGrad.Should().BeFalse();
    }

    [Fact]
    public void A_channels_last_input_gives_the_same_values_and_gradients()
    {
        using var scope = Torch.NewDisposeScope();
        Torch.ManualSeed(5);
        var x = Tensor.Rand([2, 16, 12, 16]);
        var rois = MakeRois(3, 40); // few RoIs: a planar input would take the planar path
        var cl = x.Contiguous(MemoryFormat.ChannelsLast);
        cl.IsContiguousIn(MemoryFormat.ChannelsLast).Should().BeTrue();
        cl.IsContiguous.Should().BeFalse();
        var xg = x.Detach();
        xg.RequiresGrad = true;
        var clg = cl.Detach();
        clg.RequiresGrad = true;
        var a = RoIAlign.Apply(xg, rois, 7, 7, 0.5, 2, true);
        var b = RoIAlign.Apply(clg, rois, 7, 7, 0.5, 2, true);
        Assertions.AllClose(b.ToArray<double>(), a.ToArray<double>(), atol: 1e-6, what: "channels-last vs planar input");
        var g = Tensor.Randn(a.Shape);
        (a * g).Sum().Backward();
        (b * g).Sum().Backward();
        Assertions.AllClose(clg.Grad!.ToArray<double>(), xg.Grad!.ToArray<double>(), atol: 1e-6, what: "gradient");
    }

    [Fact]
    public void Float64_matches_torchvision()
    {
        using var scope = Torch.NewDisposeScope();
        Torch.ManualSeed(11);
        var x = Tensor.Randn([2, 2, 12, 16], DType.Float64);
        var rois = MakeRois(2, 10).To(DType.Float64);
        var g = Tensor.Randn([rois.Size(0), 2, 5, 5], DType.Float64);
        var expected = PythonOracle.Compute("""
            from torchvision.ops import roi_align
            x = inp['x'].clone().requires_grad_()
            y = roi_align(x, inp['rois'], 5, 0.5, 0, True)
            y.backward(inp['g'])
            out['y'] = y
            out['gx'] = x.grad
            """, new Dictionary<string, Tensor> { ["x"] = x, ["rois"] = rois, ["g"] = g });
        foreach (var path in new[] { RoIAlign.Path.Kernel, RoIAlign.Path.TensorOps })
        {
            var xg = x.Detach().RequiresGrad_();
            var y = RoIAlign.Apply(xg, rois, 5, 5, 0.5, 0, true, path);
            y.Backward(g);
            Assertions.AllClose(y, expected["y"], atol: 1e-12, rtol: 1e-12, what: $"{path} forward");
            Assertions.AllClose(xg.Grad!, expected["gx"], atol: 1e-12, rtol: 1e-12, what: $"{path} gradient");
        }
    }

    [Fact]
    public void Empty_roi_list_gives_empty_output_and_zero_gradient()
    {
        using var scope = Torch.NewDisposeScope();
        var x = Tensor.Rand([2, 3, 12, 16]);
        foreach (var path in new[] { RoIAlign.Path.Kernel, RoIAlign.Path.TensorOps })
        {
            foreach (var sampling in new[] { 0, 2 })
            {
                var xg = x.Detach().RequiresGrad_();
                var y = RoIAlign.Apply(xg, Tensor.Zeros([0, 5]), 7, 7, 0.25, sampling, true, path);
                y.Shape.Should().Equal(0, 3, 7, 7);
                y.Sum().Backward();
                var grad = xg.Grad;
                if (grad is not null)
                {
                    grad.Shape.Should().Equal(2, 3, 12, 16);
                    grad.Abs().Max().ItemDouble().Should().Be(0);
                }
            }
        }
    }

    [Fact]
    public void Gradient_reaches_the_input_through_autograd_and_respects_no_grad()
    {
        using var scope = Torch.NewDisposeScope();
        var x = Tensor.Ones([1, 1, 4, 4]).RequiresGrad_();
        var rois = Tensor.FromArray(new float[] { 0, 0, 0, 4, 4 }, 1, 5);
        var y = RoIAlign.Apply(x, rois, 2, 2, 1.0, 2, true);
        y.RequiresGrad.Should().BeTrue();
        y.ToArray<float>().Should().AllSatisfy(v => v.Should().BeApproximately(1f, 1e-6f));
        y.Sum().Backward();
        // Four bins of four samples each: the whole unit mass per bin lands on the map, total 4.
        x.Grad!.Sum().ItemDouble().Should().BeApproximately(4, 1e-5);
        using (Torch.NoGrad())
        {
            RoIAlign.Apply(x, rois, 2, 2, 1.0, 2, true).RequiresGrad.Should().BeFalse();
        }
    }

    [Fact]
    public void Bad_arguments_throw_argument_exceptions_naming_the_argument()
    {
        using var scope = Torch.NewDisposeScope();
        var x = Tensor.Rand([2, 3, 8, 8]);
        var rois = Tensor.FromArray(new float[] { 0, 1, 1, 4, 4 }, 1, 5);

        void Expect(Action act, string param) =>
            FluentActions.Invoking(act).Should().Throw<ArgumentException>().Which.ParamName.Should().Be(param);

        Expect(() => RoIAlign.Apply(Tensor.Rand([3, 8, 8]), rois, 7, 7, 1, 0, true), "input");
        Expect(() => RoIAlign.Apply(Tensor.Zeros([2, 3, 8, 8], DType.Int64), rois, 7, 7, 1, 0, true), "input");
        Expect(() => RoIAlign.Apply(x, Tensor.Zeros([1, 4]), 7, 7, 1, 0, true), "rois");
        Expect(() => RoIAlign.Apply(x, Tensor.Zeros([5]), 7, 7, 1, 0, true), "rois");
        Expect(() => RoIAlign.Apply(x, rois.To(DType.Float64), 7, 7, 1, 0, true), "rois");
        Expect(() => RoIAlign.Apply(x, rois, 0, 7, 1, 0, true), "outputHeight");
        Expect(() => RoIAlign.Apply(x, rois, 7, -1, 1, 0, true), "outputWidth");
        Expect(() => RoIAlign.Apply(x, rois, 7, 7, 0, 0, true), "spatialScale");
        Expect(() => RoIAlign.Apply(x, rois, 7, 7, double.NaN, 0, true), "spatialScale");
        Expect(() => RoIAlign.Apply(x, Tensor.FromArray(new float[] { 0, 1, float.NaN, 4, 4 }, 1, 5), 7, 7, 1, 0, true), "rois");
        Expect(() => RoIAlign.Apply(x, Tensor.FromArray(new float[] { 0, 1, 1, float.PositiveInfinity, 4 }, 1, 5), 7, 7, 1, 0, true), "rois");
        Expect(() => RoIAlign.Apply(x, Tensor.FromArray(new float[] { 2, 1, 1, 4, 4 }, 1, 5), 7, 7, 1, 0, true), "rois");
        Expect(() => RoIAlign.Apply(x, Tensor.FromArray(new float[] { -1, 1, 1, 4, 4 }, 1, 5), 7, 7, 1, 0, true), "rois");
        Expect(() => RoIAlign.Apply(x, Tensor.FromArray(new float[] { 0.5f, 1, 1, 4, 4 }, 1, 5), 7, 7, 1, 0, true), "rois");
        FluentActions.Invoking(() => RoIAlign.Apply(null!, rois, 7, 7, 1, 0, true)).Should().Throw<ArgumentNullException>();
    }
}
