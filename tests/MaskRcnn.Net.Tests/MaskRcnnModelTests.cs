using MaskRcnn.Net.Backbones;
using MaskRcnn.Net.Core.Checkpoints;
using MaskRcnn.Net.Core.NN;
using MaskRcnn.Net.Core.Structures;
using MaskRcnn.Net.Heads;

namespace MaskRcnn.Net.Tests;

/// <summary>Builder, replaceable stages, save/load, concurrency and bad input on a small (ResNet-18, 128 px) model.</summary>
public class MaskRcnnModelTests
{
    /// <summary>A custom mask head: one 3×3 conv + ReLU. Plugged in through the builder below.</summary>
    private sealed class TinyMaskHead : Module, IMaskHead
    {
        private readonly Conv2d conv;

        public TinyMaskHead(int inChannels, int outChannels)
        {
            conv = RegisterModule("conv", new Conv2d(inChannels, outChannels, 3, padding: 1));
            OutChannels = outChannels;
        }

        public int OutChannels { get; }

        public Tensor Forward(Tensor pooled) => conv.Forward(pooled).ReluInPlace();
    }

    private static MaskRcnnBuilder Small() => new MaskRcnnBuilder()
        .WithBackbone(18, NormKind.FrozenBatchNorm)
        .WithClasses("tumor", "other")
        .WithImageSize(128, 160)
        .WithScoreThreshold(0.0);

    [Fact]
    public void Custom_mask_head_unit_tests_alone_and_plugs_into_the_model()
    {
        // Alone: a [K, 256, 14, 14] pooled input gives [K, 8, 14, 14] non-negative features.
        using (var head = new TinyMaskHead(256, 8))
        using (var scope = Torch.NewDisposeScope())
        {
            var y = head.Forward(Tensor.Randn([5, 256, 14, 14]));
            y.Shape.Should().Equal(5, 8, 14, 14);
            y.Min().ItemDouble().Should().BeGreaterThanOrEqualTo(0);
        }

        // In the model: its parameters appear under roi_heads.mask_head and predictions use it.
        using var model = Small().WithMaskHead(c => new TinyMaskHead(c, 8)).Build();
        model.RoIHeads.MaskHead.Should().BeOfType<TinyMaskHead>();
        model.StateDict().Select(kv => kv.Key).Should().Contain("roi_heads.mask_head.conv.weight")
            .And.Contain("roi_heads.mask_predictor.conv5_mask.weight");
        model.RoIHeads.MaskPredictor!.NumClasses.Should().Be(3);
        var result = model.Predict(RepoPaths.MriImage(0));
        result.Detections.Should().OnlyContain(d => d.Mask != null && d.Mask.Width == result.Width);
    }

    [Fact]
    public void State_dict_keys_follow_torchvision_maskrcnn_layout()
    {
        using var model = new MaskRcnnBuilder().Build();
        var keys = model.StateDict().Select(kv => kv.Key).ToList();
        keys.Should().Contain(["backbone.body.conv1.weight", "backbone.body.layer4.2.bn3.running_var", "backbone.fpn.inner_blocks.3.0.weight",
            "backbone.fpn.layer_blocks.0.0.bias", "rpn.head.conv.0.0.weight", "rpn.head.cls_logits.weight", "rpn.head.bbox_pred.bias",
            "roi_heads.box_head.fc6.weight", "roi_heads.box_head.fc7.bias", "roi_heads.box_predictor.cls_score.weight",
            "roi_heads.box_predictor.bbox_pred.weight", "roi_heads.mask_head.0.0.weight", "roi_heads.mask_head.3.0.bias",
            "roi_heads.mask_predictor.conv5_mask.weight", "roi_heads.mask_predictor.mask_fcn_logits.bias"]);
        model.StateDict().Single(kv => kv.Key == "roi_heads.box_predictor.bbox_pred.weight").Value.Shape.Should().Equal(91 * 4, 1024);
    }

    private static double Std(MaskRcnnModel model, string name)
    {
        using var std = model.NamedParameters().Single(p => p.Name == name).Parameter.Std();
        return std.ItemDouble();
    }

    private static double AbsMax(MaskRcnnModel model, string name)
    {
        using var abs = model.NamedParameters().Single(p => p.Name == name).Parameter.Abs();
        using var max = abs.Max();
        return max.ItemDouble();
    }

    [Fact]
    public void Small_normal_predictor_init_gives_detectron2s_scales_and_loaded_weights_still_win()
    {
        using var torchvision = Small().Build();
        using var small = Small().WithPredictorInit(PredictorInit.SmallNormal).Build();

        // Hand-computed expectations: N(0, 0.01) / N(0, 0.001) over 1024x3 / 1024x12 / 3x256 weights, zero biases.
        Std(small, "roi_heads.box_predictor.cls_score.weight").Should().BeApproximately(0.01, 0.001);
        Std(small, "roi_heads.box_predictor.bbox_pred.weight").Should().BeApproximately(0.001, 0.0001);
        Std(small, "roi_heads.mask_predictor.mask_fcn_logits.weight").Should().BeApproximately(0.001, 0.0002);
        foreach (var bias in new[] { "roi_heads.box_predictor.cls_score.bias", "roi_heads.box_predictor.bbox_pred.bias", "roi_heads.mask_predictor.mask_fcn_logits.bias" })
        {
            AbsMax(small, bias).Should().Be(0, bias);
        }

        // torchvision: PyTorch's default (uniform) biases for the box predictor, zero for the mask logits.
        AbsMax(torchvision, "roi_heads.box_predictor.cls_score.bias").Should().BeGreaterThan(0);
        AbsMax(torchvision, "roi_heads.mask_predictor.mask_fcn_logits.bias").Should().Be(0);

        // torchvision's Kaiming (fan-out) mask logits: std sqrt(2 / (3 * 1 * 1)) = 0.816.
        Std(torchvision, "roi_heads.mask_predictor.mask_fcn_logits.weight").Should().BeApproximately(Math.Sqrt(2.0 / 3), 0.3);
        Std(small, "backbone.fpn.inner_blocks.0.0.weight").Should().BeApproximately(Std(torchvision, "backbone.fpn.inner_blocks.0.0.weight"), 0.01,
            "only the predictors change");

        var dir = Directory.CreateTempSubdirectory("mr_init_").FullName;
        try
        {
            var path = Path.Combine(dir, "model.safetensors");
            torchvision.Save(path);
            using var loaded = Small().WithPredictorInit(PredictorInit.SmallNormal).WithWeights(path).Build();
            Std(loaded, "roi_heads.mask_predictor.mask_fcn_logits.weight").Should().Be(Std(torchvision, "roi_heads.mask_predictor.mask_fcn_logits.weight"));
        }
        finally
        {
            Directory.Delete(dir, true);
        }

        FluentActions.Invoking(() => new MaskRcnnBuilder().WithPredictorInit((PredictorInit)7)).Should().Throw<ArgumentOutOfRangeException>();
    }

    [Theory]
    [InlineData(nameof(RoIHeadsOptions.DetectionsPerImage))]
    [InlineData(nameof(RoIHeadsOptions.BatchSizePerImage))]
    [InlineData(nameof(RoIHeadsOptions.NmsThreshold))]
    [InlineData(nameof(RoIHeadsOptions.ScoreThreshold))]
    [InlineData(nameof(RoIHeadsOptions.PositiveFraction))]
    [InlineData(nameof(RoIHeadsOptions.BackgroundIouThreshold))]
    [InlineData(nameof(RoIHeadsOptions.BoxRegressionWeights))]
    public void Out_of_range_roi_head_options_are_refused_naming_the_field(string field)
    {
        var options = field switch
        {
            nameof(RoIHeadsOptions.DetectionsPerImage) => new RoIHeadsOptions(DetectionsPerImage: 0),
            nameof(RoIHeadsOptions.BatchSizePerImage) => new RoIHeadsOptions(BatchSizePerImage: -1),
            nameof(RoIHeadsOptions.NmsThreshold) => new RoIHeadsOptions(NmsThreshold: double.NaN),
            nameof(RoIHeadsOptions.ScoreThreshold) => new RoIHeadsOptions(ScoreThreshold: 1.5),
            nameof(RoIHeadsOptions.PositiveFraction) => new RoIHeadsOptions(PositiveFraction: -0.1),
            nameof(RoIHeadsOptions.BackgroundIouThreshold) => new RoIHeadsOptions(ForegroundIouThreshold: 0.4, BackgroundIouThreshold: 0.6),
            _ => new RoIHeadsOptions(BoxRegressionWeights: (10, 10, 0, 5)),
        };

        var act = () => Small().WithRoIHeads(options).Build();

        act.Should().Throw<ArgumentException>().Which.Message.Should().Contain(field);
    }

    [Fact]
    public void Save_and_load_round_trip_gives_identical_predictions()
    {
        var dir = Directory.CreateTempSubdirectory("mr_model_").FullName;
        try
        {
            using var model = Small().Build();
            var path = Path.Combine(dir, "model.safetensors");
            model.Save(path);
            File.Exists(Path.Combine(dir, "model.json")).Should().BeTrue();
            using var loaded = MaskRcnnModel.Load(path);
            loaded.Config.ClassNames.Should().Equal("__background__", "tumor", "other");
            loaded.Config.Transform.MinSizes.Should().Equal(128);
            var a = model.Predict(RepoPaths.MriImage(1));
            var b = loaded.Predict(RepoPaths.MriImage(1));
            b.Detections.Select(d => (d.Label, d.Score, d.Box)).Should().Equal(a.Detections.Select(d => (d.Label, d.Score, d.Box)));
            b.Detections.Select(d => d.Mask).Should().Equal(a.Detections.Select(d => d.Mask));
            a.Detections.Should().NotBeEmpty();
            a.Detections.Select(d => d.ClassName).Should().OnlyContain(n => n == "tumor" || n == "other");

            // The builder also accepts our own saved file as weights.
            using var viaBuilder = Small().WithWeights(path).Build();
            viaBuilder.Predict(RepoPaths.MriImage(1)).Detections.Select(d => d.Score).Should().Equal(a.Detections.Select(d => d.Score));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void Aligned_models_paste_masks_the_same_way_in_predict_and_in_detect()
    {
        using var model = Small().WithAlignedRoIAlign().WithSeed(4).Build();
        (model.Config.AlignedMaskPaste, model.Postprocessing.AlignedMaskPaste).Should().Be((true, true));
        var path = RepoPaths.MriImage(0);
        var predicted = model.Predict(path).Detections;
        predicted.Should().NotBeEmpty();

        // Detect pastes with tensors (MaskPaster.PasteAligned), Predict with the shared array code: the same masks,
        // except pixels within float rounding of the threshold (the two calls run the network twice, and an untrained
        // mask head's probabilities all lie near 0.5; measured: one pixel 1.8e-5 from it flipped).
        using var scope = Torch.NewDisposeScope();
        using var image = Core.Imaging.ImageCodec.Decode(path, Core.Imaging.ImageReadMode.Rgb);
        var detected = model.Detect([image.To(DType.Float32) / 255.0])[0];
        detected.Labels.Size(0).Should().Be(predicted.Count);
        var probabilities = detected.Masks!.To(DType.Float32);
        var differing = 0;
        for (var i = 0; i < predicted.Count; i++)
        {
            var p = probabilities.Select(0, i).Select(0, 0).Contiguous().ToArray<float>();
            var bits = predicted[i].Mask!.ToBytes();
            for (var k = 0; k < p.Length; k++)
            {
                if ((p[k] > 0.5f ? 1 : 0) != bits[k] && Math.Abs(p[k] - 0.5f) > 1e-4f)
                {
                    differing++;
                }
            }
        }

        differing.Should().Be(0);
    }

    [Fact]
    public void Concurrent_predictions_on_one_model_agree_with_sequential_ones()
    {
        using var model = Small().Build();
        var expected = model.Predict(RepoPaths.MriImage(2)).Detections.Select(d => d.Score).ToArray();
        var results = new float[4][];
        Parallel.For(0, 4, i => results[i] = model.Predict(RepoPaths.MriImage(2)).Detections.Select(d => d.Score).ToArray());
        results.Should().AllSatisfy(r => r.Should().Equal(expected));
    }

    [Fact]
    public void All_input_kinds_give_the_same_result_and_batches_match_single_images()
    {
        using var model = Small().Build();
        var path = RepoPaths.MriImage(0);
        var fromPath = model.Predict(path).Detections.Select(d => d.Score).ToArray();
        model.Predict(File.ReadAllBytes(path)).Detections.Select(d => d.Score).Should().Equal(fromPath);
        using (var stream = File.OpenRead(path))
        {
            model.Predict(stream).Detections.Select(d => d.Score).Should().Equal(fromPath);
        }

        using (var gray = Core.Imaging.ImageCodec.Decode(path))
        {
            model.Predict(gray).Detections.Select(d => d.Score).Should().Equal(fromPath);
        }

        // A batch pads every image to the largest one, which changes results near borders; a batch of same-sized
        // images has no extra padding and must reproduce the single-image predictions up to float rounding (the box
        // head's oneDNN convolution blocks 2000 RoIs differently from 1000). Rounding may swap two scores that differ
        // by less than the tolerance, so the scores are compared as sorted lists.
        var batch = model.Predict(new ImageSource[] { path, File.ReadAllBytes(path) });
        batch.Should().HaveCount(2);
        var expected = fromPath.Order().ToArray();
        batch[0].Detections.Select(d => d.Score).Order().Should().Equal(expected, (a, b) => Math.Abs(a - b) < 1e-4f);
        batch[1].Detections.Select(d => d.Score).Order().Should().Equal(expected, (a, b) => Math.Abs(a - b) < 1e-4f);
    }

    [Fact]
    public void Bad_input_throws_typed_exceptions()
    {
        using var model = Small().Build();
        FluentActions.Invoking(() => model.Predict(new byte[] { 1, 2, 3 })).Should().Throw<Core.Imaging.ImageDecodeException>();
        FluentActions.Invoking(() => model.Predict("/nonexistent/x.jpg")).Should().Throw<IOException>();
        using (var wrong = Tensor.Zeros([2, 8, 8], DType.UInt8))
        {
            FluentActions.Invoking(() => model.Predict(wrong)).Should().Throw<ArgumentException>().WithMessage("*[2, 8, 8]*");
        }

        FluentActions.Invoking(() => new MaskRcnnBuilder().WithNumClasses(1).Build()).Should().Throw<ArgumentException>().WithMessage("*NumClasses*");
        FluentActions.Invoking(() => new MaskRcnnBuilder().WithBackbone(18).WithWeights(Path.Combine(Path.GetTempPath(), "missing.pth")).Build())
            .Should().Throw<IOException>();
        model.Train();
        FluentActions.Invoking(() => model.Predict(RepoPaths.MriImage(0))).Should().Throw<InvalidOperationException>().WithMessage("*Eval*");
    }

    [Fact]
    public void Wrong_shaped_weights_name_the_key_and_both_shapes()
    {
        var dir = Directory.CreateTempSubdirectory("mr_w_").FullName;
        try
        {
            using var model = Small().Build();
            var path = Path.Combine(dir, "w.safetensors");
            SafeTensors.Save(path, model.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value));
            // A 91-class model cannot take the 3-class predictor.
            FluentActions.Invoking(() => new MaskRcnnBuilder().WithBackbone(18).WithImageSize(128, 160).WithWeights(path).Build())
                .Should().Throw<CheckpointMismatchException>().WithMessage("*roi_heads.box_predictor.cls_score.weight*[3, 1024]*[91, 1024]*");
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void Training_forward_returns_the_five_torchvision_losses_and_they_backpropagate()
    {
        using var model = Small().WithBackbone(18, NormKind.FrozenBatchNorm, trainableLayers: 2).Build();
        model.Train();
        using var scope = Torch.NewDisposeScope();
        Torch.ManualSeed(0);
        var image = Tensor.Rand([3, 120, 150]);
        var masks = Tensor.Zeros([1, 120, 150], DType.UInt8);
        masks.Narrow(1, 30, 40).Narrow(2, 50, 30).FillInPlace(1L);
        var target = new DetectionTarget(Tensor.FromArray(new float[] { 50, 30, 80, 70 }, 1, 4), Tensor.FromArray(new long[] { 1 }), masks);
        var losses = model.ComputeLosses([image], [target]);
        losses.Keys.Should().BeEquivalentTo("loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg", "loss_mask");
        losses.Values.Should().OnlyContain(l => double.IsFinite(l.ItemDouble()) && l.ItemDouble() >= 0);
        losses.Total().Backward();
        model.TrainableParameters().Should().OnlyContain(p => p.Grad != null);
        model.NamedParameters().Where(p => p.Name.StartsWith("backbone.body.layer1", StringComparison.Ordinal)).Should().OnlyContain(p => !p.Parameter.RequiresGrad);
    }
}
