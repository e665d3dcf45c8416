using MaskRcnn.Net.Backbones;
using MaskRcnn.Net.Core;
using MaskRcnn.Net.Core.Imaging;
using MaskRcnn.Net.Core.Tests.TestSupport;
using MaskRcnn.Net.Tests;
using Xunit.Abstractions;

namespace MaskRcnn.Net.Onnx.Tests;

/// <summary>
/// <c>MaskRcnnModel.Predict</c> now ends in the shared array code (<see cref="DetectionPostprocessing"/>, the ONNX
/// Runtime path's too); before, it pasted with the tensor <c>MaskPaster</c> and thresholded the tensor. On real outputs
/// — torchvision-format weights (seeded as the parity tests seed them) on real MRI slices — both must give the same
/// detections: labels, names, scores and boxes bit for bit, and the same mask pixels wherever the tensor paste's
/// probability is not within 1e-5 of the threshold (the two bilinear implementations round differently in the last
/// bits; MaskPastingTests bounds the difference at 1e-5).
/// </summary>
public sealed class SharedPostprocessingTests : IClassFixture<SharedPostprocessingTests.Weights>
{
    private const float Ambiguity = 1e-5f;
    private readonly Weights weights;
    private readonly ITestOutputHelper output;

    public SharedPostprocessingTests(Weights weights, ITestOutputHelper output) => (this.weights, this.output) = (weights, output);

    /// <summary>torchvision's maskrcnn_resnet50_fpn, seeded, with the mask logits scaled so that masks are sharp.</summary>
    public sealed class Weights : IDisposable
    {
        public Weights()
        {
            Dir = Directory.CreateTempSubdirectory("mr_shared_post_").FullName;
            PythonOracle.Run("""
                import sys, os, torch
                from torchvision.models.detection import maskrcnn_resnet50_fpn
                torch.manual_seed(0)
                m = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91)
                with torch.no_grad():
                    for mod in m.modules():
                        if isinstance(mod, torch.nn.BatchNorm2d):
                            mod.running_mean.normal_(0, 0.1); mod.running_var.uniform_(0.5, 1.5)
                            mod.weight.uniform_(0.5, 1.5); mod.bias.normal_(0, 0.1)
                    m.roi_heads.box_predictor.cls_score.weight.mul_(40)
                    m.roi_heads.box_predictor.cls_score.bias.normal_(0, 2)
                    m.roi_heads.mask_predictor.mask_fcn_logits.weight.mul_(10)
                torch.save(m.state_dict(), os.path.join(sys.argv[1], 'maskrcnn.pth'))
                """, Dir);
        }

        public string Dir { get; }

        public string Path => System.IO.Path.Combine(Dir, "maskrcnn.pth");

        public void Dispose() => Directory.Delete(Dir, recursive: true);
    }

    [Fact]
    public void Predict_through_the_array_code_equals_the_tensor_paste_and_threshold()
    {
        using var model = new MaskRcnnBuilder().WithBackbone(50, NormKind.BatchNorm, trainableLayers: 5).WithWeights(weights.Path).Build();
        var threshold = (float)model.Config.MaskThreshold;
        var total = 0;
        foreach (var i in new[] { 0, 1 })
        {
            var path = RepoPaths.MriImage(i);
            var arrays = model.Predict(path);

            using var scope = Torch.NewDisposeScope();
            using var inference = Torch.InferenceMode();
            using var u8 = ImageCodec.Decode(path, ImageReadMode.Rgb);
            var input = u8.To(DType.Float32) / 255.0;
            var tensors = model.Detect([input])[0];
            var labels = tensors.Labels.ToArray<long>();
            var scores = tensors.Scores.ToArray<float>();
            var boxes = tensors.Boxes.ToArray<float>();
            var (height, width) = ((int)u8.Size(1), (int)u8.Size(2));
            var probabilities = tensors.Masks!.ToArray<float>();

            (arrays.Width, arrays.Height).Should().Be((width, height));
            arrays.Detections.Should().HaveCount(labels.Length, $"image {i}: the same detections");
            long ambiguous = 0, ambiguousDiffering = 0, compared = 0;
            for (var d = 0; d < labels.Length; d++)
            {
                var det = arrays.Detections[d];
                det.Label.Should().Be((int)labels[d]);
                det.ClassName.Should().Be(model.Config.ClassName((int)labels[d]));
                det.Score.Should().Be(scores[d], "scores pass through untouched");
                det.Box.Should().Be(new Core.Detection.BoundingBox(boxes[4 * d], boxes[4 * d + 1], boxes[4 * d + 2], boxes[4 * d + 3]),
                    "boxes are rescaled by the same tensor code in both paths");
                var mask = det.Mask!;
                (mask.Width, mask.Height).Should().Be((width, height));
                var bits = mask.ToBytes();
                var offset = (long)d * width * height;
                for (var p = 0; p < bits.Length; p++)
                {
                    var probability = probabilities[offset + p];
                    if (Math.Abs(probability - threshold) <= Ambiguity)
                    {
                        ambiguous++;
                        ambiguousDiffering += bits[p] != (probability > threshold ? 1 : 0) ? 1 : 0;
                        continue;
                    }

                    compared++;
                    if (bits[p] != (probability > threshold ? 1 : 0))
                    {
                        throw new Xunit.Sdk.XunitException(
                            $"image {i} detection {d} pixel ({p % width}, {p / width}): array mask {bits[p]}, tensor probability {probability}");
                    }
                }
            }

            output.WriteLine($"image {i}: {labels.Length} detections, {compared} mask pixels equal, {ambiguous} within {Ambiguity} of the threshold (not compared; {ambiguousDiffering} of them differ)");
            total += labels.Length;
        }

        total.Should().BeGreaterThan(0, "the seeded model must produce detections for the comparison to mean something");
    }
}
