using System.Text.Json.Nodes;
using MaskRcnn.Net.Core.Masks;

namespace MaskRcnn.Net.Training.Tests;

/// <summary>Reading detections in COCO's results format (what <c>COCO.loadRes</c> takes).</summary>
public class CocoResultsTests
{
    private const int H = 6, W = 5;

    /// <summary>Two 6x5 images (ids 10, 20) and categories 7 "zebra" and 3 "cat" (labels: cat 1, zebra 2).</summary>
    private static DetectionDataset Dataset(TempDir dir)
    {
        TestFiles.WriteBlankPng(dir.File("a.png"), H, W);
        TestFiles.WriteBlankPng(dir.File("b.png"), H, W);
        var json = new JsonObject
        {
            ["images"] = new JsonArray(
                new JsonObject { ["id"] = 10, ["file_name"] = "a.png", ["width"] = W, ["height"] = H },
                new JsonObject { ["id"] = 20, ["file_name"] = "b.png", ["width"] = W, ["height"] = H }),
            ["categories"] = new JsonArray(new JsonObject { ["id"] = 7, ["name"] = "zebra" }, new JsonObject { ["id"] = 3, ["name"] = "cat" }),
            ["annotations"] = new JsonArray(),
        };
        return CocoDataset.Load(dir.Write("instances.json", json.ToJsonString()), dir.Path);
    }

    private static BinaryMask LShape()
    {
        var bytes = new byte[H * W];
        foreach (var (y, x) in new[] { (1, 1), (2, 1), (3, 1), (3, 2), (3, 3) })
        {
            bytes[y * W + x] = 1;
        }

        return BinaryMask.FromBytes(bytes, H, W);
    }

    [Fact]
    public void Dataset_keeps_the_coco_category_id_of_each_label()
    {
        using var dir = new TempDir();
        Dataset(dir).CategoryIds.Should().Equal(0, 3, 7);
    }

    [Fact]
    public void Reads_compressed_uncompressed_polygon_and_box_only_results_with_the_files_category_ids()
    {
        using var dir = new TempDir();
        var dataset = Dataset(dir);
        var mask = LShape();
        var rle = mask.ToRle();
        var results = new JsonArray(
            new JsonObject
            {
                ["image_id"] = 10, ["category_id"] = 7, ["score"] = 0.9, ["bbox"] = new JsonArray(1, 1, 3, 3),
                ["segmentation"] = new JsonObject { ["size"] = new JsonArray(H, W), ["counts"] = rle.ToCompressedString() },
            },
            new JsonObject
            {
                // No bbox: pycocotools takes the mask's bounds.
                ["image_id"] = 20, ["category_id"] = 3, ["score"] = 0.25,
                ["segmentation"] = new JsonObject
                {
                    ["size"] = new JsonArray(H, W),
                    ["counts"] = new JsonArray(rle.Counts.ToArray().Select(c => (JsonNode)c).ToArray()),
                },
            },
            new JsonObject
            {
                ["image_id"] = 20, ["category_id"] = 7, ["score"] = 0.5,
                ["segmentation"] = new JsonArray(new JsonArray(0, 0, 2, 0, 2, 2, 0, 2)),
            },
            new JsonObject { ["image_id"] = 10, ["category_id"] = 3, ["score"] = 0.125, ["bbox"] = new JsonArray(0.5, 1.5, 2, 4) });

        var read = CocoResults.Load(dir.Write("results.json", results.ToJsonString()), dataset);

        read.Should().HaveCount(4);
        read[0].Should().BeEquivalentTo(new { ImageId = 10L, Label = 2, Score = 0.9, Box = new BoundingBox(1, 1, 4, 4) });
        read[0].Mask!.Decode().Should().Be(mask);
        read[1].Should().BeEquivalentTo(new { ImageId = 20L, Label = 1, Score = 0.25, Box = new BoundingBox(1, 1, 4, 4) });
        read[1].Mask.Should().Be(rle);
        read[2].Label.Should().Be(2);
        read[2].Mask!.Area.Should().Be(4, "the square (0,0)-(2,2) covers 2x2 pixels");
        read[3].Should().BeEquivalentTo(new { ImageId = 10L, Label = 1, Score = 0.125, Box = new BoundingBox(0.5f, 1.5f, 2.5f, 5.5f), Mask = (Rle?)null });
    }

    [Theory]
    [InlineData("{}", "$", "a list of results")]
    [InlineData("[{\"image_id\": 99, \"category_id\": 7, \"score\": 1, \"bbox\": [0, 0, 1, 1]}]", "$[0].image_id", "image id 99 is not in the dataset")]
    [InlineData("[{\"image_id\": 10, \"category_id\": 1, \"score\": 1, \"bbox\": [0, 0, 1, 1]}]", "$[0].category_id", "unknown category id 1")]
    [InlineData("[{\"image_id\": 10, \"category_id\": 7, \"score\": \"high\", \"bbox\": [0, 0, 1, 1]}]", "$[0].score", "a number")]
    [InlineData("[{\"image_id\": 10, \"category_id\": 7, \"bbox\": [0, 0, 1, 1]}]", "$[0].score", "score")]
    [InlineData("[{\"image_id\": 10, \"category_id\": 7, \"score\": 1, \"bbox\": [0, 0, 1]}]", "$[0].bbox", "[x, y, width, height]")]
    [InlineData("[{\"image_id\": 10, \"category_id\": 7, \"score\": 1, \"bbox\": [0, 0, -1, 1]}]", "$[0].bbox", "must not be negative")]
    [InlineData("[{\"image_id\": 10, \"category_id\": 7, \"score\": 1}]", "$[0]", "needs a bbox or a segmentation")]
    [InlineData("[{\"image_id\": 10, \"category_id\": 7, \"score\": 1, \"segmentation\": {\"size\": [5, 6], \"counts\": [30]}}]", "$[0].segmentation.size", "differs from the image size")]
    [InlineData("[{\"image_id\": 10, \"category_id\": 7, \"score\": 1, \"segmentation\": {\"size\": [6, 5], \"counts\": [29]}}]", "$[0].segmentation.counts", "invalid RLE counts")]
    [InlineData("[{\"image_id\": 10, \"category_id\": 7, \"score\": 1, \"segmentation\": [[0, 0, 1, 1]]}]", "$[0].segmentation[0]", "at least 3 points")]
    public void Bad_results_are_refused_naming_the_file_and_the_json_path(string json, string location, string reason)
    {
        using var dir = new TempDir();
        var dataset = Dataset(dir);
        var path = dir.Write("results.json", json);

        var act = () => CocoResults.Load(path, dataset);

        var e = act.Should().Throw<DatasetFormatException>().Which;
        e.FilePath.Should().Be(path);
        e.Location.Should().Be(location);
        e.Message.Should().Contain(reason);
    }

    [Fact]
    public void A_dataset_without_coco_ids_takes_category_ids_as_labels()
    {
        using var dir = new TempDir();
        TestFiles.WriteBlankPng(dir.File("a.png"), H, W);
        var dataset = new DetectionDataset(["__background__", "tumor"], [new DatasetSample(5, "a.png", W, H, []) { ImagePath = dir.File("a.png") }]);
        var path = dir.Write("results.json", "[{\"image_id\": 5, \"category_id\": 1, \"score\": 0.5, \"bbox\": [0, 0, 2, 2]}]");

        CocoResults.Load(path, dataset).Should().ContainSingle().Which.Label.Should().Be(1);
        var bad = dir.Write("bad.json", "[{\"image_id\": 5, \"category_id\": 2, \"score\": 0.5, \"bbox\": [0, 0, 2, 2]}]");
        FluentActions.Invoking(() => CocoResults.Load(bad, dataset)).Should().Throw<DatasetFormatException>().WithMessage("*unknown category id 2*");
    }
}
