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

    private static string[] TrainArgs(string outDir, string images) =>
    [
        "train", "--train", Path.Combine(Mini, "annotations.json"), "--images", images, "--out", outDir,
        "--epochs", "8", "--batch-size", "2", "--min-size", "96", "--max-size", "96", "--backbone", "resnet18", "--norm", "GroupNorm",
        "--fpn-channels", "32", "--rois-per-image", "32", "--box-head-size", "64", "--mask-head", "16,16", "--warmup", "2", "--threads", "1",
    ];

    /// <summary>
    /// The interrupt is made certain rather than likely (the run is short; on a busy machine it could finish before
    /// a signal sent "after the first checkpoint" arrives): one image of a copy of the data is a named pipe, so every
    /// epoch's loading of it waits for this test to write the image. The first epoch gets it at once; the second
    /// epoch's read starts (after the first epoch's checkpoint), the test sends SIGINT, and only then writes the image.
    /// </summary>
    [Fact]
    public async Task Training_interrupted_by_ctrl_c_writes_a_checkpoint_and_resume_finishes_the_run()
    {
        var outDir = Path.Combine(dir, "run");
        var checkpoint = Path.Combine(outDir, "checkpoint.safetensors");
        var images = Path.Combine(dir, "images");
        Directory.CreateDirectory(images);
        foreach (var file in Directory.GetFiles(Path.Combine(Mini, "images")))
        {
            File.Copy(file, Path.Combine(images, Path.GetFileName(file)));
        }

        var piped = Path.Combine(images, "00124_10.jpg");
        var pipedBytes = File.ReadAllBytes(piped);
        File.Delete(piped);
        using (var mkfifo = Process.Start("mkfifo", [piped]))
        {
            mkfifo.WaitForExit();
            mkfifo.ExitCode.Should().Be(0);
        }

        var cli = Path.Combine(AppContext.BaseDirectory, "maskrcnn.dll");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        start.ArgumentList.Add(cli);
        foreach (var a in TrainArgs(outDir, images))
        {
            start.ArgumentList.Add(a);
        }

        // Opening a pipe for writing waits until the trainer opens it for reading.
        Task<FileStream> OpenWriter() => Task.Run(() => new FileStream(piped, FileMode.Open, FileAccess.Write));
        using (var process = Process.Start(start)!)
        {
            // Read line by line: the test waits for the CLI to acknowledge SIGINT before it feeds the pipe again.
            var output = new System.Text.StringBuilder();
            var acknowledged = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var stderrLines = Task.Run(async () =>
            {
                while (await process.StandardError.ReadLineAsync() is { } line)
                {
                    lock (output)
                    {
                        output.AppendLine(line);
                    }

                    if (line.Contains("stopping after the current step", StringComparison.Ordinal))
                    {
                        acknowledged.TrySetResult();
                    }
                }
            });
            var stdout = process.StandardOutput.ReadToEndAsync();
            string Output()
            {
                lock (output)
                {
                    return output.ToString();
                }
            }

            var hangGuard = Stopwatch.StartNew(); // only against hangs: the run takes seconds
            async Task<FileStream> Opened(Task<FileStream> open, string what)
            {
                while (!open.IsCompleted && !process.HasExited && hangGuard.Elapsed < TimeSpan.FromMinutes(5))
                {
                    await Task.WhenAny(open, Task.Delay(100));
                }

                open.IsCompleted.Should().BeTrue($"{what}; stderr so far: {Output()}");
                return await open;
            }

            await using (var first = await Opened(OpenWriter(), "the first epoch reads the piped image"))
            {
                await first.WriteAsync(pipedBytes);
            }

            // A writer opened while the first epoch's reader still holds the pipe would join that read: wait until
            // the child has closed it (its /proc/PID/fd no longer points at the pipe).
            bool ChildHoldsPipe() => Directory.EnumerateFiles($"/proc/{process.Id}/fd").Any(fd =>
            {
                try
                {
                    return new FileInfo(fd).LinkTarget == piped;
                }
                catch (IOException)
                {
                    return false; // the descriptor closed while listing
                }
            });

            while (!process.HasExited && ChildHoldsPipe() && hangGuard.Elapsed < TimeSpan.FromMinutes(5))
            {
                await Task.Delay(20);
            }

            var second = await Opened(OpenWriter(), "the second epoch reads the piped image");
            File.Exists(checkpoint).Should().BeTrue("the first epoch's checkpoint is written before the second epoch loads");
            // Ctrl+C is SIGINT. A process started in the background by a non-interactive shell (`cmd &` in a CI script)
            // inherits SIGINT as ignored, and .NET then leaves it ignored: send SIGTERM there, which the CLI handles
            // with the same handler (Program.OnSignal), so the same stop-and-checkpoint path is tested.
            var signal = SignalIgnored(process.Id, 2) ? "-TERM" : "-INT";
            using (var kill = Process.Start("kill", [signal, process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
            {
                kill.WaitForExit();
                kill.ExitCode.Should().Be(0, $"kill {signal} reaches the CLI");
            }

            // The signal handler runs on a pool thread: on a busy machine it can take a while. Until it has run, the
            // token is not cancelled, and feeding the pipe now would let training go on to the next epoch's read.
            while (!acknowledged.Task.IsCompleted && !process.HasExited && hangGuard.Elapsed < TimeSpan.FromMinutes(5))
            {
                await Task.WhenAny(acknowledged.Task, Task.Delay(100));
            }

            acknowledged.Task.IsCompleted.Should().BeTrue($"the CLI acknowledges kill {signal}; output: {Output()}");

            await using (second)
            {
                await second.WriteAsync(pipedBytes);
            }

            if (!process.WaitForExit(300_000))
            {
                process.Kill(entireProcessTree: true); // no orphan; then show what it printed
                process.WaitForExit();
                await stderrLines;
                Assert.Fail($"Ctrl+C did not stop training within the 5-minute hang guard; output:\n{Output()}{await stdout}");
            }

            await stderrLines;
            var log = Output() + await stdout;
            process.ExitCode.Should().Be(130, log);
            log.Should().Contain("--resume");
        }

        File.Delete(piped);
        File.WriteAllBytes(piped, pipedBytes);
        var interrupted = TrainingCheckpoint.ReadState(checkpoint);
        interrupted.Epoch.Should().BeLessThan(8, "the run was stopped early");
        interrupted.Step.Should().BeGreaterThanOrEqualTo(3, "at least the first epoch (3 steps) was saved");
        File.Exists(Path.Combine(outDir, "model.safetensors")).Should().BeFalse("the final model is only written when training completes");

        Program.Main([.. TrainArgs(outDir, images), "--resume", "--val", Path.Combine(Mini, "annotations.json"), "--val-images", Path.Combine(Mini, "images")]).Should().Be(0);
        var done = TrainingCheckpoint.ReadState(checkpoint);

        // The history of both sessions: every loss of every step, the validation after the last epoch, and its picture.
        var rows = File.ReadAllLines(Path.Combine(outDir, "training.csv")).Skip(1).Select(l => l.Split(',')).ToList();
        rows.Where(r => r[2] == "loss_mask").Select(r => long.Parse(r[0], System.Globalization.CultureInfo.InvariantCulture)).Distinct().Order()
            .Should().Equal(Enumerable.Range(1, 24).Select(i => (long)i));
        rows.Select(r => r[2]).Distinct().Should().Contain(["loss", "loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg", "loss_mask", "val box AP", "val mask AP"]);
        rows.Where(r => r[2] == "val mask AP").Select(r => r[0]).Should().EndWith("24", "validation every 4 epochs (12 steps) and after the last")
            .And.OnlyContain(step => step == "12" || step == "24");
        using (var png = MaskRcnn.Net.Core.Imaging.ImageCodec.Decode(Path.Combine(outDir, "training.png")))
        {
            png.Shape.Should().Equal(4, 620, 1000);
        }

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

        // The same model's predictions written by `predict`, converted to a COCO results file, score the same
        // through `eval --detections`.
        var predictions = Path.Combine(dir, "predictions.json");
        var imagePaths = Directory.GetFiles(Path.Combine(Mini, "images")).Order().ToArray();
        Program.Main(["predict", "--weights", Path.Combine(outDir, "model.safetensors"), "--json", predictions, "--threads", "1", .. imagePaths]).Should().Be(0);
        var results = Path.Combine(dir, "results.json");
        File.WriteAllText(results, ToCocoResults(predictions, Path.Combine(Mini, "annotations.json")));
        var fromResults = Path.Combine(dir, "metrics_from_results.json");
        Program.Main(["eval", "--detections", results, "--dataset", Path.Combine(Mini, "annotations.json"),
            "--images", Path.Combine(Mini, "images"), "--json", fromResults]).Should().Be(0);
        using var doc2 = System.Text.Json.JsonDocument.Parse(File.ReadAllText(fromResults));
        foreach (var block in new[] { "bbox", "segm", "binary" })
        {
            foreach (var stat in doc.RootElement.GetProperty(block).EnumerateObject())
            {
                doc2.RootElement.GetProperty(block).GetProperty(stat.Name).GetDouble().Should().BeApproximately(stat.Value.GetDouble(), 1e-6, $"{block} {stat.Name}");
            }
        }
    }

    /// <summary>Whether signal <paramref name="number"/> is ignored by process <paramref name="pid"/> (its SigIgn mask in /proc).</summary>
    private static bool SignalIgnored(int pid, int number)
    {
        var line = File.ReadLines($"/proc/{pid}/status").Single(l => l.StartsWith("SigIgn:", StringComparison.Ordinal));
        var mask = ulong.Parse(line["SigIgn:".Length..].Trim(), System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture);
        return (mask & (1UL << (number - 1))) != 0;
    }

    /// <summary>Rewrites <c>predict</c>'s JSON as a COCO results list, mapping image paths to the annotation file's ids.</summary>
    private static string ToCocoResults(string predictJson, string annotationsJson)
    {
        using var annotations = System.Text.Json.JsonDocument.Parse(File.ReadAllText(annotationsJson));
        var ids = annotations.RootElement.GetProperty("images").EnumerateArray()
            .ToDictionary(i => i.GetProperty("file_name").GetString()!, i => i.GetProperty("id").GetInt64());
        using var predicted = System.Text.Json.JsonDocument.Parse(File.ReadAllText(predictJson));
        var list = new System.Text.Json.Nodes.JsonArray();
        foreach (var image in predicted.RootElement.GetProperty("results").EnumerateArray())
        {
            var id = ids[Path.GetFileName(image.GetProperty("image").GetString()!)];
            foreach (var d in image.GetProperty("detections").EnumerateArray())
            {
                var b = d.GetProperty("box").EnumerateArray().Select(v => v.GetDouble()).ToArray();
                list.Add(new System.Text.Json.Nodes.JsonObject
                {
                    ["image_id"] = id,
                    ["category_id"] = d.GetProperty("label").GetInt32(),
                    ["score"] = d.GetProperty("score").GetDouble(),
                    ["bbox"] = new System.Text.Json.Nodes.JsonArray(b[0], b[1], b[2] - b[0], b[3] - b[1]),
                    ["segmentation"] = System.Text.Json.Nodes.JsonNode.Parse(d.GetProperty("mask_rle").GetRawText()),
                });
            }
        }

        return list.ToJsonString();
    }

    [Fact]
    public void The_suppression_mask_scoring_and_aligned_roialign_settings_are_saved_with_the_model_and_bad_values_are_refused()
    {
        string[] Args(string outDir, string suppress, string maskScoring = "on", string aligned = "on") =>
        [
            "train", "--train", Path.Combine(Mini, "annotations.json"), "--images", Path.Combine(Mini, "images"), "--out", outDir,
            "--epochs", "1", "--batch-size", "2", "--min-size", "64", "--max-size", "64", "--pretrained", "none", "--fpn-channels", "16",
            "--rois-per-image", "16", "--box-head-size", "32", "--mask-head", "8", "--warmup", "1", "--threads", "1", "--suppress-contained", suppress,
            "--mask-scoring", maskScoring, "--aligned-roi-align", aligned,
        ];

        var outDir = Path.Combine(dir, "suppress");
        Program.Main(Args(outDir, "0.7")).Should().Be(0);
        using (var model = MaskRcnnModel.Load(Path.Combine(outDir, "model.safetensors")))
        {
            model.Config.SuppressContained.Should().Be(0.7, "--suppress-contained overrides the recipe (off from scratch)");
            model.Config.MaskScoring.Should().BeTrue("--mask-scoring overrides the recipe (off from scratch)");
            (model.Config.BoxPooler.Aligned, model.Config.MaskPooler.Aligned, model.Config.RoIHeads.AlignedMaskTargets)
                .Should().Be((true, true, true), "--aligned-roi-align on is saved with the model");
        }

        Program.Main(Args(Path.Combine(dir, "bad"), "1.5")).Should().NotBe(0);
        File.Exists(Path.Combine(dir, "bad", "model.safetensors")).Should().BeFalse("a bad value stops the run before training");
        Program.Main(Args(Path.Combine(dir, "bad2"), "off", "maybe")).Should().NotBe(0);
        File.Exists(Path.Combine(dir, "bad2", "model.safetensors")).Should().BeFalse("a bad --mask-scoring stops the run before training");
        Program.Main(Args(Path.Combine(dir, "bad3"), "off", "on", "yes")).Should().NotBe(0);
        File.Exists(Path.Combine(dir, "bad3", "model.safetensors")).Should().BeFalse("a bad --aligned-roi-align stops the run before training");
        Program.Main([.. Args(Path.Combine(dir, "bad4"), "off"), "--color-jitter", "NaN"]).Should().NotBe(0);
        File.Exists(Path.Combine(dir, "bad4", "checkpoint.safetensors")).Should().BeFalse("a NaN --color-jitter stops the run before training");
    }

    [Fact]
    public void Adamw_trains_names_itself_in_the_log_and_an_unknown_optimizer_is_refused()
    {
        string[] Args(string outDir, string optimizer) =>
        [
            "train", "--train", Path.Combine(Mini, "annotations.json"), "--images", Path.Combine(Mini, "images"), "--out", outDir,
            "--epochs", "1", "--batch-size", "2", "--min-size", "64", "--max-size", "64", "--pretrained", "none", "--fpn-channels", "16",
            "--rois-per-image", "16", "--box-head-size", "32", "--mask-head", "8", "--warmup", "1", "--threads", "1",
            "--optimizer", optimizer, "--lr", "0.0003", "--color-jitter", "0.3",
        ];

        var outDir = Path.Combine(dir, "adamw");
        Program.Main(Args(outDir, "AdamW")).Should().Be(0);
        var log = File.ReadAllText(Path.Combine(outDir, "train.log"));
        log.Should().Contain("recipe: --optimizer adamw: asked for")
            .And.Contain("with AdamW (lr 0.0003", "--lr overrides the recipe's AdamW rate")
            .And.Contain("decoupled weight decay 0.05", "the recipe's AdamW weight decay")
            .And.Contain("augmentation: horizontal flips (p = 0.5), brightness/contrast jitter 0.3", "--color-jitter overrides the recipe (none in a 1-epoch run)");
        TrainingCheckpoint.ReadMetadata(Path.Combine(outDir, "checkpoint.safetensors"))[TrainingCheckpoint.OptimizerKey].Should().Be("AdamW");
        TrainingCheckpoint.ReadState(Path.Combine(outDir, "checkpoint.safetensors")).Step.Should().BeGreaterThan(0);

        var bad = Path.Combine(dir, "bad-optimizer");
        var error = new StringWriter();
        var previous = Console.Error;
        Console.SetError(error);
        try
        {
            Program.Main(Args(bad, "foo")).Should().NotBe(0);
        }
        finally
        {
            Console.SetError(previous);
        }

        error.ToString().Should().Contain("--optimizer foo").And.Contain("sgd or adamw");
        File.Exists(Path.Combine(bad, "model.safetensors")).Should().BeFalse("a bad value stops the run before training");
        TrainCommand.ParseOptimizer(null).Should().Be(OptimizerKind.Sgd, "sgd is the default");
    }

    [Fact]
    public void Epochs_and_minutes_together_are_refused()
    {
        Program.Main([.. TrainArgs(Path.Combine(dir, "x"), Path.Combine(Mini, "images")), "--minutes", "1"]).Should().NotBe(0);
    }
}
