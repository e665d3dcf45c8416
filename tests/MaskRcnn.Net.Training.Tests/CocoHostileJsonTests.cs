using System.Text.Json.Nodes;

namespace MaskRcnn.Net.Training.Tests;

public class CocoHostileJsonTests
{
    private static JsonObject Valid() => new()
    {
        ["images"] = new JsonArray(new JsonObject { ["id"] = 1, ["file_name"] = "a.png", ["width"] = 8, ["height"] = 6 }),
        ["categories"] = new JsonArray(new JsonObject { ["id"] = 1, ["name"] = "thing" }),
        ["annotations"] = new JsonArray(new JsonObject
        {
            ["id"] = 1, ["image_id"] = 1, ["category_id"] = 1, ["iscrowd"] = 0, ["bbox"] = new JsonArray(1, 1, 3, 3),
            ["segmentation"] = new JsonArray(new JsonArray(1, 1, 4, 1, 4, 4, 1, 4)),
        }),
    };

    private static DatasetFormatException LoadBroken(Action<JsonObject> breakIt, string? rawText = null, CocoOptions? options = null)
    {
        using var dir = new TempDir();
        TestFiles.WriteBlankPng(dir.File("a.png"), 6, 8);
        var json = Valid();
        breakIt(json);
        var file = dir.Write("bad.json", rawText ?? json.ToJsonString());
        var act = () => CocoDataset.Load(file, dir.Path, options);
        var e = act.Should().Throw<DatasetFormatException>().Which;
        e.FilePath.Should().Be(file);
        e.Message.Should().Contain(file);
        return e;
    }

    private static JsonObject Ann(JsonObject j) => (JsonObject)j["annotations"]![0]!;

    private static JsonObject Img(JsonObject j) => (JsonObject)j["images"]![0]!;

    [Fact]
    public void TheValidFileLoads()
    {
        using var dir = new TempDir();
        TestFiles.WriteBlankPng(dir.File("a.png"), 6, 8);
        var d = CocoDataset.Load(dir.Write("ok.json", Valid().ToJsonString()), dir.Path);
        d.GetSample(0).Annotations[0].GetMask()!.Area.Should().Be(9);
    }

    [Fact]
    public void WrongTypeOfWidth() =>
        LoadBroken(j => Img(j)["width"] = "eight").Location.Should().Be("$.images[0].width");

    [Fact]
    public void MissingFileName() =>
        LoadBroken(j => Img(j).Remove("file_name")).Location.Should().Be("$.images[0].file_name");

    [Fact]
    public void MissingCategories() =>
        LoadBroken(j => j.Remove("categories")).Location.Should().Be("$.categories");

    [Fact]
    public void ImagesNotAnArray() =>
        LoadBroken(j => j["images"] = new JsonObject()).Reason.Should().Contain("expected an array");

    [Fact]
    public void UnknownCategoryId()
    {
        var e = LoadBroken(j => Ann(j)["category_id"] = 99, options: new CocoOptions { BadAnnotations = BadAnnotationPolicy.Fail });
        e.Location.Should().Be("$.annotations[0].category_id");
        e.Reason.Should().Contain("99");
    }

    [Fact]
    public void UnknownImageId() =>
        LoadBroken(j => Ann(j)["image_id"] = 5, options: new CocoOptions { BadAnnotations = BadAnnotationPolicy.Fail })
            .Location.Should().Be("$.annotations[0].image_id");

    [Fact]
    public void BboxWithAString() =>
        LoadBroken(j => Ann(j)["bbox"] = new JsonArray(1, "x", 3, 3)).Location.Should().Be("$.annotations[0].bbox[1]");

    [Fact]
    public void BboxOfThreeNumbers() =>
        LoadBroken(j => Ann(j)["bbox"] = new JsonArray(1, 1, 3)).Location.Should().Be("$.annotations[0].bbox");

    [Fact]
    public void PolygonWithHugeCoordinate()
    {
        var e = LoadBroken(j => Ann(j)["segmentation"] = new JsonArray(new JsonArray(1, 1, 1e9, 1, 4, 4)));
        e.Location.Should().Be("$.annotations[0].segmentation[0][2]");
        e.Reason.Should().Contain("1000000000");
    }

    [Fact]
    public void PolygonWithNaNLiteral()
    {
        // Python's json module writes NaN, which is not JSON: the error names the line.
        var text = Valid().ToJsonString().Replace("[1,1,4,1,4,4,1,4]", "[1,1,NaN,1,4,4,1,4]", StringComparison.Ordinal);
        text.Should().Contain("NaN");
        var e = LoadBroken(_ => { }, text);
        e.Location.Should().StartWith("line 1");
        e.Reason.Should().Contain("invalid JSON");
    }

    [Fact]
    public void PolygonWithOverflowingNumber()
    {
        var text = Valid().ToJsonString().Replace("[1,1,4,1,4,4,1,4]", "[1,1,1e999,1,4,4,1,4]", StringComparison.Ordinal);
        LoadBroken(_ => { }, text).Location.Should().Be("$.annotations[0].segmentation[0][2]");
    }

    [Fact]
    public void PolygonWithOddCoordinateCount() =>
        LoadBroken(j => Ann(j)["segmentation"] = new JsonArray(new JsonArray(1, 1, 4, 1, 4, 4, 1)))
            .Location.Should().Be("$.annotations[0].segmentation[0]");

    [Fact]
    public void FlatSegmentationList() =>
        LoadBroken(j => Ann(j)["segmentation"] = new JsonArray(1, 1, 4, 1, 4, 4))
            .Location.Should().Be("$.annotations[0].segmentation[0]");

    [Fact]
    public void SegmentationOfWrongType() =>
        LoadBroken(j => Ann(j)["segmentation"] = "polygon").Location.Should().Be("$.annotations[0].segmentation");

    [Fact]
    public void RleOfWrongSize() =>
        LoadBroken(j => Ann(j)["segmentation"] = new JsonObject { ["size"] = new JsonArray(5, 5), ["counts"] = new JsonArray(25) })
            .Location.Should().Be("$.annotations[0].segmentation.size");

    [Fact]
    public void RleCountsThatDoNotSum() =>
        LoadBroken(j => Ann(j)["segmentation"] = new JsonObject { ["size"] = new JsonArray(6, 8), ["counts"] = new JsonArray(3, 4) })
            .Location.Should().Be("$.annotations[0].segmentation.counts");

    [Fact]
    public void CorruptCompressedRle() =>
        LoadBroken(j => Ann(j)["segmentation"] = new JsonObject { ["size"] = new JsonArray(6, 8), ["counts"] = "~~~" })
            .Location.Should().Be("$.annotations[0].segmentation.counts");

    [Fact]
    public void IsCrowdOfTwo() =>
        LoadBroken(j => Ann(j)["iscrowd"] = 2).Location.Should().Be("$.annotations[0].iscrowd");

    [Fact]
    public void DuplicateImageId() =>
        LoadBroken(j => ((JsonArray)j["images"]!).Add(new JsonObject { ["id"] = 1, ["file_name"] = "a.png", ["width"] = 8, ["height"] = 6 }))
            .Location.Should().Be("$.images[1].id");

    [Fact]
    public void MissingImageFileIsNamed()
    {
        var e = LoadBroken(j => Img(j)["file_name"] = "does-not-exist.jpg");
        e.Location.Should().Be("$.images[0].file_name");
        e.Reason.Should().Contain("does-not-exist.jpg");
    }

    [Fact]
    public void RootNotAnObject() =>
        LoadBroken(_ => { }, "[1, 2]").Location.Should().Be("$");
}
