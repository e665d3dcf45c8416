namespace MaskRcnn.Net.Onnx.Tests;

/// <summary>The export's metadata map → <see cref="OnnxModelMetadata"/>: values read, and every missing or malformed key named.</summary>
public class OnnxModelMetadataTests
{
    private const string File = "/models/m.onnx";

    private static Dictionary<string, string> Valid() => new()
    {
        ["maskrcnn.format"] = "1",
        ["maskrcnn.class_names"] = """["__background__", "tumor", "cyst"]""",
        ["maskrcnn.mask_threshold"] = "0.5",
        ["maskrcnn.suppress_contained"] = "off",
        ["maskrcnn.score_threshold"] = "0.05",
        ["maskrcnn.detections_per_image"] = "100",
        ["maskrcnn.min_size"] = "800",
        ["maskrcnn.max_size"] = "1333",
        ["maskrcnn.image_mean"] = "[0.485, 0.456, 0.406]",
        ["maskrcnn.image_std"] = "[0.229, 0.224, 0.225]",
        ["maskrcnn.mask_size"] = "28",
    };

    [Fact]
    public void Reads_every_key()
    {
        var m = OnnxModelMetadata.Parse(Valid(), File, "MaskRcnn.Net", "0");
        m.FormatVersion.Should().Be(1);
        m.ClassNames.Should().Equal("__background__", "tumor", "cyst");
        m.MaskThreshold.Should().Be(0.5);
        m.SuppressContained.Should().BeNull("'off'");
        m.ScoreThreshold.Should().Be(0.05);
        m.DetectionsPerImage.Should().Be(100);
        (m.MinSize, m.MaxSize, m.MaskSize).Should().Be((800, 1333, 28));
        m.ImageMean.Should().Equal(0.485, 0.456, 0.406);
        m.ImageStd.Should().Equal(0.229, 0.224, 0.225);
        m.ProducerName.Should().Be("MaskRcnn.Net");

        var post = m.Postprocessing;
        post.ClassName(2).Should().Be("cyst");
        post.ClassName(7).Should().Be("7", "a label without a name is named by its id, as the libtorch model does");
        post.MaskThreshold.Should().Be(0.5);

        var suppressing = Valid();
        suppressing["maskrcnn.suppress_contained"] = "0.8";
        suppressing.Remove("maskrcnn.min_size");
        var s = OnnxModelMetadata.Parse(suppressing, File);
        s.SuppressContained.Should().Be(0.8);
        s.Postprocessing.SuppressContained.Should().Be(0.8);
        s.MinSize.Should().BeNull("the informational keys are optional");
        s.MaskScoring.Should().BeFalse("an export without maskrcnn.mask_scoring predates it: off");

        var scoring = Valid();
        scoring["maskrcnn.mask_scoring"] = "on";
        var on = OnnxModelMetadata.Parse(scoring, File);
        on.MaskScoring.Should().BeTrue();
        on.Postprocessing.MaskScoring.Should().BeTrue();
        on.Should().NotBe(OnnxModelMetadata.Parse(Valid(), File));
        scoring["maskrcnn.mask_scoring"] = "off";
        OnnxModelMetadata.Parse(scoring, File).MaskScoring.Should().BeFalse();

        s.AlignedMaskPaste.Should().BeFalse("an export without maskrcnn.mask_paste predates it: torchvision's paste");
        var paste = Valid();
        paste["maskrcnn.mask_paste"] = "aligned";
        var aligned = OnnxModelMetadata.Parse(paste, File);
        (aligned.AlignedMaskPaste, aligned.Postprocessing.AlignedMaskPaste).Should().Be((true, true));
        aligned.Should().NotBe(OnnxModelMetadata.Parse(Valid(), File));
        paste["maskrcnn.mask_paste"] = "torchvision";
        OnnxModelMetadata.Parse(paste, File).AlignedMaskPaste.Should().BeFalse();
    }

    [Theory]
    [InlineData("maskrcnn.format")]
    [InlineData("maskrcnn.class_names")]
    [InlineData("maskrcnn.mask_threshold")]
    [InlineData("maskrcnn.suppress_contained")]
    public void A_missing_required_key_is_named_with_the_file(string key)
    {
        var map = Valid();
        map.Remove(key);
        var e = FluentActions.Invoking(() => OnnxModelMetadata.Parse(map, File)).Should().Throw<OnnxModelFormatException>().Which;
        e.Key.Should().Be(key);
        e.Path.Should().Be(File);
        e.Message.Should().StartWith(File + ": ").And.Contain(key).And.Contain("missing");
    }

    [Theory]
    [InlineData("maskrcnn.format", "2", "*format 2*not supported*reads format 1*")]
    [InlineData("maskrcnn.format", "one", "*maskrcnn.format*not an integer*")]
    [InlineData("maskrcnn.class_names", "tumor", "*maskrcnn.class_names*malformed*")]
    [InlineData("maskrcnn.class_names", """["__background__"]""", "*background and at least one class*")]
    [InlineData("maskrcnn.class_names", """["__background__", null]""", "*malformed*null*")]
    [InlineData("maskrcnn.mask_threshold", "1.5", "*mask_threshold*outside*")]
    [InlineData("maskrcnn.mask_threshold", "NaN", "*mask_threshold*malformed*")]
    [InlineData("maskrcnn.suppress_contained", "0", "*suppress_contained*outside (0, 1]*")]
    [InlineData("maskrcnn.suppress_contained", "on", "*suppress_contained*malformed*")]
    [InlineData("maskrcnn.mask_scoring", "yes", "*mask_scoring*malformed*expected 'on' or 'off'*")]
    [InlineData("maskrcnn.mask_paste", "exact", "*mask_paste*malformed*expected 'torchvision' or 'aligned'*")]
    [InlineData("maskrcnn.min_size", "0", "*min_size*positive*")]
    [InlineData("maskrcnn.image_mean", "[0.4, \"x\"]", "*image_mean*malformed*")]
    [InlineData("maskrcnn.detections_per_image", "1e3", "*detections_per_image*malformed*")]
    public void A_malformed_value_is_named_with_the_file(string key, string value, string message)
    {
        var map = Valid();
        map[key] = value;
        var e = FluentActions.Invoking(() => OnnxModelMetadata.Parse(map, File)).Should().Throw<OnnxModelFormatException>().WithMessage(message).Which;
        e.Key.Should().Be(key);
        e.Message.Should().StartWith(File);
    }

    [Fact]
    public void Options_validate_themselves_naming_the_field()
    {
        new OnnxMaskRcnnOptions().Validate();
        FluentActions.Invoking(() => new OnnxMaskRcnnOptions(IntraOpThreads: -1).Validate()).Should().Throw<ArgumentException>().WithParameterName("IntraOpThreads");
        FluentActions.Invoking(() => new OnnxMaskRcnnOptions(InterOpThreads: -2).Validate()).Should().Throw<ArgumentException>().WithParameterName("InterOpThreads");
        FluentActions.Invoking(() => new OnnxMaskRcnnOptions(MaxImagePixels: 0).Validate()).Should().Throw<ArgumentException>().WithParameterName("MaxImagePixels");
        FluentActions.Invoking(() => OnnxMaskRcnn.Load("x.onnx", new OnnxMaskRcnnOptions(IntraOpThreads: -1))).Should().Throw<ArgumentException>()
            .WithParameterName("IntraOpThreads", "Load validates the options before touching the file");
        FluentActions.Invoking(() => new PostprocessingOptions { MaskThreshold = 2 }.Validate()).Should().Throw<ArgumentException>().WithParameterName("MaskThreshold");
        FluentActions.Invoking(() => new PostprocessingOptions { SuppressContained = 0 }.Validate()).Should().Throw<ArgumentException>().WithParameterName("SuppressContained");
        FluentActions.Invoking(() => new PostprocessingOptions { MaskPadding = -1 }.Validate()).Should().Throw<ArgumentException>().WithParameterName("MaskPadding");
    }
}
