using MaskRcnn.Net.Core.Checkpoints;
using MaskRcnn.Net.Export;
using Microsoft.ML.OnnxRuntime;
using OrtTensors = Microsoft.ML.OnnxRuntime.Tensors;

namespace MaskRcnn.Net.Tests.Export;

/// <summary>
/// The hand-written protobuf writer: a graph written by <see cref="OnnxModelWriter"/> (through
/// <see cref="OnnxGraphBuilder"/>) reads back with our <see cref="OnnxGraph"/> reader and runs in ONNX Runtime with the
/// values computed by hand, for two input sizes (dynamic dims), with its metadata.
/// </summary>
public sealed class OnnxModelWriterTests
{
    private static readonly float[] Weight = [0.5f, -1.25f, 2f, 0.75f, -0.5f, 1f]; // [3, 2, 1, 1]
    private static readonly float[] Bias = [0.1f, -0.2f, 0.3f];

    private static OnnxModelWriter SmallGraph()
    {
        var g = new OnnxGraphBuilder();
        var x = g.Input("x", OnnxElementType.Float, 1, 2, "h", "w");
        string z;
        using (g.Scope("block"))
        {
            var w = g.Initializer("conv.weight", Weight, 3, 2, 1, 1);
            var b = g.Initializer("conv.bias", Bias, 3);
            var y = g.Relu(g.Conv(x, w, b, [1, 1], [1, 1], [0, 0, 0, 0]));
            z = g.Add(y, g.Constant(0.5f));
        }

        g.Output(z, "z", OnnxElementType.Float, 1, 3, "h", "w");
        // An int64 path through Shape, Slice (constant int64 inputs) and Cast.
        var hw = g.Slice(g.Shape(x), [2], [4], [0]);
        g.Output(g.Mul(hw, g.Constant(10L)), "hw10", OnnxElementType.Int64, 2);
        var writer = g.ToWriter();
        writer.ProducerName = "MaskRcnn.Net";
        writer.ProducerVersion = "1.2.3";
        writer.Metadata.Add(new("maskrcnn.test", "é ünïcode ✓"));
        writer.Metadata.Add(new("maskrcnn.other", "[1,2]"));
        return writer;
    }

    [Fact]
    public void Our_reader_reads_back_nodes_initializers_inputs_outputs_producer_and_opset()
    {
        var bytes = SmallGraph().ToBytes();
        var graph = OnnxGraph.Parse(bytes, "small.onnx");

        graph.Producer.Should().Be("MaskRcnn.Net 1.2.3");
        graph.Opset.Should().Be(17);
        graph.Inputs.Should().Equal("x");
        graph.Outputs.Should().Equal("z", "hw10");
        var conv = graph.Nodes.Single(n => n.OpType == "Conv");
        conv.Ints("kernel_shape").Should().Equal(1L, 1L);
        conv.Ints("pads").Should().Equal(0L, 0L, 0L, 0L);
        conv.Attributes["group"].Int.Should().Be(1);
        conv.Inputs[0].Should().Be("x");
        graph.Initializers[conv.Inputs[1]].Values.Should().Equal(Weight);
        graph.Initializers[conv.Inputs[1]].Shape.Should().Equal(3L, 2L, 1L, 1L);
        graph.Initializers[conv.Inputs[2]].Values.Should().Equal(Bias);
        conv.Inputs[1].Should().StartWith("block/");
        graph.Nodes.Select(n => n.OpType).Should().Contain(["Relu", "Add", "Constant", "Shape", "Slice", "Mul", "Identity"]);
        // Every node output name is unique.
        graph.Nodes.SelectMany(n => n.Outputs).Should().OnlyHaveUniqueItems();
    }

    [Theory]
    [InlineData(2, 3)]
    [InlineData(4, 1)]
    public void Onnx_runtime_runs_it_with_the_hand_computed_values_at_any_size(int h, int w)
    {
        var bytes = SmallGraph().ToBytes();
        var rng = new Random(h * 10 + w);
        var x = Enumerable.Range(0, 2 * h * w).Select(_ => (float)(rng.NextDouble() * 4 - 2)).ToArray();
        using var session = new InferenceSession(bytes);
        using var results = session.Run([NamedOnnxValue.CreateFromTensor("x", new OrtTensors.DenseTensor<float>(x, [1, 2, h, w]))]);
        var z = results.Single(r => r.Name == "z").AsTensor<float>();
        z.Dimensions.ToArray().Should().Equal(1, 3, h, w);
        for (var c = 0; c < 3; c++)
        {
            for (var i = 0; i < h * w; i++)
            {
                var expected = Math.Max(0f, Weight[2 * c] * x[i] + Weight[2 * c + 1] * x[h * w + i] + Bias[c]) + 0.5f;
                z.GetValue(c * h * w + i).Should().BeApproximately(expected, 1e-5f);
            }
        }

        results.Single(r => r.Name == "hw10").AsTensor<long>().ToArray().Should().Equal(10L * h, 10L * w);
    }

    [Fact]
    public void Onnx_runtime_sees_the_dynamic_dims_metadata_and_producer()
    {
        using var session = new InferenceSession(SmallGraph().ToBytes());
        var input = session.InputMetadata["x"];
        input.Dimensions.Should().Equal(1, 2, -1, -1);
        input.SymbolicDimensions.Should().Equal("", "", "h", "w");
        session.OutputMetadata.Keys.Should().BeEquivalentTo(["z", "hw10"]);
        session.ModelMetadata.ProducerName.Should().Be("MaskRcnn.Net");
        session.ModelMetadata.CustomMetadataMap["maskrcnn.test"].Should().Be("é ünïcode ✓");
        session.ModelMetadata.CustomMetadataMap["maskrcnn.other"].Should().Be("[1,2]");
    }

    [Fact]
    public void Int64_uint8_and_tensor_attribute_constants_keep_their_bytes()
    {
        var g = new OnnxGraphBuilder();
        var x = g.Input("x", OnnxElementType.UInt8, "n");
        var big = g.Initializer("big", new long[] { long.MaxValue - 5, -3L, 1L << 40 }, 3);
        var xl = g.Cast(x, OnnxElementType.Int64);
        g.Output(g.Add(xl, big), "sum", OnnxElementType.Int64, 3);
        g.Output(g.FloatsTensor("grid", [1.5f, -2.25f, 1e-30f, 3e30f], 2, 2), "grid", OnnxElementType.Float, 2, 2);
        using var session = new InferenceSession(g.ToWriter().ToBytes());
        using var results = session.Run([NamedOnnxValue.CreateFromTensor("x", new OrtTensors.DenseTensor<byte>(new byte[] { 5, 255, 0 }, [3]))]);
        results.Single(r => r.Name == "sum").AsTensor<long>().ToArray().Should().Equal(long.MaxValue, 252L, (1L << 40) + 0);
        results.Single(r => r.Name == "grid").AsTensor<float>().ToArray().Should().Equal(1.5f, -2.25f, 1e-30f, 3e30f);
    }

    [Fact]
    public void The_writer_refuses_a_graph_that_reads_an_undefined_value_or_has_no_outputs()
    {
        var g = new OnnxGraphBuilder();
        var x = g.Input("x", OnnxElementType.Float, 1);
        g.Output(g.Add(x, "missing"), "y", OnnxElementType.Float, 1);
        var act = () => g.ToWriter().ToBytes();
        act.Should().Throw<InvalidOperationException>().WithMessage("*reads 'missing'*");

        var empty = new OnnxGraphBuilder();
        empty.Input("x", OnnxElementType.Float, 1);
        ((Action)(() => empty.ToWriter().ToBytes())).Should().Throw<InvalidOperationException>().WithMessage("*no outputs*");
    }

    [Fact]
    public void A_tensor_whose_values_do_not_fill_its_shape_is_refused_naming_it()
    {
        var act = () => OnnxTensorValue.FromFloats("w", [1f, 2f, 3f], 2, 2);
        act.Should().Throw<ArgumentException>().WithMessage("*'w'*3 values*[2, 2]*");
    }

    [Fact]
    public void The_writer_itself_stores_int64_and_uint8_initializers_that_onnx_runtime_reads()
    {
        var writer = new OnnxModelWriter();
        writer.Inputs.Add(new OnnxValueInfo("x", OnnxElementType.Int64, [OnnxDimension.Fixed(2)]));
        writer.Initializers.Add(OnnxTensorValue.FromInt64s("k", [-(1L << 50), 7L], 2));
        writer.Initializers.Add(OnnxTensorValue.FromBytes("u", [200, 3], 2));
        writer.Nodes.Add(new OnnxNodeValue("Add", ["x", "k"], ["sum"], []));
        writer.Nodes.Add(new OnnxNodeValue("Cast", ["u"], ["u64"], [OnnxAttributeValue.Int("to", (long)OnnxElementType.Int64)]));
        writer.Nodes.Add(new OnnxNodeValue("Mul", ["sum", "u64"], ["y"], []));
        writer.Outputs.Add(new OnnxValueInfo("y", OnnxElementType.Int64, [OnnxDimension.Fixed(2)]));
        using var session = new InferenceSession(writer.ToBytes());
        using var results = session.Run([NamedOnnxValue.CreateFromTensor("x", new OrtTensors.DenseTensor<long>(new long[] { 1, -2 }, [2]))]);
        results.Single().AsTensor<long>().ToArray().Should().Equal((1 - (1L << 50)) * 200, 5L * 3);
    }
}
