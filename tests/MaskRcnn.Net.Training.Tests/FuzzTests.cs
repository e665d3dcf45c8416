using System.Text.Json.Nodes;
using MaskRcnn.Net.Core.Imaging;
using MaskRcnn.Net.Core.Masks;
using MaskRcnn.Net.Core.Tests.TestSupport;
using Xunit.Abstractions;

namespace MaskRcnn.Net.Training.Tests;

/// <summary>
/// Bounded, seeded fuzzing of the COCO, VIA and LabelMe readers (issue 6, item 4): mutated real annotation files
/// must load into a consistent dataset or throw <see cref="DatasetFormatException"/>. A failure lists the seeds;
/// <c>MR_FUZZ_SEED=&lt;seed&gt;</c> reruns one case, <c>MR_FUZZ_CASES=&lt;n&gt;</c> runs longer.
/// </summary>
public sealed class FuzzTests(ITestOutputHelper output) : IDisposable
{
    private readonly TempDir dir = new();

    public void Dispose() => dir.Dispose();

    /// <summary>A second COCO seed with what the brain-tumour file lacks: RLE (both forms), crowds, boxes only, multi-part polygons.</summary>
    private static byte[] HandMadeCoco()
    {
        var disc = Rle.FromPolygon(Enumerable.Range(0, 24).SelectMany(k => new[] { 100 + 30 * Math.Cos(k * Math.PI / 12), 120 + 25 * Math.Sin(k * Math.PI / 12) }).ToArray(), 256, 224);
        var json = new JsonObject
        {
            ["images"] = new JsonArray(
                new JsonObject { ["id"] = 1, ["file_name"] = "00124_10.jpg", ["width"] = 224, ["height"] = 256 },
                new JsonObject { ["id"] = 2, ["file_name"] = "00172_102.jpg", ["width"] = 192, ["height"] = 256 }),
            ["categories"] = new JsonArray(new JsonObject { ["id"] = 7, ["name"] = "other" }, new JsonObject { ["id"] = 1, ["name"] = "tumor" }),
            ["annotations"] = new JsonArray(
                new JsonObject
                {
                    ["id"] = 1, ["image_id"] = 1, ["category_id"] = 1, ["iscrowd"] = 1,
                    ["segmentation"] = new JsonObject { ["size"] = new JsonArray(256, 224), ["counts"] = disc.ToCompressedString() },
                },
                new JsonObject
                {
                    ["id"] = 2, ["image_id"] = 1, ["category_id"] = 7, ["iscrowd"] = 0, ["bbox"] = new JsonArray(10, 20, 30, 40),
                    ["segmentation"] = new JsonObject { ["size"] = new JsonArray(256, 224), ["counts"] = new JsonArray(5000, 300, 52044) },
                },
                new JsonObject { ["id"] = 3, ["image_id"] = 2, ["category_id"] = 7, ["bbox"] = new JsonArray(50.5, 60.25, 20, 10) },
                new JsonObject
                {
                    ["id"] = 4, ["image_id"] = 2, ["category_id"] = 1, ["iscrowd"] = false,
                    ["segmentation"] = new JsonArray(new JsonArray(10, 10, 40, 12, 30, 50), new JsonArray(100, 100, 150, 100, 150, 180, 100, 180)),
                }),
        };
        return System.Text.Encoding.UTF8.GetBytes(json.ToJsonString());
    }

    private static byte[] HandMadeVia2()
    {
        static JsonObject Region(string type, JsonNode cls) => new()
        {
            ["shape_attributes"] = JsonNode.Parse(type),
            ["region_attributes"] = new JsonObject { ["type"] = cls },
        };

        var json = new JsonObject
        {
            ["_via_settings"] = new JsonObject { ["ui"] = new JsonObject() },
            ["_via_img_metadata"] = new JsonObject
            {
                ["a.png5"] = new JsonObject
                {
                    ["filename"] = "a.png", ["size"] = 5, ["file_attributes"] = new JsonObject(),
                    ["regions"] = new JsonArray(
                        Region("""{"name":"polygon","all_points_x":[5,40,30],"all_points_y":[5,8,30]}""", "cell"),
                        Region("""{"name":"polyline","all_points_x":[50,60,70,55],"all_points_y":[5,25,5,2]}""", "nucleus"),
                        Region("""{"name":"rect","x":10,"y":40,"width":25.5,"height":12}""", new JsonObject { ["cell"] = true, ["nucleus"] = false }),
                        Region("""{"name":"point","cx":3,"cy":3}""", "cell")),
                },
                ["b.png9"] = new JsonObject
                {
                    ["filename"] = "b.png", ["size"] = 9, ["file_attributes"] = new JsonObject(),
                    ["regions"] = new JsonObject
                    {
                        ["0"] = Region("""{"name":"circle","cx":20,"cy":20,"r":8}""", "cell"),
                        ["1"] = Region("""{"name":"ellipse","cx":50,"cy":30,"rx":12,"ry":5,"theta":0.7}""", "nucleus"),
                    },
                },
            },
        };
        return System.Text.Encoding.UTF8.GetBytes(json.ToJsonString());
    }

    private static byte[] HandMadeLabelMe()
    {
        using var image = Tensor.Full([3, 30, 40], 90L, DType.UInt8);
        static JsonNode Points(params double[] xy) =>
            new JsonArray(Enumerable.Range(0, xy.Length / 2).Select(i => (JsonNode)new JsonArray(xy[2 * i], xy[2 * i + 1])).ToArray());
        var json = new JsonObject
        {
            ["version"] = "5.2.1",
            ["flags"] = new JsonObject(),
            ["shapes"] = new JsonArray(
                new JsonObject { ["label"] = "cat", ["points"] = Points(2, 2, 12, 2, 12, 12, 2, 10), ["group_id"] = 1, ["shape_type"] = "polygon" },
                new JsonObject { ["label"] = "cat", ["points"] = Points(20, 2, 25, 2, 25, 6), ["group_id"] = 1, ["shape_type"] = "polygon" },
                new JsonObject { ["label"] = "dog", ["points"] = Points(30, 20, 20, 10), ["group_id"] = null, ["shape_type"] = "rectangle" },
                new JsonObject { ["label"] = "dog", ["points"] = Points(30, 25, 30, 28), ["shape_type"] = "circle" },
                new JsonObject { ["label"] = "dog", ["points"] = Points(1, 1, 5, 5), ["shape_type"] = "line" }),
            ["imagePath"] = "missing.png",
            ["imageData"] = Convert.ToBase64String(ImageCodec.EncodePng(image)),
            ["imageHeight"] = 30,
            ["imageWidth"] = 40,
        };
        return System.Text.Encoding.UTF8.GetBytes(json.ToJsonString());
    }

    [Fact]
    public void Coco_reader_survives_mutated_annotation_files()
    {
        byte[][] seeds = [File.ReadAllBytes(TestFiles.BrainTumorJson), HandMadeCoco()];
        var file = dir.File("coco.json");
        var summary = FuzzRunner.Run("coco", 2500,
            rng => ByteMutator.MutateJson(seeds[rng.Next(seeds.Length)], rng, seeds),
            input =>
            {
                File.WriteAllBytes(file, input);
                CheckDataset(CocoDataset.Load(file, TestFiles.BrainTumorImages));
            },
            e => e is DatasetFormatException d && d.FilePath == file,
            output);
        summary.Succeeded.Should().BeGreaterThan(100, "many mutations keep the file valid (e.g. a changed coordinate)");
        summary.Rejected.Should().BeGreaterThan(100);
    }

    [Theory]
    [InlineData("via1")]
    [InlineData("via2")]
    public void Via_reader_survives_mutated_projects(string version)
    {
        var seed = version == "via1" ? File.ReadAllBytes(TestFiles.ViaEllipses) : HandMadeVia2();
        var options = version == "via1"
            ? new ViaOptions
            {
                RequireImageFiles = false,
                ImageSizes = new[] { "7.35.31", "7.35.51", "7.40.56", "7.47.55" }
                    .ToDictionary(t => $"Screen Shot 2018-08-31 at {t} PM.png", _ => new ImageSize(400, 640)),
            }
            : new ViaOptions
            {
                RequireImageFiles = false,
                ClassAttribute = "type",
                ImageSizes = new Dictionary<string, ImageSize> { ["a.png"] = new(60, 80), ["b.png"] = new(50, 70) },
            };
        var file = dir.File(version + ".json");
        var summary = FuzzRunner.Run(version, 2000,
            rng => ByteMutator.MutateJson(seed, rng, [seed]),
            input =>
            {
                File.WriteAllBytes(file, input);
                CheckDataset(ViaDataset.Load(file, dir.Path, options));
            },
            e => e is DatasetFormatException d && d.FilePath == file,
            output);
        summary.Succeeded.Should().BeGreaterThan(50);
        summary.Rejected.Should().BeGreaterThan(50);
    }

    [Fact]
    public void LabelMe_reader_survives_mutated_files()
    {
        var seed = HandMadeLabelMe();
        var file = dir.File("labelme.json");
        var summary = FuzzRunner.Run("labelme", 2000,
            rng => ByteMutator.MutateJson(seed, rng, [seed]),
            input =>
            {
                File.WriteAllBytes(file, input);
                var dataset = LabelMeDataset.Load([file]);
                CheckDataset(dataset);
                try
                {
                    using var image = dataset.LoadImage(0);
                    image.Shape.Should().Equal(3, dataset.GetSample(0).Height, dataset.GetSample(0).Width);
                }
                catch (Exception e) when (e is ImageDecodeException or DatasetFormatException or FileNotFoundException)
                {
                    // LoadImage's documented failures: the embedded image is broken or has another size.
                }
            },
            e => e is DatasetFormatException d && d.FilePath.StartsWith(dir.Path, StringComparison.Ordinal),
            output);
        summary.Succeeded.Should().BeGreaterThan(50);
        summary.Rejected.Should().BeGreaterThan(50);
    }

    /// <summary>Whatever a reader accepts must be internally consistent.</summary>
    private static void CheckDataset(DetectionDataset dataset)
    {
        dataset.ClassNames[0].Should().Be(DetectionDataset.BackgroundName);
        foreach (var sample in dataset.Samples)
        {
            sample.Width.Should().BePositive();
            sample.Height.Should().BePositive();
            foreach (var a in sample.Annotations)
            {
                a.Label.Should().BeInRange(1, dataset.ClassNames.Count - 1);
                a.Box.X1.Should().BeInRange(0, sample.Width);
                a.Box.X2.Should().BeInRange(a.Box.X1, sample.Width);
                a.Box.Y1.Should().BeInRange(0, sample.Height);
                a.Box.Y2.Should().BeInRange(a.Box.Y1, sample.Height);
                if (a.GetRle() is { } rle)
                {
                    (rle.Height, rle.Width).Should().Be((sample.Height, sample.Width));
                    rle.Area.Should().BeInRange(0, (long)sample.Height * sample.Width);
                    if ((long)sample.Height * sample.Width <= 1 << 22)
                    {
                        a.GetMask()!.Area.Should().Be(rle.Area);
                    }
                }
            }
        }
    }
}
