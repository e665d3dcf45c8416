using System.Text.Json;
using MaskRcnn.Net.Core.Masks;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace MaskRcnn.Net.Training;

/// <summary>Options of <see cref="CocoDataset.Load"/>.</summary>
public sealed record CocoOptions
{
    /// <summary>Fail when an image file named by the JSON does not exist (default true).</summary>
    public bool RequireImageFiles { get; init; } = true;

    /// <summary>Receives warnings about annotations that were skipped (degenerate boxes, polygons of fewer than 3 points).</summary>
    public ILogger? Logger { get; init; }
}

/// <summary>
/// Reads COCO "instances" annotation files (<c>images</c>, <c>annotations</c>, <c>categories</c>) into a
/// <see cref="DetectionDataset"/>, the way torchvision's detection reference prepares them for training.
/// </summary>
/// <remarks>
/// <list type="bullet">
/// <item>Category ids are remapped to contiguous labels 1..K in ascending id order; <c>ClassNames[label]</c> is the
/// category name and <c>ClassNames[0]</c> is <c>"__background__"</c>.</item>
/// <item>Boxes come from <c>bbox</c> [x, y, w, h] as (x, y, x + w, y + h), clamped to the image; annotations whose
/// clamped box has x2 ≤ x1 or y2 ≤ y1 are dropped with a warning, as the reference's
/// <c>ConvertCocoPolysToMask</c> does. Without <c>bbox</c> the box is the extent of the mask.</item>
/// <item>Segmentations may be polygons (a list of [x0, y0, x1, y1, …] lists), uncompressed RLE
/// (<c>{"size": [h, w], "counts": [..]}</c>) or compressed RLE (<c>counts</c> a string); they are rasterised
/// exactly as pycocotools does and kept run-length encoded. An empty polygon list gives an empty mask.</item>
/// <item><c>iscrowd</c> is kept as <see cref="Annotation.IsCrowd"/>; images without annotations are kept as
/// negatives.</item>
/// </list>
/// </remarks>
public static class CocoDataset
{
    /// <summary>Reads a COCO instances JSON file whose <c>file_name</c>s are relative to <paramref name="imagesDir"/>.</summary>
    /// <param name="annotationsJson">The annotation file.</param>
    /// <param name="imagesDir">The directory holding the images.</param>
    /// <param name="options">Options, or null for the defaults.</param>
    /// <param name="progress">Receives progress per stage (<c>"images"</c>, <c>"annotations"</c>).</param>
    /// <param name="cancellationToken">Stops reading.</param>
    /// <returns>The dataset, images in the order of the JSON's <c>images</c> list.</returns>
    /// <exception cref="DatasetFormatException">The JSON is malformed, a field is missing or has the wrong type, an id is
    /// unknown, a coordinate is not finite or out of range, or (with <see cref="CocoOptions.RequireImageFiles"/>) an image
    /// file is missing; the message names the file and the JSON path.</exception>
    /// <exception cref="FileNotFoundException">The annotation file does not exist.</exception>
    public static DetectionDataset Load(string annotationsJson, string imagesDir, CocoOptions? options = null,
        IProgress<DatasetLoadProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(annotationsJson);
        ArgumentNullException.ThrowIfNull(imagesDir);
        options ??= new CocoOptions();
        var logger = options.Logger ?? NullLogger.Instance;
        using var document = JsonCursor.ParseFile(annotationsJson, cancellationToken);
        var root = JsonCursor.Root(annotationsJson, document).ExpectObject();

        // Categories → contiguous labels in ascending id order.
        var categoryNames = new SortedDictionary<long, string>();
        foreach (var c in root.Get("categories").Items())
        {
            var id = c.Get("id").GetInt64();
            var name = c.Get("name").GetNonEmptyString();
            if (!categoryNames.TryAdd(id, name))
            {
                throw c.Get("id").Error($"category id {id} appears twice");
            }
        }

        var labelOf = new Dictionary<long, int>();
        var classNames = new List<string> { DetectionDataset.BackgroundName };
        foreach (var (id, name) in categoryNames)
        {
            labelOf[id] = classNames.Count;
            classNames.Add(name);
        }

        // Images.
        var imagesNode = root.Get("images");
        var images = new List<(long Id, string FileName, int Width, int Height, string Path, JsonCursor Node)>();
        var imageIndex = new Dictionary<long, int>();
        var missing = new List<(string Path, JsonCursor Node)>();
        var imageProgress = new ProgressTracker(progress, cancellationToken, "images", imagesNode.ArrayLength);
        foreach (var im in imagesNode.Items())
        {
            var idNode = im.Get("id");
            var id = idNode.GetInt64();
            var fileNode = im.Get("file_name");
            var fileName = fileNode.GetFileName();
            var width = im.Get("width").GetPositiveInt32();
            var height = im.Get("height").GetPositiveInt32();
            Shapes.CheckImageSize(im, width, height);
            if (!imageIndex.TryAdd(id, images.Count))
            {
                throw idNode.Error($"image id {id} appears twice");
            }

            var path = Path.Combine(imagesDir, fileName);
            if (options.RequireImageFiles && !File.Exists(path))
            {
                missing.Add((path, fileNode));
            }

            images.Add((id, fileName, width, height, path, im));
            imageProgress.Advance();
        }

        if (missing.Count > 0)
        {
            var shown = string.Join(", ", missing.Take(5).Select(m => m.Path));
            throw missing[0].Node.Error(
                $"{missing.Count} image file(s) missing: {shown}{(missing.Count > 5 ? ", …" : "")}");
        }

        // Annotations.
        var perImage = images.Select(_ => new List<Annotation>()).ToArray();
        var annotationsNode = root.Get("annotations");
        var annotationProgress = new ProgressTracker(progress, cancellationToken, "annotations", annotationsNode.ArrayLength);
        var dropped = 0;
        foreach (var an in annotationsNode.Items())
        {
            var imageIdNode = an.Get("image_id");
            var imageId = imageIdNode.GetInt64();
            if (!imageIndex.TryGetValue(imageId, out var index))
            {
                throw imageIdNode.Error($"unknown image id {imageId}");
            }

            var categoryNode = an.Get("category_id");
            var categoryId = categoryNode.GetInt64();
            if (!labelOf.TryGetValue(categoryId, out var label))
            {
                throw categoryNode.Error(
                    $"unknown category id {categoryId} (the categories are {string.Join(", ", categoryNames.Keys)})");
            }

            var image = images[index];
            var isCrowd = an.TryGet("iscrowd", out var crowdNode) && crowdNode.GetFlag();
            var rle = an.TryGet("segmentation", out var segNode)
                ? ReadSegmentation(segNode, image.Height, image.Width, logger)
                : null;

            BoundingBox box;
            if (an.TryGet("bbox", out var bboxNode))
            {
                if (bboxNode.ArrayLength != 4)
                {
                    throw bboxNode.Error($"bbox must be [x, y, width, height], found {bboxNode.ArrayLength} numbers");
                }

                var b = bboxNode.GetDoubleArray();
                box = BoundingBox.FromXywh(b[0], b[1], b[2], b[3]);
            }
            else if (rle is not null)
            {
                var mb = rle.ToBoundingBox();
                box = BoundingBox.FromXywh(mb.X, mb.Y, mb.Width, mb.Height);
            }
            else
            {
                throw an.Error("an annotation needs a bbox or a segmentation");
            }

            box = box.ClampTo(image.Width, image.Height);
            if (box.IsDegenerate)
            {
                dropped++;
                logger.LogWarning("{File}: {Path}: dropped annotation with degenerate box {Box} in image {ImageId}",
                    annotationsJson, an.Path, box, imageId);
            }
            else
            {
                perImage[index].Add(rle is null ? new Annotation(box, label, null, isCrowd) : Annotation.FromRle(box, label, rle, isCrowd));
            }

            annotationProgress.Advance();
        }

        if (dropped > 0)
        {
            logger.LogWarning("{File}: dropped {Count} annotation(s) with degenerate boxes", annotationsJson, dropped);
        }

        var samples = images.Select((im, i) => new DatasetSample(im.Id, im.FileName, im.Width, im.Height, perImage[i])
        {
            ImagePath = im.Path,
        });
        return new DetectionDataset(classNames, samples);
    }

    private static Rle ReadSegmentation(JsonCursor seg, int height, int width, ILogger logger)
    {
        if (seg.Kind == JsonValueKind.Array)
        {
            var polygons = new List<IReadOnlyList<double>>();
            foreach (var poly in seg.Items())
            {
                if (poly.Kind != JsonValueKind.Array)
                {
                    throw poly.TypeError("a polygon (an array of x, y numbers); polygon segmentations are a list of such arrays");
                }

                var xy = poly.GetDoubleArray();
                if (xy.Length < 6 && xy.Length % 2 == 0)
                {
                    logger.LogWarning("{File}: {Path}: skipped a polygon of {Points} point(s)", poly.File, poly.Path, xy.Length / 2);
                    continue;
                }

                Shapes.CheckPolygon(poly, xy);
                polygons.Add(xy);
            }

            return polygons.Count == 0 ? Rle.FromCounts([height * width], height, width) : Shapes.Rasterise(seg, polygons, height, width);
        }

        if (seg.Kind == JsonValueKind.Object)
        {
            var sizeNode = seg.Get("size");
            if (sizeNode.ArrayLength != 2)
            {
                throw sizeNode.Error($"RLE size must be [height, width], found {sizeNode.ArrayLength} numbers");
            }

            var (h, w) = (sizeNode.At(0).GetInt32(), sizeNode.At(1).GetInt32());
            if (h != height || w != width)
            {
                throw sizeNode.Error($"RLE size [{h}, {w}] differs from the image size [{height}, {width}]");
            }

            var counts = seg.Get("counts");
            try
            {
                if (counts.Kind == JsonValueKind.String)
                {
                    return Rle.FromCompressedString(counts.GetString(), height, width);
                }

                if (counts.Kind == JsonValueKind.Array)
                {
                    var values = new int[counts.ArrayLength];
                    for (var i = 0; i < values.Length; i++)
                    {
                        values[i] = counts.At(i).GetInt32();
                    }

                    return Rle.FromCounts(values, height, width);
                }
            }
            catch (Exception e) when (e is (FormatException or ArgumentException) and not DatasetFormatException)
            {
                throw counts.Error($"invalid RLE counts: {e.Message}", e);
            }

            throw counts.TypeError("an RLE counts list or compressed string");
        }

        throw seg.TypeError("a list of polygons or an RLE object");
    }
}
