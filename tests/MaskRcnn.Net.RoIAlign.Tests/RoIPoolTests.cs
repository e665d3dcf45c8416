using Xunit.Abstractions;

namespace MaskRcnn.Net.RoIAlign.Tests;

/// <summary>RoIPool against torchvision.ops.roi_pool: forward and input gradient.</summary>
public class RoIPoolTests(ITestOutputHelper output)
{
    [Fact]
    public void Forward_and_input_gradient_match_torchvision()
    {
        using var scope = Torch.NewDisposeScope();
        Torch.ManualSeed(17);
        var x = Tensor.Randn([2, 3, 12, 16]);
        // Edge cases plus coordinates whose scaled values fall on .5 (rounding away from zero).
        var extra = Tensor.FromArray(new float[] { 0, 1, 3, 5, 7, 1, 3, 5, 9, 11, 0, -3, -1, 3, 5 }, 3, 5);
        var rois = Tensor.Cat([RoIAlignTests.MakeRois(3, 30), extra]);
        var configs = new (double Scale, int Height, int Width)[] { (0.5, 7, 7), (0.5, 2, 3), (0.25, 4, 4), (1.0, 5, 3) };
        var inputs = new Dictionary<string, Tensor> { ["x"] = x, ["rois"] = rois };
        for (var i = 0; i < configs.Length; i++)
        {
            inputs[$"g{i}"] = Tensor.Randn([rois.Size(0), 3, configs[i].Height, configs[i].Width]);
        }

        var list = string.Join(", ", configs.Select(c =>
            $"({c.Scale.ToString(System.Globalization.CultureInfo.InvariantCulture)}, {c.Height}, {c.Width})"));
        var expected = PythonOracle.Compute($$"""
            from torchvision.ops import roi_pool
            for i, (scale, h, w) in enumerate([{{list}}]):
                x = inp['x'].float().requires_grad_()
                y = roi_pool(x, inp['rois'].float(), (h, w), scale)
                y.backward(inp[f'g{i}'].float())
                out[f'y{i}'] = y
                out[f'gx{i}'] = x.grad
            """, inputs);
        for (var i = 0; i < configs.Length; i++)
        {
            using var inner = Torch.NewDisposeScope();
            var c = configs[i];
            var xg = x.Detach().RequiresGrad_();
            var y = RoIPool.Apply(xg, rois, c.Height, c.Width, c.Scale);
            y.Backward(inputs[$"g{i}"]);
            var what = $"scale={c.Scale} out={c.Height}x{c.Width}";
            Assertions.AllClose(y, expected[$"y{i}"], atol: 0, rtol: 0, what: $"forward {what}");
            Assertions.AllClose(xg.Grad!, expected[$"gx{i}"], atol: 1e-5, what: $"gradient {what}");
            output.WriteLine($"{what}: max |Δ| forward {RoIAlignTests.MaxAbsDiff(y, expected[$"y{i}"]):E2}, gradient {RoIAlignTests.MaxAbsDiff(xg.Grad!, expected[$"gx{i}"]):E2}");
        }
    }

    [Fact]
    public void Empty_bins_are_zero_and_empty_roi_list_is_allowed()
    {
        using var scope = Torch.NewDisposeScope();
        var x = (Tensor.Rand([1, 2, 6, 6]) + 1).RequiresGrad_();
        var rois = Tensor.FromArray(new float[] { 0, -40, -40, -20, -20 }, 1, 5);
        var y = RoIPool.Apply(x, rois, 2, 2, 1.0);
        y.ToArray<float>().Should().AllSatisfy(v => v.Should().Be(0));
        y.Sum().Backward();
        x.Grad!.Abs().Max().ItemDouble().Should().Be(0);

        var none = RoIPool.Apply(x, Tensor.Zeros([0, 5]), 3, 3, 1.0);
        none.Shape.Should().Equal(0, 2, 3, 3);
    }

    [Fact]
    public void Bad_arguments_throw_argument_exceptions_naming_the_argument()
    {
        using var scope = Torch.NewDisposeScope();
        var x = Tensor.Rand([1, 3, 8, 8]);
        var rois = Tensor.FromArray(new float[] { 0, 1, 1, 4, 4 }, 1, 5);

        void Expect(Action act, string param) =>
            FluentActions.Invoking(act).Should().Throw<ArgumentException>().Which.ParamName.Should().Be(param);

        Expect(() => RoIPool.Apply(Tensor.Rand([8, 8]), rois, 7, 7, 1), "input");
        Expect(() => RoIPool.Apply(x.To(DType.Float16), rois.To(DType.Float16), 7, 7, 1), "input");
        Expect(() => RoIPool.Apply(x, Tensor.Zeros([2, 6]), 7, 7, 1), "rois");
        Expect(() => RoIPool.Apply(x, rois, -2, 7, 1), "outputHeight");
        Expect(() => RoIPool.Apply(x, rois, 7, 0, 1), "outputWidth");
        Expect(() => RoIPool.Apply(x, rois, 7, 7, -1), "spatialScale");
        Expect(() => RoIPool.Apply(x, Tensor.FromArray(new float[] { 1, 1, 1, 4, 4 }, 1, 5), 7, 7, 1), "rois");
        Expect(() => RoIPool.Apply(x, Tensor.FromArray(new float[] { 0, float.NaN, 1, 4, 4 }, 1, 5), 7, 7, 1), "rois");
    }
}
