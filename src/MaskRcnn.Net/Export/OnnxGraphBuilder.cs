using System.Globalization;
using MaskRcnn.Net.Core;
using MaskRcnn.Net.Core.Checkpoints;

namespace MaskRcnn.Net.Export;

/// <summary>
/// Builds an ONNX graph (default domain, opset 17) value by value: every node method returns the name(s) of the
/// value(s) it produces, names are unique (prefixed by the current <see cref="Scope"/>), constants are deduplicated,
/// and <see cref="ToWriter"/> hands the result to <see cref="OnnxModelWriter"/>. The typed helpers follow the opset
/// 17 signatures (e.g. <c>Unsqueeze</c>/<c>Squeeze</c>/<c>ReduceSum</c> take axes as an input, <c>ReduceMax</c>/
/// <c>ReduceMin</c> as an attribute).
/// </summary>
internal sealed class OnnxGraphBuilder
{
    private readonly OnnxModelWriter writer = new();
    private readonly HashSet<string> names = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> constants = new(StringComparer.Ordinal);
    private readonly Stack<string> scopes = new();
    private int counter;

    /// <summary>Creates a builder for the default domain at <paramref name="opset"/>.</summary>
    public OnnxGraphBuilder(long opset = 17)
    {
        Opset = opset;
        writer.Opsets[""] = opset;
    }

    /// <summary>The default-domain opset the graph declares.</summary>
    public long Opset { get; }

    /// <summary>The model's metadata_props (insertion order).</summary>
    public IList<KeyValuePair<string, string>> Metadata => writer.Metadata;

    /// <summary>The number of nodes so far.</summary>
    public int NodeCount => writer.Nodes.Count;

    /// <summary>The graph outputs declared so far.</summary>
    public IReadOnlyList<OnnxValueInfo> Outputs => [.. writer.Outputs];

    // ---- names and scopes -------------------------------------------------------------------------------------

    /// <summary>Prefixes the names created until the returned scope is disposed with <paramref name="prefix"/>/.</summary>
    public IDisposable Scope(string prefix)
    {
        ArgumentException.ThrowIfNullOrEmpty(prefix);
        scopes.Push(prefix);
        return new ScopeHandle(this);
    }

    /// <summary>A new value name based on <paramref name="hint"/>, unique in the graph.</summary>
    public string Fresh(string hint)
    {
        var prefix = scopes.Count == 0 ? "" : string.Join("/", scopes.Reverse()) + "/";
        var name = prefix + hint;
        while (!names.Add(name))
        {
            name = $"{prefix}{hint}_{++counter}";
        }

        return name;
    }

    private string Claim(string name)
    {
        if (!names.Add(name))
        {
            throw new InvalidOperationException($"the ONNX value name '{name}' is already used");
        }

        return name;
    }

    // ---- graph inputs, outputs, initializers, constants --------------------------------------------------------

    /// <summary>Declares a graph input and returns its name.</summary>
    public string Input(string name, OnnxElementType type, params OnnxDimension[] shape)
    {
        writer.Inputs.Add(new OnnxValueInfo(Claim(name), type, shape));
        return name;
    }

    /// <summary>
    /// Declares <paramref name="value"/> as the graph output <paramref name="name"/> (through an <c>Identity</c> when
    /// the names differ); <paramref name="shape"/> null leaves the shape undeclared.
    /// </summary>
    public void Output(string value, string name, OnnxElementType type, params OnnxDimension[]? shape)
    {
        if (value != name)
        {
            AddNode("Identity", [value], [Claim(name)], []);
        }

        writer.Outputs.Add(new OnnxValueInfo(name, type, shape));
    }

    /// <summary>A float32 initializer (a weight) named <paramref name="name"/> (made unique).</summary>
    public string Initializer(string name, ReadOnlySpan<float> values, params long[] shape)
    {
        var unique = Fresh(name);
        writer.Initializers.Add(OnnxTensorValue.FromFloats(unique, values, shape));
        return unique;
    }

    /// <summary>
    /// An int64 tensor named <paramref name="name"/> (made unique). Written as a <c>Constant</c> node rather than an
    /// initializer, so every initializer of the file is float32 (what <see cref="OnnxGraph"/> reads).
    /// </summary>
    public string Initializer(string name, ReadOnlySpan<long> values, params long[] shape)
    {
        var unique = Fresh(name);
        AddNode("Constant", [], [unique], [OnnxAttributeValue.Tensor("value", OnnxTensorValue.FromInt64s("", values, shape))]);
        return unique;
    }

    /// <summary>
    /// An initializer holding a copy of <paramref name="tensor"/> (float32 for floating tensors, int64 for integer
    /// ones), with its shape.
    /// </summary>
    /// <exception cref="NotSupportedException">The tensor's dtype is neither floating nor integer.</exception>
    public string Initializer(string name, Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        var shape = tensor.Shape;
        return tensor.DType switch
        {
            DType.Float32 or DType.Float64 or DType.Float16 or DType.BFloat16 => Initializer(name, tensor.ToArray<float>(), shape),
            DType.Int64 or DType.Int32 or DType.Int16 or DType.Int8 or DType.UInt8 => Initializer(name, tensor.ToArray<long>(), shape),
            _ => throw new NotSupportedException($"ONNX export: tensor '{name}' has dtype {tensor.DType}, which is not exported"),
        };
    }

    /// <summary>A float32 scalar constant (shared by every use of the same value).</summary>
    public string Constant(float value) => Constant(OnnxTensorValue.FromFloats("", [value]), "f:" + value.ToString("R", CultureInfo.InvariantCulture));

    /// <summary>A float64 scalar constant.</summary>
    public string Constant(double value) => Constant(OnnxTensorValue.FromDoubles("", [value]), "d:" + value.ToString("R", CultureInfo.InvariantCulture));

    /// <summary>An int64 scalar constant.</summary>
    public string Constant(long value) => Constant(OnnxTensorValue.FromInt64s("", [value]), "i:" + value.ToString(CultureInfo.InvariantCulture));

    /// <summary>A 1-D int64 constant (shapes, axes, starts/ends).</summary>
    public string Ints(params long[] values) =>
        Constant(OnnxTensorValue.FromInt64s("", values, values.Length), "I:" + string.Join(",", values));

    /// <summary>A 1-D float32 constant.</summary>
    public string Floats(params float[] values) =>
        Constant(OnnxTensorValue.FromFloats("", values, values.Length), "F:" + string.Join(",", values.Select(v => v.ToString("R", CultureInfo.InvariantCulture))));

    /// <summary>A float32 constant of any shape (not deduplicated).</summary>
    public string FloatsTensor(string hint, float[] values, params long[] shape)
    {
        var output = Fresh(hint);
        AddNode("Constant", [], [output], [OnnxAttributeValue.Tensor("value", OnnxTensorValue.FromFloats("", values, shape))]);
        return output;
    }

    private string Constant(OnnxTensorValue value, string key)
    {
        if (constants.TryGetValue(key, out var existing))
        {
            return existing;
        }

        var output = Fresh("const");
        // Constants live at the top level so any scope can share them; the node goes where it is first needed.
        AddNode("Constant", [], [output], [OnnxAttributeValue.Tensor("value", value)]);
        constants[key] = output;
        return output;
    }

    // ---- generic nodes ----------------------------------------------------------------------------------------

    /// <summary>Adds a node with one output and returns the output's name.</summary>
    public string Node(string opType, IReadOnlyList<string> inputs, params OnnxAttributeValue[] attributes) =>
        Node(opType, inputs, 1, attributes)[0];

    /// <summary>Adds a node with <paramref name="outputCount"/> outputs and returns their names.</summary>
    public string[] Node(string opType, IReadOnlyList<string> inputs, int outputCount, params OnnxAttributeValue[] attributes)
    {
        ArgumentException.ThrowIfNullOrEmpty(opType);
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentOutOfRangeException.ThrowIfLessThan(outputCount, 1);
        var outputs = new string[outputCount];
        for (var k = 0; k < outputCount; k++)
        {
            outputs[k] = Fresh(outputCount == 1 ? opType : $"{opType}_out{k}");
        }

        AddNode(opType, inputs, outputs, attributes);
        return outputs;
    }

    private void AddNode(string opType, IReadOnlyList<string> inputs, IReadOnlyList<string> outputs, IReadOnlyList<OnnxAttributeValue> attributes)
    {
        var nodeName = $"n{writer.Nodes.Count}_{opType}";
        writer.Nodes.Add(new OnnxNodeValue(opType, [.. inputs], [.. outputs], [.. attributes], nodeName));
    }

    /// <summary>The model writer holding the graph (producer, metadata and ir_version can still be set on it).</summary>
    public OnnxModelWriter ToWriter() => writer;

    // ---- typed helpers: elementwise ---------------------------------------------------------------------------

    /// <summary><c>Add</c> (broadcasting).</summary>
    public string Add(string a, string b) => Node("Add", [a, b]);

    /// <summary><c>Sub</c> (broadcasting).</summary>
    public string Sub(string a, string b) => Node("Sub", [a, b]);

    /// <summary><c>Mul</c> (broadcasting).</summary>
    public string Mul(string a, string b) => Node("Mul", [a, b]);

    /// <summary><c>Div</c> (broadcasting; integer division truncates).</summary>
    public string Div(string a, string b) => Node("Div", [a, b]);

    /// <summary><c>Pow</c>.</summary>
    public string Pow(string a, string b) => Node("Pow", [a, b]);

    /// <summary><c>Min</c> of the inputs (broadcasting).</summary>
    public string Min(params string[] inputs) => Node("Min", inputs);

    /// <summary><c>Max</c> of the inputs (broadcasting).</summary>
    public string Max(params string[] inputs) => Node("Max", inputs);

    /// <summary>
    /// <c>Reciprocal</c> (1/x). Prefer it to <c>Div(1, x)</c> before a <c>Mul</c>: ONNX Runtime's DivMulFusion rewrites
    /// Div(1, x)·y into y/x, which rounds differently.
    /// </summary>
    public string Reciprocal(string x) => Node("Reciprocal", [x]);

    /// <summary><c>Relu</c>.</summary>
    public string Relu(string x) => Node("Relu", [x]);

    /// <summary><c>Sigmoid</c>.</summary>
    public string Sigmoid(string x) => Node("Sigmoid", [x]);

    /// <summary><c>Exp</c>.</summary>
    public string Exp(string x) => Node("Exp", [x]);

    /// <summary><c>Log</c>.</summary>
    public string Log(string x) => Node("Log", [x]);

    /// <summary><c>Sqrt</c>.</summary>
    public string Sqrt(string x) => Node("Sqrt", [x]);

    /// <summary><c>Floor</c>.</summary>
    public string Floor(string x) => Node("Floor", [x]);

    /// <summary><c>Ceil</c>.</summary>
    public string Ceil(string x) => Node("Ceil", [x]);

    /// <summary><c>Round</c> (half to even).</summary>
    public string Round(string x) => Node("Round", [x]);

    /// <summary><c>Neg</c>.</summary>
    public string Neg(string x) => Node("Neg", [x]);

    /// <summary><c>Abs</c>.</summary>
    public string Abs(string x) => Node("Abs", [x]);

    /// <summary><c>Not</c>.</summary>
    public string Not(string x) => Node("Not", [x]);

    /// <summary><c>And</c>.</summary>
    public string And(string a, string b) => Node("And", [a, b]);

    /// <summary><c>Or</c>.</summary>
    public string Or(string a, string b) => Node("Or", [a, b]);

    /// <summary><c>Greater</c>.</summary>
    public string Greater(string a, string b) => Node("Greater", [a, b]);

    /// <summary><c>GreaterOrEqual</c>.</summary>
    public string GreaterOrEqual(string a, string b) => Node("GreaterOrEqual", [a, b]);

    /// <summary><c>Less</c>.</summary>
    public string Less(string a, string b) => Node("Less", [a, b]);

    /// <summary><c>LessOrEqual</c>.</summary>
    public string LessOrEqual(string a, string b) => Node("LessOrEqual", [a, b]);

    /// <summary><c>Equal</c>.</summary>
    public string Equal(string a, string b) => Node("Equal", [a, b]);

    /// <summary><c>Where</c>(condition, x, y).</summary>
    public string Where(string condition, string x, string y) => Node("Where", [condition, x, y]);

    /// <summary><c>Clip</c> with optional bounds (value names; null = unbounded).</summary>
    public string Clip(string x, string? min, string? max) =>
        max is null ? (min is null ? Node("Clip", [x]) : Node("Clip", [x, min])) : Node("Clip", [x, min ?? "", max]);

    /// <summary><c>Cast</c> to <paramref name="to"/>.</summary>
    public string Cast(string x, OnnxElementType to) => Node("Cast", [x], OnnxAttributeValue.Int("to", (long)to));

    /// <summary><c>Identity</c>.</summary>
    public string Identity(string x) => Node("Identity", [x]);

    // ---- typed helpers: shapes --------------------------------------------------------------------------------

    /// <summary><c>Shape</c> of <paramref name="x"/>, optionally the dims [start, end) (int64 1-D).</summary>
    public string Shape(string x, long? start = null, long? end = null)
    {
        var attributes = new List<OnnxAttributeValue>();
        if (start is { } s)
        {
            attributes.Add(OnnxAttributeValue.Int("start", s));
        }

        if (end is { } e)
        {
            attributes.Add(OnnxAttributeValue.Int("end", e));
        }

        return Node("Shape", [x], [.. attributes]);
    }

    /// <summary>Dimension <paramref name="axis"/> of <paramref name="x"/> as an int64 tensor of shape [1].</summary>
    public string Dim(string x, long axis) => Shape(x, axis, axis == -1 ? null : axis + 1);

    /// <summary><c>Size</c> (element count, int64 scalar).</summary>
    public string Size(string x) => Node("Size", [x]);

    /// <summary><c>Reshape</c> to the int64 1-D value <paramref name="shape"/>.</summary>
    public string Reshape(string x, string shape) => Node("Reshape", [x, shape]);

    /// <summary><c>Reshape</c> to a constant shape (0 copies, -1 infers).</summary>
    public string Reshape(string x, params long[] shape) => Reshape(x, Ints(shape));

    /// <summary><c>Flatten</c> to 2-D at <paramref name="axis"/>.</summary>
    public string Flatten(string x, long axis = 1) => Node("Flatten", [x], OnnxAttributeValue.Int("axis", axis));

    /// <summary><c>Transpose</c> by <paramref name="perm"/>.</summary>
    public string Transpose(string x, params long[] perm) => Node("Transpose", [x], OnnxAttributeValue.Ints("perm", perm));

    /// <summary><c>Unsqueeze</c> at constant axes.</summary>
    public string Unsqueeze(string x, params long[] axes) => Node("Unsqueeze", [x, Ints(axes)]);

    /// <summary><c>Squeeze</c> at constant axes (none = every size-1 axis).</summary>
    public string Squeeze(string x, params long[] axes) => axes.Length == 0 ? Node("Squeeze", [x]) : Node("Squeeze", [x, Ints(axes)]);

    /// <summary><c>Concat</c> along <paramref name="axis"/>.</summary>
    public string Concat(long axis, params string[] inputs) => Node("Concat", inputs, OnnxAttributeValue.Int("axis", axis));

    /// <summary><c>Slice</c> with value-name starts/ends and optional axes/steps.</summary>
    public string Slice(string x, string starts, string ends, string? axes = null, string? steps = null)
    {
        var inputs = new List<string> { x, starts, ends };
        if (axes is not null || steps is not null)
        {
            inputs.Add(axes ?? "");
        }

        if (steps is not null)
        {
            inputs.Add(steps);
        }

        return Node("Slice", inputs);
    }

    /// <summary><c>Slice</c> with constant starts/ends along constant axes.</summary>
    public string Slice(string x, long[] starts, long[] ends, long[] axes, long[]? steps = null) =>
        Slice(x, Ints(starts), Ints(ends), Ints(axes), steps is null ? null : Ints(steps));

    /// <summary><c>Gather</c> along <paramref name="axis"/>.</summary>
    public string Gather(string x, string indices, long axis = 0) => Node("Gather", [x, indices], OnnxAttributeValue.Int("axis", axis));

    /// <summary><c>GatherElements</c> along <paramref name="axis"/>.</summary>
    public string GatherElements(string x, string indices, long axis = 0) =>
        Node("GatherElements", [x, indices], OnnxAttributeValue.Int("axis", axis));

    /// <summary><c>GatherND</c>.</summary>
    public string GatherND(string x, string indices, long batchDims = 0) =>
        Node("GatherND", [x, indices], OnnxAttributeValue.Int("batch_dims", batchDims));

    /// <summary><c>ScatterND</c>.</summary>
    public string ScatterND(string data, string indices, string updates) => Node("ScatterND", [data, indices, updates]);

    /// <summary><c>ScatterElements</c> along <paramref name="axis"/>.</summary>
    public string ScatterElements(string data, string indices, string updates, long axis = 0) =>
        Node("ScatterElements", [data, indices, updates], OnnxAttributeValue.Int("axis", axis));

    /// <summary><c>Expand</c> to the int64 1-D value <paramref name="shape"/>.</summary>
    public string Expand(string x, string shape) => Node("Expand", [x, shape]);

    /// <summary><c>Tile</c> by the int64 1-D value <paramref name="repeats"/>.</summary>
    public string Tile(string x, string repeats) => Node("Tile", [x, repeats]);

    /// <summary><c>Range</c>(start, limit, delta) over scalars of one type.</summary>
    public string Range(string start, string limit, string delta) => Node("Range", [start, limit, delta]);

    /// <summary><c>NonZero</c> (int64 [rank, count]).</summary>
    public string NonZero(string x) => Node("NonZero", [x]);

    /// <summary><c>ConstantOfShape</c> filled with a float32 value.</summary>
    public string ConstantOfShape(string shape, float value) =>
        Node("ConstantOfShape", [shape], OnnxAttributeValue.Tensor("value", OnnxTensorValue.FromFloats("", [value], 1)));

    /// <summary><c>ConstantOfShape</c> filled with an int64 value.</summary>
    public string ConstantOfShape(string shape, long value) =>
        Node("ConstantOfShape", [shape], OnnxAttributeValue.Tensor("value", OnnxTensorValue.FromInt64s("", [value], 1)));

    /// <summary><c>Pad</c> with the int64 value <paramref name="pads"/> (begins then ends), constant mode.</summary>
    public string Pad(string x, string pads, string? constantValue = null) =>
        constantValue is null ? Node("Pad", [x, pads]) : Node("Pad", [x, pads, constantValue]);

    /// <summary><c>Split</c> along <paramref name="axis"/> into parts of the given sizes.</summary>
    public string[] Split(string x, long axis, params long[] sizes) =>
        Node("Split", [x, Ints(sizes)], sizes.Length, OnnxAttributeValue.Int("axis", axis));

    /// <summary><c>CumSum</c> along the int64 scalar value <paramref name="axis"/>.</summary>
    public string CumSum(string x, string axis) => Node("CumSum", [x, axis]);

    // ---- typed helpers: reductions and selection ----------------------------------------------------------------

    /// <summary><c>ReduceMax</c> (opset 17: axes attribute).</summary>
    public string ReduceMax(string x, long[] axes, bool keepDims = true) =>
        Node("ReduceMax", [x], OnnxAttributeValue.Ints("axes", axes), OnnxAttributeValue.Int("keepdims", keepDims ? 1 : 0));

    /// <summary><c>ReduceMin</c> (opset 17: axes attribute).</summary>
    public string ReduceMin(string x, long[] axes, bool keepDims = true) =>
        Node("ReduceMin", [x], OnnxAttributeValue.Ints("axes", axes), OnnxAttributeValue.Int("keepdims", keepDims ? 1 : 0));

    /// <summary><c>ReduceMean</c> (opset 17: axes attribute).</summary>
    public string ReduceMean(string x, long[] axes, bool keepDims = true) =>
        Node("ReduceMean", [x], OnnxAttributeValue.Ints("axes", axes), OnnxAttributeValue.Int("keepdims", keepDims ? 1 : 0));

    /// <summary><c>ReduceSum</c> (opset 13+: axes input).</summary>
    public string ReduceSum(string x, long[] axes, bool keepDims = true) =>
        Node("ReduceSum", [x, Ints(axes)], OnnxAttributeValue.Int("keepdims", keepDims ? 1 : 0));

    /// <summary><c>ArgMax</c> along <paramref name="axis"/>.</summary>
    public string ArgMax(string x, long axis, bool keepDims = true) =>
        Node("ArgMax", [x], OnnxAttributeValue.Int("axis", axis), OnnxAttributeValue.Int("keepdims", keepDims ? 1 : 0));

    /// <summary><c>TopK</c> with the int64 [1] value <paramref name="k"/>; returns (values, indices).</summary>
    public (string Values, string Indices) TopK(string x, string k, long axis = -1, bool largest = true, bool sorted = true)
    {
        var outputs = Node("TopK", [x, k], 2, OnnxAttributeValue.Int("axis", axis),
            OnnxAttributeValue.Int("largest", largest ? 1 : 0), OnnxAttributeValue.Int("sorted", sorted ? 1 : 0));
        return (outputs[0], outputs[1]);
    }

    /// <summary><c>Softmax</c> along <paramref name="axis"/>.</summary>
    public string Softmax(string x, long axis = -1) => Node("Softmax", [x], OnnxAttributeValue.Int("axis", axis));

    /// <summary>
    /// <c>NonMaxSuppression</c>: boxes [batch, n, 4] (corners, <c>center_point_box</c> 0), scores [batch, classes, n];
    /// the optional inputs are value names (max_output_boxes_per_class int64 [1], iou_threshold and
    /// score_threshold float [1]); returns the int64 [k, 3] selected indices (batch, class, box).
    /// </summary>
    public string NonMaxSuppression(string boxes, string scores, string maxOutputBoxesPerClass, string iouThreshold, string? scoreThreshold = null) =>
        scoreThreshold is null
            ? Node("NonMaxSuppression", [boxes, scores, maxOutputBoxesPerClass, iouThreshold])
            : Node("NonMaxSuppression", [boxes, scores, maxOutputBoxesPerClass, iouThreshold, scoreThreshold]);

    // ---- typed helpers: neural-network ops ----------------------------------------------------------------------

    /// <summary><c>Conv</c> (NCHW) with weight [out, in/group, kh, kw] and optional bias.</summary>
    public string Conv(string x, string weight, string? bias, long[] kernelShape, long[] strides, long[] pads, long[]? dilations = null, long group = 1)
    {
        var attributes = new List<OnnxAttributeValue>
        {
            OnnxAttributeValue.Ints("kernel_shape", kernelShape),
            OnnxAttributeValue.Ints("strides", strides),
            OnnxAttributeValue.Ints("pads", pads),
            OnnxAttributeValue.Ints("dilations", dilations ?? [.. kernelShape.Select(_ => 1L)]),
            OnnxAttributeValue.Int("group", group),
        };
        return Node("Conv", bias is null ? [x, weight] : [x, weight, bias], [.. attributes]);
    }

    /// <summary><c>ConvTranspose</c> (NCHW) with weight [in, out/group, kh, kw] and optional bias.</summary>
    public string ConvTranspose(string x, string weight, string? bias, long[] kernelShape, long[] strides, long[] pads, long[]? outputPadding = null)
    {
        var attributes = new List<OnnxAttributeValue>
        {
            OnnxAttributeValue.Ints("kernel_shape", kernelShape),
            OnnxAttributeValue.Ints("strides", strides),
            OnnxAttributeValue.Ints("pads", pads),
        };
        if (outputPadding is not null)
        {
            attributes.Add(OnnxAttributeValue.Ints("output_padding", outputPadding));
        }

        return Node("ConvTranspose", bias is null ? [x, weight] : [x, weight, bias], [.. attributes]);
    }

    /// <summary><c>MaxPool</c> (NCHW).</summary>
    public string MaxPool(string x, long[] kernelShape, long[] strides, long[] pads) =>
        Node("MaxPool", [x], OnnxAttributeValue.Ints("kernel_shape", kernelShape), OnnxAttributeValue.Ints("strides", strides),
            OnnxAttributeValue.Ints("pads", pads));

    /// <summary><c>Gemm</c>: alpha·A·B(ᵀ) + beta·C.</summary>
    public string Gemm(string a, string b, string? c, bool transB = false) =>
        Node("Gemm", c is null ? [a, b] : [a, b, c], OnnxAttributeValue.Int("transB", transB ? 1 : 0));

    /// <summary><c>MatMul</c>.</summary>
    public string MatMul(string a, string b) => Node("MatMul", [a, b]);

    /// <summary><c>InstanceNormalization</c> over each (n, c) plane with per-channel scale and bias.</summary>
    public string InstanceNormalization(string x, string scale, string bias, float epsilon) =>
        Node("InstanceNormalization", [x, scale, bias], OnnxAttributeValue.Float("epsilon", epsilon));

    /// <summary>
    /// <c>Resize</c> of an NCHW tensor to the int64 [4] value <paramref name="sizes"/> (<paramref name="mode"/>
    /// <c>linear</c>/<c>nearest</c>; coordinate mode e.g. <c>half_pixel</c> or <c>asymmetric</c>; nearest rounding).
    /// </summary>
    public string ResizeToSizes(string x, string sizes, string mode, string coordinateTransformationMode, string nearestMode = "floor") =>
        Node("Resize", [x, "", "", sizes], OnnxAttributeValue.String("mode", mode),
            OnnxAttributeValue.String("coordinate_transformation_mode", coordinateTransformationMode),
            OnnxAttributeValue.String("nearest_mode", nearestMode));

    /// <summary>
    /// <c>RoiAlign</c> (opset 16): features [N, C, H, W], rois [R, 4] (x1, y1, x2, y2), batch indices int64 [R];
    /// <c>avg</c> mode.
    /// </summary>
    public string RoiAlign(string x, string rois, string batchIndices, long outputHeight, long outputWidth, long samplingRatio,
        float spatialScale, string coordinateTransformationMode = "output_half_pixel") =>
        Node("RoiAlign", [x, rois, batchIndices],
            OnnxAttributeValue.String("coordinate_transformation_mode", coordinateTransformationMode),
            OnnxAttributeValue.String("mode", "avg"),
            OnnxAttributeValue.Int("output_height", outputHeight),
            OnnxAttributeValue.Int("output_width", outputWidth),
            OnnxAttributeValue.Int("sampling_ratio", samplingRatio),
            OnnxAttributeValue.Float("spatial_scale", spatialScale));

    private sealed class ScopeHandle(OnnxGraphBuilder owner) : IDisposable
    {
        private bool disposed;

        public void Dispose()
        {
            if (!disposed)
            {
                owner.scopes.Pop();
                disposed = true;
            }
        }
    }
}
