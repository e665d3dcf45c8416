using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using MaskRcnn.Net.Backbones;
using MaskRcnn.Net.Tests;

namespace MaskRcnn.Net.Cli.Tests;

/// <summary>Seeded random models saved once for the serve tests (score threshold 0, so they detect on any image).</summary>
public sealed class ServeModels : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("mr_serve_").FullName;

    public ServeModels()
    {
        Detector = Path.Combine(dir, "detector.safetensors");
        using (var model = Small().WithDetectionsPerImage(10).Build())
        {
            model.Save(Detector);
        }

        Painter = Path.Combine(dir, "painter.safetensors");
        using (var model = Small().WithDetectionsPerImage(1).WithMaskThreshold(0.0).Build())
        {
            model.Save(Painter);
        }
    }

    /// <summary>Up to 10 detections with masks per image.</summary>
    public string Detector { get; }

    /// <summary>
    /// One detection per image whose mask is its whole box (mask threshold 0: every pasted probability inside the box
    /// is above it, none outside), so the overlay's mask region is known exactly.
    /// </summary>
    public string Painter { get; }

    /// <summary>A scratch folder removed with the fixture.</summary>
    public string Dir => dir;

    private static MaskRcnnBuilder Small() => new MaskRcnnBuilder().WithBackbone(18, NormKind.FrozenBatchNorm)
        .WithClasses("tumor", "other").WithImageSize(128, 160).WithScoreThreshold(0.0).WithSeed(3);

    public void Dispose() => Directory.Delete(dir, true);
}

/// <summary>
/// <c>maskrcnn serve</c> over real HTTP on loopback: health, the predict JSON equal to <c>maskrcnn predict --json</c>,
/// concurrent requests, refusals (400/413/415) after which it keeps serving, and a graceful stop on SIGTERM.
/// </summary>
[Collection("cli")]
public sealed class ServeCommandTests(ServeModels models) : IClassFixture<ServeModels>
{
    private static string ValImage(int i) => Directory.GetFiles(RepoPaths.Get("data", "brain-tumor", "val", "images"), "*.jpg").Order(StringComparer.Ordinal).ElementAt(i);

    private static ByteArrayContent Jpeg(byte[] bytes, string type = "image/jpeg")
    {
        var content = new ByteArrayContent(bytes);
        content.Headers.ContentType = new MediaTypeHeaderValue(type);
        return content;
    }

    private static async Task<JsonElement> JsonOf(HttpResponseMessage response, HttpStatusCode expected)
    {
        var text = await response.Content.ReadAsStringAsync();
        response.StatusCode.Should().Be(expected, text);
        response.Content.Headers.ContentType?.MediaType.Should().Be("application/json", text);
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    [Fact]
    public async Task Healthz_and_predict_answer_the_predict_commands_json_for_a_raw_or_multipart_upload_and_the_overlay_png()
    {
        var image = ValImage(0);
        var expectedJson = Path.Combine(models.Dir, "expected.json");
        Program.Main(["predict", "--weights", models.Detector, "--threads", "1", "--json", expectedJson, image]).Should().Be(0);
        var expected = JsonDocument.Parse(File.ReadAllText(expectedJson)).RootElement.GetProperty("results")[0].Clone();
        expected.GetProperty("detections").GetArrayLength().Should().BeGreaterThan(0, "a random model at score threshold 0 detects something: the comparison is not of two empty lists");

        await using var server = await ServeProcess.StartAsync(models.Detector);
        var health = await JsonOf(await server.Client.GetAsync("/healthz"), HttpStatusCode.OK);
        health.GetProperty("status").GetString().Should().Be("ok");
        health.GetProperty("model").GetString().Should().Be("detector.safetensors");
        health.GetProperty("classes").EnumerateArray().Select(c => c.GetString()).Should().Equal("tumor", "other");

        var bytes = await File.ReadAllBytesAsync(image);
        var raw = await JsonOf(await server.Client.PostAsync("/predict", Jpeg(bytes)), HttpStatusCode.OK);
        raw.GetProperty("width").GetInt32().Should().Be(expected.GetProperty("width").GetInt32());
        raw.GetProperty("height").GetInt32().Should().Be(expected.GetProperty("height").GetInt32());
        raw.GetProperty("seconds").GetDouble().Should().BePositive();
        raw.GetProperty("detections").GetRawText().Should().Be(expected.GetProperty("detections").GetRawText(),
            "the same weights on the same file give the same labels, scores, boxes and RLE masks over HTTP as from the predict command");

        using var form = new MultipartFormDataContent { { Jpeg(bytes), "file", Path.GetFileName(image) } };
        var multipart = await JsonOf(await server.Client.PostAsync("/predict", form), HttpStatusCode.OK);
        multipart.GetProperty("image").GetString().Should().Be(Path.GetFileName(image));
        multipart.GetProperty("detections").GetRawText().Should().Be(expected.GetProperty("detections").GetRawText());

        using var overlay = await server.Client.PostAsync("/predict?overlay=png", Jpeg(bytes, "application/octet-stream"));
        overlay.StatusCode.Should().Be(HttpStatusCode.OK);
        overlay.Content.Headers.ContentType!.MediaType.Should().Be("image/png");
        overlay.Headers.GetValues("X-Detections").Single().Should().Be(expected.GetProperty("detections").GetArrayLength().ToString(System.Globalization.CultureInfo.InvariantCulture));
        using (var png = Core.Imaging.ImageCodec.Decode(await overlay.Content.ReadAsByteArrayAsync()))
        {
            png.Shape.Should().Equal(3, expected.GetProperty("height").GetInt32(), expected.GetProperty("width").GetInt32());
        }

        var page = await server.Client.GetStringAsync("/");
        page.Should().Contain("<input type=\"file\"").And.Contain("predict?overlay=png");
    }

    [Fact]
    public async Task Concurrent_requests_all_succeed_with_equal_results()
    {
        await using var server = await ServeProcess.StartAsync(models.Detector, "--max-concurrency", "2", "--max-queue", "8");
        var images = new[] { ValImage(1), ValImage(2) };
        var bytes = images.Select(File.ReadAllBytes).ToArray();
        var responses = await Task.WhenAll(Enumerable.Range(0, 8).Select(async i =>
        {
            using var response = await server.Client.PostAsync("/predict", Jpeg(bytes[i % 2]));
            return (Index: i % 2, Json: await JsonOf(response, HttpStatusCode.OK));
        }));

        foreach (var group in responses.GroupBy(r => r.Index))
        {
            var detections = group.Select(r => r.Json.GetProperty("detections").GetRawText()).ToList();
            detections.Should().HaveCount(4).And.OnlyContain(d => d == detections[0], "one model, one image: every concurrent answer is the same");
            group.First().Json.GetProperty("detections").GetArrayLength().Should().BeGreaterThan(0);
        }

        responses.Where(r => r.Index == 0).First().Json.GetProperty("detections").GetRawText()
            .Should().NotBe(responses.Where(r => r.Index == 1).First().Json.GetProperty("detections").GetRawText(), "two different images were sent");
    }

    [Fact]
    public async Task Bad_requests_get_a_json_error_naming_the_problem_and_the_server_keeps_serving()
    {
        const int Limit = 64 * 1024;
        await using var server = await ServeProcess.StartAsync(models.Detector, "--max-request-bytes", Limit.ToString(System.Globalization.CultureInfo.InvariantCulture));
        var good = await File.ReadAllBytesAsync(ValImage(3));
        good.Length.Should().BeLessThan(Limit, "the good image fits the limit");

        var corrupt = good.Take(300).ToArray();
        var bad = await JsonOf(await server.Client.PostAsync("/predict", Jpeg(corrupt)), HttpStatusCode.BadRequest);
        bad.GetProperty("error").GetString().Should().Be("bad_image");
        bad.GetProperty("message").GetString().Should().Contain("cannot decode image");
        (await JsonOf(await server.Client.PostAsync("/predict", Jpeg(good)), HttpStatusCode.OK)).GetProperty("detections").GetArrayLength().Should().BeGreaterThan(0,
            "the next good request after a corrupt one is served");

        var noise = new byte[3 * Limit];
        new Random(1).NextBytes(noise);
        var tooLarge = await JsonOf(await server.Client.PostAsync("/predict", Jpeg(noise)), HttpStatusCode.RequestEntityTooLarge);
        tooLarge.GetProperty("error").GetString().Should().Be("too_large");
        tooLarge.GetProperty("message").GetString().Should().Contain(Limit.ToString(System.Globalization.CultureInfo.InvariantCulture))
            .And.Contain(noise.Length.ToString(System.Globalization.CultureInfo.InvariantCulture));

        // Far above the limit: refused from the Content-Length alone, before the body is sent (Expect: 100-continue).
        var huge = new byte[20 * Limit];
        using (var patient = new HttpClient(new SocketsHttpHandler { Expect100ContinueTimeout = ServeProcess.HangGuard }) { BaseAddress = new Uri(server.Url) })
        using (var request = new HttpRequestMessage(HttpMethod.Post, "/predict") { Content = Jpeg(huge) })
        {
            request.Headers.ExpectContinue = true;
            (await JsonOf(await patient.SendAsync(request), HttpStatusCode.RequestEntityTooLarge)).GetProperty("message").GetString()
                .Should().Contain(huge.Length.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        // A multipart form above the limit.
        using (var bigForm = new MultipartFormDataContent { { Jpeg(noise), "file", "noise.jpg" } })
        {
            (await JsonOf(await server.Client.PostAsync("/predict", bigForm), HttpStatusCode.RequestEntityTooLarge)).GetProperty("error").GetString().Should().Be("too_large");
        }

        // Without Content-Length (chunked), Kestrel's body limit stops the read.
        var chunked = new StreamContent(new MemoryStream(noise));
        chunked.Headers.ContentType = new MediaTypeHeaderValue("image/png");
        using (var request = new HttpRequestMessage(HttpMethod.Post, "/predict") { Content = chunked })
        {
            request.Headers.TransferEncodingChunked = true;
            (await JsonOf(await server.Client.SendAsync(request), HttpStatusCode.RequestEntityTooLarge)).GetProperty("error").GetString().Should().Be("too_large");
        }

        var text = await JsonOf(await server.Client.PostAsync("/predict", new StringContent("hello")), HttpStatusCode.UnsupportedMediaType);
        text.GetProperty("error").GetString().Should().Be("unsupported_media_type");
        text.GetProperty("message").GetString().Should().Contain("text/plain");

        var empty = await JsonOf(await server.Client.PostAsync("/predict", Jpeg([])), HttpStatusCode.BadRequest);
        empty.GetProperty("error").GetString().Should().Be("empty_body");

        using var twoFiles = new MultipartFormDataContent { { Jpeg(good), "a", "a.jpg" }, { Jpeg(good), "b", "b.jpg" } };
        (await JsonOf(await server.Client.PostAsync("/predict", twoFiles), HttpStatusCode.BadRequest)).GetProperty("message").GetString().Should().Contain("2 files");
        (await JsonOf(await server.Client.PostAsync("/predict?overlay=gif", Jpeg(good)), HttpStatusCode.BadRequest)).GetProperty("error").GetString().Should().Be("bad_query");
        (await JsonOf(await server.Client.GetAsync("/nothing-here"), HttpStatusCode.NotFound)).GetProperty("error").GetString().Should().Be("not_found");

        (await JsonOf(await server.Client.PostAsync("/predict", Jpeg(good)), HttpStatusCode.OK)).GetProperty("detections").GetArrayLength().Should().BeGreaterThan(0,
            "after every refusal the server still serves");
        (await JsonOf(await server.Client.GetAsync("/healthz"), HttpStatusCode.OK)).GetProperty("status").GetString().Should().Be("ok");
    }

    /// <summary>
    /// The request is made certainly in flight when the signal arrives: its body is sent in two halves, and the second
    /// half only after the server has logged (at Debug) that it started on the request and then that it is stopping.
    /// </summary>
    [Fact]
    public async Task Sigterm_lets_the_request_in_flight_finish_and_exits_0()
    {
        await using var server = await ServeProcess.StartAsync(models.Detector, "--log-level", "Debug");
        var bytes = await File.ReadAllBytesAsync(ValImage(4));
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var content = new TwoPartContent(bytes, release.Task);
        content.Headers.ContentType = new MediaTypeHeaderValue("image/jpeg");
        var pending = server.Client.PostAsync("/predict", content);

        (await server.WaitForLogAsync("POST /predict from")).Should().BeTrue($"the server starts on the request; log:\n{server.Log}");
        server.Signal("TERM");
        (await server.WaitForLogAsync("stopping (Ctrl+C/SIGTERM)"))
            .Should().BeTrue($"the server acknowledges SIGTERM; log:\n{server.Log}");
        release.SetResult();

        var json = await JsonOf(await pending, HttpStatusCode.OK);
        json.GetProperty("detections").GetArrayLength().Should().BeGreaterThan(0, "the request in flight was answered in full");
        var exit = await server.WaitForExitAsync();
        exit.Should().Be(0, $"a graceful stop exits 0; log:\n{server.Log}");
        server.Log.Should().Contain("stopped")
            .And.Contain("maskrcnn: shutting down: finishing the requests in flight", "the first signal is explained in serve's terms")
            .And.NotContain("after the current step", "serve has no training steps");
    }

    [Fact]
    public void A_missing_weights_file_or_a_bad_option_exits_1_before_listening()
    {
        Program.Main(["serve", "--weights", Path.Combine(models.Dir, "missing.safetensors"), "--port", "0"]).Should().Be(1);
        Program.Main(["serve", "--weights", models.Detector, "--port", "70000"]).Should().Be(1);
        Program.Main(["serve", "--weights", models.Detector, "--host", "not-an-address"]).Should().Be(1);
        Program.Main(["serve", "--weights", models.Detector, "--max-concurrency", "0"]).Should().Be(1);
    }

    [Fact]
    public void Options_validate_themselves_naming_the_option()
    {
        var ok = new ServeOptions("w.safetensors");
        ok.Validate().Should().BeSameAs(ok);
        ((Action)(() => (ok with { Port = -1 }).Validate())).Should().Throw<ArgumentException>().WithMessage("--port -1*");
        ((Action)(() => (ok with { MaxRequestBytes = 10 }).Validate())).Should().Throw<ArgumentException>().WithMessage("--max-request-bytes 10*");
        ((Action)(() => (ok with { MaxQueue = -1 }).Validate())).Should().Throw<ArgumentException>().WithMessage("--max-queue -1*");
        ((Action)(() => (ok with { QueueTimeout = TimeSpan.Zero }).Validate())).Should().Throw<ArgumentException>().WithMessage("--queue-timeout 0*");
        ((Action)(() => (ok with { ScoreThreshold = 1.5 }).Validate())).Should().Throw<ArgumentException>().WithMessage("--score-threshold 1.5*");
        ((Action)(() => (ok with { SuppressContained = "2" }).Validate())).Should().Throw<ArgumentException>().WithMessage("--suppress-contained 2*");
        (ok with { Host = "localhost" }).Address.Should().Be(IPAddress.Loopback);
    }

    [Fact]
    public async Task The_gate_runs_at_most_its_slots_queues_the_next_and_refuses_beyond_the_queue()
    {
        using var gate = new ServeGate(maxConcurrency: 2, maxQueue: 1, queueTimeout: TimeSpan.FromMinutes(5));
        var first = await gate.EnterAsync(CancellationToken.None);
        var second = await gate.EnterAsync(CancellationToken.None);
        first.Should().NotBeNull();
        second.Should().NotBeNull();
        var queued = gate.EnterAsync(CancellationToken.None);
        queued.IsCompleted.Should().BeFalse("both slots are taken: the third waits");
        (await gate.EnterAsync(CancellationToken.None)).Should().BeNull("2 running + 1 queued fill the gate: the fourth is refused at once");
        gate.Pending.Should().Be(3);

        first!.Dispose();
        first.Dispose(); // a second release is ignored
        var third = await queued;
        third.Should().NotBeNull("a released slot goes to the queued request");
        gate.Pending.Should().Be(2);

        using var cancel = new CancellationTokenSource();
        var waiting = gate.EnterAsync(cancel.Token);
        cancel.Cancel();
        await ((Func<Task>)(() => waiting)).Should().ThrowAsync<OperationCanceledException>();
        gate.Pending.Should().Be(2, "a cancelled wait leaves the queue");

        using var shortWait = new ServeGate(1, 1, TimeSpan.FromMilliseconds(1));
        using var held = await shortWait.EnterAsync(CancellationToken.None);
        (await shortWait.EnterAsync(CancellationToken.None)).Should().BeNull("the slot is held past the queue timeout");
        shortWait.Pending.Should().Be(1);
        second!.Dispose();
        third!.Dispose();
        gate.Pending.Should().Be(0);
    }

    /// <summary>Request content that sends the first half of its bytes, then the rest once <c>release</c> completes.</summary>
    private sealed class TwoPartContent(byte[] bytes, Task release) : HttpContent
    {
        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
        {
            var half = bytes.Length / 2;
            await stream.WriteAsync(bytes.AsMemory(0, half));
            await stream.FlushAsync();
            await release;
            await stream.WriteAsync(bytes.AsMemory(half));
        }

        protected override bool TryComputeLength(out long length)
        {
            length = bytes.Length;
            return true;
        }
    }
}
