using System.Text.Json.Nodes;
using MaskRcnn.Net.Core.Imaging;
using MaskRcnn.Net.Core.Tests.TestSupport;

namespace MaskRcnn.Net.Training.Tests;

/// <summary>
/// Hostile COCO, VIA and LabelMe files (issue 6, item 4): wrong types, missing fields, absurd numbers and broken
/// images must give a <see cref="DatasetFormatException"/> naming the file and the JSON path, or a correct (possibly
/// empty) dataset; never another exception type, a crash or a hang. Complements CocoHostileJsonTests.
/// </summary>
public class HostileInputTests
{
    // ---- COCO --------------------------------------------------------------------------------------------------

    private static JsonObject Coco() => new()
    {
        ["images"] = new JsonArray(new JsonObject { ["id"] = 1, ["file_name"] = "a.png", ["width"] = 8, ["height"] = 6 }),
        ["categories"] = new JsonArray(new JsonObject { ["id"] = 3, ["name"] = "thing" }),
        ["annotations"] = new JsonArray(new JsonObject
        {
            ["id"] = 1, ["image_id"] = 1, ["category_id"] = 3, ["iscrowd"] = 0, ["bbox"] = new JsonArray(1, 1, 3, 3),
            ["segmentation"] = new JsonArray(new JsonArray(1, 1, 4, 1, 4, 4, 1, 4)),
        }),
    };

    private static DetectionDataset LoadCoco(string json, CocoOptions? options = null)
    {
        using var dir = new TempDir();
        TestFiles.WriteBlankPng(dir.File("a.png"), 6, 8);
        return CocoDataset.Load(dir.Write("coco.json", json), dir.Path, options);
    }

    private static DatasetFormatException CocoFails(string json)
    {
        using var dir = new TempDir();
        TestFiles.WriteBlankPng(dir.File("a.png"), 6, 8);
        var file = dir.Write("coco.json", json);
        var e = FluentActions.Invoking(() => CocoDataset.Load(file, dir.Path)).Should().Throw<DatasetFormatException>().Which;
        e.FilePath.Should().Be(file);
        e.Message.Should().StartWith(file);
        return e;
    }

    private static JsonNode At(JsonObject root, string path)
    {
        JsonNode node = root;
        foreach (var part in path.Split('.'))
        {
            node = int.TryParse(part, out var i) ? node[i]! : node[part]!;
        }

        return node;
    }

    /// <summary>(path of the value to replace, replacement JSON, expected error location).</summary>
    public static TheoryData<string, string, string> CocoWrongTypes => new()
    {
        { "annotations", "{}", "$.annotations" },
        { "annotations.0", "7", "$.annotations[0]" },
        { "annotations.0.image_id", "null", "$.annotations[0].image_id" },
        { "annotations.0.image_id", "\"1\"", "$.annotations[0].image_id" },
        { "annotations.0.category_id", "3.5", "$.annotations[0].category_id" },
        { "annotations.0.iscrowd", "\"yes\"", "$.annotations[0].iscrowd" },
        { "annotations.0.bbox", "{\"x\":1}", "$.annotations[0].bbox" },
        { "annotations.0.bbox", "[1, 1, 3, null]", "$.annotations[0].bbox[3]" },
        { "annotations.0.segmentation", "[[1, 1, 4, \"1\", 4, 4]]", "$.annotations[0].segmentation[0][3]" },
        { "annotations.0.segmentation", "[[1, 1, -1e9, 1, 4, 4]]", "$.annotations[0].segmentation[0][2]" },
        { "annotations.0.segmentation", "[[1, 1, 4, 1, 4, 1e308]]", "$.annotations[0].segmentation[0][5]" },
        { "annotations.0.segmentation", "{\"size\": \"6x8\", \"counts\": [48]}", "$.annotations[0].segmentation.size" },
        { "annotations.0.segmentation", "{\"size\": [6, 8], \"counts\": {\"0\": 48}}", "$.annotations[0].segmentation.counts" },
        { "annotations.0.segmentation", "{\"size\": [6, 8], \"counts\": [48, -1, 1]}", "$.annotations[0].segmentation.counts" },
        { "annotations.0.segmentation", "{\"size\": [6, 8], \"counts\": [4294967296]}", "$.annotations[0].segmentation.counts[0]" },
        { "annotations.0.segmentation", "{\"size\": [1e10, 8], \"counts\": []}", "$.annotations[0].segmentation.size[0]" },
        { "annotations.0.segmentation", "{\"counts\": [48]}", "$.annotations[0].segmentation.size" },
        { "categories.0.name", "5", "$.categories[0].name" },
        { "categories.0.name", "\"\"", "$.categories[0].name" },
        { "categories.0.id", "[3]", "$.categories[0].id" },
        { "images.0.width", "0", "$.images[0].width" },
        { "images.0.width", "-8", "$.images[0].width" },
        { "images.0.width", "1.5", "$.images[0].width" },
        { "images.0.width", "1e10", "$.images[0].width" },
        { "images.0.height", "\"6\"", "$.images[0].height" },
        { "images.0.file_name", "{}", "$.images[0].file_name" },
        { "images.0.file_name", "\"a\\u0000.png\"", "$.images[0].file_name" },
        { "images.0.id", "true", "$.images[0].id" },
    };

    [Theory]
    [MemberData(nameof(CocoWrongTypes))]
    public void Coco_value_of_the_wrong_type_or_range_names_its_path(string path, string replacement, string location)
    {
        var json = Coco();
        var node = At(json, path);
        node.ReplaceWith(JsonNode.Parse(replacement)); // JsonNode.Parse("null") is null: a JSON null
        CocoFails(json.ToJsonString()).Location.Should().Be(location);
    }

    [Theory]
    [InlineData("images", "$.images")]
    [InlineData("annotations", "$.annotations")]
    [InlineData("annotations.0.image_id", "$.annotations[0].image_id")]
    [InlineData("annotations.0.category_id", "$.annotations[0].category_id")]
    [InlineData("categories.0.id", "$.categories[0].id")]
    [InlineData("categories.0.name", "$.categories[0].name")]
    [InlineData("images.0.width", "$.images[0].width")]
    [InlineData("images.0.id", "$.images[0].id")]
    public void Coco_missing_field_names_its_path(string path, string location)
    {
        var json = Coco();
        var node = At(json, path);
        ((JsonObject)node.Parent!).Remove(node.GetPropertyName());
        var e = CocoFails(json.ToJsonString());
        e.Location.Should().Be(location);
        e.Reason.Should().Be("required field is missing");
    }

    [Fact]
    public void Coco_annotation_without_bbox_and_segmentation_is_named()
    {
        var json = Coco();
        var ann = (JsonObject)At(json, "annotations.0");
        ann.Remove("bbox");
        ann.Remove("segmentation");
        CocoFails(json.ToJsonString()).Location.Should().Be("$.annotations[0]");
    }

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData("{\"images\": [")]
    [InlineData("\uFEFF{]")]
    public void Coco_empty_or_broken_json_is_a_format_error(string text) =>
        CocoFails(text).Reason.Should().StartWith("invalid JSON");

    [Fact]
    public void Coco_nested_beyond_the_depth_limit_is_a_format_error()
    {
        var deep = "{\"info\": " + new string('[', 300) + new string(']', 300) + ", " + Coco().ToJsonString()[1..];
        CocoFails(deep).Reason.Should().Contain("depth");
    }

    [Fact]
    public void Invalid_utf8_or_lone_surrogates_in_strings_are_format_errors_in_every_reader()
    {
        // System.Text.Json only validates a string's bytes when the string is read, and then throws an
        // InvalidOperationException; the readers report a DatasetFormatException instead.
        var coco = System.Text.Encoding.UTF8.GetBytes(Coco().ToJsonString().Replace("\"thing\"", "\"th\u00ffing\"", StringComparison.Ordinal));
        var at = coco.AsSpan().IndexOf("th\u00ffing"u8);
        at.Should().BePositive();
        coco[at + 2] = 0xFF; // a raw 0xFF byte where the escape was
        using (var dir = new TempDir())
        {
            TestFiles.WriteBlankPng(dir.File("a.png"), 6, 8);
            var file = dir.File("coco.json");
            File.WriteAllBytes(file, coco);
            var e = FluentActions.Invoking(() => CocoDataset.Load(file, dir.Path)).Should().Throw<DatasetFormatException>().Which;
            e.Reason.Should().Contain("not valid UTF-8").And.Contain("0xFF");
            e.Location.Should().StartWith("line 1, byte ");
        }

        CocoFails(Coco().ToJsonString().Replace("\"thing\"", "\"\\ud800\"", StringComparison.Ordinal))
            .Location.Should().Be("$.categories[0].name");

        var via = Via2(("cell", Polygon(2, 2, 12, 2, 12, 12))).ToJsonString().Replace("\"a.png123\"", "\"\\udc00\"", StringComparison.Ordinal);
        ViaFails(via).Location.Should().Be("$._via_img_metadata");
        var viaClass = Via2(("cell", Polygon(2, 2, 12, 2, 12, 12))).ToJsonString().Replace("\"cell\"", "\"\\ud800\"", StringComparison.Ordinal);
        ViaFails(viaClass).Location.Should().EndWith("region_attributes.type");

        var labelMe = LabelMe().ToJsonString().Replace("\"cat\"", "\"\\udfff\"", StringComparison.Ordinal);
        LabelMeFails(labelMe).Location.Should().Be("$.shapes[0].label");
    }

    [Fact]
    public void Coco_file_with_a_utf8_byte_order_mark_loads()
    {
        using var dir = new TempDir();
        TestFiles.WriteBlankPng(dir.File("a.png"), 6, 8);
        var file = dir.File("bom.json");
        File.WriteAllBytes(file, [0xEF, 0xBB, 0xBF, .. System.Text.Encoding.UTF8.GetBytes(Coco().ToJsonString())]);
        CocoDataset.Load(file, dir.Path).GetSample(0).Annotations.Should().ContainSingle();
    }

    [Fact]
    public void Coco_image_with_more_pixels_than_a_mask_can_hold_is_named()
    {
        // 100000 x 100000 pixels: an empty polygon list used to compute height * width in 32 bits and fail with an
        // ArgumentException about a negative run length.
        var json = Coco();
        At(json, "images.0.width").ReplaceWith(100_000);
        At(json, "images.0.height").ReplaceWith(100_000);
        At(json, "annotations.0").AsObject()["segmentation"] = new JsonArray();
        var e = CocoFails(json.ToJsonString());
        e.Location.Should().Be("$.images[0]");
        e.Reason.Should().Contain("100000x100000");
    }

    [Fact]
    public void Coco_boxes_far_outside_the_image_give_a_correct_empty_result()
    {
        // bbox values are finite but absurd: the clamped box is empty, so the annotation is dropped with a warning
        // and the image stays as a negative.
        var json = Coco();
        var ann = (JsonObject)At(json, "annotations.0");
        ann["bbox"] = new JsonArray(1e308, -1e308, 1e308, 1e308);
        ann.Remove("segmentation");
        var logger = new ListLogger();
        var d = LoadCoco(json.ToJsonString(), new CocoOptions { Logger = logger });
        d.Count.Should().Be(1);
        d.GetSample(0).Annotations.Should().BeEmpty();
        logger.Entries.Should().Contain(x => x.Message.Contains("degenerate", StringComparison.Ordinal));
    }

    [Fact]
    public void Coco_polygon_with_vertices_at_the_coordinate_limit_rasterises_quickly()
    {
        // ±1e6 is the largest accepted coordinate: the edges cross the image, the mask is computed without walking
        // the millions of points pycocotools would.
        var json = Coco();
        At(json, "annotations.0.segmentation").ReplaceWith(new JsonArray(new JsonArray(-1e6, -1e6, 1e6, -1e6, 1e6, 1e6, -1e6, 1e6)));
        At(json, "annotations.0").AsObject().Remove("bbox");
        var (d, cpu) = ThreadCpuTime.Of(() => LoadCoco(json.ToJsonString()));
        cpu.Should().BeLessThan(TimeSpan.FromSeconds(5), "walking the edges point by point would take minutes (CPU time of this thread)");
        var a = d.GetSample(0).Annotations.Single();
        a.GetMask()!.Area.Should().Be(48, "the polygon covers the whole 8x6 image");
        (a.Box.X1, a.Box.Y1, a.Box.X2, a.Box.Y2).Should().Be((0f, 0f, 8f, 6f));
    }

    // ---- VIA ---------------------------------------------------------------------------------------------------

    private static JsonObject Via2(params (string Name, JsonObject Shape)[] regions) => new()
    {
        ["_via_settings"] = new JsonObject(),
        ["_via_img_metadata"] = new JsonObject
        {
            ["a.png123"] = new JsonObject
            {
                ["filename"] = "a.png",
                ["size"] = 123,
                ["regions"] = new JsonArray(regions.Select(r => (JsonNode)new JsonObject
                {
                    ["shape_attributes"] = r.Shape,
                    ["region_attributes"] = new JsonObject { ["type"] = r.Name },
                }).ToArray()),
                ["file_attributes"] = new JsonObject(),
            },
        },
    };

    private static JsonObject Polygon(params double[] xy) => new()
    {
        ["name"] = "polygon",
        ["all_points_x"] = new JsonArray(xy.Where((_, i) => i % 2 == 0).Select(v => (JsonNode)v).ToArray()),
        ["all_points_y"] = new JsonArray(xy.Where((_, i) => i % 2 == 1).Select(v => (JsonNode)v).ToArray()),
    };

    private static DatasetFormatException ViaFails(string json, Action<TempDir>? prepare = null, ViaOptions? options = null)
    {
        using var dir = new TempDir();
        if (prepare is null)
        {
            TestFiles.WriteBlankPng(dir.File("a.png"), 30, 40);
        }
        else
        {
            prepare(dir);
        }

        var file = dir.Write("via.json", json);
        var e = FluentActions.Invoking(() => ViaDataset.Load(file, dir.Path, options ?? new ViaOptions { ClassAttribute = "type" }))
            .Should().Throw<DatasetFormatException>().Which;
        e.Message.Should().Contain(dir.Path);
        return e;
    }

    [Fact]
    public void Via_valid_project_loads()
    {
        using var dir = new TempDir();
        TestFiles.WriteBlankPng(dir.File("a.png"), 30, 40);
        var json = Via2(("cell", Polygon(2, 2, 12, 2, 12, 12, 2, 12)));
        var d = ViaDataset.Load(dir.Write("via.json", json.ToJsonString()), dir.Path, new ViaOptions { ClassAttribute = "type" });
        d.ClassNames.Should().Equal("__background__", "cell");
        d.GetSample(0).Annotations.Single().GetMask()!.Area.Should().Be(100);
    }

    public static TheoryData<string, string, string> ViaBreakage => new()
    {
        // (what, the shape_attributes JSON, expected location suffix)
        { "points of strings", """{"name":"polygon","all_points_x":["1","5","5"],"all_points_y":[1,1,5]}""", ".all_points_x[0]" },
        { "huge coordinate", """{"name":"polygon","all_points_x":[1,1e9,5],"all_points_y":[1,1,5]}""", ".all_points_x[1]" },
        { "1e308 coordinate", """{"name":"polygon","all_points_x":[1,5,5],"all_points_y":[1,1,1e308]}""", ".all_points_y[2]" },
        { "length mismatch", """{"name":"polygon","all_points_x":[1,5,5,1],"all_points_y":[1,1,5]}""", ".all_points_y" },
        { "points not an array", """{"name":"polygon","all_points_x":7,"all_points_y":[1,1,5]}""", ".all_points_x" },
        { "no points", """{"name":"polyline"}""", ".all_points_x" },
        { "rect of strings", """{"name":"rect","x":1,"y":1,"width":"5","height":5}""", ".width" },
        { "negative rect", """{"name":"rect","x":1,"y":1,"width":-5,"height":5}""", "shape_attributes" },
        { "negative radius", """{"name":"circle","cx":10,"cy":10,"r":-3}""", ".r" },
        { "huge radius", """{"name":"circle","cx":10,"cy":10,"r":1e12}""", ".r" },
        { "ellipse without ry", """{"name":"ellipse","cx":10,"cy":10,"rx":3}""", ".ry" },
        { "name not a string", """{"name":5}""", ".name" },
    };

    [Theory]
    [MemberData(nameof(ViaBreakage))]
    public void Via_broken_shape_names_its_path(string what, string shape, string location)
    {
        var json = Via2(("cell", (JsonObject)JsonNode.Parse(shape)!));
        var e = ViaFails(json.ToJsonString());
        e.Location.Should().StartWith("$._via_img_metadata['a.png123'].regions[0].shape_attributes", what).And.EndWith(location, what);
    }

    [Fact]
    public void Via_structure_of_the_wrong_type_is_named()
    {
        ViaFails("""{"_via_img_metadata": []}""").Location.Should().Be("$._via_img_metadata");
        ViaFails("""[1, 2]""").Location.Should().Be("$");
        ViaFails("""{"x": {"filename": 5, "regions": []}}""").Location.Should().Be("$.x.filename");
        ViaFails("""{"x": {"filename": "a\u0000.png", "regions": []}}""", options: new ViaOptions { RequireImageFiles = false })
            .Reason.Should().Contain("NUL");
        ViaFails("""{"x": {"filename": "a.png", "regions": "none"}}""").Location.Should().Be("$.x.regions");
        ViaFails("""{"x": {"filename": "a.png", "regions": [7]}}""").Location.Should().Be("$.x.regions[0]");
        ViaFails("""{"x": {"filename": "a.png"}}""").Location.Should().Be("$.x.regions");
        ViaFails("""{"x": 3}""").Location.Should().Be("$.x");
        ViaFails("").Reason.Should().StartWith("invalid JSON");
    }

    [Fact]
    public void Via_checkbox_class_with_two_checked_options_is_named()
    {
        var json = Via2(("cell", Polygon(2, 2, 12, 2, 12, 12)));
        var region = json["_via_img_metadata"]!["a.png123"]!["regions"]![0]!;
        region["region_attributes"]!["type"] = new JsonObject { ["cell"] = true, ["nucleus"] = true };
        ViaFails(json.ToJsonString()).Reason.Should().Contain("found 2");
    }

    [Theory]
    [InlineData("empty")]
    [InlineData("garbage")]
    [InlineData("truncated")]
    [InlineData("huge")]
    public void Via_image_that_cannot_be_read_is_named_with_the_image_path(string kind)
    {
        var json = Via2(("cell", Polygon(2, 2, 12, 2, 12, 12, 2, 12)));
        var e = ViaFails(json.ToJsonString(), dir =>
        {
            var path = dir.File("a.png");
            TestFiles.WriteBlankPng(path, 30, 40);
            var png = File.ReadAllBytes(path);
            byte[] bytes = kind switch
            {
                "empty" => [],
                "garbage" => "not an image at all"u8.ToArray(),
                "truncated" => png[..20],
                _ => PatchPngSize(png, 30_000, 30_000),
            };
            File.WriteAllBytes(path, bytes);
        });
        e.FilePath.Should().EndWith("a.png");
        e.Reason.Should().StartWith("cannot read the image header");
        e.InnerException.Should().BeOfType<ImageDecodeException>();
    }

    // ---- LabelMe -----------------------------------------------------------------------------------------------

    private static JsonObject LabelMe(string? imagePath = "a.png") => new()
    {
        ["version"] = "5.2.1",
        ["shapes"] = new JsonArray(new JsonObject
        {
            ["label"] = "cat",
            ["points"] = new JsonArray(new JsonArray(2, 2), new JsonArray(12, 2), new JsonArray(12, 12)),
            ["shape_type"] = "polygon",
            ["group_id"] = 4,
        }),
        ["imagePath"] = imagePath,
        ["imageData"] = null,
        ["imageHeight"] = 30,
        ["imageWidth"] = 40,
    };

    private static DatasetFormatException LabelMeFails(string json, bool withImage = true)
    {
        using var dir = new TempDir();
        if (withImage)
        {
            TestFiles.WriteBlankPng(dir.File("a.png"), 30, 40);
        }

        var file = dir.Write("lm.json", json);
        var e = FluentActions.Invoking(() => LabelMeDataset.Load([file])).Should().Throw<DatasetFormatException>().Which;
        e.Message.Should().Contain(dir.Path);
        return e;
    }

    [Fact]
    public void LabelMe_valid_file_loads()
    {
        using var dir = new TempDir();
        TestFiles.WriteBlankPng(dir.File("a.png"), 30, 40);
        var d = LabelMeDataset.Load([dir.Write("lm.json", LabelMe().ToJsonString())]);
        d.GetSample(0).Annotations.Should().ContainSingle();
    }

    [Theory]
    [InlineData("a\u0000b.png")]
    [InlineData("\u0000")]
    public void LabelMe_image_path_with_a_nul_character_is_named(string imagePath)
    {
        var e = LabelMeFails(LabelMe(imagePath).ToJsonString());
        e.Location.Should().Be("$.imagePath");
    }

    public static TheoryData<string, string, string> LabelMeBreakage => new()
    {
        // (path to replace, replacement JSON, expected location)
        { "shapes", "null", "$.shapes" },
        { "shapes", "{}", "$.shapes" },
        { "shapes.0", "\"cat\"", "$.shapes[0]" },
        { "shapes.0.label", "3", "$.shapes[0].label" },
        { "shapes.0.points", "[[2, 2], [12, 2], [12, 1e9]]", "$.shapes[0].points[2][1]" },
        { "shapes.0.points", "[[2, 2], [12, 2], [-1e300, 12]]", "$.shapes[0].points[2][0]" },
        { "shapes.0.points", "[[2, 2, 3], [12, 2], [12, 12]]", "$.shapes[0].points[0]" },
        { "shapes.0.points", "[[2, 2], [12, \"2\"], [12, 12]]", "$.shapes[0].points[1][1]" },
        { "shapes.0.points", "[2, 2, 12, 2, 12, 12]", "$.shapes[0].points[0]" },
        { "shapes.0.shape_type", "7", "$.shapes[0].shape_type" },
        { "shapes.0.group_id", "\"g\"", "$.shapes[0].group_id" },
        { "imageWidth", "0", "$.imageWidth" },
        { "imageHeight", "-1", "$.imageHeight" },
        { "imageHeight", "\"30\"", "$.imageHeight" },
        { "imageWidth", "3e9", "$.imageWidth" },
        { "imagePath", "[]", "$.imagePath" },
    };

    [Theory]
    [MemberData(nameof(LabelMeBreakage))]
    public void LabelMe_value_of_the_wrong_type_or_range_names_its_path(string path, string replacement, string location)
    {
        var json = LabelMe();
        var node = At(json, path);
        if (node is null)
        {
            throw new InvalidOperationException(path);
        }

        node.ReplaceWith(JsonNode.Parse(replacement));
        LabelMeFails(json.ToJsonString()).Location.Should().Be(location);
    }

    [Theory]
    [InlineData("shapes", "$.shapes")]
    [InlineData("shapes.0.label", "$.shapes[0].label")]
    [InlineData("shapes.0.points", "$.shapes[0].points")]
    public void LabelMe_missing_field_names_its_path(string path, string location)
    {
        var json = LabelMe();
        var node = At(json, path);
        ((JsonObject)node.Parent!).Remove(node.GetPropertyName());
        var e = LabelMeFails(json.ToJsonString());
        e.Location.Should().Be(location);
        e.Reason.Should().Be("required field is missing");
    }

    [Fact]
    public void LabelMe_rectangle_and_circle_with_the_wrong_point_count_are_named()
    {
        var json = LabelMe();
        At(json, "shapes.0").AsObject()["shape_type"] = "rectangle";
        LabelMeFails(json.ToJsonString()).Reason.Should().Contain("needs 2 points");
        At(json, "shapes.0").AsObject()["shape_type"] = "circle";
        LabelMeFails(json.ToJsonString()).Reason.Should().Contain("needs 2 points");
    }

    [Fact]
    public void LabelMe_embedded_image_that_is_not_base64_or_not_an_image_is_named()
    {
        var json = LabelMe(null);
        json["imageData"] = "%%% not base64 %%%";
        LabelMeFails(json.ToJsonString(), withImage: false).Location.Should().Be("$.imageData");

        json["imageData"] = Convert.ToBase64String("GIF89a but not really"u8.ToArray());
        json.Remove("imageWidth");
        var e = LabelMeFails(json.ToJsonString(), withImage: false);
        e.Location.Should().Be("$.imageData");
        e.Reason.Should().Contain("cannot read the image header").And.Contain("Gif");

        json["imageData"] = 5;
        LabelMeFails(json.ToJsonString(), withImage: false).Location.Should().Be("$.imageData");

        // Empty base64 is valid base64 for zero bytes: a file without any image used to load and fail later, in
        // DatasetSample.LoadImage, with an InvalidOperationException (found by the fuzzer).
        json["imageData"] = "";
        json["imageWidth"] = 40;
        json["imagePath"] = "missing.png";
        var empty = LabelMeFails(json.ToJsonString(), withImage: false);
        empty.Location.Should().Be("$.imageData");
        empty.Reason.Should().Contain("empty").And.Contain("missing.png");
    }

    [Fact]
    public void LabelMe_image_larger_than_a_mask_can_hold_is_named()
    {
        var json = LabelMe();
        json["imageWidth"] = 100_000;
        json["imageHeight"] = 100_000;
        var e = LabelMeFails(json.ToJsonString());
        e.Reason.Should().Contain("100000x100000");
    }

    private static byte[] PatchPngSize(byte[] png, uint width, uint height)
    {
        // IHDR: length at byte 8, type at 12, width and height at 16 and 20, CRC (of type and data) at 29. The CRC
        // is recomputed so that only the size is wrong.
        var copy = png.ToArray();
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(copy.AsSpan(16), width);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(copy.AsSpan(20), height);
        var crc = 0xFFFFFFFFu;
        foreach (var b in copy.AsSpan(12, 17))
        {
            crc ^= b;
            for (var k = 0; k < 8; k++)
            {
                crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
            }
        }

        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(copy.AsSpan(29), ~crc);
        return copy;
    }
}
