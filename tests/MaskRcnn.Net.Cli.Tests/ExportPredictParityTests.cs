using System.Text.Json;
using MaskRcnn.Net.Core.Masks;
using MaskRcnn.Net.Tests;
using Xunit.Abstractions;

namespace MaskRcnn.Net.Cli.Tests;

/// <summary>
/// The whole user path of issue 14 through the CLI: <c>maskrcnn train</c> (a few steps at test time),
/// <c>maskrcnn export</c>, then <c>predict --weights</c> (libtorch) and <c>predict --onnx</c> (ONNX Runtime) on real
/// MRI slices. Their JSON must agree: detections scoring at least 0.05 above the threshold in the libtorch output are
/// matched by label and box IoU ≥ 0.99 (≥ 98 % of them), matched scores within 1e-3, matched masks (decoded from
/// the JSON's RLE) with IoU ≥ 0.98.
/// </summary>
[Collection("cli")]
public sealed class ExportPredictParityTests(ITestOutputHelper output) : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("mr_cli_export_parity_").FullName;

    public void Dispose() => Directory.Delete(dir, true);

    private static readonly string Mini = RepoPaths.Get("tests", "MaskRcnn.Net.Training.Tests", "data", "brain-tumor-mini");

    private sealed record Det(long Label, double Score, double[] Box, Rle? Mask);

    private static List<Det>[] Read(string json)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        return doc.RootElement.GetProperty("results").EnumerateArray().Select(r => r.GetProperty("detections").EnumerateArray().Select(d =>
        {
            var m = d.GetProperty("mask_rle");
            Rle? rle = m.ValueKind == JsonValueKind.Null ? null : Rle.FromCompressedString(m.GetProperty("counts").GetString()!,
                m.GetProperty("size")[0].GetInt32(), m.GetProperty("size")[1].GetInt32());
            return new Det(d.GetProperty("label").GetInt64(), d.GetProperty("score").GetDouble(),
                d.GetProperty("box").EnumerateArray().Select(x => x.GetDouble()).ToArray(), rle);
        }).ToList()).ToArray();
    }

    private static double BoxIou(double[] a, double[] b)
    {
        var w = Math.Max(0, Math.Min(a[2], b[2]) - Math.Max(a[0], b[0]));
        var h = Math.Max(0, Math.Min(a[3], b[3]) - Math.Max(a[1], b[1]));
        var inter = w * h;
        var union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
        return union > 0 ? inter / union : 0;
    }

    [Fact]
    public void Trained_exported_and_predicted_with_onnx_runtime_gives_the_json_of_predict_weights()
    {
        var run = Path.Combine(dir, "run");
        Program.Main([
            "train", "--train", Path.Combine(Mini, "annotations.json"), "--images", Path.Combine(Mini, "images"), "--out", run,
            "--epochs", "8", "--batch-size", "2", "--min-size", "128", "--max-size", "128", "--backbone", "resnet18", "--norm", "GroupNorm",
            "--fpn-channels", "32", "--rois-per-image", "32", "--box-head-size", "64", "--mask-head", "16,16", "--warmup", "2",
            "--threads", "2", "--pretrained", "none", "--seed", "3",
        ]).Should().Be(0);
        var weights = Path.Combine(run, "model.safetensors");
        var onnx = Path.Combine(dir, "model.onnx");
        Program.Main(["export", "--weights", weights, "--onnx", onnx]).Should().Be(0);

        var images = Directory.GetFiles(Path.Combine(Mini, "images")).Order(StringComparer.Ordinal).ToArray();
        images.Length.Should().BeGreaterThan(3);
        var libtorchJson = Path.Combine(dir, "weights.json");
        var onnxJson = Path.Combine(dir, "onnx.json");
        Program.Main(["predict", "--weights", weights, "--threads", "2", "--json", libtorchJson, .. images]).Should().Be(0);
        Program.Main(["predict", "--onnx", onnx, "--threads", "2", "--json", onnxJson, .. images]).Should().Be(0);

        using var model = MaskRcnnModel.Load(weights);
        var threshold = model.RoIHeads.Options.ScoreThreshold + 0.05;
        var ours = Read(libtorchJson);
        var theirs = Read(onnxJson);
        ours.Length.Should().Be(images.Length);
        theirs.Length.Should().Be(images.Length);
        int considered = 0, matched = 0, masksOk = 0;
        double worstScore = 0, worstMask = 1;
        for (var i = 0; i < images.Length; i++)
        {
            var used = new bool[theirs[i].Count];
            foreach (var d in ours[i].Where(d => d.Score >= threshold))
            {
                considered++;
                var best = -1;
                var bestIou = 0.0;
                for (var j = 0; j < theirs[i].Count; j++)
                {
                    var iou = used[j] || theirs[i][j].Label != d.Label ? 0 : BoxIou(d.Box, theirs[i][j].Box);
                    if (iou > bestIou)
                    {
                        (best, bestIou) = (j, iou);
                    }
                }

                if (best < 0 || bestIou < 0.99)
                {
                    output.WriteLine($"{Path.GetFileName(images[i])}: unmatched label {d.Label} score {d.Score:F4} (best box IoU {bestIou:F3})");
                    continue;
                }

                used[best] = true;
                matched++;
                var t = theirs[i][best];
                worstScore = Math.Max(worstScore, Math.Abs(t.Score - d.Score));
                d.Mask.Should().NotBeNull();
                t.Mask.Should().NotBeNull();
                var maskIou = Rle.Iou(t.Mask!, d.Mask!, isCrowd: false);
                worstMask = Math.Min(worstMask, maskIou);
                masksOk += maskIou >= 0.98 ? 1 : 0;
            }
        }

        output.WriteLine($"{considered} libtorch detections scoring >= {threshold:F2} on {images.Length} images: {matched} matched, " +
                         $"max score difference {worstScore:E2}, min mask IoU {worstMask:F4}, masks with IoU >= 0.98: {masksOk}");
        considered.Should().BeGreaterThan(images.Length, "the trained model must find several objects to compare");
        ((double)matched / considered).Should().BeGreaterThanOrEqualTo(0.98);
        worstScore.Should().BeLessThanOrEqualTo(1e-3);
        masksOk.Should().Be(matched, "every matched mask has IoU >= 0.98");
    }
}
