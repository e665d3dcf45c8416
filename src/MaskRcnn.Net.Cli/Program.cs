using System.CommandLine;
using System.Runtime.InteropServices;

namespace MaskRcnn.Net.Cli;

/// <summary>Entry point of the <c>maskrcnn</c> command.</summary>
internal static class Program
{
    public static int Main(string[] args)
    {
        var root = new RootCommand("maskrcnn: Mask R-CNN for .NET (predict, train, eval, demo, serve, export)")
        {
            PredictCommand.Create(),
            TrainCommand.Create(),
            EvalCommand.Create(),
            DemoCommand.Create(),
            ServeCommand.Create(),
            ExportCommand.Create(),
        };

        // Ctrl+C / SIGTERM cancel the running command's token: training finishes its iteration and writes a checkpoint
        // (System.CommandLine's own handling is not used: it did not reach synchronous command bodies here). A second
        // Ctrl+C terminates at once.
        using var interrupt = new CancellationTokenSource();
        var stopping = InterruptMessage(args.FirstOrDefault() == "predict" && args.Contains("--video") ? "predict --video" : args.FirstOrDefault());
        // A worker of `train --nproc-per-node` shares the terminal's process group with its launcher: Ctrl+C reaches both,
        // and the launcher passes one SIGTERM on. The worker ignores SIGINT so that it does not count two signals.
        var launched = Environment.GetEnvironmentVariable(DistributedLauncher.LaunchedVariable) == "1";
        if (launched)
        {
            DistributedLauncher.StopWithLauncher();
        }

        void OnSignal(PosixSignalContext context)
        {
            if (launched && context.Signal == PosixSignal.SIGINT)
            {
                context.Cancel = true;
                return;
            }

            if (!interrupt.IsCancellationRequested)
            {
                context.Cancel = true;
                interrupt.Cancel(); // before the message: whoever reads the message may rely on the token being cancelled
                Console.Error.WriteLine($"maskrcnn: {stopping} (press Ctrl+C again to quit at once)");
            }
        }

        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
        interrupted = interrupt.Token;
        try
        {
            var configuration = new InvocationConfiguration { EnableDefaultExceptionHandler = false, ProcessTerminationTimeout = null };
            return root.Parse(args).Invoke(configuration);
        }
        catch (Exception e) when (e is IOException or TimeoutException or ArgumentException or FormatException or InvalidOperationException or UnauthorizedAccessException or NotSupportedException
                                  or Core.TorchException or Core.NN.CheckpointMismatchException or Core.Checkpoints.CheckpointException
                                  or Training.DatasetFormatException or Core.Imaging.ImageDecodeException or Training.TrainingDivergedException)
        {
            Console.Error.WriteLine($"maskrcnn: {e.Message}");
            return 1;
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine("maskrcnn: cancelled");
            return 130;
        }
    }

    private static CancellationToken interrupted;

    /// <summary>What the first Ctrl+C does, said in the command's own terms.</summary>
    internal static string InterruptMessage(string? command) => command switch
    {
        "train" or "demo" => "stopping after the current step",
        "serve" => "shutting down: finishing the requests in flight",
        "predict --video" => "stopping: finishing the output up to the current frame",
        _ => "stopping",
    };

    /// <summary>A token cancelled by the command-line's token or by Ctrl+C / SIGTERM.</summary>
    public static CancellationToken Link(CancellationToken token) =>
        token.CanBeCanceled ? CancellationTokenSource.CreateLinkedTokenSource(token, interrupted).Token : interrupted;

    /// <summary>
    /// Sets libtorch's thread count: <paramref name="threads"/>, else <c>OMP_NUM_THREADS</c> (what torchrun gives each
    /// worker), else every core (libtorch alone may start with one).
    /// </summary>
    public static void SetThreads(int? threads) =>
        Core.Torch.NumThreads = Math.Max(1, threads ?? (int.TryParse(Environment.GetEnvironmentVariable("OMP_NUM_THREADS"), System.Globalization.NumberStyles.Integer,
            System.Globalization.CultureInfo.InvariantCulture, out var omp) && omp > 0 ? omp : Environment.ProcessorCount));
}
