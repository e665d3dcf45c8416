using System.Text.Json;
using MaskRcnn.Net.Core.Masks;
using Microsoft.Extensions.Logging;

namespace MaskRcnn.Net.Training;

/// <summary>Options of <see cref="CocoDataset.Load"/>.</summary>
public sealed record CocoOptions
{
    /// <summary>Fail when an image file named by the JSON does not exist (default true).</summary>
    public bool RequireImageFiles { get; init; } = true;

    /// <summary>
    /// What to do with a bad annotation — an unknown image or category id, a polygon of fewer than 3 points, a box
    /// that is empty once clamped to the image — and, with <see cref="RequireImageFiles"/>, a missing image file
    /// (default <see cref="BadAnnotationPolicy.Skip"/>). Structural errors always throw.
    /// </summary>
    public BadAnnotationPolicy BadAnnotations { get; init; } = BadAnnotationPolicy.Skip;

    /// <summary>Receives the warnings about skipped annotations and images (see <see cref="BadAnnotations"/>).</summary>
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
/// clamped box has x2 ≤ x1 or y2 ≤ y1 are bad (by default dropped with a warning, as the reference's
/// <c>ConvertCocoPolysToMask</c> does; see <see cref="CocoOptions.BadAnnotations"/>). Without <c>bbox</c> the box
/// is the extent of the mask.</item>
/// <item>Segmentations may be polygons (a list of [x0, y0, x1, y1, …] lists), uncompressed RLE
/// (<c>{"size": [h, w], "counts": [..]}</c>) or compressed RLE (<c>counts</c> a string); they are rasterised
/// exactly as pycocotools does and kept run-length encoded. An empty polygon list gives an empty mask; a polygon of
/// fewer than 3 points makes the annotation bad.</item>
/// <item>Bad annotations (unknown image or category id, a polygon of fewer than 3 points, an empty box) and missing
/// image files are skipped with a warning naming the file, the JSON path and the annotation id, or thrown, as
/// <see cref="CocoOptions.BadAnnotations"/> says; <see cref="DetectionDataset.LoadReport"/> counts what was skipped.</item>
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
    /// duplicated, a coordinate is not finite or out of range; or, under <see cref="BadAnnotationPolicy.Fail"/>, an
    /// annotation is bad or (with <see cref="CocoOptions.RequireImageFiles"/>) an image file is missing — under Skip
    /// only when every image file is missing. The message names the file and the JSON path.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><see cref="CocoOptions.BadAnnotations"/> is not a defined value.</exception>
    /// <exception cref="FileNotFoundException">The annotation file does not exist.</exception>
    public static DetectionDataset Load(string annotationsJson, string imagesDir, CocoOptions? options = null,
        IProgress<DatasetLoadProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(annotationsJson);
        ArgumentNullException.ThrowIfNull(imagesDir);
        options ??= new CocoOptions();
        var reporter = new BadAnnotationReporter(options.BadAnnotations, options.Logger, nameof(CocoOptions));
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
        var missingIndex = new List<int>();
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
                missingIndex.Add(images.Count);
            }

            images.Add((id, fileName, width, height, path, im));
            imageProgress.Advance();
        }

        reporter.MissingImages(missing, images.Count);
        var skippedImage = new bool[images.Count];
        foreach (var i in missingIndex)
        {
            skippedImage[i] = true;
        }

        // Annotations.
        var perImage = images.Select(_ => new List<Annotation>()).ToArray();
        var annotationsNode = root.Get("annotations");
        var annotationProgress = new ProgressTracker(progress, cancellationToken, "annotations", annotationsNode.ArrayLength);
        foreach (var an in annotationsNode.Items())
        {
            if (ReadAnnotation(an, imageIndex, skippedImage, labelOf, categoryNames, images, reporter) is { } read)
            {
                perImage[read.Index].Add(read.Annotation);
            }

            annotationProgress.Advance();
        }

        var samples = images.Select((im, i) => (im, i)).Where(x => !skippedImage[x.i])
            .Select(x => new DatasetSample(x.im.Id, x.im.FileName, x.im.Width, x.im.Height, perImage[x.i]) { ImagePath = x.im.Path });
        return new DetectionDataset(classNames, samples)
        {
            LoadReport = reporter.Finish(annotationsJson),
            CategoryIds = [0, .. categoryNames.Keys],
        };
    }

    /// <summary>
    /// One entry of <c>annotations</c> and the index of its image; null when it belongs to a skipped image or is bad
    /// (and <paramref name="reporter"/> did not throw).
    /// </summary>
    private static (int Index, Annotation Annotation)? ReadAnnotation(JsonCursor an, Dictionary<long, int> imageIndex, bool[] skippedImage,
        Dictionary<long, int> labelOf, SortedDictionary<long, string> categoryNames,
        List<(long Id, string FileName, int Width, int Height, string Path, JsonCursor Node)> images, BadAnnotationReporter reporter)
    {
        var imageIdNode = an.Get("image_id");
        var imageId = imageIdNode.GetInt64();
        var categoryNode = an.Get("category_id");
        var categoryId = categoryNode.GetInt64();
        var isCrowd = an.TryGet("iscrowd", out var crowdNode) && crowdNode.GetFlag();
        var name = Describe(an);
        if (!imageIndex.TryGetValue(imageId, out var index))
        {
            reporter.BadAnnotation(imageIdNode, $"{name}: unknown image id {imageId}");
            return null;
        }

        if (skippedImage[index])
        {
            return null; // its image file is missing: the annotation goes with the image
        }

        if (!labelOf.TryGetValue(categoryId, out var label))
        {
            reporter.BadAnnotation(categoryNode,
                $"{name}: unknown category id {categoryId} (the categories are {string.Join(", ", categoryNames.Keys)})");
            return null;
        }

        var image = images[index];
        Rle? rle = null;
        if (an.TryGet("segmentation", out var segNode))
        {
            rle = ReadSegmentation(segNode, image.Height, image.Width, out var shortPolygon);
            if (shortPolygon is var (polygonNode, points))
            {
                reporter.BadAnnotation(polygonNode, $"{name}: a polygon needs at least 3 points, found {points}");
                return null;
            }
        }

        BoundingBox box;
        JsonCursor boxNode;
        if (an.TryGet("bbox", out var bboxNode))
        {
            if (bboxNode.ArrayLength != 4)
            {
                throw bboxNode.Error($"bbox must be [x, y, width, height], found {bboxNode.ArrayLength} numbers");
            }

            var b = bboxNode.GetDoubleArray();
            box = BoundingBox.FromXywh(b[0], b[1], b[2], b[3]);
            boxNode = bboxNode;
        }
        else if (rle is not null)
        {
            var mb = rle.ToBoundingBox();
            box = BoundingBox.FromXywh(mb.X, mb.Y, mb.Width, mb.Height);
            boxNode = segNode;
        }
        else
        {
            throw an.Error("an annotation needs a bbox or a segmentation");
        }

        box = box.ClampTo(image.Width, image.Height);
        if (box.IsDegenerate)
        {
            reporter.BadAnnotation(boxNode,
                $"{name}: degenerate box {box} inside the {image.Width}x{image.Height} image of image id {imageId}");
            return null;
        }

        return (index, rle is null ? new Annotation(box, label, null, isCrowd) : Annotation.FromRle(box, label, rle, isCrowd));
    }

    /// <summary>"annotation id 17" for messages (the id as written; COCO does not require it to be read).</summary>
    private static string Describe(JsonCursor an)
    {
        if (!an.Element.TryGetProperty("id", out var id))
        {
            return "annotation without an id";
        }

        var text = id.GetRawText();
        return $"annotation id {(text.Length > 40 ? text[..40] + "…" : text)}";
    }

    /// <summary>
    /// Reads a segmentation; <paramref name="shortPolygon"/> is the first polygon of fewer than 3 points (the mask is
    /// then not rasterised and the result is meaningless), or null.
    /// </summary>
    internal static Rle ReadSegmentation(JsonCursor seg, int height, int width, out (JsonCursor Node, int Points)? shortPolygon)
    {
        shortPolygon = null;
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
                    shortPolygon ??= (poly, xy.Length / 2);
                    continue;
                }

                Shapes.CheckPolygon(poly, xy);
                polygons.Add(xy);
            }

            return polygons.Count == 0 || shortPolygon is not null
                ? Rle.FromCounts([height * width], height, width)
                : Shapes.Rasterise(seg, polygons, height, width);
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
