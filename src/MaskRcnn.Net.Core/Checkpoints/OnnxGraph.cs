using System.Buffers.Binary;
using System.Text;

namespace MaskRcnn.Net.Core.Checkpoints;

/// <summary>An attribute of an ONNX node: an integer, a float, a string or a list of integers/floats.</summary>
/// <param name="Name">The attribute's name (<c>kernel_shape</c>, <c>pads</c>, <c>epsilon</c>, …).</param>
/// <param name="Int">The integer value (<c>i</c>), if set.</param>
/// <param name="Float">The float value (<c>f</c>), if set.</param>
/// <param name="Ints">The integer list (<c>ints</c>); empty if not set.</param>
/// <param name="Floats">The float list (<c>floats</c>); empty if not set.</param>
/// <param name="String">The string value (<c>s</c>), if set.</param>
public sealed record OnnxAttribute(string Name, long? Int, float? Float, IReadOnlyList<long> Ints, IReadOnlyList<float> Floats, string? String);

/// <summary>A node of an ONNX graph, in the graph's (topological) order.</summary>
/// <param name="OpType">The operator (<c>Conv</c>, <c>BatchNormalization</c>, <c>Add</c>, …).</param>
/// <param name="Name">The node's name (may be empty).</param>
/// <param name="Inputs">Names of the values it reads.</param>
/// <param name="Outputs">Names of the values it writes.</param>
/// <param name="Attributes">Its attributes by name.</param>
public sealed record OnnxNode(string OpType, string Name, IReadOnlyList<string> Inputs, IReadOnlyList<string> Outputs,
    IReadOnlyDictionary<string, OnnxAttribute> Attributes)
{
    /// <summary>The integer-list attribute <paramref name="name"/>, or null when the node does not have it.</summary>
    public IReadOnlyList<long>? Ints(string name) => Attributes.TryGetValue(name, out var a) ? a.Ints : null;
}

/// <summary>A float initializer of an ONNX graph (a weight), as a shape and row-major values.</summary>
/// <param name="Name">The initializer's name.</param>
/// <param name="Shape">Its dimensions.</param>
/// <param name="Values">Its float32 values, row-major.</param>
public sealed record OnnxInitializer(string Name, IReadOnlyList<long> Shape, float[] Values);

/// <summary>
/// The parts of an ONNX model (<c>onnx.proto</c>'s ModelProto) needed to take the weights of a network whose
/// topology is known: the graph's nodes in order, its float initializers, its input and output names, the producer and
/// the default-domain opset. A small reader of the protobuf wire format written for this (no protobuf library);
/// anything truncated or inconsistent is a <see cref="CheckpointFormatException"/> naming the file.
/// </summary>
public sealed class OnnxGraph
{
    private OnnxGraph(string source)
    {
        Source = source;
    }

    /// <summary>Where the model came from (a file path or a stream name), for messages.</summary>
    public string Source { get; }

    /// <summary>The producer's name and version (<c>CNTK 2.6</c>).</summary>
    public string Producer { get; private set; } = "";

    /// <summary>The opset version of the default domain (0 when the file does not say).</summary>
    public long Opset { get; private set; }

    /// <summary>The nodes in graph order.</summary>
    public IReadOnlyList<OnnxNode> Nodes => nodes;

    /// <summary>The float initializers by name.</summary>
    public IReadOnlyDictionary<string, OnnxInitializer> Initializers => initializers;

    /// <summary>The graph's input names (initializers included, as older exporters list them).</summary>
    public IReadOnlyList<string> Inputs => inputs;

    /// <summary>The graph's output names.</summary>
    public IReadOnlyList<string> Outputs => outputs;

    private readonly List<OnnxNode> nodes = [];
    private readonly Dictionary<string, OnnxInitializer> initializers = new(StringComparer.Ordinal);
    private readonly List<string> inputs = [];
    private readonly List<string> outputs = [];

    /// <summary>Reads an ONNX model file.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="CheckpointFormatException">The file is not a well-formed ONNX model.</exception>
    public static OnnxGraph Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"ONNX model not found: {path}", path);
        }

        return Parse(File.ReadAllBytes(path), path);
    }

    /// <summary>Reads an ONNX model from bytes; <paramref name="source"/> names it in messages.</summary>
    /// <exception cref="CheckpointFormatException">The bytes are not a well-formed ONNX model.</exception>
    public static OnnxGraph Parse(ReadOnlyMemory<byte> bytes, string source = "<bytes>")
    {
        var model = new OnnxGraph(source);
        var graphSeen = false;
        string producer = "", version = "";
        var reader = new Reader(bytes, source, "ModelProto");
        while (reader.Next(out var field, out var wire))
        {
            switch (field, wire)
            {
                case (2, 2): producer = reader.String(); break;
                case (3, 2): version = reader.String(); break;
                case (7, 2): model.ReadGraph(reader.Message("GraphProto")); graphSeen = true; break;
                case (8, 2): model.ReadOpset(reader.Message("OperatorSetIdProto")); break;
                default: reader.Skip(wire); break;
            }
        }

        if (!graphSeen || model.nodes.Count == 0)
        {
            throw new CheckpointFormatException(source, "not an ONNX model: no graph with nodes (truncated, or another kind of file)");
        }

        model.Producer = $"{producer} {version}".Trim();
        return model;
    }

    private void ReadOpset(Reader r)
    {
        string domain = "";
        long version = 0;
        while (r.Next(out var field, out var wire))
        {
            switch (field, wire)
            {
                case (1, 2): domain = r.String(); break;
                case (2, 0): version = (long)r.Varint(); break;
                default: r.Skip(wire); break;
            }
        }

        if (domain.Length == 0 || domain == "ai.onnx")
        {
            Opset = version;
        }
    }

    private void ReadGraph(Reader r)
    {
        while (r.Next(out var field, out var wire))
        {
            switch (field, wire)
            {
                case (1, 2): nodes.Add(ReadNode(r.Message("NodeProto"))); break;
                case (5, 2):
                    var t = ReadTensor(r.Message("TensorProto"));
                    if (!initializers.TryAdd(t.Name, t))
                    {
                        throw new CheckpointFormatException(Source, "the graph has two initializers of this name", t.Name);
                    }

                    break;
                case (11, 2): inputs.Add(ReadValueName(r.Message("ValueInfoProto"))); break;
                case (12, 2): outputs.Add(ReadValueName(r.Message("ValueInfoProto"))); break;
                default: r.Skip(wire); break;
            }
        }
    }

    private static string ReadValueName(Reader r)
    {
        var name = "";
        while (r.Next(out var field, out var wire))
        {
            if (field == 1 && wire == 2)
            {
                name = r.String();
            }
            else
            {
                r.Skip(wire);
            }
        }

        return name;
    }

    private OnnxNode ReadNode(Reader r)
    {
        var ins = new List<string>();
        var outs = new List<string>();
        string op = "", name = "";
        var attributes = new Dictionary<string, OnnxAttribute>(StringComparer.Ordinal);
        while (r.Next(out var field, out var wire))
        {
            switch (field, wire)
            {
                case (1, 2): ins.Add(r.String()); break;
                case (2, 2): outs.Add(r.String()); break;
                case (3, 2): name = r.String(); break;
                case (4, 2): op = r.String(); break;
                case (5, 2):
                    var a = ReadAttribute(r.Message("AttributeProto"));
                    attributes[a.Name] = a;
                    break;
                default: r.Skip(wire); break;
            }
        }

        if (op.Length == 0)
        {
            throw new CheckpointFormatException(Source, $"node {nodes.Count} ('{name}') has no op_type");
        }

        return new OnnxNode(op, name, ins, outs, attributes);
    }

    private static OnnxAttribute ReadAttribute(Reader r)
    {
        string name = "";
        long? i = null;
        float? f = null;
        string? s = null;
        var ints = new List<long>();
        var floats = new List<float>();
        while (r.Next(out var field, out var wire))
        {
            switch (field, wire)
            {
                case (1, 2): name = r.String(); break;
                case (2, 5): f = r.Fixed32Float(); break;
                case (3, 0): i = (long)r.Varint(); break;
                case (4, 2): s = r.String(); break;
                case (7, 5): floats.Add(r.Fixed32Float()); break;
                case (7, 2): floats.AddRange(r.PackedFloats()); break;
                case (8, 0): ints.Add((long)r.Varint()); break;
                case (8, 2): ints.AddRange(r.PackedVarints()); break;
                default: r.Skip(wire); break;
            }
        }

        return new OnnxAttribute(name, i, f, ints, floats, s);
    }

    private OnnxInitializer ReadTensor(Reader r)
    {
        var dims = new List<long>();
        long dataType = 0;
        var name = "";
        ReadOnlyMemory<byte>? raw = null;
        var floats = new List<float>();
        while (r.Next(out var field, out var wire))
        {
            switch (field, wire)
            {
                case (1, 0): dims.Add((long)r.Varint()); break;
                case (1, 2): dims.AddRange(r.PackedVarints()); break;
                case (2, 0): dataType = (long)r.Varint(); break;
                case (4, 5): floats.Add(r.Fixed32Float()); break;
                case (4, 2): floats.AddRange(r.PackedFloats()); break;
                case (8, 2): name = r.String(); break;
                case (9, 2): raw = r.Bytes(); break;
                case (14, 2): throw new CheckpointFormatException(Source, "external tensor data is not supported", name.Length > 0 ? name : null);
                default: r.Skip(wire); break;
            }
        }

        if (dataType != 1)
        {
            throw new CheckpointFormatException(Source, $"initializer of data type {dataType}: only float32 (1) is read", name);
        }

        long count = 1;
        foreach (var d in dims)
        {
            if (d < 0 || (count = checked(count * Math.Max(d, 1))) > int.MaxValue)
            {
                throw new CheckpointFormatException(Source, $"bad shape [{string.Join(", ", dims)}]", name);
            }
        }

        if (dims.Contains(0))
        {
            count = 0;
        }

        float[] values;
        if (raw is { } bytes)
        {
            if (bytes.Length != count * 4)
            {
                throw new CheckpointFormatException(Source, $"raw_data has {bytes.Length} bytes, shape [{string.Join(", ", dims)}] needs {count * 4}", name);
            }

            values = new float[count];
            for (var k = 0; k < count; k++)
            {
                values[k] = BinaryPrimitives.ReadSingleLittleEndian(bytes.Span.Slice(k * 4, 4));
            }
        }
        else
        {
            if (floats.Count != count)
            {
                throw new CheckpointFormatException(Source, $"float_data has {floats.Count} values, shape [{string.Join(", ", dims)}] needs {count}", name);
            }

            values = [.. floats];
        }

        return new OnnxInitializer(name, dims, values);
    }

    /// <summary>A bounds-checked cursor over one protobuf message.</summary>
    private sealed class Reader(ReadOnlyMemory<byte> data, string source, string message)
    {
        private int position;

        public bool AtEnd => position >= data.Length;

        public bool Next(out int field, out int wire)
        {
            if (position >= data.Length)
            {
                field = wire = 0;
                return false;
            }

            var key = Varint();
            field = (int)(key >> 3);
            wire = (int)(key & 7);
            if (field == 0)
            {
                throw Bad("field number 0");
            }

            return true;
        }

        public ulong Varint()
        {
            ulong result = 0;
            for (var shift = 0; shift < 64; shift += 7)
            {
                if (position >= data.Length)
                {
                    throw Bad("truncated varint");
                }

                var b = data.Span[position++];
                result |= (ulong)(b & 0x7F) << shift;
                if (b < 0x80)
                {
                    return result;
                }
            }

            throw Bad("varint longer than 10 bytes");
        }

        public ReadOnlyMemory<byte> Bytes()
        {
            var length = Varint();
            if (length > (ulong)(data.Length - position))
            {
                throw Bad($"a length-delimited field of {length} bytes runs past the end ({data.Length - position} left): truncated file");
            }

            var slice = data.Slice(position, (int)length);
            position += (int)length;
            return slice;
        }

        public string String()
        {
            try
            {
                return new UTF8Encoding(false, true).GetString(Bytes().Span);
            }
            catch (DecoderFallbackException e)
            {
                throw new CheckpointFormatException(source, $"{message}: a string is not valid UTF-8", null, e);
            }
        }

        public Reader Message(string name) => new(Bytes(), source, name);

        public float Fixed32Float()
        {
            if (data.Length - position < 4)
            {
                throw Bad("truncated fixed32");
            }

            var v = BinaryPrimitives.ReadSingleLittleEndian(data.Span.Slice(position, 4));
            position += 4;
            return v;
        }

        public IEnumerable<long> PackedVarints()
        {
            var inner = new Reader(Bytes(), source, message);
            var list = new List<long>();
            while (!inner.AtEnd)
            {
                list.Add((long)inner.Varint());
            }

            return list;
        }

        public IEnumerable<float> PackedFloats()
        {
            var bytes = Bytes();
            if (bytes.Length % 4 != 0)
            {
                throw Bad($"packed floats of {bytes.Length} bytes (not a multiple of 4)");
            }

            var list = new float[bytes.Length / 4];
            for (var k = 0; k < list.Length; k++)
            {
                list[k] = BinaryPrimitives.ReadSingleLittleEndian(bytes.Span.Slice(k * 4, 4));
            }

            return list;
        }

        public void Skip(int wire)
        {
            switch (wire)
            {
                case 0: Varint(); break;
                case 1: Advance(8); break;
                case 2: Bytes(); break;
                case 5: Advance(4); break;
                default: throw Bad($"unknown wire type {wire}");
            }
        }

        private void Advance(int n)
        {
            if (data.Length - position < n)
            {
                throw Bad("truncated field");
            }

            position += n;
        }

        private CheckpointFormatException Bad(string what) =>
            new(source, $"not a valid ONNX model: {message} at byte {position}: {what}");
    }
}
