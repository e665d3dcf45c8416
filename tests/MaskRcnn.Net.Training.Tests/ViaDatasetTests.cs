using System.Text.Json.Nodes;
using MaskRcnn.Net.Core.Detection;

namespace MaskRcnn.Net.Training.Tests;

public class ViaDatasetTests
{
    private static readonly string[] EllipseFiles =
    [
        "Screen Shot 2018-08-31 at 7.35.31 PM.png",
        "Screen Shot 2018-08-31 at 7.35.51 PM.png",
        "Screen Shot 2018-08-31 at 7.40.56 PM.png",
        "Screen Shot 2018-08-31 at 7.47.55 PM.png",
    ];

    [Fact]
    public void RealVia1FileWithBlankImages()
    {
        using var dir = new TempDir();
        foreach (var f in EllipseFiles)
        {
            // 640x400 holds every ellipse of the file (the largest reaches x = 626, y = 343).
            TestFiles.WriteBlankPng(dir.File(f), 400, 640);
        }

        var dataset = ViaDataset.Load(TestFiles.ViaEllipses, dir.Path);

        dataset.Count.Should().Be(4);
        dataset.ClassNames.Should().Equal("__background__", "object");
        dataset.Samples.Select(s => s.Annotations.Count).Should().Equal(3, 1, 0, 3);
        dataset.Samples.Select(s => s.FileName).Should().Equal(EllipseFiles);
        var s0 = dataset.GetSample(0);
        (s0.Width, s0.Height).Should().Be((640, 400));

        // First region: ellipse cx 253, cy 217, rx 28, ry 8.
        var a = s0.Annotations[0];
        a.Label.Should().Be(1);
        a.Box.X1.Should().BeApproximately(225, 0.01f);
        a.Box.X2.Should().BeApproximately(281, 0.01f);
        a.Box.Y1.Should().BeApproximately(209, 0.05f);
        a.Box.Y2.Should().BeApproximately(225, 0.05f);
        var area = a.GetMask()!.Area;
        area.Should().BeCloseTo((long)Math.Round(Math.PI * 28 * 8), 40);

        // Last image, a big ellipse: cx 563, cy 171, rx 63, ry 60.
        dataset.GetSample(3).Annotations[0].GetMask()!.Area.Should().BeCloseTo((long)Math.Round(Math.PI * 63 * 60), 150);
    }

    [Fact]
    public void MissingImagesFailClearlyUnlessSizesAreGiven()
    {
        using var dir = new TempDir();
        var act = () => ViaDataset.Load(TestFiles.ViaEllipses, dir.Path);
        var e = act.Should().Throw<DatasetFormatException>().Which;
        e.Reason.Should().Contain("4 image file(s) missing").And.Contain(EllipseFiles[0]);
        e.Location.Should().EndWith(".filename");

        var noFiles = () => ViaDataset.Load(TestFiles.ViaEllipses, dir.Path, new ViaOptions { RequireImageFiles = false });
        noFiles.Should().Throw<DatasetFormatException>().Which.Reason.Should().Contain("ImageSizes");

        var sizes = EllipseFiles.ToDictionary(f => f, _ => new ImageSize(400, 640));
        var dataset = ViaDataset.Load(TestFiles.ViaEllipses, dir.Path, new ViaOptions { RequireImageFiles = false, ImageSizes = sizes });
        dataset.AnnotationCount.Should().Be(7);
    }

    private static JsonObject Region(JsonObject shape, JsonObject? attributes = null) => new()
    {
        ["shape_attributes"] = shape,
        ["region_attributes"] = attributes ?? new JsonObject(),
    };

    private static JsonObject Via2Project(params JsonObject[] regions) => new()
    {
        ["_via_settings"] = new JsonObject(),
        ["_via_attributes"] = new JsonObject(),
        ["_via_img_metadata"] = new JsonObject
        {
            ["img.png123"] = new JsonObject
            {
                ["filename"] = "img.png",
                ["size"] = 123,
                ["regions"] = new JsonArray(regions.Select(r => (JsonNode)r).ToArray()),
                ["file_attributes"] = new JsonObject(),
            },
        },
    };

    [Fact]
    public void Via2ProjectWithEveryShapeAndAClassAttribute()
    {
        using var dir = new TempDir();
        TestFiles.WriteBlankPng(dir.File("img.png"), 60, 80);
        var json = Via2Project(
            Region(new JsonObject { ["name"] = "rect", ["x"] = 10, ["y"] = 5, ["width"] = 20, ["height"] = 8 },
                new JsonObject { ["type"] = "cat" }),
            Region(new JsonObject { ["name"] = "polygon", ["all_points_x"] = new JsonArray(40, 50, 50, 40), ["all_points_y"] = new JsonArray(40, 40, 50, 50) },
                new JsonObject { ["type"] = "dog" }),
            Region(new JsonObject { ["name"] = "circle", ["cx"] = 30, ["cy"] = 30, ["r"] = 10 },
                new JsonObject { ["type"] = new JsonObject { ["bird"] = true, ["cat"] = false } }),
            Region(new JsonObject { ["name"] = "polyline", ["all_points_x"] = new JsonArray(60, 70, 70), ["all_points_y"] = new JsonArray(10, 10, 20) },
                new JsonObject { ["type"] = "dog" }),
            Region(new JsonObject { ["name"] = "point", ["cx"] = 3, ["cy"] = 3 }, new JsonObject { ["type"] = "dog" }));
        var file = dir.Write("project.json", json.ToJsonString());
        var logger = new ListLogger();

        var dataset = ViaDataset.Load(file, dir.Path, new ViaOptions { ClassAttribute = "type", Logger = logger });

        dataset.ClassNames.Should().Equal("__background__", "bird", "cat", "dog");
        var anns = dataset.GetSample(0).Annotations;
        anns.Select(a => a.Label).Should().Equal(2, 3, 1, 3);
        anns[0].Box.Should().Be(new BoundingBox(10, 5, 30, 13));
        anns[0].GetMask()!.Area.Should().Be(20 * 8);
        anns[1].Box.Should().Be(new BoundingBox(40, 40, 50, 50));
        anns[1].GetMask()!.Area.Should().Be(100);
        anns[2].GetMask()!.Area.Should().BeCloseTo((long)Math.Round(Math.PI * 100), 15);
        anns[3].GetMask()!.Area.Should().BeCloseTo(50, 10, "a closed right triangle of legs 10");
        logger.Entries.Should().ContainSingle(e => e.Message.Contains("\"point\"", StringComparison.Ordinal));
    }

    [Fact]
    public void RotatedEllipseSwapsItsExtent()
    {
        using var dir = new TempDir();
        TestFiles.WriteBlankPng(dir.File("img.png"), 100, 100);
        var json = Via2Project(Region(new JsonObject
        {
            ["name"] = "ellipse", ["cx"] = 50, ["cy"] = 50, ["rx"] = 30, ["ry"] = 10, ["theta"] = Math.PI / 2,
        }));
        var dataset = ViaDataset.Load(dir.Write("p.json", json.ToJsonString()), dir.Path, new ViaOptions { DefaultClass = "blob" });
        dataset.ClassNames.Should().Equal("__background__", "blob");
        var box = dataset.GetSample(0).Annotations[0].Box;
        box.Width.Should().BeApproximately(20, 0.1f);
        box.Height.Should().BeApproximately(60, 0.1f);
    }

    [Fact]
    public void Via1RegionsAsAListAndFixedClassNames()
    {
        using var dir = new TempDir();
        TestFiles.WriteBlankPng(dir.File("x.png"), 20, 20);
        var json = new JsonObject
        {
            ["x.png42"] = new JsonObject
            {
                ["filename"] = "x.png",
                ["size"] = 42,
                ["regions"] = new JsonArray(Region(new JsonObject { ["name"] = "rect", ["x"] = 1, ["y"] = 1, ["width"] = 4, ["height"] = 4 },
                    new JsonObject { ["label"] = "b" })),
            },
        };
        var file = dir.Write("v1.json", json.ToJsonString());
        var dataset = ViaDataset.Load(file, dir.Path, new ViaOptions { ClassAttribute = "label", ClassNames = ["a", "b"] });
        dataset.ClassNames.Should().Equal("__background__", "a", "b");
        dataset.GetSample(0).Annotations[0].Label.Should().Be(2);

        var unknown = () => ViaDataset.Load(file, dir.Path,
            new ViaOptions { ClassAttribute = "label", ClassNames = ["a"], BadAnnotations = BadAnnotationPolicy.Fail });
        var e = unknown.Should().Throw<DatasetFormatException>().Which;
        e.Location.Should().Be("$['x.png42'].regions[0].region_attributes.label");
        e.Reason.Should().Contain("unknown class \"b\"");

        var missingAttribute = () => ViaDataset.Load(file, dir.Path, new ViaOptions { ClassAttribute = "kind" });
        missingAttribute.Should().Throw<DatasetFormatException>().Which.Location.Should().Be("$['x.png42'].regions[0].region_attributes.kind");
    }

    [Fact]
    public void HostileShapes()
    {
        using var dir = new TempDir();
        TestFiles.WriteBlankPng(dir.File("img.png"), 10, 10);

        DatasetFormatException Fails(JsonObject shape)
        {
            var file = dir.Write($"{Guid.NewGuid():N}.json", Via2Project(Region(shape)).ToJsonString());
            var act = () => ViaDataset.Load(file, dir.Path);
            return act.Should().Throw<DatasetFormatException>().Which;
        }

        Fails(new JsonObject { ["name"] = "polygon", ["all_points_x"] = new JsonArray(1, 5, 1e9), ["all_points_y"] = new JsonArray(1, 1, 5) })
            .Location.Should().Be("$._via_img_metadata['img.png123'].regions[0].shape_attributes.all_points_x[2]");
        Fails(new JsonObject { ["name"] = "polygon", ["all_points_x"] = new JsonArray(1, 5, 5), ["all_points_y"] = new JsonArray(1, 1) })
            .Location.Should().EndWith("all_points_y");
        Fails(new JsonObject { ["name"] = "circle", ["cx"] = "5", ["cy"] = 5, ["r"] = 2 })
            .Location.Should().EndWith("shape_attributes.cx");
        Fails(new JsonObject { ["name"] = "rect", ["x"] = 1, ["y"] = 1, ["width"] = -3, ["height"] = 2 })
            .Reason.Should().Contain("negative");
        Fails(new JsonObject { ["name"] = "ellipse", ["cx"] = 5, ["cy"] = 5, ["rx"] = 2 })
            .Location.Should().EndWith("shape_attributes.ry");
    }

    [Fact]
    public void Via3ProjectsAreRejected()
    {
        using var dir = new TempDir();
        var file = dir.Write("v3.json", """{"project": {}, "config": {}, "attribute": {}, "file": {}, "view": {}, "metadata": {}}""");
        var act = () => ViaDataset.Load(file, dir.Path);
        act.Should().Throw<DatasetFormatException>().Which.Reason.Should().Contain("VIA 3");
    }
}
