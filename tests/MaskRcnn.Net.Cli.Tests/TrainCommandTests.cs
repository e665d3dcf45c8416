using System.Diagnostics;
using MaskRcnn.Net.Tests;
using MaskRcnn.Net.Training;

namespace MaskRcnn.Net.Cli.Tests;

/// <summary>
/// <c>maskrcnn train</c> as a user runs it: interrupted with Ctrl+C (SIGINT) in a real child process, then resumed
/// with <c>--resume</c> to the end; <c>eval</c> on the result.
/// </summary>
[Collection("cli")]
public sealed class TrainCommandTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("mr_cli_train_").FullName;

    public void Dispose() => Directory.Delete(dir, true);

    private static readonly string Mini = RepoPaths.Get("tests", "MaskRcnn.Net.Training.Tests", "data", "brain-tumor-mini");

    private string[] TrainArgs(string outDir) =>
    [
        "train", "--train", Path.Combine(Mini, "annotations.json"), "--images", Path.Combine(Mini, "images"), "--out", outDir,
        "--epochs", "8", "--batch-size", "2", "--min-size", "96", "--max-size", "96", "--backbone", "resnet18", "--norm", "GroupNorm",
        "--fpn-channels", "32", "--rois-per-image", "32", "--box-head-size", "64", "--mask-head", "16,16", "--warmup", "2", "--threads", "1",
    ];

    [Fact]
    public async Task Training_interrupted_by_ctrl_c_writes_a_checkpoint_and_resume_finishes_the_run()
    {
        var outDir = Path.Combine(dir, "run");
        var checkpoint = Path.Combine(outDir, "checkpoint.safetensors");
        var cli = Path.Combine(AppContext.BaseDirectory, "maskrcnn.dll");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        start.ArgumentList.Add(cli);
        foreach (var a in TrainArgs(outDir))
        {
            start.ArgumentList.Add(a);
        }

        using (var process = Process.Start(start)!)
        {
            var stderr = process.StandardError.ReadToEndAsync();
            var stdout = process.StandardOutput.ReadToEndAsync();
            var clock = Stopwatch.StartNew();
            while (!File.Exists(checkpoint) && !process.HasExited && clock.Elapsed < TimeSpan.FromMinutes(3))
            {
                await Task.Delay(100);
            }

            File.Exists(checkpoint).Should().BeTrue($"the first epoch's checkpoint appears; stderr: {(process.HasExited ? await stderr : "")}");
            using (var kill = Process.Start("kill", ["-INT", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
            {
                kill.WaitForExit();
            }

            process.WaitForExit(120_000).Should().BeTrue("Ctrl+C stops training after the current iteration");
            var log = await stderr + await stdout;
            process.ExitCode.Should().Be(130, log);
            log.Should().Contain("--resume");
        }

        var interrupted = TrainingCheckpoint.ReadState(checkpoint);
        interrupted.Epoch.Should().BeLessThan(8, "the run was stopped early");
        interrupted.Step.Should().BeGreaterThanOrEqualTo(3, "at least the first epoch (3 steps) was saved");
        File.Exists(Path.Combine(outDir, "model.safetensors")).Should().BeFalse("the final model is only written when training completes");

        Program.Main([.. TrainArgs(outDir), "--resume"]).Should().Be(0);
        var done = TrainingCheckpoint.ReadState(checkpoint);
        done.Should().BeEquivalentTo(new { Epoch = 8, NextBatch = 0, Step = 24L, TotalSteps = 24L });
        File.ReadAllText(Path.Combine(outDir, "train.log")).Should().Contain("resumed from").And.Contain($"epoch {interrupted.Epoch}, batch {interrupted.NextBatch}");
        MaskRcnnModel.IsSavedModel(Path.Combine(outDir, "model.safetensors")).Should().BeTrue();

        var metrics = Path.Combine(dir, "metrics.json");
        Program.Main(["eval", "--weights", Path.Combine(outDir, "model.safetensors"), "--dataset", Path.Combine(Mini, "annotations.json"),
            "--images", Path.Combine(Mini, "images"), "--json", metrics, "--threads", "1"]).Should().Be(0);
        using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllText(metrics));
        doc.RootElement.GetProperty("bbox").GetProperty("AP").GetDouble().Should().BeInRange(-1, 1);
        doc.RootElement.GetProperty("segm").GetProperty("AP50").GetDouble().Should().BeInRange(-1, 1);
        doc.RootElement.GetProperty("binary").GetProperty("mean_dice").GetDouble().Should().BeInRange(0, 1);
    }

    [Fact]
    public void Epochs_and_minutes_together_are_refused()
    {
        Program.Main([.. TrainArgs(Path.Combine(dir, "x")), "--minutes", "1"]).Should().NotBe(0);
    }
}
