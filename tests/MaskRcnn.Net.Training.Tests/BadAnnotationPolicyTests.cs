using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;

namespace MaskRcnn.Net.Training.Tests;

/// <summary>
/// <see cref="BadAnnotationPolicy"/> in the COCO, VIA and LabelMe readers: each file holds one good annotation and
/// one bad one of a kind; Skip keeps the good one and warns naming the file, the JSON path and (COCO) the annotation
/// id; Fail throws a <see cref="DatasetFormatException"/> naming the same.
/// </summary>
public class BadAnnotationPolicyTests
{
    private static readonly CocoOptions CocoFail = new() { BadAnnotations = BadAnnotationPolicy.Fail };

    private static List<string> Warnings(ListLogger logger) =>
        logger.Entries.Where(e => e.Level == LogLevel.Warning).Select(e => e.Message).ToList();

    /// <summary>Checks the one warning about the bad annotation and the summary warning.</summary>
    private static void ShouldHaveWarned(ListLogger logger, string file, string location, string? id = null)
    {
        var warnings = Warnings(logger);
        var bad = warnings.Where(w => w.Contains(location, StringComparison.Ordinal)).ToList();
        bad.Should().ContainSingle($"one warning names {location}: {string.Join(" | ", warnings)}");
        bad[0].Should().StartWith($"{file}: {location}: ").And.EndWith("skipped the annotation");
        if (id is not null)
        {
            bad[0].Should().Contain($"annotation id {id}:");
        }

        warnings.Should().Contain(w => w.Contains("skipped 1 bad annotation(s) and 0 image(s)", StringComparison.Ordinal));
    }

    // ---- COCO --------------------------------------------------------------------------------------------------

    private static JsonObject CocoAnnotation(int id, int imageId, int categoryId, JsonArray? bbox, params double[][] polygons)
    {
        var a = new JsonObject { ["id"] = id, ["image_id"] = imageId, ["category_id"] = categoryId, ["iscrowd"] = 0 };
        if (bbox is not null)
        {
            a["bbox"] = bbox;
        }

        a["segmentation"] = new JsonArray(polygons.Select(p => (JsonNode)new JsonArray(p.Select(v => (JsonNode)v).ToArray())).ToArray());
        return a;
    }

    private static readonly double[] Square = [2, 2, 8, 2, 8, 8, 2, 8];

    private static JsonObject Coco(params JsonObject[] annotations) => new()
    {
        ["images"] = new JsonArray(
            new JsonObject { ["id"] = 1, ["file_name"] = "a.png", ["width"] = 20, ["height"] = 16 },
            new JsonObject { ["id"] = 2, ["file_name"] = "b.png", ["width"] = 20, ["height"] = 16 }),
        ["categories"] = new JsonArray(new JsonObject { ["id"] = 3, ["name"] = "cat" }),
        ["annotations"] = new JsonArray([CocoAnnotation(10, 1, 3, new JsonArray(2, 2, 6, 6), Square), .. annotations]),
    };

    private static string WriteCoco(TempDir dir, JsonObject json)
    {
        TestFiles.WriteBlankPng(dir.File("a.png"), 16, 20);
        TestFiles.WriteBlankPng(dir.File("b.png"), 16, 20);
        return dir.Write("instances.json", json.ToJsonString());
    }

    /// <summary>(kind, the bad annotation (id 11, the second), expected JSON path of the fault, words of the reason).</summary>
    public static TheoryData<string, JsonObject, string, string> CocoBadAnnotations => new()
    {
        { "polygon of 2 points", CocoAnnotation(11, 1, 3, null, [1, 1, 5, 5]), "$.annotations[1].segmentation[0]", "at least 3 points, found 2" },
        { "second part of 1 point", CocoAnnotation(11, 2, 3, null, Square, [1, 1]), "$.annotations[1].segmentation[1]", "at least 3 points, found 1" },
        { "box outside the image", CocoAnnotation(11, 1, 3, new JsonArray(100, 100, 5, 5)), "$.annotations[1].bbox", "degenerate box" },
        { "box of zero width", CocoAnnotation(11, 2, 3, new JsonArray(3, 3, 0, 4)), "$.annotations[1].bbox", "degenerate box" },
        { "unknown category", CocoAnnotation(11, 1, 99, new JsonArray(2, 2, 6, 6), Square), "$.annotations[1].category_id", "unknown category id 99" },
        { "unknown image id", CocoAnnotation(11, 42, 3, new JsonArray(2, 2, 6, 6), Square), "$.annotations[1].image_id", "unknown image id 42" },
    };

    [Theory]
    [MemberData(nameof(CocoBadAnnotations))]
    public void Coco_skip_keeps_the_good_annotation_and_warns(string kind, JsonObject bad, string location, string reason)
    {
        using var dir = new TempDir();
        var file = WriteCoco(dir, Coco(bad));
        var logger = new ListLogger();

        var d = CocoDataset.Load(file, dir.Path, new CocoOptions { Logger = logger });

        d.Count.Should().Be(2, kind);
        d.AnnotationCount.Should().Be(1, kind);
        d.GetSample(0).Annotations.Single().Box.Should().Be(new BoundingBox(2, 2, 8, 8));
        d.LoadReport.Should().Be(new DatasetLoadReport { SkippedAnnotations = 1 });
        ShouldHaveWarned(logger, file, location, "11");
        Warnings(logger).Should().Contain(w => w.Contains(reason, StringComparison.Ordinal), kind);
    }

    [Theory]
    [MemberData(nameof(CocoBadAnnotations))]
    public void Coco_fail_throws_naming_the_file_path_and_id(string kind, JsonObject bad, string location, string reason)
    {
        using var dir = new TempDir();
        var file = WriteCoco(dir, Coco(bad));
        var logger = new ListLogger();

        var e = FluentActions.Invoking(() => CocoDataset.Load(file, dir.Path, CocoFail with { Logger = logger }))
            .Should().Throw<DatasetFormatException>().Which;

        e.FilePath.Should().Be(file, kind);
        e.Location.Should().Be(location, kind);
        e.Reason.Should().StartWith("annotation id 11: ").And.Contain(reason);
        e.Message.Should().StartWith($"{file}: {location}: annotation id 11: ");
        logger.Entries.Should().BeEmpty();
    }

    [Fact]
    public void Coco_skip_counts_every_kind_in_one_file()
    {
        using var dir = new TempDir();
        var json = Coco(
            CocoAnnotation(11, 1, 3, null, [1, 1, 5, 5]),
            CocoAnnotation(12, 1, 3, new JsonArray(100, 100, 5, 5)),
            CocoAnnotation(13, 2, 99, new JsonArray(2, 2, 6, 6), Square),
            CocoAnnotation(14, 42, 3, new JsonArray(2, 2, 6, 6), Square),
            CocoAnnotation(15, 2, 3, new JsonArray(1, 1, 4, 4)));
        var file = WriteCoco(dir, json);
        var logger = new ListLogger();

        var d = CocoDataset.Load(file, dir.Path, new CocoOptions { Logger = logger });

        d.GetSample(0).Annotations.Should().ContainSingle();
        d.GetSample(1).Annotations.Should().ContainSingle().Which.Box.Should().Be(new BoundingBox(1, 1, 5, 5));
        d.LoadReport.SkippedAnnotations.Should().Be(4);
        var warnings = Warnings(logger);
        foreach (var id in new[] { "11", "12", "13", "14" })
        {
            warnings.Should().ContainSingle(w => w.Contains($"annotation id {id}:", StringComparison.Ordinal));
        }

        warnings.Should().Contain(w => w.StartsWith(file, StringComparison.Ordinal) && w.Contains("skipped 4 bad annotation(s)", StringComparison.Ordinal));
    }

    [Fact]
    public void Coco_missing_image_file_is_skipped_with_its_annotations_or_thrown()
    {
        using var dir = new TempDir();
        var json = Coco(CocoAnnotation(11, 7, 3, new JsonArray(2, 2, 6, 6), Square));
        ((JsonArray)json["images"]!).Add(new JsonObject { ["id"] = 7, ["file_name"] = "gone.png", ["width"] = 20, ["height"] = 16 });
        var file = WriteCoco(dir, json);
        var logger = new ListLogger();

        var d = CocoDataset.Load(file, dir.Path, new CocoOptions { Logger = logger });

        d.Samples.Select(s => s.FileName).Should().Equal("a.png", "b.png");
        d.AnnotationCount.Should().Be(1, "annotation 11 went with its image, without a warning of its own");
        d.LoadReport.Should().Be(new DatasetLoadReport { SkippedImages = 1 });
        var warning = Warnings(logger).Should().ContainSingle(w => w.Contains("gone.png", StringComparison.Ordinal)).Which;
        warning.Should().StartWith(file).And.Contain("1 of 3 image file(s) missing").And.Contain(Path.Combine(dir.Path, "gone.png"))
            .And.Contain("$.images[2].file_name");
        Warnings(logger).Should().NotContain(w => w.Contains("annotation id 11", StringComparison.Ordinal));

        var e = FluentActions.Invoking(() => CocoDataset.Load(file, dir.Path, CocoFail)).Should().Throw<DatasetFormatException>().Which;
        e.FilePath.Should().Be(file);
        e.Location.Should().Be("$.images[2].file_name");
        e.Reason.Should().Contain("1 image file(s) missing").And.Contain("gone.png");

        CocoDataset.Load(file, dir.Path, CocoFail with { RequireImageFiles = false }).Count
            .Should().Be(3, "without RequireImageFiles a missing file is not looked for");
    }

    [Fact]
    public void Coco_skip_still_fails_when_every_image_file_is_missing()
    {
        using var dir = new TempDir();
        var file = dir.Write("instances.json", Coco().ToJsonString());
        var e = FluentActions.Invoking(() => CocoDataset.Load(file, dir.Path)).Should().Throw<DatasetFormatException>().Which;
        e.Reason.Should().Contain("2 image file(s) missing");
    }

    [Fact]
    public void Coco_structural_errors_stay_fatal_under_skip()
    {
        using var dir = new TempDir();
        var json = Coco(CocoAnnotation(11, 1, 3, new JsonArray(2, 2, 6, 6), Square));
        json["annotations"]![1]!["category_id"] = "three";
        var file = WriteCoco(dir, json);
        FluentActions.Invoking(() => CocoDataset.Load(file, dir.Path)).Should().Throw<DatasetFormatException>()
            .Which.Location.Should().Be("$.annotations[1].category_id");

        json["annotations"]![1]!["category_id"] = 3;
        json["annotations"]![1]!["segmentation"] = new JsonArray(new JsonArray(1, 1, 5));
        file = WriteCoco(dir, json);
        FluentActions.Invoking(() => CocoDataset.Load(file, dir.Path)).Should().Throw<DatasetFormatException>()
            .Which.Reason.Should().Contain("even number of coordinates");
    }

    [Fact]
    public void An_undefined_policy_is_an_argument_error()
    {
        using var dir = new TempDir();
        var file = WriteCoco(dir, Coco());
        FluentActions.Invoking(() => CocoDataset.Load(file, dir.Path, new CocoOptions { BadAnnotations = (BadAnnotationPolicy)7 }))
            .Should().Throw<ArgumentOutOfRangeException>();
    }

    [Fact]
    public void A_clean_file_reports_nothing_skipped()
    {
        using var dir = new TempDir();
        var logger = new ListLogger();
        var d = CocoDataset.Load(WriteCoco(dir, Coco()), dir.Path, new CocoOptions { Logger = logger });
        d.LoadReport.Should().BeSameAs(DatasetLoadReport.None);
        d.LoadReport.IsComplete.Should().BeTrue();
        logger.Entries.Should().BeEmpty();
    }

    // ---- VIA ---------------------------------------------------------------------------------------------------

    private const string ViaEntry = "$._via_img_metadata['a.png123']";

    private static JsonObject ViaRegion(string shape, string className = "cell") => new()
    {
        ["shape_attributes"] = JsonNode.Parse(shape),
        ["region_attributes"] = new JsonObject { ["type"] = className },
    };

    private static JsonObject Via(params JsonObject[] regions) => new()
    {
        ["_via_settings"] = new JsonObject(),
        ["_via_img_metadata"] = new JsonObject
        {
            ["a.png123"] = new JsonObject
            {
                ["filename"] = "a.png",
                ["size"] = 123,
                ["regions"] = new JsonArray([ViaRegion("""{"name":"rect","x":2,"y":3,"width":10,"height":5}"""), .. regions]),
                ["file_attributes"] = new JsonObject(),
            },
        },
    };

    private static ViaOptions ViaOptions(BadAnnotationPolicy policy, ILogger? logger = null) =>
        new() { ClassAttribute = "type", ClassNames = ["cell"], BadAnnotations = policy, Logger = logger };

    /// <summary>(kind, the bad region (the second), expected JSON path of the fault, words of the reason).</summary>
    public static TheoryData<string, JsonObject, string, string> ViaBadRegions => new()
    {
        { "polygon of 2 points", ViaRegion("""{"name":"polygon","all_points_x":[1,5],"all_points_y":[1,5]}"""), $"{ViaEntry}.regions[1].shape_attributes", "at least 3 points, found 2" },
        { "polyline of 0 points", ViaRegion("""{"name":"polyline","all_points_x":[],"all_points_y":[]}"""), $"{ViaEntry}.regions[1].shape_attributes", "at least 3 points, found 0" },
        { "rect outside the image", ViaRegion("""{"name":"rect","x":300,"y":3,"width":10,"height":5}"""), $"{ViaEntry}.regions[1].shape_attributes", "degenerate rect" },
        { "circle outside the image", ViaRegion("""{"name":"circle","cx":-50,"cy":10,"r":5}"""), $"{ViaEntry}.regions[1].shape_attributes", "degenerate shape" },
        { "polygon on a line", ViaRegion("""{"name":"polygon","all_points_x":[1,5,9],"all_points_y":[4,4,4]}"""), $"{ViaEntry}.regions[1].shape_attributes", "degenerate shape" },
        { "unknown class", ViaRegion("""{"name":"rect","x":2,"y":3,"width":10,"height":5}""", "dog"), $"{ViaEntry}.regions[1].region_attributes.type", "unknown class \"dog\"" },
        { "unknown shape", ViaRegion("""{"name":"hexagon","cx":5,"cy":5}"""), $"{ViaEntry}.regions[1].shape_attributes.name", "unknown region shape \"hexagon\"" },
    };

    private static string WriteVia(TempDir dir, JsonObject json)
    {
        TestFiles.WriteBlankPng(dir.File("a.png"), 30, 40);
        return dir.Write("via.json", json.ToJsonString());
    }

    [Theory]
    [MemberData(nameof(ViaBadRegions))]
    public void Via_skip_keeps_the_good_region_and_warns(string kind, JsonObject bad, string location, string reason)
    {
        using var dir = new TempDir();
        var file = WriteVia(dir, Via(bad));
        var logger = new ListLogger();

        var d = ViaDataset.Load(file, dir.Path, ViaOptions(BadAnnotationPolicy.Skip, logger));

        d.GetSample(0).Annotations.Should().ContainSingle(kind).Which.Box.Should().Be(new BoundingBox(2, 3, 12, 8));
        d.LoadReport.Should().Be(new DatasetLoadReport { SkippedAnnotations = 1 });
        ShouldHaveWarned(logger, file, location);
        Warnings(logger).Should().Contain(w => w.Contains(reason, StringComparison.Ordinal), kind);
    }

    [Theory]
    [MemberData(nameof(ViaBadRegions))]
    public void Via_fail_throws_naming_the_file_and_path(string kind, JsonObject bad, string location, string reason)
    {
        using var dir = new TempDir();
        var file = WriteVia(dir, Via(bad));
        var e = FluentActions.Invoking(() => ViaDataset.Load(file, dir.Path, ViaOptions(BadAnnotationPolicy.Fail)))
            .Should().Throw<DatasetFormatException>().Which;
        e.FilePath.Should().Be(file, kind);
        e.Location.Should().Be(location, kind);
        e.Reason.Should().Contain(reason);
    }

    [Fact]
    public void Via_point_regions_are_ignored_under_either_policy()
    {
        using var dir = new TempDir();
        var file = WriteVia(dir, Via(ViaRegion("""{"name":"point","cx":3,"cy":3}""")));
        foreach (var policy in new[] { BadAnnotationPolicy.Skip, BadAnnotationPolicy.Fail })
        {
            var logger = new ListLogger();
            var d = ViaDataset.Load(file, dir.Path, ViaOptions(policy, logger));
            d.AnnotationCount.Should().Be(1);
            d.LoadReport.Should().Be(new DatasetLoadReport { IgnoredShapes = 1 });
            Warnings(logger).Should().ContainSingle().Which.Should().Contain($"{ViaEntry}.regions[1].shape_attributes.name").And.Contain("\"point\"");
        }
    }

    [Fact]
    public void Via_missing_image_file_is_skipped_with_its_regions_or_thrown()
    {
        using var dir = new TempDir();
        var json = Via();
        json["_via_img_metadata"]!["b.png9"] = new JsonObject
        {
            ["filename"] = "b.png",
            ["size"] = 9,
            ["regions"] = new JsonArray(ViaRegion("""{"name":"rect","x":2,"y":3,"width":10,"height":5}""")),
        };
        var file = WriteVia(dir, json);
        var logger = new ListLogger();

        var d = ViaDataset.Load(file, dir.Path, ViaOptions(BadAnnotationPolicy.Skip, logger));

        d.Samples.Should().ContainSingle().Which.FileName.Should().Be("a.png");
        d.LoadReport.Should().Be(new DatasetLoadReport { SkippedImages = 1 });
        Warnings(logger).Should().Contain(w => w.StartsWith(file, StringComparison.Ordinal) && w.Contains("1 of 2 image file(s) missing", StringComparison.Ordinal)
            && w.Contains(Path.Combine(dir.Path, "b.png"), StringComparison.Ordinal) && w.Contains("$._via_img_metadata['b.png9'].filename", StringComparison.Ordinal));
        Warnings(logger).Should().Contain(w => w.Contains("0 bad annotation(s) and 1 image(s)", StringComparison.Ordinal));

        var e = FluentActions.Invoking(() => ViaDataset.Load(file, dir.Path, ViaOptions(BadAnnotationPolicy.Fail)))
            .Should().Throw<DatasetFormatException>().Which;
        e.Location.Should().Be("$._via_img_metadata['b.png9'].filename");
        e.Reason.Should().Contain("1 image file(s) missing").And.Contain("b.png");
    }

    // ---- LabelMe -----------------------------------------------------------------------------------------------

    private static JsonObject LabelMeShape(string label, string type, params double[] xy) => new()
    {
        ["label"] = label,
        ["points"] = new JsonArray(Enumerable.Range(0, xy.Length / 2).Select(i => (JsonNode)new JsonArray(xy[2 * i], xy[2 * i + 1])).ToArray()),
        ["shape_type"] = type,
        ["group_id"] = null,
    };

    private static JsonObject LabelMe(string imagePath, params JsonObject[] shapes) => new()
    {
        ["version"] = "5.2.1",
        ["shapes"] = new JsonArray([LabelMeShape("cat", "rectangle", 2, 3, 12, 8), .. shapes]),
        ["imagePath"] = imagePath,
        ["imageData"] = null,
        ["imageHeight"] = 30,
        ["imageWidth"] = 40,
    };

    /// <summary>(kind, the bad shape (the second), expected JSON path of the fault, words of the reason).</summary>
    public static TheoryData<string, JsonObject, string, string> LabelMeBadShapes => new()
    {
        { "polygon of 2 points", LabelMeShape("cat", "polygon", 1, 1, 5, 5), "$.shapes[1]", "at least 3 points, found 2" },
        { "rectangle outside the image", LabelMeShape("cat", "rectangle", 100, 100, 120, 120), "$.shapes[1]", "degenerate shape" },
        { "circle of radius 0", LabelMeShape("cat", "circle", 5, 5, 5, 5), "$.shapes[1]", "degenerate shape" },
        { "unknown label", LabelMeShape("dog", "rectangle", 2, 3, 12, 8), "$.shapes[1]", "unknown label \"dog\"" },
        { "unknown shape type", LabelMeShape("cat", "mask", 2, 3, 12, 8), "$.shapes[1].shape_type", "unknown shape type \"mask\"" },
    };

    [Theory]
    [MemberData(nameof(LabelMeBadShapes))]
    public void LabelMe_skip_keeps_the_good_shape_and_warns(string kind, JsonObject bad, string location, string reason)
    {
        using var dir = new TempDir();
        TestFiles.WriteBlankPng(dir.File("a.png"), 30, 40);
        var file = dir.Write("lm.json", LabelMe("a.png", bad).ToJsonString());
        var logger = new ListLogger();

        var d = LabelMeDataset.Load([file], new LabelMeOptions { ClassNames = ["cat"], Logger = logger });

        d.GetSample(0).Annotations.Should().ContainSingle(kind).Which.Box.Should().Be(new BoundingBox(2, 3, 12, 8));
        d.LoadReport.Should().Be(new DatasetLoadReport { SkippedAnnotations = 1 });
        ShouldHaveWarned(logger, file, location);
        Warnings(logger).Should().Contain(w => w.Contains(reason, StringComparison.Ordinal), kind);
    }

    [Theory]
    [MemberData(nameof(LabelMeBadShapes))]
    public void LabelMe_fail_throws_naming_the_file_and_path(string kind, JsonObject bad, string location, string reason)
    {
        using var dir = new TempDir();
        TestFiles.WriteBlankPng(dir.File("a.png"), 30, 40);
        var file = dir.Write("lm.json", LabelMe("a.png", bad).ToJsonString());
        var e = FluentActions.Invoking(() => LabelMeDataset.Load([file], new LabelMeOptions { ClassNames = ["cat"], BadAnnotations = BadAnnotationPolicy.Fail }))
            .Should().Throw<DatasetFormatException>().Which;
        e.FilePath.Should().Be(file, kind);
        e.Location.Should().Be(location, kind);
        e.Reason.Should().Contain(reason);
    }

    [Fact]
    public void LabelMe_lines_and_points_are_ignored_under_either_policy()
    {
        using var dir = new TempDir();
        TestFiles.WriteBlankPng(dir.File("a.png"), 30, 40);
        var file = dir.Write("lm.json", LabelMe("a.png", LabelMeShape("cat", "linestrip", 1, 1, 5, 5, 9, 1), LabelMeShape("cat", "point", 4, 4)).ToJsonString());
        var d = LabelMeDataset.Load([file], new LabelMeOptions { BadAnnotations = BadAnnotationPolicy.Fail });
        d.AnnotationCount.Should().Be(1);
        d.LoadReport.Should().Be(new DatasetLoadReport { IgnoredShapes = 2 });
    }

    [Fact]
    public void LabelMe_file_without_its_image_is_skipped_or_thrown()
    {
        using var dir = new TempDir();
        TestFiles.WriteBlankPng(dir.File("a.png"), 30, 40);
        var good = dir.Write("a.json", LabelMe("a.png").ToJsonString());
        var orphan = dir.Write("b.json", LabelMe("gone.png").ToJsonString());
        var logger = new ListLogger();

        var d = LabelMeDataset.Load(dir.Path, new LabelMeOptions { Logger = logger });

        d.Samples.Should().ContainSingle().Which.FileName.Should().Be("a.png");
        d.LoadReport.Should().Be(new DatasetLoadReport { SkippedImages = 1 });
        Warnings(logger).Should().Contain(w => w.Contains("1 of 2 LabelMe file(s) have no image", StringComparison.Ordinal)
            && w.Contains($"{orphan}: $.imagePath:", StringComparison.Ordinal) && w.Contains("gone.png", StringComparison.Ordinal));

        var e = FluentActions.Invoking(() => LabelMeDataset.Load([good, orphan], new LabelMeOptions { BadAnnotations = BadAnnotationPolicy.Fail }))
            .Should().Throw<DatasetFormatException>().Which;
        e.FilePath.Should().Be(orphan);
        e.Location.Should().Be("$.imagePath");
        e.Reason.Should().Contain("gone.png");

        FluentActions.Invoking(() => LabelMeDataset.Load([orphan])).Should().Throw<DatasetFormatException>("no file has its image")
            .Which.FilePath.Should().Be(orphan);
    }
}
