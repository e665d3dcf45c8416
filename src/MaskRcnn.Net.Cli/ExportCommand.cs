using System.CommandLine;
using MaskRcnn.Net.Export;

namespace MaskRcnn.Net.Cli;

/// <summary>
/// <c>maskrcnn export --weights FILE [--num-classes 91] [--score-threshold S] [--norm-eps E]
/// [--suppress-contained F|off] [--opset 17] --onnx OUT.onnx</c>: writes the model (loaded as <c>predict</c> loads it)
/// as one ONNX graph for ONNX Runtime.
/// </summary>
internal static class ExportCommand
{
    public static Command Create()
    {
        var weights = new Option<string>("--weights") { Description = "torchvision maskrcnn_resnet50_fpn state dict (.pth, .safetensors) or a model saved by MaskRcnn.Net", Required = true };
        var numClasses = new Option<int?>("--num-classes") { Description = "classes including background for a torchvision state dict (default 91)" };
        var scoreThreshold = new Option<double?>("--score-threshold") { Description = "minimum detection score baked into the graph (default: the model's; 0.05 for a torchvision state dict)" };
        var onnx = new Option<string>("--onnx") { Description = "output ONNX file", Required = true };
        var opset = new Option<int>("--opset") { Description = "ONNX opset of the default domain (17)", DefaultValueFactory = _ => 17 };
        var normEps = PredictCommand.NormEpsOption();
        var suppress = PredictCommand.SuppressOption();
        var command = new Command("export", "Export a model to ONNX (runs on ONNX Runtime without libtorch)")
        {
            weights, numClasses, scoreThreshold, onnx, opset, normEps, suppress,
        };
        command.SetAction(parse => Run(parse.GetValue(weights)!, parse.GetValue(numClasses), parse.GetValue(scoreThreshold),
            parse.GetValue(onnx)!, parse.GetValue(opset), parse.GetValue(normEps), parse.GetValue(suppress)));
        return command;
    }

    private static int Run(string weights, int? numClasses, double? scoreThreshold, string onnxPath, int opset, double normEps, string? suppress)
    {
        var options = new OnnxExportOptions(opset);
        options.Validate();
        using var model = PredictCommand.LoadModel(weights, numClasses, scoreThreshold, normEps, suppressContained: suppress);
        try
        {
            model.ExportOnnx(onnxPath, options);
        }
        catch (NotSupportedException e)
        {
            Console.Error.WriteLine($"maskrcnn: {e.Message}");
            return 1;
        }

        Console.Error.WriteLine($"{onnxPath}: {new FileInfo(onnxPath).Length / (1024.0 * 1024.0):0.0} MiB, opset {opset}, {model.ClassNames.Count} classes");
        return 0;
    }
}
