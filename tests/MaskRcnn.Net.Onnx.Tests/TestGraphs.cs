using MaskRcnn.Net.Core.Checkpoints;

namespace MaskRcnn.Net.Onnx.Tests;

/// <summary>
/// Small ONNX graphs with the export's interface (input <c>image</c> uint8 [3, height, width]; outputs boxes, labels,
/// scores, masks; <c>maskrcnn.*</c> metadata), written with the exporter's <see cref="OnnxModelWriter"/>. They are not
/// Mask R-CNNs: their outputs are simple functions of the input that a test computes independently, so that loading,
/// the metadata, the run and the post-processing are checked on a real ONNX Runtime session.
/// </summary>
/// <remarks>
/// <see cref="Synthetic"/> outputs three detections for any image whose mean brightness exceeds 0.02 (none for a
/// black image): boxes at fixed fractions of the image size (<see cref="BoxFractions"/>), labels
/// <see cref="Labels"/>, scores mean(image)/255 × <see cref="ScoreFactors"/>, and the fixed 28×28 mask
/// probabilities <see cref="MaskProbabilities"/>. Detection 2 (label 1) lies inside detection 0's mask (label 1), so
/// a contained-duplicate suppression of 0.8 drops it.
/// </remarks>
internal static class TestGraphs
{
    public const int MaskSize = 28;

    public static readonly float[][] BoxFractions =
    [
        [0.10f, 0.10f, 0.60f, 0.50f],
        [0.30f, 0.40f, 0.90f, 0.95f],
        [0.28f, 0.25f, 0.42f, 0.35f],
    ];

    public static readonly long[] Labels = [1, 2, 1];

    public static readonly float[] ScoreFactors = [1.0f, 0.9f, 0.8f];

    public static readonly string[] ClassNames = ["__background__", "tumor", "cyst"];

    /// <summary>Per detection a different smooth blob: probabilities from ~0 at the corners to ~1 inside.</summary>
    public static readonly float[] MaskProbabilities = Enumerable.Range(0, 3 * MaskSize * MaskSize).Select(i =>
    {
        var (d, y, x) = (i / (MaskSize * MaskSize), i / MaskSize % MaskSize, i % MaskSize);
        var (cy, cx, r) = (13.5 + 3 * d, 13.5 - 2 * d, 9.0 + 2 * d);
        var dist = Math.Sqrt((y - cy) * (y - cy) + (x - cx) * (x - cx) * 0.7);
        return (float)(1 / (1 + Math.Exp((dist - r) * 0.9)));
    }).ToArray();

    /// <summary>The metadata of a format-1 export with <see cref="ClassNames"/>.</summary>
    public static Dictionary<string, string> Metadata(string suppress = "off") => new()
    {
        ["maskrcnn.format"] = "1",
        ["maskrcnn.class_names"] = """["__background__","tumor","cyst"]""",
        ["maskrcnn.mask_threshold"] = "0.5",
        ["maskrcnn.suppress_contained"] = suppress,
        ["maskrcnn.score_threshold"] = "0",
        ["maskrcnn.detections_per_image"] = "100",
        ["maskrcnn.min_size"] = "800",
        ["maskrcnn.max_size"] = "1333",
        ["maskrcnn.mask_size"] = "28",
    };

    /// <summary>Writes the synthetic model; <paramref name="change"/> may edit the writer (drop an output, metadata…).</summary>
    public static string Synthetic(string path, IReadOnlyDictionary<string, string>? metadata = null, Action<OnnxModelWriter>? change = null,
        OnnxElementType imageType = OnnxElementType.UInt8)
    {
        var w = new OnnxModelWriter { ProducerName = "MaskRcnn.Net", ProducerVersion = "test" };
        w.Opsets[""] = 17;
        void Node(string op, string[] inputs, string output, params OnnxAttributeValue[] attributes) =>
            w.Nodes.Add(new OnnxNodeValue(op, inputs, [output], attributes, output));
        void Constant(string name, OnnxTensorValue value) => w.Initializers.Add(value.WithName(name));

        w.Inputs.Add(new OnnxValueInfo("image", imageType, [3, "height", "width"]));
        Constant("fractions", OnnxTensorValue.FromFloats("", BoxFractions.SelectMany(f => f).ToArray(), 3, 4));
        Constant("labels_all", OnnxTensorValue.FromInt64s("", Labels, 3));
        Constant("factors", OnnxTensorValue.FromFloats("", ScoreFactors, 3));
        Constant("masks_all", OnnxTensorValue.FromFloats("", MaskProbabilities, 3, 1, MaskSize, MaskSize));
        Constant("one", OnnxTensorValue.FromInt64s("", [1], 1));
        Constant("two", OnnxTensorValue.FromInt64s("", [2], 1));
        Constant("zero", OnnxTensorValue.FromInt64s("", [0], 1));
        Constant("three", OnnxTensorValue.FromInt64s("", [3], 1));
        Constant("f255", OnnxTensorValue.FromFloats("", [255f]));
        Constant("dark", OnnxTensorValue.FromFloats("", [0.02f]));

        // The image size as float [w, h, w, h]; boxes = fractions × that.
        Node("Cast", ["image"], "image_f", OnnxAttributeValue.Int("to", (long)OnnxElementType.Float));
        Node("Shape", ["image"], "shape");
        Node("Gather", ["shape", "two"], "w_i", OnnxAttributeValue.Int("axis", 0));
        Node("Gather", ["shape", "one"], "h_i", OnnxAttributeValue.Int("axis", 0));
        Node("Concat", ["w_i", "h_i", "w_i", "h_i"], "whwh_i", OnnxAttributeValue.Int("axis", 0));
        Node("Cast", ["whwh_i"], "whwh", OnnxAttributeValue.Int("to", (long)OnnxElementType.Float));
        Node("Mul", ["fractions", "whwh"], "boxes_all");

        // Scores from the mean brightness; k = 3 detections unless the image is (nearly) black.
        Node("ReduceMean", ["image_f"], "mean", OnnxAttributeValue.Int("keepdims", 0));
        Node("Div", ["mean", "f255"], "brightness");
        Node("Mul", ["factors", "brightness"], "scores_all");
        Node("Greater", ["brightness", "dark"], "bright");
        Node("Cast", ["bright"], "bright_i", OnnxAttributeValue.Int("to", (long)OnnxElementType.Int64));
        Node("Mul", ["bright_i", "three"], "k");
        Node("Slice", ["boxes_all", "zero", "k", "zero"], "boxes");
        Node("Slice", ["labels_all", "zero", "k", "zero"], "labels");
        Node("Slice", ["scores_all", "zero", "k", "zero"], "scores");
        Node("Slice", ["masks_all", "zero", "k", "zero"], "masks");
        w.Outputs.Add(new OnnxValueInfo("boxes", OnnxElementType.Float, ["N", 4]));
        w.Outputs.Add(new OnnxValueInfo("labels", OnnxElementType.Int64, ["N"]));
        w.Outputs.Add(new OnnxValueInfo("scores", OnnxElementType.Float, ["N"]));
        w.Outputs.Add(new OnnxValueInfo("masks", OnnxElementType.Float, ["N", 1, MaskSize, MaskSize]));
        foreach (var (key, value) in metadata ?? Metadata())
        {
            w.Metadata.Add(new(key, value));
        }

        change?.Invoke(w);
        File.WriteAllBytes(path, w.ToBytes());
        return path;
    }
}
