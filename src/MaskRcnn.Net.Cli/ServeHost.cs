using System.Diagnostics;
using System.Text.Json;
using MaskRcnn.Net.Core.Imaging;
using MaskRcnn.Net.DependencyInjection;
using MaskRcnn.Net.Imaging;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
using Microsoft.Net.Http.Headers;

namespace MaskRcnn.Net.Cli;

/// <summary>
/// The HTTP server of <c>maskrcnn serve</c>: a Kestrel minimal API over one model registered with
/// <see cref="MaskRcnnServiceCollectionExtensions.AddMaskRcnn"/> (loaded before the server listens).
/// <list type="bullet">
/// <item><c>POST /predict</c>: the image as the raw body (image/jpeg, image/png, application/octet-stream, or no
/// Content-Type) or as the one file of a multipart/form-data form; answers the <c>predict</c> JSON of that image
/// (<see cref="PredictionJson"/>), or with <c>?overlay=png</c> the image with its detections drawn, as PNG.</item>
/// <item><c>GET /healthz</c>: <c>{"status":"ok","model":...,"classes":[...]}</c>.</item>
/// <item><c>GET /</c>: a page to drop an image on and see the overlay (<see cref="ServePage"/>).</item>
/// </list>
/// Every refusal is a JSON body <c>{"error": code, "message": text}</c>: 400 (no image, an undecodable or refused
/// image), 413 (upload above --max-request-bytes), 415 (another Content-Type), 503 with Retry-After (all prediction
/// slots busy and the queue full, or the wait timed out). Stopping (Ctrl+C, SIGTERM) finishes the requests in flight
/// first.
/// </summary>
internal static class ServeHost
{
    private static readonly string[] RawTypes = ["image/jpeg", "image/jpg", "image/pjpeg", "image/png", "application/octet-stream"];

    /// <summary>
    /// Loads the model, listens until <paramref name="stop"/> is cancelled, then stops gracefully and returns 0. Once
    /// it listens, prints "maskrcnn serve: listening on URL" on standard output (with --port 0, the port picked).
    /// </summary>
    public static async Task<int> RunAsync(ServeOptions options, CancellationToken stop)
    {
        options.Validate();
        var savedModel = PredictCommand.IsSavedModel(options.Weights, options.NumClasses);
        ImageCodec.MaxPixels = options.MaxImagePixels;

        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ApplicationName = "maskrcnn", ContentRootPath = AppContext.BaseDirectory });
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(c =>
        {
            c.SingleLine = true;
            c.TimestampFormat = "HH:mm:ss ";
        });
        builder.Services.Configure<ConsoleLoggerOptions>(c => c.LogToStandardErrorThreshold = LogLevel.Trace); // standard output carries the URL only
        builder.Logging.SetMinimumLevel(options.LogLevel);
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        builder.Logging.AddFilter("Microsoft.Hosting", LogLevel.Warning);

        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Limits.MaxRequestBodySize = options.MaxRequestBytes;
            k.Listen(options.Address, options.Port);
        });
        builder.Services.Configure<FormOptions>(f => f.MultipartBodyLengthLimit = options.MaxRequestBytes);
        builder.Services.Configure<HostOptions>(h => h.ShutdownTimeout = options.EffectiveShutdownTimeout);
        // The CLI's own SIGINT/SIGTERM handler (Program) cancels `stop`; the host's console lifetime is not used.
        builder.Services.AddSingleton<IHostLifetime, ExternalStopLifetime>();
        builder.Services.AddMaskRcnn(m =>
        {
            if (savedModel)
            {
                m.ModelPath = options.Weights;
                m.Configure = PredictCommand.SavedModelChanges(options.ScoreThreshold, null, options.SuppressContained);
            }
            else
            {
                m.Builder = () => PredictCommand.TorchvisionBuilder(options.Weights, options.NumClasses, options.ScoreThreshold, options.NormEps, null, options.SuppressContained);
            }

            m.LoadOnResolve = true;
        });
        builder.Services.AddSingleton(_ => new ServeGate(options.MaxConcurrency, options.MaxQueue, options.EffectiveQueueTimeout));

        await using var app = builder.Build();
        var segmenter = app.Services.GetRequiredService<IInstanceSegmenter>(); // loads the model now: a bad file fails before listening
        var gate = app.Services.GetRequiredService<ServeGate>();
        var log = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("maskrcnn.serve");
        var endpoints = new ServeEndpoints(segmenter, gate, options, log);

        app.MapGet("/", () => Results.Content(ServePage.Html, "text/html; charset=utf-8"));
        app.MapGet("/healthz", (Func<IResult>)endpoints.Health);
        app.MapPost("/predict", (Func<HttpContext, Task<IResult>>)endpoints.PredictAsync);
        app.MapFallback((HttpContext context) => ServeEndpoints.Error(StatusCodes.Status404NotFound, "not_found",
            $"no endpoint {context.Request.Method} {context.Request.Path}: use POST /predict, GET /healthz or GET /"));

        await app.StartAsync(CancellationToken.None).ConfigureAwait(false);
        var url = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault()
            ?? $"http://{options.Host}:{options.Port}";
        Console.Out.WriteLine($"maskrcnn serve: listening on {url}");
        Console.Out.Flush();
        log.LogInformation("listening on {Url}: POST /predict, GET /healthz, GET / (max {Concurrency} predictions at once, {Queue} queued, uploads up to {Bytes} bytes)",
            url, options.MaxConcurrency, options.MaxQueue, options.MaxRequestBytes);

        try
        {
            await Task.Delay(Timeout.Infinite, stop).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }

        log.LogInformation("stopping (Ctrl+C/SIGTERM): no new connections; the requests in flight finish first ({Count} predicting or queued)", gate.Pending);
        await app.StopAsync(CancellationToken.None).ConfigureAwait(false);
        log.LogInformation("stopped");
        return 0;
    }

    /// <summary>A host lifetime without signal handling: the CLI's handler stops the server.</summary>
    private sealed class ExternalStopLifetime : IHostLifetime
    {
        public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }

    /// <summary>The request handlers.</summary>
    private sealed class ServeEndpoints(IInstanceSegmenter segmenter, ServeGate gate, ServeOptions options, ILogger log)
    {
        public IResult Health() => Json(StatusCodes.Status200OK, new
        {
            status = "ok",
            model = Path.GetFileName(options.Weights),
            classes = segmenter.ClassNames.Skip(1).ToArray(),
        });

        public async Task<IResult> PredictAsync(HttpContext context)
        {
            var request = context.Request;
            var aborted = context.RequestAborted;
            var overlay = request.Query["overlay"].ToString();
            if (overlay.Length > 0 && !overlay.Equals("png", StringComparison.OrdinalIgnoreCase))
            {
                return Error(StatusCodes.Status400BadRequest, "bad_query", $"overlay={overlay}: the only overlay format is png");
            }

            log.LogDebug("POST /predict from {Remote}: {Type}, {Length} bytes announced", context.Connection.RemoteIpAddress, request.ContentType ?? "no Content-Type",
                request.ContentLength?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "unknown");
            try
            {
                if (request.ContentLength > DrainLimit)
                {
                    // Too large to read through: answer at once and close the connection (a client that sent
                    // "Expect: 100-continue" has not sent the body; another may see the connection reset).
                    context.Response.Headers.Connection = "close";
                    return TooLarge(request.ContentLength.Value);
                }

                var (upload, error) = await ReadUploadAsync(context, aborted).ConfigureAwait(false);
                if (error is not null)
                {
                    return error;
                }

                var (name, bytes) = upload;
                if (bytes.Length == 0)
                {
                    return Error(StatusCodes.Status400BadRequest, "empty_body", "the request holds no image: POST the JPEG or PNG bytes (or a multipart form with one file)");
                }

                using var slot = await gate.EnterAsync(aborted).ConfigureAwait(false);
                if (slot is null)
                {
                    log.LogWarning("POST /predict refused: {Pending} requests already running or queued", gate.Pending);
                    var busy = Error(StatusCodes.Status503ServiceUnavailable, "busy",
                        $"all {options.MaxConcurrency} prediction slots are busy and the queue ({options.MaxQueue}) is full or the wait exceeded {options.EffectiveQueueTimeout.TotalSeconds:0.#} s: retry later");
                    context.Response.Headers.RetryAfter = "1";
                    return busy;
                }

                RgbImage image;
                try
                {
                    using var decoded = ImageCodec.Decode(bytes, ImageReadMode.Rgb);
                    image = decoded.ToRgbImage();
                }
                catch (ImageDecodeException e)
                {
                    log.LogWarning("POST /predict {Name}: {Message}", name, e.Message);
                    return Error(StatusCodes.Status400BadRequest, "bad_image", e.Message);
                }

                var clock = Stopwatch.StartNew();
                ImageDetections result;
                try
                {
                    result = await segmenter.PredictAsync(ImageSource.FromImage(image), aborted).ConfigureAwait(false);
                }
                catch (ArgumentException e)
                {
                    log.LogWarning("POST /predict {Name}: image refused: {Message}", name, e.Message);
                    return Error(StatusCodes.Status400BadRequest, "image_refused", e.Message);
                }

                var seconds = clock.Elapsed.TotalSeconds;
                log.LogInformation("POST /predict {Name} {Width}x{Height}: {Count} detections in {Seconds:0.000} s", name, result.Width, result.Height, result.Detections.Count, seconds);
                if (overlay.Length > 0)
                {
                    using var drawn = DetectionPainter.Draw(image, result).ToTensor();
                    context.Response.Headers["X-Detections"] = result.Detections.Count.ToString(System.Globalization.CultureInfo.InvariantCulture);
                    return Results.Bytes(ImageCodec.EncodePng(drawn), "image/png");
                }

                return Json(StatusCodes.Status200OK, PredictionJson.Result(name, result, seconds));
            }
            catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
            {
                return TooLarge(null);
            }
            catch (BadHttpRequestException e)
            {
                log.LogWarning("POST /predict: bad request: {Message}", e.Message);
                return Error(e.StatusCode, "bad_request", e.Message);
            }
            catch (InvalidDataException e)
            {
                // The form reader's refusals: a malformed multipart body, or one above its limits.
                log.LogWarning("POST /predict: bad multipart body: {Message}", e.Message);
                return Error(StatusCodes.Status400BadRequest, "bad_multipart", e.Message);
            }
            catch (Exception e) when (aborted.IsCancellationRequested && e is OperationCanceledException or IOException)
            {
                // The upload or the prediction stopped (RequestAborted cancels PredictAsync between stages).
                log.LogInformation("POST /predict: the client went away; its request was dropped");
                return Results.Empty;
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // Never take the server down: log it, answer 500, go on serving.
                log.LogError(e, "POST /predict failed");
                return Error(StatusCodes.Status500InternalServerError, "internal", $"{e.GetType().Name}: {e.Message}");
            }
        }

        /// <summary>
        /// An upload above the limit but at most this large is read through (and dropped) before the 413 answer, so
        /// that a client still sending its body (a browser's fetch) receives the answer rather than a reset connection.
        /// </summary>
        private long DrainLimit => options.MaxRequestBytes * 5;

        private IResult TooLarge(long? length)
        {
            var message = length is { } n
                ? $"the upload is {n} bytes; the limit is {options.MaxRequestBytes} bytes (--max-request-bytes)"
                : $"the upload exceeds the limit of {options.MaxRequestBytes} bytes (--max-request-bytes)";
            log.LogWarning("POST /predict refused: {Message}", message);
            return Error(StatusCodes.Status413PayloadTooLarge, "too_large", message);
        }

        /// <summary>
        /// The body, at most --max-request-bytes of it: null (with the bytes seen) when it is larger. This endpoint
        /// enforces the limit itself instead of Kestrel, reading on past it up to <see cref="DrainLimit"/>.
        /// </summary>
        private async Task<(byte[]? Bytes, long Seen, bool Complete)> ReadBodyAsync(HttpContext context, CancellationToken aborted)
        {
            if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size)
            {
                size.MaxRequestBodySize = null;
            }

            var limit = options.MaxRequestBytes;
            using var buffer = new MemoryStream(context.Request.ContentLength is { } n and > 0 ? (int)Math.Min(n, limit) : 0);
            var chunk = System.Buffers.ArrayPool<byte>.Shared.Rent(81920);
            long seen = 0;
            try
            {
                int read;
                while ((read = await context.Request.Body.ReadAsync(chunk, aborted).ConfigureAwait(false)) > 0)
                {
                    seen += read;
                    if (seen <= limit)
                    {
                        buffer.Write(chunk, 0, read);
                    }
                    else if (seen > DrainLimit)
                    {
                        return (null, seen, false);
                    }
                }
            }
            finally
            {
                System.Buffers.ArrayPool<byte>.Shared.Return(chunk);
            }

            return seen > limit ? (null, seen, true) : (buffer.ToArray(), seen, true);
        }

        /// <summary>The upload's name and bytes, or the error response that refuses it.</summary>
        private async Task<((string Name, byte[] Bytes) Upload, IResult? Error)> ReadUploadAsync(HttpContext context, CancellationToken aborted)
        {
            var request = context.Request;
            var contentType = request.ContentType;
            var raw = string.IsNullOrWhiteSpace(contentType) || IsRawType(contentType);
            if (!raw && (!MediaTypeHeaderValue.TryParse(contentType, out var media) ||
                         !media.MediaType.Equals("multipart/form-data", StringComparison.OrdinalIgnoreCase)))
            {
                return (default, Unsupported(contentType!));
            }

            var (bytes, seen, complete) = await ReadBodyAsync(context, aborted).ConfigureAwait(false);
            if (bytes is null)
            {
                if (!complete)
                {
                    context.Response.Headers.Connection = "close";
                }

                return (default, TooLarge(complete ? seen : null));
            }

            if (raw)
            {
                return (("upload", bytes), null);
            }

            // The form is parsed from the bytes read within the limit.
            request.Body = new MemoryStream(bytes, writable: false);
            var form = await request.ReadFormAsync(aborted).ConfigureAwait(false);
            if (form.Files.Count != 1)
            {
                return (default, Error(StatusCodes.Status400BadRequest, "bad_form", $"the multipart form holds {form.Files.Count} files; send exactly one image file"));
            }

            var file = form.Files[0];
            if (!string.IsNullOrWhiteSpace(file.ContentType) && !IsRawType(file.ContentType))
            {
                return (default, Unsupported(file.ContentType));
            }

            using var content = new MemoryStream((int)file.Length);
            await file.CopyToAsync(content, aborted).ConfigureAwait(false);
            var fileName = string.IsNullOrWhiteSpace(file.FileName) ? "upload" : Path.GetFileName(file.FileName);
            return ((fileName, content.ToArray()), null);
        }

        private static bool IsRawType(string contentType) =>
            MediaTypeHeaderValue.TryParse(contentType, out var media) && RawTypes.Contains(media.MediaType.Value, StringComparer.OrdinalIgnoreCase);

        private IResult Unsupported(string contentType)
        {
            log.LogWarning("POST /predict refused: Content-Type {Type}", contentType);
            return Error(StatusCodes.Status415UnsupportedMediaType, "unsupported_media_type",
                $"Content-Type {contentType} is not accepted: send the image bytes as image/jpeg, image/png or application/octet-stream, or multipart/form-data with one file");
        }

        public static IResult Error(int status, string code, string message) => Json(status, new { error = code, message });

        private static IResult Json(int status, object body) =>
            Results.Text(JsonSerializer.Serialize(body, PredictionJson.Options), "application/json; charset=utf-8", System.Text.Encoding.UTF8, status);
    }
}
