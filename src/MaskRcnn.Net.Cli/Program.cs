using System.CommandLine;

namespace MaskRcnn.Net.Cli;

/// <summary>Entry point of the <c>maskrcnn</c> command.</summary>
internal static class Program
{
    public static int Main(string[] args)
    {
        var root = new RootCommand("maskrcnn: Mask R-CNN for .NET (predict, train, eval, demo)")
        {
            PredictCommand.Create(),
            TrainCommand.Create(),
            EvalCommand.Create(),
            DemoCommand.Create(),
        };

        try
        {
            return root.Parse(args).Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (Exception e) when (e is IOException or ArgumentException or FormatException or InvalidOperationException or UnauthorizedAccessException
                                  or Core.TorchException or Core.NN.CheckpointMismatchException or Core.Checkpoints.CheckpointException
                                  or Training.DatasetFormatException or Core.Imaging.ImageDecodeException)
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

    /// <summary>Sets libtorch's thread count (default: every core; libtorch alone may start with one).</summary>
    public static void SetThreads(int? threads) => Core.Torch.NumThreads = Math.Max(1, threads ?? Environment.ProcessorCount);
}
