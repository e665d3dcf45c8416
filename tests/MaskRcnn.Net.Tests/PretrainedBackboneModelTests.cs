using MaskRcnn.Net.Backbones;

namespace MaskRcnn.Net.Tests;

/// <summary>A Mask R-CNN whose body starts from the ImageNet ResNet-18 (fetched by the test project's &lt;PackageDownload&gt;).</summary>
public class PretrainedBackboneModelTests
{
    [Fact]
    public void The_body_takes_the_pretrained_weights_and_the_layout_survives_save_and_load()
    {
        using var pretrained = PretrainedBackbone.ImageNetResNet18();
        using var model = new MaskRcnnBuilder().WithClasses("tumor").WithImageSize(128, 128).WithBackbone(trainableLayers: 3, outChannels: 64)
            .WithPretrainedBackbone(pretrained).WithSeed(1).Build();
        model.Config.Backbone.Depth.Should().Be(18);
        model.Config.Backbone.StageBlocks.Should().Equal(2, 2, 2, 3);
        model.Config.Backbone.Norm.Should().Be(NormKind.FrozenBatchNorm);
        model.Config.Backbone.TrainableLayers.Should().Be(3, "trainable layers stay as set");
        model.Config.Transform.Mean.Should().Equal(pretrained.PixelMean);
        model.Config.Transform.Std.Should().Equal(pretrained.PixelStd);
        var state = model.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value);
        foreach (var (key, value) in pretrained.StateDict)
        {
            state[$"backbone.body.{key}"].ToArray<float>().Should().Equal(value.ToArray<float>(), key);
        }

        state.Keys.Should().Contain("backbone.body.layer4.2.conv2.weight").And.NotContain("backbone.body.layer4.3.conv1.weight");

        var dir = Directory.CreateTempSubdirectory("mr_pretrained_").FullName;
        try
        {
            var path = Path.Combine(dir, "model.safetensors");
            model.Save(path);
            using var loaded = MaskRcnnModel.Load(path);
            loaded.Config.Backbone.Should().Be(model.Config.Backbone, "the block layout is part of the saved config");
            loaded.Config.Transform.Mean.Should().Equal(model.Config.Transform.Mean);
            var a = model.Predict(RepoPaths.MriImage(1));
            var b = loaded.Predict(RepoPaths.MriImage(1));
            b.Detections.Select(d => (d.Label, d.Score, d.Box)).Should().Equal(a.Detections.Select(d => (d.Label, d.Score, d.Box)));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void A_missing_file_is_a_clear_error_before_anything_is_built()
    {
        var missing = Path.Combine(Path.GetTempPath(), $"mr_none_{Guid.NewGuid():N}.onnx");
        FluentActions.Invoking(() => new MaskRcnnBuilder().WithPretrainedBackbone(missing)).Should().Throw<FileNotFoundException>()
            .Which.Message.Should().Contain(missing);
    }
}
