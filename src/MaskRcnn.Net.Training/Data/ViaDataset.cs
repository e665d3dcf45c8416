using System.Globalization;
using System.Text.Json;
using MaskRcnn.Net.Core.Detection;
using MaskRcnn.Net.Core.Imaging;
using MaskRcnn.Net.Core.Masks;
using Microsoft.Extensions.Logging;

namespace MaskRcnn.Net.Training;

/// <summary>Options of <see cref="ViaDataset.Load"/>.</summary>
public sealed record ViaOptions
{
    /// <summary>
    /// The region attribute holding the class name (a text value, or a checkbox/dropdown object with exactly one
    /// true entry). When null every region gets <see cref="DefaultClass"/>.
    /// </summary>
    public string? ClassAttribute { get; init; }

    /// <summary>The single class name used when <see cref="ClassAttribute"/> is null (default <c>"object"</c>).</summary>
    public string DefaultClass { get; init; } = "object";

    /// <summary>
    /// The class names in label order (label 1 first, without the background). When null the names found are
    /// sorted ordinally. With a fixed list an unknown class name is an error.
    /// </summary>
    public IReadOnlyList<string>? ClassNames { get; init; }

    /// <summary>
    /// Image sizes by VIA <c>filename</c>. VIA files do not record image sizes; without an entry here the size is
    /// read from the image file's header.
    /// </summary>
    public IReadOnlyDictionary<string, ImageSize>? ImageSizes { get; init; }

    /// <summary>Fail when an image file does not exist (default true). When false every size must be in <see cref="ImageSizes"/>.</summary>
    public bool RequireImageFiles { get; init; } = true;

    /// <summary>
    /// What to do with a bad region — a polygon of fewer than 3 points, a shape whose box is empty once clamped to the
    /// image, an unknown shape, a class not in <see cref="ClassNames"/> — and, with <see cref="RequireImageFiles"/>, a
    /// missing image file (default <see cref="BadAnnotationPolicy.Skip"/>). Structural errors always throw.
    /// </summary>
    public BadAnnotationPolicy BadAnnotations { get; init; } = BadAnnotationPolicy.Skip;

    /// <summary>Receives warnings about skipped regions and images (see <see cref="BadAnnotations"/>) and point regions.</summary>
    public ILogger? Logger { get; init; }
}

/// <summary>
/// Reads VGG Image Annotator (VIA) projects: VIA 1.x annotation exports (an object of
/// <c>{filename, size, regions, file_attributes}</c> entries, <c>regions</c> an object keyed "0", "1", … or an
/// array) and VIA 2.x project files (the same entries under <c>_via_img_metadata</c>).
/// </summary>
/// <remarks>
/// Region shapes: <c>polygon</c> and <c>polyline</c> (<c>all_points_x</c>/<c>all_points_y</c>, a polyline is closed
/// into a polygon), <c>rect</c> (<c>x, y, width, height</c>), <c>circle</c> (<c>cx, cy, r</c>) and <c>ellipse</c>
/// (<c>cx, cy, rx, ry</c>, optional <c>theta</c> in radians). Circles and ellipses are rasterised as polygons with
/// about one vertex per pixel of outline; all masks use pycocotools' polygon rasteriser. <c>point</c> regions are
/// skipped with a warning. Boxes are the extent of the shape's vertices, clamped to the image. Bad regions (unknown
/// shapes, polygons of fewer than 3 points, empty boxes, unknown classes) and missing image files are skipped with a
/// warning naming the file and the JSON path, or thrown, as <see cref="ViaOptions.BadAnnotations"/> says;
/// <see cref="DetectionDataset.LoadReport"/> counts what was skipped.
/// </remarks>
public static class ViaDataset
{
    /// <summary>Reads a VIA 1.x or 2.x JSON file whose <c>filename</c>s are relative to <paramref name="imagesDir"/>.</summary>
    /// <param name="viaJson">The VIA annotation or project file.</param>
    /// <param name="imagesDir">The directory holding the images.</param>
    /// <param name="options">Options, or null for the defaults (one class <c>"object"</c>, sizes from the image files).</param>
    /// <param name="progress">Receives progress of the <c>"images"</c> stage.</param>
    /// <param name="cancellationToken">Stops reading.</param>
    /// <returns>The dataset, images in file order; image ids are their positions.</returns>
    /// <exception cref="DatasetFormatException">The JSON is malformed or not a VIA 1.x/2.x file, a field is missing or has
    /// the wrong type, a coordinate is invalid, or an image size is missing; or, under
    /// <see cref="BadAnnotationPolicy.Fail"/>, a region is bad or (with <see cref="ViaOptions.RequireImageFiles"/>) an
    /// image file is missing — under Skip only when every image file is missing.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><see cref="ViaOptions.BadAnnotations"/> is not a defined value.</exception>
    /// <exception cref="FileNotFoundException">The VIA file does not exist.</exception>
    public static DetectionDataset Load(string viaJson, string imagesDir, ViaOptions? options = null,
        IProgress<DatasetLoadProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(viaJson);
        ArgumentNullException.ThrowIfNull(imagesDir);
        options ??= new ViaOptions();
        var reporter = new BadAnnotationReporter(options.BadAnnotations, options.Logger, nameof(ViaOptions));
        using var document = JsonCursor.ParseFile(viaJson, cancellationToken);
        var root = JsonCursor.Root(viaJson, document).ExpectObject();
        JsonCursor metadata;
        if (root.Has("_via_img_metadata"))
        {
            metadata = root.Get("_via_img_metadata").ExpectObject();
        }
        else if (root.Has("project") && root.Has("metadata") && root.Has("file"))
        {
            throw root.Error("this is a VIA 3.x project; only VIA 1.x exports and VIA 2.x projects are supported");
        }
        else
        {
            metadata = root;
        }

        // First pass: shapes and class names per image.
        var entries = metadata.Properties().Select(p => p.Value).ToList();
        var tracker = new ProgressTracker(progress, cancellationToken, "images", entries.Count);
        var parsed = new List<(string FileName, string Path, ImageSize Size, List<ParsedRegion> Regions)>();
        var missing = new List<(string Path, JsonCursor Node)>();
        var found = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var entry in entries)
        {
            entry.ExpectObject();
            var fileNode = entry.Get("filename");
            var fileName = fileNode.GetFileName();
            var path = Path.Combine(imagesDir, fileName);
            var exists = File.Exists(path);
            if (!exists && options.RequireImageFiles)
            {
                missing.Add((path, fileNode));
                tracker.Advance();
                continue;
            }

            ImageSize size;
            if (options.ImageSizes is { } sizes && sizes.TryGetValue(fileName, out var given))
            {
                if (given.Height <= 0 || given.Width <= 0)
                {
                    throw new ArgumentException($"ViaOptions.ImageSizes[\"{fileName}\"] is {given}; sizes must be positive", nameof(options));
                }

                size = given;
            }
            else if (exists)
            {
                try
                {
                    var info = ImageCodec.ReadInfo(path);
                    size = new ImageSize(checked((int)info.Height), checked((int)info.Width));
                }
                catch (ImageDecodeException e)
                {
                    throw new DatasetFormatException(path, null, $"cannot read the image header: {e.Reason}", e);
                }
            }
            else
            {
                throw fileNode.Error(
                    $"image file {path} does not exist and ViaOptions.ImageSizes has no size for \"{fileName}\"; VIA files do not record image sizes");
            }

            var regions = new List<ParsedRegion>();
            var regionsNode = entry.Get("regions");
            var regionNodes = regionsNode.Kind switch
            {
                JsonValueKind.Object => regionsNode.Properties().Select(p => p.Value).ToList(),
                JsonValueKind.Array => regionsNode.Items().ToList(),
                _ => throw regionsNode.TypeError("an object or an array of regions"),
            };
            foreach (var region in regionNodes)
            {
                if (ParseRegion(region, options, reporter) is { } r)
                {
                    regions.Add(r);
                    found.Add(r.ClassName);
                }
            }

            parsed.Add((fileName, path, size, regions));
            tracker.Advance();
        }

        reporter.MissingImages(missing, entries.Count);

        var classNames = options.ClassNames?.ToList() ?? [.. found];
        var labelOf = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < classNames.Count; i++)
        {
            if (!labelOf.TryAdd(classNames[i], i + 1))
            {
                throw new ArgumentException($"class name \"{classNames[i]}\" appears twice in ViaOptions.ClassNames", nameof(options));
            }
        }

        // Second pass: rasterise.
        var samples = new List<DatasetSample>();
        foreach (var (fileName, path, size, regions) in parsed)
        {
            var annotations = new List<Annotation>();
            foreach (var r in regions)
            {
                if (!labelOf.TryGetValue(r.ClassName, out var label))
                {
                    reporter.BadAnnotation(r.ClassNode, $"unknown class \"{r.ClassName}\" (the classes are {string.Join(", ", classNames)})");
                    continue;
                }

                if (r.Build(label, size.Height, size.Width, reporter) is { } a)
                {
                    annotations.Add(a);
                }
            }

            samples.Add(new DatasetSample(samples.Count, fileName, size.Width, size.Height, annotations) { ImagePath = path });
        }

        return new DetectionDataset([DetectionDataset.BackgroundName, .. classNames], samples) { LoadReport = reporter.Finish(viaJson) };
    }

    private sealed record ParsedRegion(string ClassName, JsonCursor ClassNode, Func<int, int, int, BadAnnotationReporter, Annotation?> Build);

    private static ParsedRegion? ParseRegion(JsonCursor region, ViaOptions options, BadAnnotationReporter reporter)
    {
        region.ExpectObject();
        var shape = region.Get("shape_attributes").ExpectObject();
        var nameNode = shape.Get("name");
        var name = nameNode.GetString();

        string className;
        JsonCursor classNode;
        if (options.ClassAttribute is { } attribute)
        {
            if (!region.TryGet("region_attributes", out var attrs))
            {
                throw region.Error($"region has no region_attributes, so no \"{attribute}\" class attribute");
            }

            classNode = attrs.ExpectObject().Get(attribute);
            className = ReadClass(classNode);
        }
        else
        {
            className = options.DefaultClass;
            classNode = region;
        }

        Func<int, int, int, BadAnnotationReporter, Annotation?>? build = null;
        switch (name)
        {
            case "polygon":
            case "polyline":
            {
                var xs = shape.Get("all_points_x");
                var ys = shape.Get("all_points_y");
                var x = xs.GetDoubleArray();
                var y = ys.GetDoubleArray();
                if (x.Length != y.Length)
                {
                    throw ys.Error($"all_points_y has {y.Length} values but all_points_x has {x.Length}");
                }

                if (x.Length < 3)
                {
                    reporter.BadAnnotation(shape, $"a {name} needs at least 3 points, found {x.Length}");
                    return null;
                }

                var xy = new double[2 * x.Length];
                for (var i = 0; i < x.Length; i++)
                {
                    xy[2 * i] = x[i];
                    xy[2 * i + 1] = y[i];
                }

                Shapes.CheckPolygon(shape, xy, i => $"{(i % 2 == 0 ? xs.Path : ys.Path)}[{i / 2}]");
                build = (label, h, w, rep) => Shapes.FromPolygons(shape, [xy], label, h, w, rep);
                break;
            }

            case "rect":
            {
                var (x, y) = (Coordinate(shape, "x"), Coordinate(shape, "y"));
                var (rw, rh) = (Coordinate(shape, "width"), Coordinate(shape, "height"));
                if (rw < 0 || rh < 0)
                {
                    throw shape.Error($"rect has a negative size {rw}x{rh}");
                }

                build = (label, h, w, rep) => RectAnnotation(shape, x, y, rw, rh, label, h, w, rep);
                break;
            }

            case "circle":
            {
                var (cx, cy, r) = (Coordinate(shape, "cx"), Coordinate(shape, "cy"), Radius(shape, "r"));
                build = (label, h, w, rep) => Shapes.FromPolygons(shape, [Shapes.Ellipse(cx, cy, r, r)], label, h, w, rep);
                break;
            }

            case "ellipse":
            {
                var (cx, cy) = (Coordinate(shape, "cx"), Coordinate(shape, "cy"));
                var (rx, ry) = (Radius(shape, "rx"), Radius(shape, "ry"));
                var theta = shape.TryGet("theta", out var t) ? t.GetDouble() : 0;
                build = (label, h, w, rep) => Shapes.FromPolygons(shape, [Shapes.Ellipse(cx, cy, rx, ry, theta)], label, h, w, rep);
                break;
            }

            case "point":
                reporter.IgnoredShape(nameNode, "skipped a region of shape \"point\" (no area)");
                return null;

            default:
                reporter.BadAnnotation(nameNode,
                    $"unknown region shape \"{name}\" (polygon, polyline, rect, circle and ellipse are read, point is skipped)");
                return null;
        }

        return new ParsedRegion(className, classNode, build);
    }

    private static string ReadClass(JsonCursor node)
    {
        switch (node.Kind)
        {
            case JsonValueKind.String:
                return node.GetNonEmptyString();
            case JsonValueKind.Number:
                return node.Element.GetRawText();
            case JsonValueKind.Object:
            {
                var chosen = node.Properties().Where(p => p.Value.Kind == JsonValueKind.True).Select(p => p.Name).ToList();
                return chosen.Count == 1
                    ? chosen[0]
                    : throw node.Error($"a checkbox class attribute needs exactly one checked option, found {chosen.Count}");
            }

            default:
                throw node.TypeError("a class name");
        }
    }

    private static double Coordinate(JsonCursor shape, string name)
    {
        var node = shape.Get(name);
        var v = node.GetDouble();
        return Math.Abs(v) <= Rle.MaxCoordinate
            ? v
            : throw node.Error(string.Create(CultureInfo.InvariantCulture, $"{v} lies beyond ±{Rle.MaxCoordinate} pixels"));
    }

    private static double Radius(JsonCursor shape, string name)
    {
        var node = shape.Get(name);
        var v = Coordinate(shape, name);
        return v >= 0 ? v : throw node.Error($"radius must not be negative, found {v}");
    }

    private static Annotation? RectAnnotation(JsonCursor at, double x, double y, double rw, double rh, int label, int height, int width,
        BadAnnotationReporter reporter)
    {
        var box = BoundingBox.FromXywh(x, y, rw, rh).ClampTo(width, height);
        if (box.IsDegenerate)
        {
            reporter.BadAnnotation(at, $"degenerate rect: its box {box} inside the {width}x{height} image is empty");
            return null;
        }

        try
        {
            return Annotation.FromRle(box, label, Rle.FromBoundingBox(x, y, rw, rh, height, width));
        }
        catch (ArgumentException e)
        {
            throw at.Error($"cannot rasterise the rect: {e.Message}", e);
        }
    }
}
