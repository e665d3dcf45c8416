using System.Text.Json;
using MaskRcnn.Net.Backbones;
using MaskRcnn.Net.Core.Checkpoints;
using MaskRcnn.Net.Core.Masks;
using MaskRcnn.Net.Core.Tests.TestSupport;
using MaskRcnn.Net.Tests;

namespace MaskRcnn.Net.Cli.Tests;

/// <summary>The <c>maskrcnn predict</c> contract: arguments, JSON layout, RLE masks, weights formats, errors.</summary>
[Collection("cli")]
public sealed class PredictCommandTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("mr_cli_").FullName;

    public void Dispose() => Directory.Delete(dir, true);

    private static MaskRcnnBuilder Small() => new MaskRcnnBuilder().WithBackbone(18, NormKind.FrozenBatchNorm)
        .WithClasses("tumor", "other").WithImageSize(128, 160).WithScoreThreshold(0.0);

    [Fact]
    public void Predict_with_a_saved_model_writes_the_contract_json_with_rle_masks_and_overlays()
    {
        var weights = Path.Combine(dir, "model.safetensors");
        using var model = Small().Build();
        model.Save(weights);
        var json = Path.Combine(dir, "out", "pred.json");
        var overlays = Path.Combine(dir, "overlays");
        var images = new[] { RepoPaths.MriImage(0), RepoPaths.MriImage(1) };
        Program.Main(["predict", "--weights", weights, "--score-threshold", "0.0", "--warmup", "--json", json, "--overlay-dir", overlays, .. images])
            .Should().Be(0);

        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        var results = doc.RootElement.GetProperty("results");
        results.GetArrayLength().Should().Be(2);
        for (var i = 0; i < 2; i++)
        {
            var r = results[i];
            r.GetProperty("image").GetString().Should().Be(images[i]);
            var width = r.GetProperty("width").GetInt32();
            var height = r.GetProperty("height").GetInt32();
            r.GetProperty("seconds").GetDouble().Should().BePositive();
            var expected = model.Predict(images[i]);
            (width, height).Should().Be((expected.Width, expected.Height));
            var dets = r.GetProperty("detections");
            dets.GetArrayLength().Should().Be(expected.Detections.Count);
            for (var d = 0; d < dets.GetArrayLength(); d++)
            {
                var det = dets[d];
                det.GetProperty("label").GetInt32().Should().Be(expected.Detections[d].Label);
                det.GetProperty("score").GetDouble().Should().BeApproximately(expected.Detections[d].Score, 1e-6);
                det.GetProperty("box").EnumerateArray().Select(v => v.GetSingle()).Should().Equal(
                    expected.Detections[d].Box.X1, expected.Detections[d].Box.Y1, expected.Detections[d].Box.X2, expected.Detections[d].Box.Y2);
                var rle = det.GetProperty("mask_rle");
                rle.GetProperty("size").EnumerateArray().Select(v => v.GetInt32()).Should().Equal(height, width);
                var mask = Rle.FromCompressedString(rle.GetProperty("counts").GetString()!, height, width).Decode();
                mask.Should().Be(expected.Detections[d].Mask);
            }

            File.Exists(Path.Combine(overlays, Path.GetFileNameWithoutExtension(images[i]) + ".png")).Should().BeTrue();
        }
    }

    [Fact]
    public void Predict_accepts_a_torchvision_state_dict_in_the_legacy_torch_save_format()
    {
        var weights = Path.Combine(dir, "maskrcnn_legacy.pth");
        PythonOracle.Run("""
            import sys, torch
            from torchvision.models.detection import maskrcnn_resnet50_fpn
            torch.manual_seed(0)
            m = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=5)
            torch.save(m.state_dict(), sys.argv[1], _use_new_zipfile_serialization=False)
            """, weights);
        var json = Path.Combine(dir, "tv.json");
        Program.Main(["predict", "--weights", weights, "--num-classes", "5", "--score-threshold", "0.0", "--json", json, RepoPaths.MriImage(2)])
            .Should().Be(0);
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        var r = doc.RootElement.GetProperty("results")[0];
        r.GetProperty("detections").EnumerateArray().Should().OnlyContain(d => d.GetProperty("label").GetInt32() >= 1 && d.GetProperty("label").GetInt32() < 5);
        Program.Main(["predict", "--weights", weights, "--json", json, RepoPaths.MriImage(2)])
            .Should().Be(1, "the default 91 classes do not fit a 5-class state dict: a clear error, not a crash");
    }

    [Fact]
    public void Bad_arguments_and_inputs_exit_with_an_error_code_not_a_crash()
    {
        var json = Path.Combine(dir, "x.json");
        Program.Main(["predict", "--weights", Path.Combine(dir, "missing.pth"), "--json", json, RepoPaths.MriImage(0)]).Should().Be(1);
        var weights = Path.Combine(dir, "model.safetensors");
        using (var model = Small().Build())
        {
            model.Save(weights);
        }

        var corrupt = Path.Combine(dir, "corrupt.jpg");
        File.WriteAllBytes(corrupt, File.ReadAllBytes(RepoPaths.MriImage(0)).Take(300).ToArray());
        Program.Main(["predict", "--weights", weights, "--json", json, corrupt]).Should().Be(1);
        Program.Main(["predict", "--json", json, corrupt]).Should().NotBe(0, "--weights is required");
        File.WriteAllBytes(Path.Combine(dir, "junk.pth"), [1, 2, 3, 4]);
        Program.Main(["predict", "--weights", Path.Combine(dir, "junk.pth"), "--json", json, RepoPaths.MriImage(0)]).Should().Be(1);
    }

    [Fact]
    public async Task Predict_profile_writes_each_stage_and_precision_bf16_runs_or_is_refused_with_a_clear_message()
    {
        var weights = Path.Combine(dir, "model.safetensors");
        using (var model = Small().WithSeed(2).Build())
        {
            model.Save(weights);
        }

        var json = Path.Combine(dir, "profile.json");
        Program.Main(["predict", "--weights", weights, "--profile", "--json", json, RepoPaths.MriImage(0)]).Should().Be(0);
        using (var doc = JsonDocument.Parse(File.ReadAllText(json)))
        {
            var r = doc.RootElement.GetProperty("results")[0];
            var stages = r.GetProperty("stages").EnumerateObject().Select(p => (p.Name, p.Value.GetDouble())).ToList();
            stages.Select(s => s.Name).Should().Equal("input", "transform", "backbone", "fpn", "rpn.head", "rpn.proposals", "box.roialign",
                "box.head", "box.postprocess", "mask.roialign", "mask.head", "postprocess", "paste");
            stages.Should().OnlyContain(s => s.Item2 >= 0);
            stages.Sum(s => s.Item2).Should().BeLessThanOrEqualTo(r.GetProperty("seconds").GetDouble(), "the stages lie inside the timed call");
        }

        Program.Main(["predict", "--weights", weights, "--precision", "fp16", "--json", json, RepoPaths.MriImage(0)]).Should().Be(1);
        var bf16 = Program.Main(["predict", "--weights", weights, "--precision", "bf16", "--json", json, RepoPaths.MriImage(0)]);
        bf16.Should().Be(PrecisionSupport.CpuHasBFloat16 ? 0 : 1);

        // A CPU without native bfloat16 (here: AVX-512 switched off for the .NET runtime of a child process): exit 1 and why.
        await using var cli = CliProcess.Start(new Dictionary<string, string> { ["DOTNET_EnableAVX512"] = "0" },
            "predict", "--weights", weights, "--precision", "bf16", "--json", json, RepoPaths.MriImage(0));
        (await cli.WaitForExitAsync()).Should().Be(1);
        cli.Log.Should().Contain("AVX512_BF16").And.Contain("--precision fp32");
    }
}
