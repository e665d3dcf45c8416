using MaskRcnn.Net.Core.Imaging;
using Microsoft.ML.OnnxRuntime;
using OrtTensors = Microsoft.ML.OnnxRuntime.Tensors;

namespace MaskRcnn.Net.Tests.Export;

/// <summary>An output of an ONNX Runtime run: its shape and its values as doubles (float or int64 outputs).</summary>
internal sealed record OnnxOutput(long[] Shape, double[] Values);

/// <summary>Runs exported graphs in ONNX Runtime (the oracle) and loads real MRI images for the export tests.</summary>
internal static class OnnxTestSupport
{
    /// <summary>Runs <paramref name="model"/> on a uint8 [3, H, W] image and returns the named outputs.</summary>
    public static IReadOnlyDictionary<string, OnnxOutput> RunImage(byte[] model, Tensor imageU8, params string[] outputs)
    {
        var shape = imageU8.Shape;
        var tensor = new OrtTensors.DenseTensor<byte>(imageU8.ToArray<byte>(), [.. shape.Select(d => (int)d)]);
        using var options = new SessionOptions { IntraOpNumThreads = 2, InterOpNumThreads = 1 };
        using var session = new InferenceSession(model, options);
        using var results = session.Run([NamedOnnxValue.CreateFromTensor("image", tensor)], outputs);
        return results.ToDictionary(r => r.Name, ToOutput);
    }

    /// <summary>Converts one result to shape + values.</summary>
    public static OnnxOutput ToOutput(DisposableNamedOnnxValue r)
    {
        if (r.Value is OrtTensors.Tensor<float> f)
        {
            return new OnnxOutput([.. f.Dimensions.ToArray().Select(d => (long)d)], [.. f.Select(v => (double)v)]);
        }

        if (r.Value is OrtTensors.Tensor<long> l)
        {
            return new OnnxOutput([.. l.Dimensions.ToArray().Select(d => (long)d)], [.. l.Select(v => (double)v)]);
        }

        throw new InvalidOperationException($"output {r.Name} has an unexpected type {r.Value?.GetType()}");
    }

    /// <summary>A real brain-MRI image of the validation set as uint8 [3, H, W] RGB.</summary>
    public static Tensor ValImage(int index)
    {
        var files = Directory.GetFiles(RepoPaths.Get("data", "brain-tumor", "val", "images")).Order(StringComparer.Ordinal).ToArray();
        return ImageCodec.Decode(files[index], ImageReadMode.Rgb);
    }

    /// <summary>The image as float [3, H, W] in [0, 1], as MaskRcnnModel.Predict feeds the network.</summary>
    public static Tensor AsFloat(Tensor u8)
    {
        using var f = u8.To(DType.Float32);
        return f / 255.0;
    }

    /// <summary>max |a − b| over two equally long value lists.</summary>
    public static double MaxAbsDiff(IReadOnlyList<double> a, IReadOnlyList<double> b)
    {
        a.Count.Should().Be(b.Count);
        var m = 0.0;
        for (var i = 0; i < a.Count; i++)
        {
            m = Math.Max(m, Math.Abs(a[i] - b[i]));
        }

        return m;
    }
}
