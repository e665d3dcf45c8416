using System.CommandLine;
using MaskRcnn.Net.Cli;

var root = new RootCommand("maskrcnn: Mask R-CNN for .NET (predict, train, eval, demo)")
{
    PredictCommand.Create(),
};

try
{
    return root.Parse(args).Invoke();
}
catch (Exception e) when (e is IOException or ArgumentException or FormatException or InvalidOperationException
                          or MaskRcnn.Net.Core.TorchException or MaskRcnn.Net.Core.NN.CheckpointMismatchException
                          or MaskRcnn.Net.Core.Checkpoints.CheckpointException)
{
    Console.Error.WriteLine($"maskrcnn: {e.Message}");
    return 1;
}
