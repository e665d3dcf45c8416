using MaskRcnn.Net.Backbones;
using MaskRcnn.Net.Core.NN;
using MaskRcnn.Net.Heads;

namespace MaskRcnn.Net.Tests;

/// <summary>
/// The prediction-only fast paths (box-head linears and the mask up-sampling as oneDNN convolutions, the mask head in
/// channels-last order) against the plain layers and against the formulas; the stage profile of a prediction; and
/// <see cref="Precision.BFloat16"/>.
/// </summary>
public class InferencePathTests
{
    private static MaskRcnnBuilder Small() => new MaskRcnnBuilder()
        .WithBackbone(18, NormKind.FrozenBatchNorm)
        .WithClasses("tumor", "other")
        .WithImageSize(128, 160)
        .WithScoreThreshold(0.0)
        .WithSeed(5);

    /// <summary>max |a − b| / max |b|.</summary>
    private static double RelativeDifference(Tensor a, Tensor b)
    {
        using var scope = Torch.NewDisposeScope();
        return (a.To(DType.Float32) - b.To(DType.Float32)).Abs().Max().ItemDouble() / b.To(DType.Float32).Abs().Max().ItemDouble();
    }

    [Fact]
    public void Box_head_and_predictor_at_inference_equal_the_linear_layers()
    {
        Torch.ManualSeed(11);
        using var head = new TwoMlpHead(64 * 7 * 7, 96);
        using var predictor = new FastRcnnPredictor(96, 4);
        using var scope = Torch.NewDisposeScope();
        var pooled = Tensor.Randn([37, 64, 7, 7]);

        // The truth: torch's linear on the flattened input, written out here.
        var h = Functional.Linear(pooled.Flatten(1), head.Fc6.Weight, head.Fc6.Bias).Relu();
        var expected = Functional.Linear(h, head.Fc7.Weight, head.Fc7.Bias).Relu();
        var expectedLogits = Functional.Linear(expected, predictor.ClsScore.Weight, predictor.ClsScore.Bias);
        var expectedDeltas = Functional.Linear(expected, predictor.BboxPred.Weight, predictor.BboxPred.Bias);

        using (Torch.NoGrad())
        {
            var actual = head.Forward(pooled);
            actual.Shape.Should().Equal(37, 96);
            RelativeDifference(actual, expected).Should().BeLessThan(1e-5);
            var (logits, deltas) = predictor.Forward(actual);
            logits.Shape.Should().Equal(37, 4);
            deltas.Shape.Should().Equal(37, 16);
            RelativeDifference(logits, expectedLogits).Should().BeLessThan(1e-5);
            RelativeDifference(deltas, expectedDeltas).Should().BeLessThan(1e-5);

            // No RoIs: the plain path, an empty result.
            head.Forward(Tensor.Zeros([0, 64, 7, 7])).Shape.Should().Equal(0, 96);
        }
    }

    [Fact]
    public void Mask_upsampling_at_inference_equals_the_transposed_convolution_and_its_formula()
    {
        Torch.ManualSeed(12);
        using var predictor = new MaskRcnnPredictor(5, 6, 3);
        using var scope = Torch.NewDisposeScope();
        using (Torch.NoGrad())
        {
            predictor.Conv5Mask.Bias!.CopyFrom(Tensor.Randn([6]));
            predictor.MaskFcnLogits.Bias!.CopyFrom(Tensor.Randn([3]));
        }

        var x = Tensor.Randn([2, 5, 3, 4]);
        // With gradients: libtorch's conv_transpose2d (the plain path).
        var plain = predictor.Forward(x);
        Tensor fast;
        using (Torch.NoGrad())
        {
            fast = predictor.Forward(x);
        }

        fast.Shape.Should().Equal(2, 3, 6, 8);
        RelativeDifference(fast, plain).Should().BeLessThan(1e-5);

        // The formula, by hand: up[n,o,2i+a,2j+b] = relu(b5[o] + Σc x[n,c,i,j]·W5[c,o,a,b]); logits = b + Σo up·W.
        var xs = x.ToArray<float>();
        var w5 = predictor.Conv5Mask.Weight.Detach().ToArray<float>();
        var b5 = predictor.Conv5Mask.Bias!.Detach().ToArray<float>();
        var wl = predictor.MaskFcnLogits.Weight.Detach().ToArray<float>();
        var bl = predictor.MaskFcnLogits.Bias!.Detach().ToArray<float>();
        var got = fast.ToArray<float>();
        for (var n = 0; n < 2; n++)
        {
            for (var y = 0; y < 6; y++)
            {
                for (var xx = 0; xx < 8; xx++)
                {
                    var (i, a, j, b) = (y / 2, y % 2, xx / 2, xx % 2);
                    for (var k = 0; k < 3; k++)
                    {
                        double logit = bl[k];
                        for (var o = 0; o < 6; o++)
                        {
                            double up = b5[o];
                            for (var c = 0; c < 5; c++)
                            {
                                up += xs[((n * 5 + c) * 3 + i) * 4 + j] * w5[((c * 6 + o) * 2 + a) * 2 + b];
                            }

                            logit += Math.Max(up, 0) * wl[k * 6 + o];
                        }

                        got[((n * 3 + k) * 6 + y) * 8 + xx].Should().BeApproximately((float)logit, 1e-4f, $"logit [{n},{k},{y},{xx}]");
                    }
                }
            }
        }
    }

    [Fact]
    public void Mask_head_at_inference_runs_channels_last_with_the_plain_result()
    {
        Torch.ManualSeed(13);
        using var head = new MaskRcnnHead(32, [16, 16]);
        using var scope = Torch.NewDisposeScope();
        var pooled = Tensor.Randn([4, 32, 14, 14]);
        var plain = head.Forward(pooled);
        using (Torch.NoGrad())
        {
            var fast = head.Forward(pooled);
            fast.IsContiguousIn(MemoryFormat.ChannelsLast).Should().BeTrue();
            plain.IsContiguousIn(MemoryFormat.ChannelsLast).Should().BeFalse("the plain path keeps the input's order");
            RelativeDifference(fast, plain).Should().BeLessThan(1e-5);
        }
    }

    [Fact]
    public void A_prediction_under_a_profile_marks_each_stage_once_in_pipeline_order()
    {
        using var model = Small().Build();
        using (var profile = StageProfile.Start())
        {
            model.Predict(RepoPaths.MriImage(0));
            profile.Stages.Select(s => s.Key).Should().Equal(
                "input", "transform", "backbone", "fpn", "rpn.head", "rpn.proposals", "box.roialign", "box.head", "box.postprocess",
                "mask.roialign", "mask.head", "postprocess", "paste");
            profile.Stages.Should().OnlyContain(s => s.Value >= TimeSpan.Zero);
            profile.Count("backbone").Should().Be(1);
            profile.Count("mask.head").Should().Be(1);
            profile.Total.Should().Be(profile.Stages.Aggregate(TimeSpan.Zero, (t, s) => t + s.Value));

            model.Predict(RepoPaths.MriImage(1));
            profile.Count("mask.head").Should().Be(2, "a second prediction adds to the same stages");
        }

        // Without a profile nothing is collected.
        using var later = StageProfile.Start();
        later.Dispose();
        model.Predict(RepoPaths.MriImage(0));
        later.Stages.Should().BeEmpty();
    }

    [Fact]
    public void BFloat16_computes_the_network_in_bfloat16_and_leaves_the_float32_model_unchanged()
    {
        using var model = Small().Build();
        if (!PrecisionSupport.CpuHasBFloat16)
        {
            // A CPU without native bfloat16 gets a clear refusal, never a silent slow path.
            FluentActions.Invoking(() => model.Precision = Precision.BFloat16).Should().Throw<NotSupportedException>().WithMessage("*AVX512_BF16*");
            FluentActions.Invoking(() => Small().WithPrecision(Precision.BFloat16).Build()).Should().Throw<NotSupportedException>();
            return;
        }

        var image = RepoPaths.MriImage(2);
        var fp32 = model.Predict(image);

        // The backbone and FPN in bfloat16: the same maps to bfloat16's precision (8-bit mantissa, ~0.4 % per rounding).
        using (Torch.InferenceMode())
        using (var scope = Torch.NewDisposeScope())
        {
            var x = Tensor.Rand([1, 3, 128, 160]);
            var full = model.Backbone.Forward(x);
            var reduced = model.Backbone.Forward(x.To(DType.BFloat16));
            foreach (var name in full.Names)
            {
                reduced[name].DType.Should().Be(DType.BFloat16, $"level {name} is computed in bfloat16");
                RelativeDifference(reduced[name], full[name]).Should().BeLessThan(0.05, $"level {name}");
            }
        }

        model.Precision = Precision.BFloat16;
        model.RoIHeads.ComputeType.Should().Be(DType.BFloat16);
        model.StateDict().Should().OnlyContain(kv => kv.Value.DType != DType.BFloat16, "weights stay float32");
        using (Torch.InferenceMode())
        using (var scope = Torch.NewDisposeScope())
        {
            var d = model.Detect([Tensor.Rand([3, 128, 160])])[0];
            d.Boxes.DType.Should().Be(DType.Float32);
            d.Scores.DType.Should().Be(DType.Float32);
            d.Masks!.DType.Should().Be(DType.Float32);
        }

        var bf16 = model.Predict(image);
        bf16.Detections.Should().NotBeEmpty();
        bf16.Detections.Should().OnlyContain(d => d.Score >= 0 && d.Score <= 1 && d.Box.X1 >= 0 && d.Box.X2 <= bf16.Width && d.Mask!.Width == bf16.Width);
        bf16.Detections.Select(d => d.Score).Should().BeInDescendingOrder();

        // Back to float32: exactly the float32 predictions again (nothing in the model was converted).
        model.Precision = Precision.Float32;
        model.RoIHeads.ComputeType.Should().Be(DType.Float32);
        var again = model.Predict(image);
        again.Detections.Select(d => (d.Label, d.Score, d.Box)).Should().Equal(fp32.Detections.Select(d => (d.Label, d.Score, d.Box)));
        again.Detections.Select(d => d.Mask).Should().Equal(fp32.Detections.Select(d => d.Mask));

        // The builder sets the same.
        using var built = Small().WithPrecision(Precision.BFloat16).Build();
        built.Precision.Should().Be(Precision.BFloat16);
        FluentActions.Invoking(() => Small().WithPrecision((Precision)9)).Should().Throw<ArgumentOutOfRangeException>();
    }
}
