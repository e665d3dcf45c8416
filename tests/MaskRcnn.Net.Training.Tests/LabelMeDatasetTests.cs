using System.Text.Json.Nodes;
using MaskRcnn.Net.Core.Imaging;

namespace MaskRcnn.Net.Training.Tests;

public class LabelMeDatasetTests
{
    private static JsonObject Shape(string label, string? type, params double[][] points)
    {
        var shape = new JsonObject
        {
            ["label"] = label,
            ["points"] = new JsonArray(points.Select(p => (JsonNode)new JsonArray(p[0], p[1])).ToArray()),
            ["group_id"] = null,
            ["flags"] = new JsonObject(),
        };
        if (type is not null)
        {
            shape["shape_type"] = type;
        }

        return shape;
    }

    private static JsonObject File(string? imagePath, string? imageData, int h, int w, params JsonObject[] shapes) => new()
    {
        ["version"] = "5.2.1",
        ["flags"] = new JsonObject(),
        ["shapes"] = new JsonArray(shapes.Select(s => (JsonNode)s).ToArray()),
        ["imagePath"] = imagePath,
        ["imageData"] = imageData,
        ["imageHeight"] = h,
        ["imageWidth"] = w,
    };

    [Fact]
    public void PolygonRectangleCircleAndEmbeddedImage()
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(dir.File("imgs"));
        TestFiles.WriteBlankPng(dir.File("imgs/one.png"), 40, 50);
        dir.Write("a_one.json", File("imgs/one.png", null, 40, 50,
            Shape("zebra", "polygon", [5, 5], [15, 5], [15, 15], [5, 15]),
            Shape("cat", "rectangle", [30, 20], [20, 10]),
            Shape("cat", "circle", [30, 30], [30, 35]),
            Shape("cat", "line", [1, 1], [3, 3])).ToJsonString());

        // The second file carries its image: a gray 12x16 PNG of value 77, no imagePath.
        using (var gray = Tensor.Full([3, 12, 16], 77L, DType.UInt8))
        {
            var data = Convert.ToBase64String(ImageCodec.EncodePng(gray));
            dir.Write("b_two.json", File(null, data, 12, 16, Shape("zebra", null, [1, 1], [9, 1], [9, 9])).ToJsonString());
        }

        var logger = new ListLogger();
        var dataset = LabelMeDataset.Load(dir.Path, new LabelMeOptions { Logger = logger });

        dataset.Count.Should().Be(2);
        dataset.ClassNames.Should().Equal("__background__", "cat", "zebra");
        var one = dataset.GetSample(0);
        (one.Width, one.Height).Should().Be((50, 40));
        one.ImagePath.Should().Be(Path.GetFullPath(dir.File("imgs/one.png")));
        one.Annotations.Should().HaveCount(3);
        one.Annotations.Select(a => a.Label).Should().Equal(2, 1, 1);
        one.Annotations[0].GetMask()!.Area.Should().Be(100);
        one.Annotations[1].Box.Should().Be(new BoundingBox(20, 10, 30, 20));
        one.Annotations[1].GetMask()!.Area.Should().Be(100);
        one.Annotations[2].Box.X1.Should().BeApproximately(25, 0.01f);
        one.Annotations[2].GetMask()!.Area.Should().BeCloseTo((long)Math.Round(Math.PI * 25), 8);
        logger.Entries.Should().ContainSingle(e => e.Message.Contains("\"line\"", StringComparison.Ordinal));

        var two = dataset.GetSample(1);
        two.ImagePath.Should().BeNull();
        two.EmbeddedImage.IsEmpty.Should().BeFalse();
        two.Annotations.Should().ContainSingle().Which.Label.Should().Be(2);
        using var image = dataset.LoadImage(1);
        image.Shape.Should().Equal(3, 12, 16);
        image.ToArray<byte>().Should().AllSatisfy(v => v.Should().Be(77));
    }

    [Fact]
    public void GroupedShapesFormOneInstanceAndMissingSizesAreRead()
    {
        using var dir = new TempDir();
        TestFiles.WriteBlankPng(dir.File("g.png"), 20, 30);
        var a = Shape("part", "rectangle", [0, 0], [4, 4]);
        var b = Shape("part", "rectangle", [10, 10], [12, 12]);
        a["group_id"] = 1;
        b["group_id"] = 1;
        var json = File("g.png", null, 0, 0, a, b, Shape("part", "rectangle", [20, 0], [21, 1]));
        json.Remove("imageHeight");
        json.Remove("imageWidth");
        var file = dir.Write("g.json", json.ToJsonString());

        var dataset = LabelMeDataset.Load([file]);
        var s = dataset.GetSample(0);
        (s.Width, s.Height).Should().Be((30, 20));
        s.Annotations.Should().HaveCount(2);
        s.Annotations[0].GetMask()!.Area.Should().Be(16 + 4);
        s.Annotations[0].Box.Should().Be(new BoundingBox(0, 0, 12, 12));
    }

    [Fact]
    public void ExplicitClassNamesAndErrors()
    {
        using var dir = new TempDir();
        TestFiles.WriteBlankPng(dir.File("i.png"), 10, 10);
        var file = dir.Write("i.json", File("i.png", null, 10, 10, Shape("b", "polygon", [1, 1], [5, 1], [5, 5])).ToJsonString());

        LabelMeDataset.Load([file], new LabelMeOptions { ClassNames = ["a", "b"] }).GetSample(0).Annotations[0].Label.Should().Be(2);

        var unknown = () => LabelMeDataset.Load([file], new LabelMeOptions { ClassNames = ["a"], BadAnnotations = BadAnnotationPolicy.Fail });
        unknown.Should().Throw<DatasetFormatException>().Which.Location.Should().Be("$.shapes[0]");

        var missing = dir.Write("m.json", File("nope.png", null, 10, 10).ToJsonString());
        var noImage = () => LabelMeDataset.Load([missing]);
        var e = noImage.Should().Throw<DatasetFormatException>().Which;
        e.Location.Should().Be("$.imagePath");
        e.Reason.Should().Contain("nope.png");

        var nan = dir.Write("n.json", File("i.png", null, 10, 10, Shape("b", "polygon", [1, 1], [5, 1e9], [5, 5])).ToJsonString());
        var huge = () => LabelMeDataset.Load([nan]);
        huge.Should().Throw<DatasetFormatException>().Which.Location.Should().Be("$.shapes[0].points[1][1]");

        var badPoint = dir.Write("p.json", File("i.png", null, 10, 10, Shape("b", "polygon", [1, 1], [5, 1], [5, 5])).ToJsonString()
            .Replace("[5,1]", "[5,\"1\"]", StringComparison.Ordinal));
        var typed = () => LabelMeDataset.Load([badPoint]);
        typed.Should().Throw<DatasetFormatException>().Which.Location.Should().Be("$.shapes[0].points[1][1]");

        var badData = dir.Write("d.json", File(null, "***not base64***", 10, 10).ToJsonString());
        var base64 = () => LabelMeDataset.Load([badData]);
        base64.Should().Throw<DatasetFormatException>().Which.Location.Should().Be("$.imageData");
    }
}
