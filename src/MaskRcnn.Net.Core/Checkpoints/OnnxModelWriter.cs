using System.Buffers.Binary;
using System.Text;

namespace MaskRcnn.Net.Core.Checkpoints;

/// <summary>The element types of ONNX tensors this writer emits (values of <c>TensorProto.DataType</c>).</summary>
public enum OnnxElementType
{
    /// <summary>32-bit IEEE float (<c>FLOAT</c> = 1).</summary>
    Float = 1,

    /// <summary>Unsigned 8-bit integer (<c>UINT8</c> = 2).</summary>
    UInt8 = 2,

    /// <summary>Signed 32-bit integer (<c>INT32</c> = 6).</summary>
    Int32 = 6,

    /// <summary>Signed 64-bit integer (<c>INT64</c> = 7).</summary>
    Int64 = 7,

    /// <summary>Boolean stored as one byte (<c>BOOL</c> = 9).</summary>
    Bool = 9,

    /// <summary>64-bit IEEE float (<c>DOUBLE</c> = 11).</summary>
    Double = 11,
}

/// <summary>
/// A tensor to write (an initializer, or the value of a <c>Constant</c> node or tensor attribute): its name, element
/// type, dimensions and little-endian <c>raw_data</c>.
/// </summary>
public sealed class OnnxTensorValue
{
    private OnnxTensorValue(string name, OnnxElementType type, long[] dims, byte[] raw)
    {
        Name = name;
        ElementType = type;
        Dims = dims;
        RawData = raw;
    }

    /// <summary>The tensor's name (an initializer's value name; may be empty inside an attribute).</summary>
    public string Name { get; }

    /// <summary>The element type.</summary>
    public OnnxElementType ElementType { get; }

    /// <summary>The dimensions (empty for a scalar).</summary>
    public IReadOnlyList<long> Dims { get; }

    /// <summary>The row-major element bytes, little-endian.</summary>
    public ReadOnlyMemory<byte> RawData { get; }

    /// <summary>A float32 tensor.</summary>
    /// <exception cref="ArgumentException">The value count does not match the dimensions.</exception>
    public static OnnxTensorValue FromFloats(string name, ReadOnlySpan<float> values, params long[] dims)
    {
        var raw = new byte[CheckCount(name, values.Length, dims) * 4];
        for (var k = 0; k < values.Length; k++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(raw.AsSpan(k * 4, 4), values[k]);
        }

        return new OnnxTensorValue(name, OnnxElementType.Float, [.. dims], raw);
    }

    /// <summary>A float64 tensor.</summary>
    /// <exception cref="ArgumentException">The value count does not match the dimensions.</exception>
    public static OnnxTensorValue FromDoubles(string name, ReadOnlySpan<double> values, params long[] dims)
    {
        var raw = new byte[CheckCount(name, values.Length, dims) * 8];
        for (var k = 0; k < values.Length; k++)
        {
            BinaryPrimitives.WriteDoubleLittleEndian(raw.AsSpan(k * 8, 8), values[k]);
        }

        return new OnnxTensorValue(name, OnnxElementType.Double, [.. dims], raw);
    }

    /// <summary>An int64 tensor.</summary>
    /// <exception cref="ArgumentException">The value count does not match the dimensions.</exception>
    public static OnnxTensorValue FromInt64s(string name, ReadOnlySpan<long> values, params long[] dims)
    {
        var raw = new byte[CheckCount(name, values.Length, dims) * 8];
        for (var k = 0; k < values.Length; k++)
        {
            BinaryPrimitives.WriteInt64LittleEndian(raw.AsSpan(k * 8, 8), values[k]);
        }

        return new OnnxTensorValue(name, OnnxElementType.Int64, [.. dims], raw);
    }

    /// <summary>An int32 tensor.</summary>
    /// <exception cref="ArgumentException">The value count does not match the dimensions.</exception>
    public static OnnxTensorValue FromInt32s(string name, ReadOnlySpan<int> values, params long[] dims)
    {
        var raw = new byte[CheckCount(name, values.Length, dims) * 4];
        for (var k = 0; k < values.Length; k++)
        {
            BinaryPrimitives.WriteInt32LittleEndian(raw.AsSpan(k * 4, 4), values[k]);
        }

        return new OnnxTensorValue(name, OnnxElementType.Int32, [.. dims], raw);
    }

    /// <summary>A uint8 tensor.</summary>
    /// <exception cref="ArgumentException">The value count does not match the dimensions.</exception>
    public static OnnxTensorValue FromBytes(string name, ReadOnlySpan<byte> values, params long[] dims)
    {
        CheckCount(name, values.Length, dims);
        return new OnnxTensorValue(name, OnnxElementType.UInt8, [.. dims], values.ToArray());
    }

    /// <summary>A bool tensor (one byte per element, 0 or 1).</summary>
    /// <exception cref="ArgumentException">The value count does not match the dimensions.</exception>
    public static OnnxTensorValue FromBools(string name, ReadOnlySpan<bool> values, params long[] dims)
    {
        var raw = new byte[CheckCount(name, values.Length, dims)];
        for (var k = 0; k < values.Length; k++)
        {
            raw[k] = values[k] ? (byte)1 : (byte)0;
        }

        return new OnnxTensorValue(name, OnnxElementType.Bool, [.. dims], raw);
    }

    /// <summary>The same data under another name.</summary>
    public OnnxTensorValue WithName(string name) => new(name, ElementType, [.. Dims], RawData.ToArray());

    private static long CheckCount(string name, int count, long[] dims)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(dims);
        long expected = 1;
        foreach (var d in dims)
        {
            if (d < 0)
            {
                throw new ArgumentException($"tensor '{name}': negative dimension in [{string.Join(", ", dims)}]", nameof(dims));
            }

            expected = checked(expected * d);
        }

        if (expected != count)
        {
            throw new ArgumentException($"tensor '{name}': {count} values for shape [{string.Join(", ", dims)}] (needs {expected})", nameof(dims));
        }

        return count;
    }
}

/// <summary>The kinds of node attributes this writer emits (values of <c>AttributeProto.AttributeType</c>).</summary>
public enum OnnxAttributeKind
{
    /// <summary>One float (<c>FLOAT</c> = 1).</summary>
    Float = 1,

    /// <summary>One int64 (<c>INT</c> = 2).</summary>
    Int = 2,

    /// <summary>One UTF-8 string (<c>STRING</c> = 3).</summary>
    String = 3,

    /// <summary>One tensor (<c>TENSOR</c> = 4).</summary>
    Tensor = 4,

    /// <summary>A list of floats (<c>FLOATS</c> = 6).</summary>
    Floats = 6,

    /// <summary>A list of int64 (<c>INTS</c> = 7).</summary>
    Ints = 7,
}

/// <summary>A node attribute to write; build it with the static factories.</summary>
public sealed class OnnxAttributeValue
{
    private OnnxAttributeValue(string name, OnnxAttributeKind kind)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        Name = name;
        Kind = kind;
    }

    /// <summary>The attribute's name.</summary>
    public string Name { get; }

    /// <summary>Which value field is set.</summary>
    public OnnxAttributeKind Kind { get; }

    /// <summary>The integer (kind <see cref="OnnxAttributeKind.Int"/>).</summary>
    public long IntValue { get; private init; }

    /// <summary>The float (kind <see cref="OnnxAttributeKind.Float"/>).</summary>
    public float FloatValue { get; private init; }

    /// <summary>The string (kind <see cref="OnnxAttributeKind.String"/>).</summary>
    public string? StringValue { get; private init; }

    /// <summary>The tensor (kind <see cref="OnnxAttributeKind.Tensor"/>).</summary>
    public OnnxTensorValue? TensorValue { get; private init; }

    /// <summary>The integers (kind <see cref="OnnxAttributeKind.Ints"/>).</summary>
    public IReadOnlyList<long> IntsValue { get; private init; } = [];

    /// <summary>The floats (kind <see cref="OnnxAttributeKind.Floats"/>).</summary>
    public IReadOnlyList<float> FloatsValue { get; private init; } = [];

    /// <summary>An integer attribute.</summary>
    public static OnnxAttributeValue Int(string name, long value) => new(name, OnnxAttributeKind.Int) { IntValue = value };

    /// <summary>A float attribute.</summary>
    public static OnnxAttributeValue Float(string name, float value) => new(name, OnnxAttributeKind.Float) { FloatValue = value };

    /// <summary>A string attribute.</summary>
    public static OnnxAttributeValue String(string name, string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        return new(name, OnnxAttributeKind.String) { StringValue = value };
    }

    /// <summary>A tensor attribute (the <c>value</c> of a <c>Constant</c>).</summary>
    public static OnnxAttributeValue Tensor(string name, OnnxTensorValue value)
    {
        ArgumentNullException.ThrowIfNull(value);
        return new(name, OnnxAttributeKind.Tensor) { TensorValue = value };
    }

    /// <summary>An integer-list attribute.</summary>
    public static OnnxAttributeValue Ints(string name, params long[] values)
    {
        ArgumentNullException.ThrowIfNull(values);
        return new(name, OnnxAttributeKind.Ints) { IntsValue = [.. values] };
    }

    /// <summary>A float-list attribute.</summary>
    public static OnnxAttributeValue Floats(string name, params float[] values)
    {
        ArgumentNullException.ThrowIfNull(values);
        return new(name, OnnxAttributeKind.Floats) { FloatsValue = [.. values] };
    }
}

/// <summary>A node to write.</summary>
/// <param name="OpType">The operator (<c>Conv</c>, <c>Add</c>, …).</param>
/// <param name="Inputs">The names of the values it reads (an empty name skips an optional input).</param>
/// <param name="Outputs">The names of the values it writes.</param>
/// <param name="Attributes">Its attributes.</param>
/// <param name="Name">The node's name (unique in the graph, or empty).</param>
/// <param name="Domain">The operator's domain (empty = the default <c>ai.onnx</c>).</param>
public sealed record OnnxNodeValue(string OpType, IReadOnlyList<string> Inputs, IReadOnlyList<string> Outputs,
    IReadOnlyList<OnnxAttributeValue> Attributes, string Name = "", string Domain = "");

/// <summary>One dimension of a value's declared shape: a fixed size or a symbolic name (<c>dim_param</c>).</summary>
/// <param name="Value">The fixed size, when known.</param>
/// <param name="Param">The symbolic name (<c>height</c>, <c>N</c>), when dynamic.</param>
public readonly record struct OnnxDimension(long? Value, string? Param)
{
    /// <summary>A fixed dimension.</summary>
    public static OnnxDimension Fixed(long value) => new(value, null);

    /// <summary>A dynamic dimension with a symbolic name.</summary>
    public static OnnxDimension Named(string name) => new(null, name);

    /// <summary>A fixed dimension.</summary>
    public static implicit operator OnnxDimension(long value) => Fixed(value);

    /// <summary>A dynamic dimension with a symbolic name.</summary>
    public static implicit operator OnnxDimension(string name) => Named(name);
}

/// <summary>A graph input or output: name, element type and shape (null shape = unknown rank).</summary>
/// <param name="Name">The value's name.</param>
/// <param name="ElementType">Its element type.</param>
/// <param name="Shape">Its dimensions, or null when not declared.</param>
public sealed record OnnxValueInfo(string Name, OnnxElementType ElementType, IReadOnlyList<OnnxDimension>? Shape);

/// <summary>
/// Writes an ONNX model (<c>onnx.proto</c>'s ModelProto: ir_version, opset imports, producer, metadata_props and one
/// GraphProto with nodes, initializers, inputs and outputs) in the protobuf wire format, by hand (no protobuf
/// library), the counterpart of <see cref="OnnxGraph"/>. Fill the lists, then <see cref="ToBytes"/> or
/// <see cref="Save"/>.
/// </summary>
public sealed class OnnxModelWriter
{
    /// <summary>The IR version (<c>ir_version</c>); 8 by default (ONNX 1.10+).</summary>
    public long IrVersion { get; set; } = 8;

    /// <summary>The producer's name.</summary>
    public string ProducerName { get; set; } = "";

    /// <summary>The producer's version.</summary>
    public string ProducerVersion { get; set; } = "";

    /// <summary>The graph's name.</summary>
    public string GraphName { get; set; } = "graph";

    /// <summary>The operator sets by domain (empty string = <c>ai.onnx</c>); defaults to the default domain at 17.</summary>
    public IDictionary<string, long> Opsets { get; } = new Dictionary<string, long>(StringComparer.Ordinal) { [""] = 17 };

    /// <summary>The model's <c>metadata_props</c>, written in insertion order.</summary>
    public IList<KeyValuePair<string, string>> Metadata { get; } = [];

    /// <summary>The nodes, in topological order.</summary>
    public IList<OnnxNodeValue> Nodes { get; } = [];

    /// <summary>The initializers (weights and constants).</summary>
    public IList<OnnxTensorValue> Initializers { get; } = [];

    /// <summary>The graph inputs (not listing initializers).</summary>
    public IList<OnnxValueInfo> Inputs { get; } = [];

    /// <summary>The graph outputs.</summary>
    public IList<OnnxValueInfo> Outputs { get; } = [];

    /// <summary>Serialises the model.</summary>
    /// <exception cref="InvalidOperationException">The graph has no outputs, or a value is produced twice.</exception>
    public byte[] ToBytes()
    {
        Validate();
        var model = new ProtoBuffer();
        model.Int(1, IrVersion);
        if (ProducerName.Length > 0)
        {
            model.String(2, ProducerName);
        }

        if (ProducerVersion.Length > 0)
        {
            model.String(3, ProducerVersion);
        }

        model.Message(7, WriteGraph());
        foreach (var (domain, version) in Opsets)
        {
            var opset = new ProtoBuffer();
            if (domain.Length > 0)
            {
                opset.String(1, domain);
            }

            opset.Int(2, version);
            model.Message(8, opset);
        }

        foreach (var (key, value) in Metadata)
        {
            var entry = new ProtoBuffer();
            entry.String(1, key);
            entry.String(2, value);
            model.Message(14, entry);
        }

        return model.ToArray();
    }

    /// <summary>Serialises the model to a stream.</summary>
    public void WriteTo(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        stream.Write(ToBytes());
    }

    /// <summary>Writes the model to a file (replacing it).</summary>
    public void Save(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var bytes = ToBytes();
        var temp = path + ".tmp";
        File.WriteAllBytes(temp, bytes);
        File.Move(temp, path, overwrite: true);
    }

    private void Validate()
    {
        if (Outputs.Count == 0)
        {
            throw new InvalidOperationException("the ONNX graph has no outputs");
        }

        var produced = new HashSet<string>(StringComparer.Ordinal);
        foreach (var input in Inputs)
        {
            if (!produced.Add(input.Name))
            {
                throw new InvalidOperationException($"the ONNX graph input '{input.Name}' is declared twice");
            }
        }

        foreach (var init in Initializers)
        {
            if (init.Name.Length == 0 || !produced.Add(init.Name))
            {
                throw new InvalidOperationException($"the ONNX initializer '{init.Name}' is unnamed or its name is taken");
            }
        }

        foreach (var node in Nodes)
        {
            foreach (var input in node.Inputs)
            {
                if (input.Length > 0 && !produced.Contains(input))
                {
                    throw new InvalidOperationException($"ONNX node '{node.Name}' ({node.OpType}) reads '{input}' before anything produces it");
                }
            }

            foreach (var output in node.Outputs)
            {
                if (output.Length > 0 && !produced.Add(output))
                {
                    throw new InvalidOperationException($"ONNX node '{node.Name}' ({node.OpType}) writes '{output}', which is already produced");
                }
            }
        }

        foreach (var output in Outputs)
        {
            if (!produced.Contains(output.Name))
            {
                throw new InvalidOperationException($"the ONNX graph output '{output.Name}' is not produced by any node");
            }
        }
    }

    private ProtoBuffer WriteGraph()
    {
        var graph = new ProtoBuffer();
        foreach (var node in Nodes)
        {
            graph.Message(1, WriteNode(node));
        }

        graph.String(2, GraphName);
        foreach (var init in Initializers)
        {
            graph.Message(5, WriteTensor(init));
        }

        foreach (var input in Inputs)
        {
            graph.Message(11, WriteValueInfo(input));
        }

        foreach (var output in Outputs)
        {
            graph.Message(12, WriteValueInfo(output));
        }

        return graph;
    }

    private static ProtoBuffer WriteNode(OnnxNodeValue node)
    {
        var p = new ProtoBuffer();
        foreach (var input in node.Inputs)
        {
            p.String(1, input);
        }

        foreach (var output in node.Outputs)
        {
            p.String(2, output);
        }

        if (node.Name.Length > 0)
        {
            p.String(3, node.Name);
        }

        p.String(4, node.OpType);
        foreach (var attribute in node.Attributes)
        {
            p.Message(5, WriteAttribute(attribute));
        }

        if (node.Domain.Length > 0)
        {
            p.String(7, node.Domain);
        }

        return p;
    }

    private static ProtoBuffer WriteAttribute(OnnxAttributeValue a)
    {
        var p = new ProtoBuffer();
        p.String(1, a.Name);
        switch (a.Kind)
        {
            case OnnxAttributeKind.Float: p.Float(2, a.FloatValue); break;
            case OnnxAttributeKind.Int: p.Int(3, a.IntValue); break;
            case OnnxAttributeKind.String: p.String(4, a.StringValue!); break;
            case OnnxAttributeKind.Tensor: p.Message(5, WriteTensor(a.TensorValue!)); break;
            case OnnxAttributeKind.Floats: p.PackedFloats(7, a.FloatsValue); break;
            case OnnxAttributeKind.Ints: p.PackedInts(8, a.IntsValue); break;
            default: throw new InvalidOperationException($"attribute '{a.Name}': unknown kind {a.Kind}");
        }

        p.Int(20, (long)a.Kind);
        return p;
    }

    private static ProtoBuffer WriteTensor(OnnxTensorValue t)
    {
        var p = new ProtoBuffer();
        p.PackedInts(1, t.Dims);
        p.Int(2, (long)t.ElementType);
        if (t.Name.Length > 0)
        {
            p.String(8, t.Name);
        }

        p.Bytes(9, t.RawData.Span);
        return p;
    }

    private static ProtoBuffer WriteValueInfo(OnnxValueInfo v)
    {
        var tensorType = new ProtoBuffer();
        tensorType.Int(1, (long)v.ElementType);
        if (v.Shape is { } shape)
        {
            var shapeProto = new ProtoBuffer();
            foreach (var dim in shape)
            {
                var d = new ProtoBuffer();
                if (dim.Value is { } value)
                {
                    d.Int(1, value);
                }
                else if (dim.Param is { Length: > 0 } param)
                {
                    d.String(2, param);
                }

                shapeProto.Message(1, d);
            }

            tensorType.Message(2, shapeProto);
        }

        var type = new ProtoBuffer();
        type.Message(1, tensorType);
        var p = new ProtoBuffer();
        p.String(1, v.Name);
        p.Message(2, type);
        return p;
    }

    /// <summary>A growable byte buffer with the protobuf wire encodings.</summary>
    private sealed class ProtoBuffer
    {
        private readonly MemoryStream stream = new();

        public long Length => stream.Length;

        public byte[] ToArray() => stream.ToArray();

        public void Int(int field, long value)
        {
            Key(field, 0);
            Varint((ulong)value);
        }

        public void Float(int field, float value)
        {
            Key(field, 5);
            Span<byte> b = stackalloc byte[4];
            BinaryPrimitives.WriteSingleLittleEndian(b, value);
            stream.Write(b);
        }

        public void String(int field, string value) => Bytes(field, Encoding.UTF8.GetBytes(value));

        public void Bytes(int field, ReadOnlySpan<byte> value)
        {
            Key(field, 2);
            Varint((ulong)value.Length);
            stream.Write(value);
        }

        public void Message(int field, ProtoBuffer message)
        {
            Key(field, 2);
            Varint((ulong)message.stream.Length);
            message.stream.Position = 0;
            message.stream.CopyTo(stream);
        }

        public void PackedInts(int field, IReadOnlyList<long> values)
        {
            if (values.Count == 0)
            {
                return;
            }

            var inner = new ProtoBuffer();
            foreach (var v in values)
            {
                inner.Varint((ulong)v);
            }

            Message(field, inner);
        }

        public void PackedFloats(int field, IReadOnlyList<float> values)
        {
            if (values.Count == 0)
            {
                return;
            }

            var bytes = new byte[values.Count * 4];
            for (var k = 0; k < values.Count; k++)
            {
                BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(k * 4, 4), values[k]);
            }

            Bytes(field, bytes);
        }

        private void Key(int field, int wire) => Varint(((ulong)field << 3) | (uint)wire);

        private void Varint(ulong value)
        {
            while (value >= 0x80)
            {
                stream.WriteByte((byte)(value | 0x80));
                value >>= 7;
            }

            stream.WriteByte((byte)value);
        }
    }
}
