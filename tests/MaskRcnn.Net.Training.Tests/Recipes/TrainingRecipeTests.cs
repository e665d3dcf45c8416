using MaskRcnn.Net.Backbones;
using MaskRcnn.Net.RoIAlign;
using MaskRcnn.Net.Tests;

namespace MaskRcnn.Net.Training.Tests;

/// <summary>
/// The recipe picked from the shipped brain-MRI training set. Expected values were computed separately from the COCO
/// JSON with a few lines of Python: median longer side 256 px; boxes at that scale 12.4–91.0 px with a 5th percentile
/// of 17.4 px (power of two at or below: 16); at most 2 objects per image. A long run upscales 1.5x to 384 px, where the
/// 5th percentile is 26.1 px: again 16.
/// </summary>
public class TrainingRecipeTests
{
    private static IDetectionDataset Train() => CocoDataset.Load(RepoPaths.Get("data", "brain-tumor", "train", "annotations.json"),
        RepoPaths.Get("data", "brain-tumor", "train", "images"));

    [Fact]
    public void Sizes_anchors_and_sampling_come_from_the_data()
    {
        var recipe = TrainingRecipe.For(Train(), new RecipeRequest { Pretrained = PretrainedChoice.None });
        (recipe.ImageSize, recipe.MaxSize).Should().Be((256, 256));
        recipe.AnchorSizes.Should().Equal(16, 32, 64, 128, 256);
        recipe.RoIsPerImage.Should().Be(64);
        recipe.PretrainedPath.Should().BeNull();
        (recipe.Depth, recipe.Norm, recipe.TrainableLayers).Should().Be((18, NormKind.GroupNorm, 5));
        recipe.Choices.Select(c => c.Setting).Should().Contain(["--pretrained", "--min-size/--max-size", "--anchor-sizes", "--rois-per-image", "--epochs"]);
        recipe.Choices.Single(c => c.Setting == "--anchor-sizes").Reason.Should().Contain("12–91 px").And.Contain("17 px");
        recipe.Choices.Should().OnlyContain(c => c.Reason.Length > 10, "every choice says why");
    }

    [Fact]
    public void Long_runs_upscale_the_images_and_keep_anchors_covering_the_smallest_objects()
    {
        var train = Train();
        foreach (var request in new[] { new RecipeRequest { TimeBudget = TimeSpan.FromMinutes(25) }, new RecipeRequest { Epochs = 16 } })
        {
            var recipe = TrainingRecipe.For(train, request);
            (recipe.ImageSize, recipe.MaxSize).Should().Be((384, 384), $"{request} is a long run");
            recipe.AnchorSizes.Should().Equal(16, 32, 64, 128, 256);
            recipe.Choices.Single(c => c.Setting == "--min-size/--max-size").Reason.Should().Contain("1.5x").And.Contain("384 px");
            recipe.Choices.Single(c => c.Setting == "--anchor-sizes").Reason.Should().Contain("19–136 px").And.Contain("26 px");
            (recipe.LearningRate, recipe.CreateTrainerOptions().LearningRate).Should().Be((0.01, 0.01), $"{request} stays near its peak rate for long");
            recipe.Choices.Single(c => c.Setting == "--lr").Should().Match<RecipeChoice>(c => c.Value == "0.01" && c.Reason.Contains("long run"));
            recipe.RoIsPerImage.Should().Be(128, $"{request} is long and its images have at most 2 objects");
            recipe.Choices.Single(c => c.Setting == "--rois-per-image").Should().Match<RecipeChoice>(c => c.Value == "128" && c.Reason.Contains("long"));
            TrainingRecipe.For(train, request with { Optimizer = OptimizerKind.AdamW }).LearningRate.Should().Be(1e-4, "AdamW keeps its own rate");
        }

        foreach (var request in new[] { new RecipeRequest { TimeBudget = TimeSpan.FromMinutes(14) }, new RecipeRequest { Epochs = 15 } })
        {
            TrainingRecipe.For(train, request).LearningRate.Should().Be(0.02, $"{request} is short");
            TrainingRecipe.For(train, request).RoIsPerImage.Should().Be(64, $"{request} is short");
        }

        TrainingRecipe.For(train, new RecipeRequest { Weights = "coco.pth", Epochs = 24 }).LearningRate.Should().Be(0.005, "fine-tuning keeps torchvision's rate");

        TrainingRecipe.For(train, new RecipeRequest { TimeBudget = TimeSpan.FromMinutes(14) }).ImageSize.Should().Be(256);
        TrainingRecipe.For(train, new RecipeRequest { Epochs = 15 }).ImageSize.Should().Be(256);
        TrainingRecipe.For(train, new RecipeRequest { Weights = "coco.pth", TimeBudget = TimeSpan.FromMinutes(25) }).ImageSize.Should().Be(256,
            "fine-tuning keeps the data's size");
    }

    [Fact]
    public void Long_runs_jitter_brightness_and_contrast_and_the_augmentation_follows_the_recipe()
    {
        var train = Train();
        foreach (var request in new[] { new RecipeRequest { TimeBudget = TimeSpan.FromMinutes(25) }, new RecipeRequest { Epochs = 16, Pretrained = PretrainedChoice.None } })
        {
            var recipe = TrainingRecipe.For(train, request);
            recipe.ColorJitter.Should().Be(TrainingRecipe.LongRunColorJitter, $"{request} is long").And.Be(0.2);
            recipe.Choices.Single(c => c.Setting == "--color-jitter").Should().Match<RecipeChoice>(c => c.Value == "0.2" && c.Reason.Contains("long"));
            var compose = recipe.CreateAugmentation().Should().BeOfType<Compose>().Subject;
            compose.Transforms.Should().HaveCount(2);
            compose.Transforms[0].Should().BeOfType<RandomHorizontalFlip>().Which.Probability.Should().Be(0.5);
            var jitter = compose.Transforms[1].Should().BeOfType<ColorJitter>().Subject;
            (jitter.Brightness, jitter.Contrast).Should().Be((0.2, 0.2));
        }

        foreach (var request in new[] { new RecipeRequest { TimeBudget = TimeSpan.FromMinutes(14) }, new RecipeRequest(), new RecipeRequest { Weights = "coco.pth", Epochs = 24 } })
        {
            var recipe = TrainingRecipe.For(train, request);
            recipe.ColorJitter.Should().Be(0, $"{request} is short or fine-tunes");
            recipe.Choices.Should().NotContain(c => c.Setting == "--color-jitter");
            recipe.CreateAugmentation().Should().BeOfType<RandomHorizontalFlip>().Which.Probability.Should().Be(0.5);
        }

        (TrainingRecipe.For(train) with { ColorJitter = 0.3 }).CreateAugmentation().Should().BeOfType<Compose>()
            .Which.Transforms[1].Should().BeOfType<ColorJitter>().Which.Brightness.Should().Be(0.3, "an override is what the loader gets");
        foreach (var bad in new[] { -0.1, double.NaN, double.PositiveInfinity })
        {
            var create = () => (TrainingRecipe.For(train) with { ColorJitter = bad }).CreateAugmentation();
            create.Should().Throw<ArgumentException>().WithMessage("*ColorJitter (--color-jitter)*finite strength >= 0*", $"{bad} would jitter nothing or make NaN images");
        }
    }

    [Fact]
    public void The_pretrained_backbone_is_used_when_found_and_weights_mean_fine_tuning()
    {
        var train = Train();
        var auto = TrainingRecipe.For(train);
        auto.PretrainedPath.Should().Be(PretrainedBackbone.FindResNet18(), "the test project restores the package");
        (auto.Norm, auto.Depth).Should().Be((NormKind.FrozenBatchNorm, 18));
        auto.SuppressContained.Should().BeNull("measured: it cost more than 0.01 mask AP on average (README)");
        auto.Choices.Should().Contain(c => c.Setting == "--suppress-contained" && c.Value == "off");
        TrainingRecipe.For(train, new RecipeRequest { Pretrained = PretrainedChoice.None }).SuppressContained.Should().BeNull();
        auto.MaskScoring.Should().BeTrue("measured with the pretrained recipe: +0.016 mask AP on average (README)");
        auto.Choices.Should().Contain(c => c.Setting == "--mask-scoring" && c.Value == "on" && c.Reason.Contains("mask AP"));
        TrainingRecipe.For(train, new RecipeRequest { Pretrained = PretrainedChoice.None }).MaskScoring.Should().BeFalse("not measured from scratch");
        auto.AlignedRoIAlign.Should().BeTrue();
        auto.Choices.Should().Contain(c => c.Setting == "--aligned-roi-align" && c.Value == "on");
        TrainingRecipe.For(train, new RecipeRequest { Pretrained = PretrainedChoice.None }).AlignedRoIAlign.Should().BeFalse("not measured from scratch");

        var fineTune = TrainingRecipe.For(train, new RecipeRequest { Weights = "coco.pth" });
        fineTune.Weights.Should().Be("coco.pth");
        fineTune.PretrainedPath.Should().BeNull();
        fineTune.SuppressContained.Should().BeNull("fine-tuning keeps torchvision's post-processing");
        fineTune.MaskScoring.Should().BeFalse("fine-tuning keeps torchvision's post-processing");
        fineTune.AlignedRoIAlign.Should().BeFalse("torchvision's COCO weights were trained unaligned");
        (fineTune.Depth, fineTune.Norm, fineTune.TrainableLayers, fineTune.LearningRate).Should().Be((50, NormKind.FrozenBatchNorm, 3, 0.005));

        var budget = TrainingRecipe.For(train, new RecipeRequest { Pretrained = PretrainedChoice.None, TimeBudget = TimeSpan.FromMinutes(5) });
        budget.TimeBudget.Should().Be(TimeSpan.FromMinutes(5));
        budget.CreateTrainerOptions().TimeBudget.Should().Be(TimeSpan.FromMinutes(5));
        budget.CreateTrainerOptions().Decay.Should().Be(LearningRateDecay.Cosine);
    }

    [Fact]
    public void The_builder_follows_the_recipe()
    {
        var train = Train();
        var recipe = TrainingRecipe.For(train) with { FpnChannels = 32, BoxHeadSize = 64, MaskHead = [16, 16], SuppressContained = 0.8, AlignedRoIAlign = true };
        using var model = recipe.CreateBuilder(train.ClassNames).WithSeed(0).Build();
        var c = model.Config;
        c.ClassNames.Should().Equal(train.ClassNames);
        c.AnchorSizes.Select(a => a.Single()).Should().Equal(recipe.AnchorSizes);
        c.Transform.MinSizes.Should().Equal(256);
        c.Transform.MaxSize.Should().Be(256);
        c.Backbone.StageBlocks.Should().Equal(2, 2, 2, 3);
        c.Backbone.OutChannels.Should().Be(32);
        c.RoIHeads.BatchSizePerImage.Should().Be(64);
        c.MaskHeadLayers.Should().Equal(16, 16);
        c.SuppressContained.Should().Be(0.8);
        c.MaskScoring.Should().BeTrue();
        (c.BoxPooler.Aligned, c.MaskPooler.Aligned, c.RoIHeads.AlignedMaskTargets).Should().Be((true, true, true));
        ((MultiScaleRoIAlign)model.RoIHeads.MaskPooler!).Aligned.Should().BeTrue("the built pooler follows the configuration");
        using var off = (recipe with { SuppressContained = null, MaskScoring = false, AlignedRoIAlign = false }).CreateBuilder(train.ClassNames).WithSeed(0).Build();
        off.Config.SuppressContained.Should().BeNull();
        off.Config.MaskScoring.Should().BeFalse();
        (off.Config.BoxPooler.Aligned, off.Config.MaskPooler.Aligned, off.Config.RoIHeads.AlignedMaskTargets).Should().Be((false, false, false));
    }

    [Fact]
    public void Asking_for_the_pretrained_backbone_without_its_file_says_how_to_get_it()
    {
        var missing = Path.Combine(Path.GetTempPath(), $"mr_none_{Guid.NewGuid():N}.onnx");
        var recipe = TrainingRecipe.For(Train(), new RecipeRequest { Pretrained = PretrainedChoice.ImageNetResNet18, PretrainedPath = missing });
        FluentActions.Invoking(() => recipe.CreateBuilder(["__background__", "tumor"])).Should().Throw<FileNotFoundException>()
            .Which.Message.Should().Contain(missing);
    }

    [Fact]
    public void AdamW_gets_its_own_learning_rate_and_weight_decay_and_the_choice_is_explained()
    {
        var train = Train();
        var sgd = TrainingRecipe.For(train, new RecipeRequest { Pretrained = PretrainedChoice.None });
        (sgd.Optimizer, sgd.LearningRate, sgd.WeightDecay).Should().Be((OptimizerKind.Sgd, 0.02, 1e-4));
        var sgdOptions = sgd.CreateTrainerOptions();
        (sgdOptions.Optimizer, sgdOptions.LearningRate, sgdOptions.WeightDecay, sgdOptions.Momentum).Should().Be((OptimizerKind.Sgd, 0.02, 1e-4, 0.9));
        sgd.Choices.Single(c => c.Setting == "--optimizer").Value.Should().Be("sgd");

        foreach (var request in new[] { new RecipeRequest { Pretrained = PretrainedChoice.None }, new RecipeRequest { Weights = "coco.pth" } })
        {
            var adamw = TrainingRecipe.For(train, request with { Optimizer = OptimizerKind.AdamW });
            (adamw.Optimizer, adamw.LearningRate, adamw.WeightDecay).Should().Be((OptimizerKind.AdamW, 1e-4, 0.05), "MMDetection's AdamW Mask R-CNN setting");
            var options = adamw.CreateTrainerOptions();
            (options.Optimizer, options.LearningRate, options.WeightDecay).Should().Be((OptimizerKind.AdamW, 1e-4, 0.05));
            adamw.Choices.Single(c => c.Setting == "--optimizer").Should().Match<RecipeChoice>(c => c.Value == "adamw" && c.Reason.Contains("AdamW"));
            adamw.Choices.Single(c => c.Setting == "--lr").Should().Match<RecipeChoice>(c => c.Value == "0.0001" && c.Reason.Contains("AdamW"),
                "the SGD rate's reason is replaced, not kept beside it");
        }

        FluentActions.Invoking(() => TrainingRecipe.For(train, new RecipeRequest { Optimizer = (OptimizerKind)9 }))
            .Should().Throw<ArgumentException>().WithMessage("*optimizer*");
    }
}
