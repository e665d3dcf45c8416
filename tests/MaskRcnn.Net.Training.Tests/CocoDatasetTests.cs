using System.Text.Json;
using System.Text.Json.Nodes;
using MaskRcnn.Net.Core.Masks;

namespace MaskRcnn.Net.Training.Tests;

public class CocoDatasetTests
{
    [Fact]
    public void BrainTumorMiniSetMatchesTheJson()
    {
        var dataset = CocoDataset.Load(TestFiles.BrainTumorJson, TestFiles.BrainTumorImages);
        using var json = JsonDocument.Parse(File.ReadAllText(TestFiles.BrainTumorJson));
        var images = json.RootElement.GetProperty("images").EnumerateArray().ToList();
        var annotations = json.RootElement.GetProperty("annotations").EnumerateArray().ToList();

        dataset.Count.Should().Be(6);
        dataset.ClassNames.Should().Equal("__background__", "tumor");
        dataset.AnnotationCount.Should().Be(annotations.Count).And.Be(6);
        for (var i = 0; i < dataset.Count; i++)
        {
            var sample = dataset.GetSample(i);
            var im = images[i];
            sample.ImageId.Should().Be(im.GetProperty("id").GetInt64());
            sample.FileName.Should().Be(im.GetProperty("file_name").GetString());
            sample.Width.Should().Be(im.GetProperty("width").GetInt32());
            sample.Height.Should().Be(im.GetProperty("height").GetInt32());
            var mine = annotations.Where(a => a.GetProperty("image_id").GetInt64() == sample.ImageId).ToList();
            sample.Annotations.Should().HaveCount(mine.Count);
            for (var k = 0; k < mine.Count; k++)
            {
                var a = sample.Annotations[k];
                var bbox = mine[k].GetProperty("bbox").EnumerateArray().Select(e => e.GetDouble()).ToArray();
                a.Label.Should().Be(1);
                a.IsCrowd.Should().BeFalse();
                a.Box.Should().Be(new BoundingBox((float)bbox[0], (float)bbox[1], (float)(bbox[0] + bbox[2]), (float)(bbox[1] + bbox[3])));

                var polygon = mine[k].GetProperty("segmentation")[0].EnumerateArray().Select(e => e.GetDouble()).ToArray();
                var mask = a.GetMask()!;
                mask.Height.Should().Be(sample.Height);
                mask.Width.Should().Be(sample.Width);
                var exact = Geometry.ShoelaceArea(polygon);
                Math.Abs(mask.Area - exact).Should().BeLessThan(0.5 * Geometry.Perimeter(polygon),
                    $"the rasterised area of {sample.FileName} should match the polygon's within half a pixel of boundary");

                var mb = mask.GetBoundingBox();
                mb.X.Should().BeInRange((int)Math.Floor(bbox[0]) - 1, (int)Math.Ceiling(bbox[0]) + 1);
                (mb.X + mb.Width).Should().BeInRange((int)Math.Floor(bbox[0] + bbox[2]) - 1, (int)Math.Ceiling(bbox[0] + bbox[2]) + 1);
            }
        }
    }

    [Fact]
    public void ImagesAreDecodedOnlyOnRequestAsRgbUint8()
    {
        var dataset = CocoDataset.Load(TestFiles.BrainTumorJson, TestFiles.BrainTumorImages);
        var sample = dataset.GetSample(5);
        sample.ImagePath.Should().EndWith(sample.FileName);
        using var image = dataset.LoadImage(5);
        image.DType.Should().Be(DType.UInt8);
        image.Shape.Should().Equal(3, sample.Height, sample.Width);
    }

    [Fact]
    public void ReportsProgressAndHonoursCancellation()
    {
        var reports = new List<DatasetLoadProgress>();
        CocoDataset.Load(TestFiles.BrainTumorJson, TestFiles.BrainTumorImages, progress: new SyncProgress(reports.Add));
        reports.Should().Contain(new DatasetLoadProgress("images", 6, 6));
        reports.Should().Contain(new DatasetLoadProgress("annotations", 6, 6));

        using var cts = new CancellationTokenSource();
        cts.Cancel();
        var act = () => CocoDataset.Load(TestFiles.BrainTumorJson, TestFiles.BrainTumorImages, cancellationToken: cts.Token);
        act.Should().Throw<OperationCanceledException>();
    }

    [Fact]
    public void ReadsRleCrowdNegativesAndRemapsCategories()
    {
        using var dir = new TempDir();
        const int H = 6, W = 5;
        foreach (var name in new[] { "a.png", "b.png", "empty.png" })
        {
            TestFiles.WriteBlankPng(dir.File(name), H, W);
        }

        // A hand-made mask: an L shape.
        var bytes = new byte[H * W];
        foreach (var (y, x) in new[] { (1, 1), (2, 1), (3, 1), (3, 2), (3, 3) })
        {
            bytes[y * W + x] = 1;
        }

        var mask = BinaryMask.FromBytes(bytes, H, W);
        var rle = mask.ToRle();
        var json = new JsonObject
        {
            ["images"] = new JsonArray(
                new JsonObject { ["id"] = 10, ["file_name"] = "a.png", ["width"] = W, ["height"] = H },
                new JsonObject { ["id"] = 20, ["file_name"] = "b.png", ["width"] = W, ["height"] = H },
                new JsonObject { ["id"] = 30, ["file_name"] = "empty.png", ["width"] = W, ["height"] = H }),
            ["categories"] = new JsonArray(
                new JsonObject { ["id"] = 7, ["name"] = "zebra" },
                new JsonObject { ["id"] = 3, ["name"] = "cat" }),
            ["annotations"] = new JsonArray(
                new JsonObject
                {
                    ["id"] = 1, ["image_id"] = 10, ["category_id"] = 7, ["iscrowd"] = 0, ["bbox"] = new JsonArray(1, 1, 3, 3),
                    ["segmentation"] = new JsonObject { ["size"] = new JsonArray(H, W), ["counts"] = rle.ToCompressedString() },
                },
                new JsonObject
                {
                    ["id"] = 2, ["image_id"] = 20, ["category_id"] = 3, ["iscrowd"] = 1, ["bbox"] = new JsonArray(1, 1, 3, 3),
                    ["segmentation"] = new JsonObject
                    {
                        ["size"] = new JsonArray(H, W),
                        ["counts"] = new JsonArray(rle.Counts.ToArray().Select(c => (JsonNode)c).ToArray()),
                    },
                },
                new JsonObject
                {
                    // No bbox: the box is the mask's extent.
                    ["id"] = 3, ["image_id"] = 20, ["category_id"] = 7,
                    ["segmentation"] = new JsonArray(new JsonArray(0, 0, 2, 0, 2, 2, 0, 2)),
                },
                new JsonObject
                {
                    // Degenerate (zero width) box: dropped like torchvision's reference.
                    ["id"] = 4, ["image_id"] = 10, ["category_id"] = 3, ["bbox"] = new JsonArray(2, 2, 0, 2),
                    ["segmentation"] = new JsonArray(),
                }),
        };
        var file = dir.Write("instances.json", json.ToJsonString());
        var logger = new ListLogger();

        var dataset = CocoDataset.Load(file, dir.Path, new CocoOptions { Logger = logger });

        dataset.ClassNames.Should().Equal("__background__", "cat", "zebra");
        dataset.Count.Should().Be(3);
        var a = dataset.GetSample(0);
        a.Annotations.Should().ContainSingle();
        a.Annotations[0].Label.Should().Be(2);
        a.Annotations[0].GetMask().Should().Be(mask);
        a.Annotations[0].Box.Should().Be(new BoundingBox(1, 1, 4, 4));

        var b = dataset.GetSample(1);
        b.Annotations.Should().HaveCount(2);
        b.Annotations[0].IsCrowd.Should().BeTrue();
        b.Annotations[0].Label.Should().Be(1);
        b.Annotations[0].GetMask().Should().Be(mask);
        b.Annotations[1].Box.Should().Be(new BoundingBox(0, 0, 2, 2), "the extent of the rasterised 2x2 square");
        b.Annotations[1].GetMask()!.Area.Should().Be(4);

        dataset.GetSample(2).Annotations.Should().BeEmpty("images without annotations are kept as negatives");
        logger.Entries.Should().Contain(e => e.Message.Contains("degenerate", StringComparison.Ordinal));
    }

    private sealed class SyncProgress(Action<DatasetLoadProgress> report) : IProgress<DatasetLoadProgress>
    {
        public void Report(DatasetLoadProgress value) => report(value);
    }
}
