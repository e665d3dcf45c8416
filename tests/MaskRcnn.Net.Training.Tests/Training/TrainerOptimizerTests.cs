using MaskRcnn.Net.Core.Checkpoints;
using MaskRcnn.Net.Core.NN;
using MaskRcnn.Net.Core.Structures;

namespace MaskRcnn.Net.Training.Tests;

/// <summary>
/// Like <see cref="CountRegressor"/> but affine, with a 2-D weight [1, 3] (which the trainer puts in the weight-decay
/// group) and a bias [1] (no weight decay): predicts each image's object count as weight · (per-channel mean) + bias,
/// loss the mean squared error over the batch. Its gradient has a closed form, so whole optimizer trajectories can be
/// computed by hand in doubles.
/// </summary>
internal sealed class AffineCountRegressor : Module, ITrainableDetector
{
    private readonly Tensor weight;
    private readonly Tensor bias;

    public AffineCountRegressor()
    {
        weight = RegisterParameter("weight", Tensor.Zeros([1, 3]));
        bias = RegisterParameter("bias", Tensor.Zeros([1]));
    }

    public Module Module => this;

    public Device Device => Device.Cpu;

    public double[] Weight => [.. weight.ToArray<float>().Select(x => (double)x)];

    public double Bias => bias.ToArray<float>()[0];

    public LossDictionary ComputeLosses(IReadOnlyList<Tensor> images, IReadOnlyList<DetectionTarget> targets)
    {
        Tensor? sum = null;
        for (var i = 0; i < images.Count; i++)
        {
            var features = images[i].Mean([1, 2]);
            var error = (features * weight.Reshape([3])).Sum() + bias.Sum() - targets[i].Boxes.Shape[0];
            var sq = error.Square();
            sum = sum is null ? sq : sum + sq;
        }

        return new LossDictionary { ["loss_count"] = sum! * (1.0 / images.Count) };
    }
}

/// <summary>
/// The trainer's optimizers (SGD, AdamW from Core.Optim) and learning-rate schedules against trajectories computed by
/// hand, the optimizer state in checkpoints, and the options' validation.
/// </summary>
public class TrainerOptimizerTests
{
    private static DataLoader Loader(int batchSize) =>
        new(CocoDataset.Load(TestFiles.BrainTumorJson, TestFiles.BrainTumorImages), new DataLoaderOptions(batchSize, Shuffle: true, Seed: 3, Prefetch: 0));

    private static string TempFile() => Path.Combine(Directory.CreateTempSubdirectory("mr_trainer_optim_").FullName, "checkpoint.safetensors");

    /// <summary>Per step: each image's per-channel mean intensity and object count, read from the loader as the trainer gets them.</summary>
    private static List<(double[] F, double N)[]> Steps(DataLoader loader, int epochs)
    {
        var steps = new List<(double[] F, double N)[]>();
        for (var e = 0; e < epochs; e++)
        {
            foreach (var batch in loader.GetBatches(e))
            {
                using (batch)
                {
                    steps.Add([.. batch.Images.Zip(batch.Targets, (image, target) =>
                        (image.Mean([1, 2]).ToArray<float>().Select(x => (double)x).ToArray(), (double)target.Boxes.Shape[0]))]);
                }
            }
        }

        return steps;
    }

    /// <summary>The gradient of the mean squared count error at (w, b) over one batch: (dL/dw, dL/db).</summary>
    private static (double[] W, double B) Gradient(double[] w, double b, (double[] F, double N)[] batch)
    {
        var gw = new double[3];
        var gb = 0.0;
        foreach (var (f, n) in batch)
        {
            var e = w[0] * f[0] + w[1] * f[1] + w[2] * f[2] + b - n;
            for (var c = 0; c < 3; c++)
            {
                gw[c] += 2 * e * f[c] / batch.Length;
            }

            gb += 2 * e / batch.Length;
        }

        return (gw, gb);
    }

    private static void ShouldBeClose(double[] actual, double[] expected, double tolerance, string what)
    {
        actual.Should().HaveCount(expected.Length);
        for (var i = 0; i < expected.Length; i++)
        {
            actual[i].Should().BeApproximately(expected[i], tolerance, $"{what}[{i}]");
        }
    }

    [Fact]
    public void Learning_rate_follows_warmup_then_cosine()
    {
        using var model = new CountRegressor();
        var lrs = new List<double>();
        var options = new TrainerOptions(Epochs: 5, LearningRate: 0.1, WarmupIterations: 3, WarmupFactor: 0.1, GradientClipNorm: null) { Decay = LearningRateDecay.Cosine };
        new Trainer(model, options).Train(Loader(2), new SyncProgress<TrainingProgress>(p => lrs.Add(p.LearningRate)));

        // 3 steps per epoch, 15 steps: warm-up factor 0.1 + 0.9 s/3 for s < 3, times the half cosine over 15 steps.
        lrs.Should().HaveCount(15);
        for (var s = 0; s < 15; s++)
        {
            var warmup = s < 3 ? 0.1 + 0.9 * s / 3 : 1;
            lrs[s].Should().BeApproximately(0.1 * warmup * 0.5 * (1 + Math.Cos(Math.PI * s / 15)), 1e-15, $"step {s}");
        }
    }

    [Fact]
    public void Learning_rate_drops_at_the_first_step_past_each_fraction()
    {
        // 6 images in one batch of 6, 7 epochs: 7 steps. Warm-up 0.5, 0.75, then 1; ×0.5 from the first step with
        // s / 7 >= 0.3 (s = 3: 2/7 = 0.29, 3/7 = 0.43) and again from s / 7 >= 0.7 (s = 5: 4/7 = 0.57, 5/7 = 0.71).
        using var model = new CountRegressor();
        var lrs = new List<double>();
        var options = new TrainerOptions(Epochs: 7, LearningRate: 0.2, WarmupIterations: 2, WarmupFactor: 0.5, GradientClipNorm: null)
        {
            DecayAt = [0.3, 0.7],
            DecayGamma = 0.5,
        };
        new Trainer(model, options).Train(Loader(6), new SyncProgress<TrainingProgress>(p => lrs.Add(p.LearningRate)));
        lrs.Should().Equal([0.2 * 0.5, 0.2 * 0.75, 0.2, 0.2 * 0.5, 0.2 * 0.5, 0.2 * 0.25, 0.2 * 0.25],
            (a, b) => Math.Abs(a - b) < 1e-15);
    }

    /// <summary>
    /// SGD's training is unchanged by the move to Core.Optim's schedules: the optimizer update is the same
    /// <c>Sgd</c>, and every step's learning rate has the same bits as the trainer's former private formula (warm-up
    /// factor, then the cosine of step / total or gamma to the number of fractions reached), written out here.
    /// </summary>
    [Fact]
    public void The_learning_rate_is_bit_for_bit_the_formula_the_trainer_had_before_it_used_Core_Optim()
    {
        var checkedCount = 0;
        foreach (var decay in new[] { LearningRateDecay.Step, LearningRateDecay.Cosine })
        foreach (var batch in new[] { 1, 2, 4 })
        foreach (var epochs in new[] { 1, 3, 7, 20 })
        foreach (var warm in new[] { 0, 3, 10 })
        {
            using var model = new CountRegressor();
            var lrs = new List<(long Step, long Total, double Lr)>();
            var o = new TrainerOptions(Epochs: epochs, LearningRate: 0.02, WarmupIterations: warm, GradientClipNorm: null) { Decay = decay };
            new Trainer(model, o).Train(new DataLoader(CocoDataset.Load(TestFiles.BrainTumorJson, TestFiles.BrainTumorImages), new DataLoaderOptions(batch, Shuffle: false, Prefetch: 0)),
                new SyncProgress<TrainingProgress>(p => lrs.Add((p.Step - 1, p.TotalSteps, p.LearningRate))));
            foreach (var (step, total, lr) in lrs)
            {
                var factor = step < o.WarmupIterations ? o.WarmupFactor + (1 - o.WarmupFactor) * step / o.WarmupIterations : 1.0;
                var progress = total > 0 ? (double)step / total : 0;
                factor *= o.Decay switch
                {
                    LearningRateDecay.Cosine => 0.5 * (1 + Math.Cos(Math.PI * Math.Min(progress, 1))),
                    _ => Math.Pow(o.DecayGamma, o.DecayAt.Count(f => progress >= f)),
                };
                BitConverter.DoubleToInt64Bits(lr).Should().Be(BitConverter.DoubleToInt64Bits(0.02 * factor), $"{decay} b{batch} e{epochs} w{warm} step {step}/{total}");
                checkedCount++;
            }
        }

        checkedCount.Should().BeGreaterThan(1000);
    }

    [Fact]
    public void Sgd_steps_equal_the_hand_computed_momentum_and_weight_decay_updates()
    {
        // torch.optim.SGD: d = g + wd·p (weight only: the bias is in the no-decay group); buf = d at the first step,
        // else momentum·buf + d; p -= lr·buf. Learning rate: warm-up 2 steps from 0.25, then ×0.1 from 6/9 = 0.67.
        const double lr0 = 0.05, momentum = 0.9, wd = 0.01;
        var loader = Loader(2);
        var options = new TrainerOptions(Epochs: 3, LearningRate: lr0, Momentum: momentum, WeightDecay: wd, WarmupIterations: 2, WarmupFactor: 0.25,
            GradientClipNorm: null) { DecayAt = [0.6], DecayGamma = 0.1 };
        using var model = new AffineCountRegressor();
        var result = new Trainer(model, options).Train(loader);
        result.Steps.Should().Be(9);

        var w = new double[3];
        var b = 0.0;
        var bufW = new double[3];
        var bufB = 0.0;
        var steps = Steps(loader, 3);
        for (var s = 0; s < steps.Count; s++)
        {
            var lr = lr0 * (s < 2 ? 0.25 + 0.75 * s / 2 : 1) * (s >= 6 ? 0.1 : 1);
            var (gw, gb) = Gradient(w, b, steps[s]);
            for (var c = 0; c < 3; c++)
            {
                var d = gw[c] + wd * w[c];
                bufW[c] = s == 0 ? d : momentum * bufW[c] + d;
                w[c] -= lr * bufW[c];
            }

            bufB = s == 0 ? gb : momentum * bufB + gb;
            b -= lr * bufB;
        }

        w.Should().NotEqual(new double[3]);
        ShouldBeClose(model.Weight, w, 1e-6, "weight (float32 against double)");
        ShouldBeClose([model.Bias], [b], 1e-6, "bias");
    }

    [Fact]
    public void AdamW_steps_equal_the_hand_computed_AdamW_updates()
    {
        // torch.optim.AdamW: p ·= 1 - lr·wd (weight only); m = β1·m + (1-β1)·g; v = β2·v + (1-β2)·g²;
        // p -= lr / (1-β1^t) · m / (√v / √(1-β2^t) + eps). Warm-up 3 steps from 0.1, cosine over the 6 steps.
        const double lr0 = 0.01, wd = 0.05, beta1 = 0.8, beta2 = 0.95, eps = 1e-6;
        var loader = Loader(3);
        var options = new TrainerOptions(Epochs: 3, LearningRate: lr0, WeightDecay: wd, WarmupIterations: 3, WarmupFactor: 0.1, GradientClipNorm: null)
        {
            Optimizer = OptimizerKind.AdamW,
            AdamBeta1 = beta1,
            AdamBeta2 = beta2,
            AdamEps = eps,
            Decay = LearningRateDecay.Cosine,
        };
        using var model = new AffineCountRegressor();
        var lrs = new List<double>();
        new Trainer(model, options).Train(loader, new SyncProgress<TrainingProgress>(p => lrs.Add(p.LearningRate))).Steps.Should().Be(6);

        var p = new double[4]; // weight[0..2], bias
        var m = new double[4];
        var v = new double[4];
        var steps = Steps(loader, 3);
        for (var s = 0; s < steps.Count; s++)
        {
            var lr = lr0 * (s < 3 ? 0.1 + 0.9 * s / 3 : 1) * 0.5 * (1 + Math.Cos(Math.PI * s / 6));
            lrs[s].Should().BeApproximately(lr, 1e-15);
            var (gw, gb) = Gradient(p[..3], p[3], steps[s]);
            double[] g = [.. gw, gb];
            var t = s + 1;
            for (var i = 0; i < 4; i++)
            {
                if (i < 3)
                {
                    p[i] *= 1 - lr * wd;
                }

                m[i] = beta1 * m[i] + (1 - beta1) * g[i];
                v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i];
                var denom = Math.Sqrt(v[i]) / Math.Sqrt(1 - Math.Pow(beta2, t)) + eps;
                p[i] -= lr / (1 - Math.Pow(beta1, t)) * m[i] / denom;
            }
        }

        p.Should().NotEqual(new double[4]);
        ShouldBeClose([.. model.Weight, model.Bias], p, 1e-7, "AdamW parameters (float32 against double)");
    }

    [Theory]
    [InlineData(1, 0)]
    [InlineData(2, 3)]
    public void An_interrupted_AdamW_run_resumed_from_its_checkpoint_ends_with_the_same_weights(int accumulation, int checkpointEvery)
    {
        var straightPath = TempFile();
        var resumedPath = TempFile();
        var options = new TrainerOptions(Epochs: 4, LearningRate: 0.01, WeightDecay: 0.05, WarmupIterations: 2, GradientClipNorm: null)
        {
            Optimizer = OptimizerKind.AdamW,
            GradientAccumulation = accumulation,
            CheckpointEvery = checkpointEvery,
        };
        using var straight = new AffineCountRegressor();
        new Trainer(straight, options with { CheckpointPath = straightPath }).Train(Loader(1));

        using var first = new AffineCountRegressor();
        using var cts = new CancellationTokenSource();
        var act = () => new Trainer(first, options with { CheckpointPath = resumedPath })
            .Train(Loader(1), new SyncProgress<TrainingProgress>(p => { if (p.Epoch == 1 && p.Iteration == 2) cts.Cancel(); }), cancellationToken: cts.Token);
        act.Should().Throw<OperationCanceledException>();
        var state = TrainingCheckpoint.ReadState(resumedPath);
        state.Step.Should().Be(accumulation == 1 ? 9 : 4);
        TrainingCheckpoint.ReadMetadata(resumedPath)[TrainingCheckpoint.OptimizerKey].Should().Be("AdamW");
        var tensors = SafeTensors.Load(resumedPath);
        try
        {
            // Group 0 is the decayed weight, group 1 the bias: AdamW's moments and step count for both.
            tensors.Keys.Where(k => k.StartsWith("optimizer.", StringComparison.Ordinal)).Should().BeEquivalentTo(
                "optimizer.0.0.exp_avg", "optimizer.0.0.exp_avg_sq", "optimizer.0.0.step", "optimizer.1.0.exp_avg", "optimizer.1.0.exp_avg_sq", "optimizer.1.0.step");
            tensors["optimizer.0.0.step"].ItemLong().Should().Be(state.Step);
        }
        finally
        {
            foreach (var t in tensors.Values)
            {
                t.Dispose();
            }
        }

        using var resumed = new AffineCountRegressor();
        var result = new Trainer(resumed, options with { CheckpointPath = resumedPath, ResumeFrom = resumedPath }).Train(Loader(1));
        result.Steps.Should().Be(24 / accumulation);
        straight.Weight.Should().NotEqual(new double[3]);
        resumed.Weight.Should().Equal(straight.Weight, "resuming restores weights, AdamW's moments and step, and the position exactly");
        resumed.Bias.Should().Be(straight.Bias);
    }

    [Theory]
    [InlineData(OptimizerKind.Sgd, OptimizerKind.AdamW)]
    [InlineData(OptimizerKind.AdamW, OptimizerKind.Sgd)]
    public void Resuming_with_another_optimizer_is_refused_naming_both(OptimizerKind written, OptimizerKind resumedWith)
    {
        var path = TempFile();
        var options = new TrainerOptions(Epochs: 1, LearningRate: 0.01, WarmupIterations: 1, GradientClipNorm: null);
        using var model = new AffineCountRegressor();
        new Trainer(model, options with { Optimizer = written, CheckpointPath = path }).Train(Loader(2));

        using var other = new AffineCountRegressor();
        var act = () => new Trainer(other, options with { Epochs = 2, Optimizer = resumedWith, ResumeFrom = path }).Train(Loader(2));
        act.Should().Throw<InvalidOperationException>().WithMessage($"*{written}*{resumedWith}*");
        other.Weight.Should().Equal([0.0, 0.0, 0.0], "nothing is trained or restored");
    }

    public static TheoryData<TrainerOptions, string> InvalidOptions => new()
    {
        { new TrainerOptions(Epochs: 0), nameof(TrainerOptions.Epochs) },
        { new TrainerOptions(LearningRate: double.NaN), nameof(TrainerOptions.LearningRate) },
        { new TrainerOptions(Momentum: -0.1), nameof(TrainerOptions.Momentum) },
        { new TrainerOptions(WeightDecay: double.PositiveInfinity), nameof(TrainerOptions.WeightDecay) },
        { new TrainerOptions { Optimizer = (OptimizerKind)7 }, nameof(TrainerOptions.Optimizer) },
        { new TrainerOptions { AdamBeta1 = 1 }, nameof(TrainerOptions.AdamBeta1) },
        { new TrainerOptions { AdamBeta2 = -0.5 }, nameof(TrainerOptions.AdamBeta2) },
        { new TrainerOptions { AdamEps = 0 }, nameof(TrainerOptions.AdamEps) },
        { new TrainerOptions(WarmupFactor: 0), nameof(TrainerOptions.WarmupFactor) },
        { new TrainerOptions { Decay = (LearningRateDecay)5 }, nameof(TrainerOptions.Decay) },
        { new TrainerOptions { DecayAt = [0.5, 1.0] }, nameof(TrainerOptions.DecayAt) },
        { new TrainerOptions { DecayGamma = 0 }, nameof(TrainerOptions.DecayGamma) },
        { new TrainerOptions { GradientAccumulation = 0 }, nameof(TrainerOptions.GradientAccumulation) },
    };

    [Theory]
    [MemberData(nameof(InvalidOptions))]
    public void An_invalid_option_is_an_ArgumentException_naming_it(TrainerOptions options, string name)
    {
        using var model = new CountRegressor();
        var e = FluentActions.Invoking(() => new Trainer(model, options)).Should().Throw<ArgumentException>().Which;
        e.ParamName.Should().Be(name);
        e.Message.Should().Contain($"TrainerOptions.{name}");
    }
}
