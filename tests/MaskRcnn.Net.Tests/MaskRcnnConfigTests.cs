using MaskRcnn.Net.Backbones;
using MaskRcnn.Net.Core.NN;
using MaskRcnn.Net.Heads;
using MaskRcnn.Net.RoIAlign;

namespace MaskRcnn.Net.Tests;

/// <summary>
/// The configuration record tree: JSON round trip of every setting, model.json files of the earlier format, validation
/// of each option record, Save/Load of a customised model, and models with custom parts (builder factories).
/// </summary>
public class MaskRcnnConfigTests
{
    /// <summary>A config in which every setting differs from <see cref="MaskRcnnConfig"/>'s defaults.</summary>
    private static MaskRcnnConfig NonDefault() => new()
    {
        NumClasses = 3,
        ClassNames = ["__background__", "tumor", "cyst"],
        Backbone = new BackboneConfig(
            new ResNetOptions(18, NormKind.GroupNorm) { NormEps = 1e-3, GroupNormGroups = 8, StageBlocks = [2, 1, 2, 1] },
            trainableLayers: 2, outChannels: 48),
        Transform = new TransformOptions([144, 160], MaxSize: 200, Mean: [0.5, 0.4, 0.3], Std: [0.2, 0.25, 0.3], SizeDivisible: 16),
        AnchorSizes = [[12, 20], [24, 40], [48, 80], [96, 160], [192, 320]],
        AnchorAspectRatios = [[0.5, 2.0], [0.5, 2.0], [1.0, 3.0], [0.5, 2.0], [0.5, 2.0]],
        Rpn = new RpnOptions(PreNmsTopNTrain: 600, PreNmsTopNTest: 300, PostNmsTopNTrain: 500, PostNmsTopNTest: 120, NmsThreshold: 0.6,
            ForegroundIouThreshold: 0.65, BackgroundIouThreshold: 0.25, BatchSizePerImage: 128, PositiveFraction: 0.4, ScoreThreshold: 0.01,
            MinSize: 0.5),
        RoIHeads = new RoIHeadsOptions(ForegroundIouThreshold: 0.55, BackgroundIouThreshold: 0.45, BatchSizePerImage: 64, PositiveFraction: 0.3,
            ScoreThreshold: 0.0, NmsThreshold: 0.4, DetectionsPerImage: 20, BoxRegressionWeights: (8, 8, 4, 4)) { AlignedMaskTargets = true },
        BoxPooler = new RoIPoolerOptions(OutputSize: 5, SamplingRatio: 1, CanonicalScale: 112, CanonicalLevel: 3) { Aligned = true },
        MaskPooler = new RoIPoolerOptions(OutputSize: 12, SamplingRatio: 3, CanonicalScale: 160, CanonicalLevel: 5) { Aligned = true },
        Masks = true,
        MaskThreshold = 0.35,
        SuppressContained = 0.9,
        MaskScoring = true,
        AlignedMaskPaste = true,
        BoxHeadSize = 96,
        MaskHeadLayers = [32, 16],
        MaskPredictorChannels = 24,
    };

    private static string ValImage => RepoPaths.Get("data", "brain-tumor", "val", "images", "00124_10.jpg");

    [Fact]
    public void A_fully_non_default_config_round_trips_through_json_and_compares_by_value()
    {
        var config = NonDefault() with
        {
            Parts = new CustomPartsConfig { MaskHead = new NamedPart("some-head", new Dictionary<string, string> { ["channels"] = "8" }) },
        };
        config.Validate();
        var json = config.ToJson();
        var back = MaskRcnnConfig.FromJson(json);

        back.Should().Be(config);
        back.GetHashCode().Should().Be(config.GetHashCode());
        back.Backbone.Body.GroupNormGroups.Should().Be(8, "the body's options are saved as they are");
        back.BoxPooler.Should().Be(new RoIPoolerOptions(5, 1, PoolingKernel.RoIAlign, 112, 3) { Aligned = true });
        back.RoIHeads.AlignedMaskTargets.Should().BeTrue();
        json.Should().Contain("\"GroupNormGroups\": 8").And.Contain("\"BoxPooler\"").And.NotContain("BlocksPerStage");

        // Equality really compares the values: a change deep inside any list or record breaks it.
        back.Should().NotBe(config with { AnchorSizes = [[12, 20], [24, 40], [48, 80], [96, 160], [192, 321]] });
        back.Should().NotBe(config with { MaskHeadLayers = [32, 17] });
        back.Should().NotBe(config with { Backbone = config.Backbone with { GroupNormGroups = 16 } });
        back.Should().NotBe(config with { Transform = config.Transform with { Std = [0.2, 0.25, 0.31] } });
        back.Should().NotBe(config with { MaskPooler = config.MaskPooler with { SamplingRatio = 2 } });
        back.Should().NotBe(config with { BoxPooler = config.BoxPooler with { Aligned = false } });
        back.Should().NotBe(config with { RoIHeads = config.RoIHeads with { AlignedMaskTargets = false } });
        back.Should().NotBe(config with { Rpn = config.Rpn with { MinSize = 0.25 } });
        back.Should().NotBe(config with { ClassNames = ["__background__", "tumor", "other"] });
        back.Should().NotBe(config with { Parts = new CustomPartsConfig { MaskHead = new NamedPart("some-head", new Dictionary<string, string> { ["channels"] = "9" }) } });

        // And every top-level setting of the non-default config differs from the default one.
        var defaults = new MaskRcnnConfig();
        foreach (var property in typeof(MaskRcnnConfig).GetProperties().Where(p => p.CanWrite))
        {
            var copy = (MaskRcnnConfig)typeof(MaskRcnnConfig).GetMethod("<Clone>$")!.Invoke(defaults, null)!;
            property.SetValue(copy, property.GetValue(config));
            if (property.Name != nameof(MaskRcnnConfig.Masks))
            {
                copy.Should().NotBe(defaults, $"{property.Name} is not at its default in the round-tripped config");
            }
        }
    }

    [Fact]
    public void A_model_json_in_the_previous_format_still_loads()
    {
        // The shape ToJson wrote before the backbone held a ResNetOptions and before the poolers were configurable:
        // the body's settings flat in "Backbone", no "BoxPooler"/"MaskPooler", box regression weights as Item1..Item4.
        const string Legacy = """
            {
              "NumClasses": 2,
              "ClassNames": [
                "__background__",
                "tumor"
              ],
              "Backbone": {
                "Depth": 18,
                "Norm": "FrozenBatchNorm",
                "NormEps": 0,
                "TrainableLayers": 2,
                "OutChannels": 64,
                "StageBlocks": [
                  2,
                  2,
                  2,
                  3
                ]
              },
              "Transform": {
                "MinSizes": [
                  384
                ],
                "MaxSize": 640,
                "Mean": null,
                "Std": null,
                "SizeDivisible": 32
              },
              "AnchorSizes": [[16], [32], [64], [128], [256]],
              "AnchorAspectRatios": [[0.5, 1, 2], [0.5, 1, 2], [0.5, 1, 2], [0.5, 1, 2], [0.5, 1, 2]],
              "Rpn": {
                "PreNmsTopNTrain": 1000,
                "PreNmsTopNTest": 1000,
                "PostNmsTopNTrain": 1000,
                "PostNmsTopNTest": 500,
                "NmsThreshold": 0.7,
                "ForegroundIouThreshold": 0.7,
                "BackgroundIouThreshold": 0.3,
                "BatchSizePerImage": 256,
                "PositiveFraction": 0.5,
                "ScoreThreshold": 0,
                "MinSize": 0.001
              },
              "RoIHeads": {
                "ForegroundIouThreshold": 0.5,
                "BackgroundIouThreshold": 0.5,
                "BatchSizePerImage": 512,
                "PositiveFraction": 0.25,
                "ScoreThreshold": 0.05,
                "NmsThreshold": 0.5,
                "DetectionsPerImage": 100,
                "BoxRegressionWeights": {
                  "Item1": 10,
                  "Item2": 10,
                  "Item3": 5,
                  "Item4": 5
                }
              },
              "Masks": true,
              "MaskThreshold": 0.5,
              "SuppressContained": null,
              "BoxHeadSize": 256,
              "MaskHeadLayers": [
                64,
                64
              ],
              "MaskPredictorChannels": 64
            }
            """;

        var config = MaskRcnnConfig.FromJson(Legacy);

        var expected = new MaskRcnnConfig
        {
            NumClasses = 2,
            ClassNames = ["__background__", "tumor"],
            Backbone = new BackboneConfig(new ResNetOptions(18) { NormEps = 0, StageBlocks = [2, 2, 2, 3] }, 2, 64),
            Transform = new TransformOptions([384], 640),
            AnchorSizes = [[16], [32], [64], [128], [256]],
            Rpn = new RpnOptions(PreNmsTopNTrain: 1000, PostNmsTopNTrain: 1000, PostNmsTopNTest: 500),
            RoIHeads = new RoIHeadsOptions(BoxRegressionWeights: (10, 10, 5, 5)),
            BoxHeadSize = 256,
            MaskHeadLayers = [64, 64],
            MaskPredictorChannels = 64,
        };
        config.Should().Be(expected);
        config.BoxPooler.Should().Be(new RoIPoolerOptions(7, 2), "the pooler the earlier code always built");
        config.MaskPooler.Should().Be(new RoIPoolerOptions(14, 2));

        // Written again, it is in the current shape and reads back equal.
        var rewritten = config.ToJson();
        rewritten.Should().Contain("\"Body\"");
        MaskRcnnConfig.FromJson(rewritten).Should().Be(config);
    }

    public static TheoryData<string, Action> BadOptions() => new()
    {
        { nameof(RpnOptions.PreNmsTopNTrain), () => new RpnOptions(PreNmsTopNTrain: 0).Validate() },
        { nameof(RpnOptions.PreNmsTopNTest), () => new RpnOptions(PreNmsTopNTest: -5).Validate() },
        { nameof(RpnOptions.PostNmsTopNTrain), () => new RpnOptions(PostNmsTopNTrain: 0).Validate() },
        { nameof(RpnOptions.PostNmsTopNTest), () => new RpnOptions(PostNmsTopNTest: 0).Validate() },
        { nameof(RpnOptions.NmsThreshold), () => new RpnOptions(NmsThreshold: 1.2).Validate() },
        { nameof(RpnOptions.ForegroundIouThreshold), () => new RpnOptions(ForegroundIouThreshold: double.NaN).Validate() },
        { nameof(RpnOptions.BackgroundIouThreshold), () => new RpnOptions(ForegroundIouThreshold: 0.3, BackgroundIouThreshold: 0.5).Validate() },
        { nameof(RpnOptions.BatchSizePerImage), () => new RpnOptions(BatchSizePerImage: 0).Validate() },
        { nameof(RpnOptions.PositiveFraction), () => new RpnOptions(PositiveFraction: 1.5).Validate() },
        { nameof(RpnOptions.ScoreThreshold), () => new RpnOptions(ScoreThreshold: -0.1).Validate() },
        { nameof(RpnOptions.MinSize), () => new RpnOptions(MinSize: double.PositiveInfinity).Validate() },
        { nameof(TransformOptions.MinSizes), () => new TransformOptions([]).Validate() },
        { nameof(TransformOptions.MaxSize), () => new TransformOptions([800], MaxSize: 0).Validate() },
        { nameof(TransformOptions.SizeDivisible), () => new TransformOptions([800], SizeDivisible: 0).Validate() },
        { nameof(TransformOptions.Mean), () => new TransformOptions([800], Mean: [0.5, double.NaN, 0.5]).Validate() },
        { nameof(TransformOptions.Std), () => new TransformOptions([800], Std: [0.2, 0.2]).Validate() },
        { nameof(RoIPoolerOptions.OutputSize), () => new RoIPoolerOptions(OutputSize: 0).Validate() },
        { nameof(RoIPoolerOptions.Kernel), () => new RoIPoolerOptions(Kernel: (PoolingKernel)9).Validate() },
        { nameof(RoIPoolerOptions.CanonicalScale), () => new RoIPoolerOptions(CanonicalScale: 0).Validate() },
        { nameof(RoIPoolerOptions.CanonicalLevel), () => new RoIPoolerOptions(CanonicalLevel: -1).Validate() },
        { nameof(ResNetOptions.Depth), () => new ResNetOptions(42).Validate() },
        { nameof(ResNetOptions.GroupNormGroups), () => new ResNetOptions(18, NormKind.GroupNorm) { GroupNormGroups = 3 }.Validate() },
        { nameof(ResNetOptions.NormEps), () => new ResNetOptions(18) { NormEps = -1 }.Validate() },
        { nameof(ResNetOptions.StageBlocks), () => new ResNetOptions(18) { StageBlocks = [2, 2] }.Validate() },
        { nameof(BackboneConfig.TrainableLayers), () => new BackboneConfig(new ResNetOptions(18), trainableLayers: 6).Validate() },
        { nameof(BackboneConfig.OutChannels), () => new BackboneConfig(new ResNetOptions(18), outChannels: 0).Validate() },
        { nameof(MaskRcnnConfig.NumClasses), () => new MaskRcnnConfig { NumClasses = 1 }.Validate() },
        { nameof(MaskRcnnConfig.ClassNames), () => new MaskRcnnConfig { NumClasses = 3, ClassNames = ["a", "b"] }.Validate() },
        { nameof(MaskRcnnConfig.BoxHeadSize), () => new MaskRcnnConfig { BoxHeadSize = 0 }.Validate() },
        { nameof(MaskRcnnConfig.MaskHeadLayers), () => new MaskRcnnConfig { MaskHeadLayers = [] }.Validate() },
        { nameof(MaskRcnnConfig.MaskPredictorChannels), () => new MaskRcnnConfig { MaskPredictorChannels = 0 }.Validate() },
        { nameof(MaskRcnnConfig.MaskThreshold), () => new MaskRcnnConfig { MaskThreshold = 2 }.Validate() },
        { nameof(MaskRcnnConfig.SuppressContained), () => new MaskRcnnConfig { SuppressContained = 0 }.Validate() },
        { nameof(MaskRcnnConfig.AnchorSizes), () => new MaskRcnnConfig { AnchorSizes = [[32], [64, 96], [128], [256], [512]] }.Validate() },
        { nameof(MaskRcnnConfig.AnchorAspectRatios), () => new MaskRcnnConfig { AnchorAspectRatios = [[1.0]] }.Validate() },
    };

    [Theory]
    [MemberData(nameof(BadOptions))]
    public void Every_option_record_refuses_a_bad_value_naming_the_field(string field, Action validate)
    {
        var e = FluentActions.Invoking(validate).Should().Throw<ArgumentException>().Which;
        e.ParamName.Should().Be(field);
        e.Message.Should().Contain(field);
    }

    [Fact]
    public void Nested_option_records_are_validated_by_the_config_the_builder_and_from_json()
    {
        // Through the config: each nested record's own check runs.
        FluentActions.Invoking(() => new MaskRcnnConfig { Rpn = new RpnOptions(PositiveFraction: 2) }.Validate())
            .Should().Throw<ArgumentException>().Which.ParamName.Should().Be(nameof(RpnOptions.PositiveFraction));
        FluentActions.Invoking(() => new MaskRcnnConfig { MaskPooler = new RoIPoolerOptions(0) }.Validate())
            .Should().Throw<ArgumentException>().Which.ParamName.Should().Be(nameof(RoIPoolerOptions.OutputSize));

        // The builder validates before building anything.
        FluentActions.Invoking(() => new MaskRcnnBuilder().WithBackbone(18).WithRpn(new RpnOptions(NmsThreshold: 1.5)).Build())
            .Should().Throw<ArgumentException>().Which.ParamName.Should().Be(nameof(RpnOptions.NmsThreshold));
        FluentActions.Invoking(() => new MaskRcnnBuilder().WithBackbone(new ResNetOptions(18, NormKind.GroupNorm) { GroupNormGroups = 5 }).Build())
            .Should().Throw<ArgumentException>().Which.ParamName.Should().Be(nameof(ResNetOptions.GroupNormGroups));

        // So does FromJson (a hand-edited model.json).
        var json = NonDefault().ToJson().Replace("\"PostNmsTopNTest\": 120", "\"PostNmsTopNTest\": 0", StringComparison.Ordinal);
        json.Should().Contain("\"PostNmsTopNTest\": 0");
        FluentActions.Invoking(() => MaskRcnnConfig.FromJson(json))
            .Should().Throw<ArgumentException>().Which.ParamName.Should().Be(nameof(RpnOptions.PostNmsTopNTest));

        // The RPN and the transform check their options when made directly too.
        FluentActions.Invoking(() => new ImageTransform(new TransformOptions([800], Std: [0.1, 0, 0.1])))
            .Should().Throw<ArgumentException>().Which.ParamName.Should().Be(nameof(TransformOptions.Std));
        FluentActions.Invoking(() => new MultiScaleRoIAlign(7, 2, canonicalScale: 0))
            .Should().Throw<ArgumentException>().Which.ParamName.Should().Be(nameof(RoIPoolerOptions.CanonicalScale));
    }

    [Fact]
    public void Anchor_levels_must_match_the_backbone_feature_maps()
    {
        var act = () => new MaskRcnnBuilder().WithBackbone(18).WithImageSize(128, 160)
            .WithAnchors([[32], [64], [128]], [[0.5, 1.0, 2.0], [0.5, 1.0, 2.0], [0.5, 1.0, 2.0]]).Build();
        act.Should().Throw<ArgumentException>().Which.Message.Should().Contain("AnchorSizes has 3 levels").And.Contain("5 feature maps");
    }

    [Fact]
    public void A_customised_model_saves_and_loads_to_identical_outputs_and_an_equal_config()
    {
        var config = NonDefault() with { Transform = new TransformOptions([160], MaxSize: 200), SuppressContained = null };
        using var model = new MaskRcnnBuilder(config).WithSeed(11).Build();
        MaskRcnnBuilder.CustomPartsOf(model).Should().BeEmpty();
        model.RoIHeads.BoxPooler.OutputSize.Should().Be((5, 5));
        ((MultiScaleRoIAlign)model.RoIHeads.MaskPooler!).Options.Should().Be(config.MaskPooler);

        var dir = Directory.CreateTempSubdirectory("mr_config_").FullName;
        try
        {
            var path = Path.Combine(dir, "model.safetensors");
            var before = model.Predict(ValImage);
            before.Detections.Should().NotBeEmpty("score threshold 0 keeps detections even from an untrained model");
            model.Save(path);

            using var loaded = MaskRcnnModel.Load(path);
            loaded.Config.Should().Be(config);
            MaskRcnnConfig.FromJson(File.ReadAllText(Path.Combine(dir, "model.json"))).Should().Be(config);
            var after = loaded.Predict(ValImage);
            after.Detections.Select(d => (d.Label, d.Score, d.Box)).Should().Equal(before.Detections.Select(d => (d.Label, d.Score, d.Box)));
            after.Detections.Select(d => d.Mask).Should().Equal(before.Detections.Select(d => d.Mask));

            // Control: the same weights in a model that drops the settings the earlier config lost (GroupNorm groups,
            // pooler sampling ratios and level mapping) give other detections, so the comparison above can fail.
            var lossy = config with
            {
                Backbone = config.Backbone with { GroupNormGroups = 32 },
                BoxPooler = config.BoxPooler with { SamplingRatio = 2, CanonicalScale = 224, CanonicalLevel = 4 },
                MaskPooler = config.MaskPooler with { SamplingRatio = 2, CanonicalScale = 224, CanonicalLevel = 4 },
            };
            using var rebuilt = new MaskRcnnBuilder(lossy).WithWeights(path).Build();
            rebuilt.WeightsLoadResult!.MissingKeys.Should().BeEmpty("the settings change no weight shape");
            var other = rebuilt.Predict(ValImage);
            other.Detections.Select(d => (d.Score, d.Box)).Should().NotEqual(before.Detections.Select(d => (d.Score, d.Box)));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    /// <summary>A custom mask head: one 3×3 conv + ReLU.</summary>
    private sealed class OneConvMaskHead : Module, IMaskHead
    {
        private readonly Conv2d conv;

        public OneConvMaskHead(int inChannels, int outChannels)
        {
            conv = RegisterModule("conv", new Conv2d(inChannels, outChannels, 3, padding: 1));
            OutChannels = outChannels;
        }

        public int OutChannels { get; }

        public Tensor Forward(Tensor pooled) => conv.Forward(pooled).ReluInPlace();
    }

    /// <summary>A custom pooler (not a <see cref="MultiScaleRoIAlign"/>), delegating to one.</summary>
    private sealed class WrappedPooler(MultiScaleRoIAlign inner) : IRoIPooler
    {
        public (int Height, int Width) OutputSize => inner.OutputSize;

        public Tensor Forward(IReadOnlyList<Tensor> features, IReadOnlyList<Tensor> boxes, IReadOnlyList<MaskRcnn.Net.Core.Detection.ImageSize> imageSizes) =>
            inner.Forward(features, boxes, imageSizes);
    }

    private static MaskRcnnBuilder Small() => new MaskRcnnBuilder().WithBackbone(18, NormKind.FrozenBatchNorm)
        .WithClasses("tumor").WithImageSize(128, 160).WithScoreThreshold(0.0).WithSeed(5);

    private static IMaskHead OneConvFromSettings(int inChannels, IReadOnlyDictionary<string, string> settings) =>
        new OneConvMaskHead(inChannels, int.Parse(settings["channels"], System.Globalization.CultureInfo.InvariantCulture));

    [Fact]
    public void A_part_registered_by_name_is_recorded_in_the_config_and_rebuilt_by_Load()
    {
        const string Name = "config-tests/one-conv-mask-head";
        PartRegistry.RegisterMaskHead(Name, OneConvFromSettings);
        PartRegistry.RegisterMaskHead(Name, OneConvFromSettings); // the same factory again is fine
        FluentActions.Invoking(() => PartRegistry.RegisterMaskHead(Name, (c, _) => new OneConvMaskHead(c, 4)))
            .Should().Throw<ArgumentException>().WithMessage("*already registered*");

        var dir = Directory.CreateTempSubdirectory("mr_named_").FullName;
        try
        {
            using var model = Small().WithMaskHead(Name, new Dictionary<string, string> { ["channels"] = "8" }).Build();
            model.RoIHeads.MaskHead.Should().BeOfType<OneConvMaskHead>().Which.OutChannels.Should().Be(8);
            MaskRcnnBuilder.CustomPartsOf(model).Should().BeEmpty("the configuration describes the part");
            var path = Path.Combine(dir, "model.safetensors");
            model.Save(path);
            File.ReadAllText(Path.Combine(dir, "model.json")).Should().Contain(Name);

            using var loaded = MaskRcnnModel.Load(path);
            loaded.Config.Should().Be(model.Config);
            loaded.RoIHeads.MaskHead.Should().BeOfType<OneConvMaskHead>().Which.OutChannels.Should().Be(8);
            var a = model.Predict(RepoPaths.MriImage(1));
            var b = loaded.Predict(RepoPaths.MriImage(1));
            a.Detections.Should().NotBeEmpty();
            b.Detections.Select(d => (d.Score, d.Box, d.Mask)).Should().Equal(a.Detections.Select(d => (d.Score, d.Box, d.Mask)));

            // Without the registration, the configuration is refused with the way to fix it.
            var unknown = model.Config with { Parts = new CustomPartsConfig { MaskHead = new NamedPart("config-tests/never-registered") } };
            var e = FluentActions.Invoking(() => new MaskRcnnBuilder(unknown).Build()).Should().Throw<ArgumentException>().Which;
            e.ParamName.Should().Be(nameof(CustomPartsConfig.MaskHead));
            e.Message.Should().Contain("config-tests/never-registered").And.Contain("PartRegistry.RegisterMaskHead");

            // A factory given afterwards replaces the named part (and makes the model unsavable again).
            using var overridden = Small().WithMaskHead(Name, new Dictionary<string, string> { ["channels"] = "8" })
                .WithMaskHead(c => new OneConvMaskHead(c, 4)).Build();
            overridden.Config.Parts.Should().BeNull();
            MaskRcnnBuilder.CustomPartsOf(overridden).Should().Equal("a custom mask head (WithMaskHead factory)");
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void Save_refuses_a_model_with_custom_parts_and_SaveWeights_with_the_same_factory_round_trips()
    {
        var dir = Directory.CreateTempSubdirectory("mr_custom_").FullName;
        try
        {
            using var model = Small().WithMaskHead(c => new OneConvMaskHead(c, 8)).Build();
            MaskRcnnBuilder.CustomPartsOf(model).Should().Equal("a custom mask head (WithMaskHead factory)");
            var path = Path.Combine(dir, "model.safetensors");
            var e = FluentActions.Invoking(() => model.Save(path)).Should().Throw<InvalidOperationException>().Which;
            e.Message.Should().Contain("custom mask head (WithMaskHead factory)").And.Contain("SaveWeights");
            File.Exists(path).Should().BeFalse("nothing is written");
            File.Exists(Path.Combine(dir, "model.json")).Should().BeFalse();

            // The way out: weights only, rebuilt with the same factory.
            var weights = Path.Combine(dir, "weights.safetensors");
            model.SaveWeights(weights);
            MaskRcnnModel.IsSavedModel(weights).Should().BeFalse("no configuration is recorded");
            using var rebuilt = new MaskRcnnBuilder(model.Config).WithMaskHead(c => new OneConvMaskHead(c, 8)).WithWeights(weights).Build();
            var a = model.Predict(RepoPaths.MriImage(0));
            var b = rebuilt.Predict(RepoPaths.MriImage(0));
            a.Detections.Should().NotBeEmpty();
            b.Detections.Select(d => (d.Score, d.Box, d.Mask)).Should().Equal(a.Detections.Select(d => (d.Score, d.Box, d.Mask)));

            // Every factory is named.
            using var many = Small().WithBoxHead((c, r) => new TwoMlpHead(c * r * r, 64))
                .WithPoolers(new WrappedPooler(new MultiScaleRoIAlign(7, 2)), new WrappedPooler(new MultiScaleRoIAlign(14, 2))).Build();
            MaskRcnnBuilder.CustomPartsOf(many).Should().Equal(
                "a custom box pooler (WithPoolers instance of WrappedPooler)", "a custom box head (WithBoxHead factory)",
                "a custom mask pooler (WithPoolers instance of WrappedPooler)");
            FluentActions.Invoking(() => many.Save(path)).Should().Throw<InvalidOperationException>().WithMessage("*custom box head*custom mask pooler*");
            using var others = Small()
                .WithBackbone(c => ResNetFpn.Create(c.Backbone.Body, c.Backbone.TrainableLayers, c.Backbone.OutChannels))
                .WithRpnHead((c, a) => new RpnHead(c, a))
                .WithBoxPredictor((r, n) => new FastRcnnPredictor(r, n))
                .WithMaskPredictor((c, n) => new MaskRcnnPredictor(c, 256, n)).Build();
            MaskRcnnBuilder.CustomPartsOf(others).Should().Equal(
                "a custom backbone (WithBackbone factory)", "a custom RPN head (WithRpnHead factory)",
                "a custom box predictor (WithBoxPredictor factory)", "a custom mask predictor (WithMaskPredictor factory)");
            FluentActions.Invoking(() => others.Save(path)).Should().Throw<InvalidOperationException>();
            File.Exists(path).Should().BeFalse();

            // A MultiScaleRoIAlign instance is recorded by its options, so that model saves and reloads the same poolers.
            using var poolers = Small().WithPoolers(new MultiScaleRoIAlign(6, 1), new MultiScaleRoIAlign(10, 3)).Build();
            MaskRcnnBuilder.CustomPartsOf(poolers).Should().BeEmpty();
            poolers.Save(path);
            using var loaded = MaskRcnnModel.Load(path);
            MaskRcnnBuilder.CustomPartsOf(loaded).Should().BeEmpty();
            loaded.Config.BoxPooler.Should().Be(new RoIPoolerOptions(6, 1));
            loaded.Config.MaskPooler.Should().Be(new RoIPoolerOptions(10, 3));
            loaded.Predict(RepoPaths.MriImage(0)).Detections.Select(d => d.Score)
                .Should().Equal(poolers.Predict(RepoPaths.MriImage(0)).Detections.Select(d => d.Score));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
