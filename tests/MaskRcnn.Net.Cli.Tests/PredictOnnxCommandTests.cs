using System.Text.Json;
using MaskRcnn.Net.Core.Imaging;
using MaskRcnn.Net.Core.Masks;
using MaskRcnn.Net.Onnx;
using MaskRcnn.Net.Onnx.Tests;
using MaskRcnn.Net.Tests;

namespace MaskRcnn.Net.Cli.Tests;

/// <summary>
/// <c>maskrcnn predict --onnx</c>: the same JSON as <c>--weights</c> (the image decoded by the same decoder, the
/// detections of <see cref="OnnxMaskRcnn"/> on those pixels), and clear errors for what only applies to libtorch.
/// </summary>
[Collection("cli")]
public sealed class PredictOnnxCommandTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("mr_cli_onnx_").FullName;

    public void Dispose() => Directory.Delete(dir, true);

    [Fact]
    public void Predict_onnx_writes_the_json_of_the_onnx_model_with_rle_masks_and_overlays()
    {
        var model = TestGraphs.Synthetic(Path.Combine(dir, "m.onnx"), TestGraphs.Metadata());
        var json = Path.Combine(dir, "pred.json");
        var overlays = Path.Combine(dir, "overlays");
        var images = new[] { RepoPaths.MriImage(0), RepoPaths.MriImage(1) };
        Program.Main(["predict", "--onnx", model, "--threads", "1", "--json", json, "--overlay-dir", overlays, .. images]).Should().Be(0);

        using var onnx = OnnxMaskRcnn.Load(model);
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        var results = doc.RootElement.GetProperty("results");
        results.GetArrayLength().Should().Be(2);
        for (var i = 0; i < 2; i++)
        {
            using var decoded = ImageCodec.Decode(images[i], ImageReadMode.Rgb);
            var expected = onnx.Predict(decoded.ToRgbImage());
            var r = results[i];
            r.GetProperty("image").GetString().Should().Be(images[i]);
            (r.GetProperty("width").GetInt32(), r.GetProperty("height").GetInt32()).Should().Be((expected.Width, expected.Height));
            var dets = r.GetProperty("detections");
            dets.GetArrayLength().Should().Be(expected.Detections.Count).And.BeGreaterThan(0);
            for (var d = 0; d < dets.GetArrayLength(); d++)
            {
                var det = dets[d];
                det.GetProperty("label").GetInt32().Should().Be(expected.Detections[d].Label);
                det.GetProperty("score").GetSingle().Should().Be(expected.Detections[d].Score);
                det.GetProperty("box").EnumerateArray().Select(v => v.GetSingle()).Should().Equal(
                    expected.Detections[d].Box.X1, expected.Detections[d].Box.Y1, expected.Detections[d].Box.X2, expected.Detections[d].Box.Y2);
                var rle = det.GetProperty("mask_rle");
                Rle.FromCompressedString(rle.GetProperty("counts").GetString()!, expected.Height, expected.Width).Decode().Should().Be(expected.Detections[d].Mask);
            }

            File.Exists(Path.Combine(overlays, Path.GetFileNameWithoutExtension(images[i]) + ".png")).Should().BeTrue();
        }

        // --score-threshold above the export's (0 here) drops the detections scoring at most it.
        var filtered = Path.Combine(dir, "filtered.json");
        var cut = results[0].GetProperty("detections")[1].GetProperty("score").GetSingle();
        Program.Main(["predict", "--onnx", model, "--score-threshold", cut.ToString("R", System.Globalization.CultureInfo.InvariantCulture), "--json", filtered, images[0]]).Should().Be(0);
        using var f = JsonDocument.Parse(File.ReadAllText(filtered));
        f.RootElement.GetProperty("results")[0].GetProperty("detections").EnumerateArray().Select(d => d.GetProperty("score").GetSingle())
            .Should().Equal(results[0].GetProperty("detections").EnumerateArray().Select(d => d.GetProperty("score").GetSingle()).Where(s => s > cut));
    }

    [Fact]
    public void Bad_onnx_arguments_exit_with_an_error_code_not_a_crash()
    {
        var json = Path.Combine(dir, "x.json");
        var image = RepoPaths.MriImage(0);
        var model = TestGraphs.Synthetic(Path.Combine(dir, "m.onnx"), TestGraphs.Metadata());
        Program.Main(["predict", "--onnx", model, "--weights", model, "--json", json, image]).Should().Be(1, "one model at a time");
        Program.Main(["predict", "--json", json, image]).Should().Be(1, "a model is needed");
        Program.Main(["predict", "--onnx", model, "--num-classes", "3", "--json", json, image]).Should().Be(1, "--num-classes applies to --weights");
        Program.Main(["predict", "--onnx", model, "--suppress-contained", "0.5", "--json", json, image]).Should().Be(1, "the export carries its suppression");
        Program.Main(["predict", "--onnx", model, "--mask-scoring", "on", "--json", json, image]).Should().Be(1, "the export carries its mask scoring");
        Program.Main(["predict", "--onnx", Path.Combine(dir, "missing.onnx"), "--json", json, image]).Should().Be(1);
        var foreign = Path.Combine(dir, "foreign.onnx");
        File.WriteAllBytes(foreign, File.ReadAllBytes(image));
        Program.Main(["predict", "--onnx", foreign, "--json", json, image]).Should().Be(1, "not ONNX: a typed error, reported");
        File.Exists(json).Should().BeFalse();

        var baked = TestGraphs.Metadata();
        baked["maskrcnn.score_threshold"] = "0.3";
        var strict = TestGraphs.Synthetic(Path.Combine(dir, "strict.onnx"), baked);
        Program.Main(["predict", "--onnx", strict, "--score-threshold", "0.1", "--json", json, image]).Should().Be(1, "below the baked threshold");
    }
}
