using System.CommandLine;
using Microsoft.Extensions.Logging;

namespace MaskRcnn.Net.Cli;

/// <summary>
/// <c>maskrcnn serve --weights FILE [--port 8080] [--host 127.0.0.1] [--max-request-bytes N] [--max-concurrency N]
/// [--max-queue N] [--queue-timeout S] [--score-threshold S] ...</c>: the model over HTTP (<see cref="ServeHost"/>).
/// </summary>
internal static class ServeCommand
{
    public static Command Create()
    {
        var weights = new Option<string>("--weights") { Description = "a model saved by MaskRcnn.Net, or a torchvision state dict (with --num-classes)", Required = true };
        var host = new Option<string>("--host") { Description = "IP address to listen on (0.0.0.0 for every interface)", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port") { Description = "TCP port (0: a free one; the URL is printed)", DefaultValueFactory = _ => 8080 };
        var maxRequestBytes = new Option<long>("--max-request-bytes") { Description = "largest upload accepted (413 above)", DefaultValueFactory = _ => ServeOptions.DefaultMaxRequestBytes };
        var maxConcurrency = new Option<int>("--max-concurrency") { Description = "predictions run at once", DefaultValueFactory = _ => 2 };
        var maxQueue = new Option<int>("--max-queue") { Description = "requests that may wait for a prediction slot (503 beyond)", DefaultValueFactory = _ => 32 };
        var queueTimeout = new Option<double>("--queue-timeout") { Description = "seconds a request waits for a slot before 503", DefaultValueFactory = _ => 30 };
        var maxImagePixels = new Option<long>("--max-image-pixels") { Description = "largest decoded image, width x height (400 above)", DefaultValueFactory = _ => ServeOptions.DefaultMaxImagePixels };
        var shutdownTimeout = new Option<double>("--shutdown-timeout") { Description = "seconds a graceful shutdown waits for requests in flight", DefaultValueFactory = _ => 30 };
        var scoreThreshold = new Option<double?>("--score-threshold") { Description = "minimum detection score (default: the model's)" };
        var numClasses = new Option<int?>("--num-classes") { Description = "classes including background for a torchvision state dict (default 91)" };
        var threads = new Option<int?>("--threads") { Description = "libtorch intra-op threads" };
        var logLevel = new Option<LogLevel>("--log-level") { Description = "console log level (Debug logs every request as it arrives)", DefaultValueFactory = _ => LogLevel.Information };
        var normEps = PredictCommand.NormEpsOption();
        var suppress = PredictCommand.SuppressOption();
        var command = new Command("serve", "Serve a model over HTTP: POST /predict, GET /healthz, and a page at / to try it in a browser")
        {
            weights, host, port, maxRequestBytes, maxConcurrency, maxQueue, queueTimeout, maxImagePixels, shutdownTimeout, scoreThreshold, numClasses, threads,
            logLevel, normEps, suppress,
        };
        command.SetAction((parse, ct) =>
        {
            var options = new ServeOptions(parse.GetValue(weights)!, parse.GetValue(host)!, parse.GetValue(port), parse.GetValue(maxRequestBytes),
                parse.GetValue(maxConcurrency), parse.GetValue(maxQueue), TimeSpan.FromSeconds(parse.GetValue(queueTimeout)), parse.GetValue(maxImagePixels),
                TimeSpan.FromSeconds(parse.GetValue(shutdownTimeout)), parse.GetValue(scoreThreshold), parse.GetValue(numClasses), parse.GetValue(normEps),
                parse.GetValue(suppress), parse.GetValue(logLevel)).Validate();
            Program.SetThreads(parse.GetValue(threads));
            return ServeHost.RunAsync(options, Program.Link(ct));
        });
        return command;
    }
}
