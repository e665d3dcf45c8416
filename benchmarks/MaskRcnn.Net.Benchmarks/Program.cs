using BenchmarkDotNet.Running;

namespace MaskRcnn.Net.Benchmarks;

/// <summary>
/// Entry point: <c>dotnet run -c Release --project benchmarks/MaskRcnn.Net.Benchmarks -- --filter '*'</c> runs the
/// BenchmarkDotNet benchmarks; <c>-- soak [options]</c> and <c>-- rss [options]</c> run the prediction soak / RSS
/// checks of <see cref="Soak"/> (see benchmarks/soak.sh); <c>-- train-step</c> times a training iteration for
/// benchmarks/compare_training.sh; <c>-- serve-load</c> loads a running <c>maskrcnn serve</c> (benchmarks/serve_load.sh).
/// </summary>
public static class Program
{
    /// <summary>Runs the mode or the benchmarks selected on the command line.</summary>
    public static int Main(string[] args)
    {
        if (args.Length > 0 && args[0] == "train-step")
        {
            return TrainingStepComparison.Run(args[1..]);
        }

        if (args.Length > 0 && args[0] == "serve-load")
        {
            return ServeLoad.Run(args[1..]);
        }

        if (args.Length > 0 && args[0] is "soak" or "rss")
        {
            return Soak.Run(args[0], args[1..]);
        }

        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
        return 0;
    }
}
