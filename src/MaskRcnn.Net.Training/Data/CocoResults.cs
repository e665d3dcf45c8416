using System.Text.Json;
using MaskRcnn.Net.Core.Detection;
using MaskRcnn.Net.Core.Masks;

namespace MaskRcnn.Net.Training;

/// <summary>One detection read from a COCO results file.</summary>
/// <param name="ImageId">The image (COCO <c>image_id</c>, one of the dataset's <see cref="DatasetSample.ImageId"/>s).</param>
/// <param name="Label">The dataset's contiguous label of the result's <c>category_id</c>.</param>
/// <param name="Score">Confidence.</param>
/// <param name="Box">Box in image pixels (corners); from <c>bbox</c>, or the mask's bounds when only a segmentation is given.</param>
/// <param name="Mask">The mask at the image size, or null for a box-only result.</param>
public sealed record CocoResult(long ImageId, int Label, double Score, BoundingBox Box, Rle? Mask);

/// <summary>
/// Reads detections in COCO's results format — the JSON list that pycocotools' <c>COCO.loadRes</c> takes and that
/// detectors (torchvision's reference scripts, detectron2, ours) write for evaluation:
/// <c>[{"image_id": 1, "category_id": 3, "score": 0.9, "bbox": [x, y, w, h], "segmentation": {"size": [h, w],
/// "counts": "…"}}, …]</c>. Segmentations may be compressed or uncompressed RLE, or polygons.
/// </summary>
public static class CocoResults
{
    /// <summary>
    /// Reads <paramref name="resultsJson"/> and checks every result against <paramref name="dataset"/>: its image must be
    /// one of the dataset's, its category one of the dataset's (<see cref="DetectionDataset.CategoryIds"/>, or the label
    /// itself for a dataset without COCO ids), its mask of the image's size.
    /// </summary>
    /// <param name="resultsJson">The results file.</param>
    /// <param name="dataset">The ground truth the results were computed on.</param>
    /// <param name="cancellationToken">Stops reading.</param>
    /// <returns>The results in file order.</returns>
    /// <exception cref="DatasetFormatException">The file is not a results list, or a result has a missing or wrong field,
    /// an unknown image or category, a non-finite score, or a mask of another size; the message names the file and
    /// the JSON path.</exception>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    public static IReadOnlyList<CocoResult> Load(string resultsJson, DetectionDataset dataset, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(resultsJson);
        ArgumentNullException.ThrowIfNull(dataset);
        var images = new Dictionary<long, DatasetSample>();
        foreach (var sample in dataset.Samples)
        {
            images.TryAdd(sample.ImageId, sample);
        }

        var labelOf = new Dictionary<long, int>();
        for (var label = 1; label < dataset.ClassNames.Count; label++)
        {
            labelOf[dataset.CategoryIds is { } ids ? ids[label] : label] = label;
        }

        using var document = JsonCursor.ParseFile(resultsJson, cancellationToken);
        var root = JsonCursor.Root(resultsJson, document);
        if (root.Kind != JsonValueKind.Array)
        {
            throw root.TypeError("a list of results ([{\"image_id\": …, \"category_id\": …, \"score\": …, \"bbox\": […]}, …])");
        }

        var results = new List<CocoResult>(root.ArrayLength);
        foreach (var item in root.Items())
        {
            cancellationToken.ThrowIfCancellationRequested();
            var node = item.ExpectObject();
            var imageNode = node.Get("image_id");
            var imageId = imageNode.GetInt64();
            if (!images.TryGetValue(imageId, out var sample))
            {
                throw imageNode.Error($"image id {imageId} is not in the dataset");
            }

            var categoryNode = node.Get("category_id");
            var categoryId = categoryNode.GetInt64();
            if (!labelOf.TryGetValue(categoryId, out var label))
            {
                throw categoryNode.Error($"unknown category id {categoryId} (the dataset's are {string.Join(", ", labelOf.Keys)})");
            }

            var score = node.Get("score").GetDouble();
            Rle? mask = null;
            if (node.TryGet("segmentation", out var segNode))
            {
                mask = CocoDataset.ReadSegmentation(segNode, sample.Height, sample.Width, out var shortPolygon);
                if (shortPolygon is var (polygonNode, points))
                {
                    throw polygonNode.Error($"a polygon needs at least 3 points, found {points}");
                }
            }

            BoundingBox box;
            if (node.TryGet("bbox", out var bboxNode))
            {
                if (bboxNode.ArrayLength != 4)
                {
                    throw bboxNode.Error($"bbox must be [x, y, width, height], found {bboxNode.ArrayLength} numbers");
                }

                var b = bboxNode.GetDoubleArray();
                if (b[2] < 0 || b[3] < 0)
                {
                    throw bboxNode.Error($"bbox width and height must not be negative, found {b[2]} x {b[3]}");
                }

                box = BoundingBox.FromXywh(b[0], b[1], b[2], b[3]);
            }
            else if (mask is not null)
            {
                var mb = mask.ToBoundingBox();
                box = BoundingBox.FromXywh(mb.X, mb.Y, mb.Width, mb.Height);
            }
            else
            {
                throw node.Error("a result needs a bbox or a segmentation");
            }

            results.Add(new CocoResult(imageId, label, score, box, mask));
        }

        return results;
    }
}
