using System.Text.Json;
using MaskRcnn.Net.Core.Imaging;
using Microsoft.Extensions.Logging;

namespace MaskRcnn.Net.Training;

/// <summary>Options of <see cref="LabelMeDataset.Load(string, LabelMeOptions?, IProgress{DatasetLoadProgress}?, CancellationToken)"/>.</summary>
public sealed record LabelMeOptions
{
    /// <summary>
    /// The class names in label order (label 1 first, without the background). When null the labels found in all
    /// files are sorted ordinally. With a fixed list an unknown label is an error.
    /// </summary>
    public IReadOnlyList<string>? ClassNames { get; init; }

    /// <summary>Search sub-directories too when loading a directory (default false).</summary>
    public bool Recursive { get; init; }

    /// <summary>
    /// What to do with a bad shape — a polygon of fewer than 3 points, a shape whose box is empty once clamped to the
    /// image, an unknown shape type, a label not in <see cref="ClassNames"/> — and with a file whose image file does
    /// not exist and that embeds no image (default <see cref="BadAnnotationPolicy.Skip"/>). Structural errors always
    /// throw.
    /// </summary>
    public BadAnnotationPolicy BadAnnotations { get; init; } = BadAnnotationPolicy.Skip;

    /// <summary>Receives warnings about skipped shapes and files (see <see cref="BadAnnotations"/>), lines and points.</summary>
    public ILogger? Logger { get; init; }
}

/// <summary>
/// Reads LabelMe annotation files (one JSON per image: <c>shapes</c> with <c>label</c>, <c>points</c>,
/// <c>shape_type</c> and <c>group_id</c>; <c>imagePath</c> relative to the JSON; <c>imageHeight</c>/<c>imageWidth</c>;
/// optionally the image itself base64-encoded in <c>imageData</c>).
/// </summary>
/// <remarks>
/// Shape types: <c>polygon</c> (also when <c>shape_type</c> is missing or null), <c>rectangle</c> (two opposite
/// corners) and <c>circle</c> (the centre and a point on the circumference, rasterised as a polygon). Lines, line
/// strips and points are skipped with a warning. Bad shapes (other types, polygons of fewer than 3 points, empty
/// boxes, unknown labels) and files without an image are skipped with a warning naming the file and the JSON path, or
/// thrown, as <see cref="LabelMeOptions.BadAnnotations"/> says; <see cref="DetectionDataset.LoadReport"/> counts what
/// was skipped. Shapes with the same label and the same non-null
/// <c>group_id</c> form one instance (the union of their masks), as labelme's own converters do. The image is the
/// file named by <c>imagePath</c>; when that is missing or absent the embedded <c>imageData</c> is used.
/// </remarks>
public static class LabelMeDataset
{
    /// <summary>Reads every <c>*.json</c> file of a directory (in ordinal order of their paths).</summary>
    /// <param name="directory">The directory holding the LabelMe files.</param>
    /// <param name="options">Options, or null for the defaults.</param>
    /// <param name="progress">Receives progress of the <c>"files"</c> stage.</param>
    /// <param name="cancellationToken">Stops reading.</param>
    /// <returns>The dataset, one image per file; image ids are the files' positions.</returns>
    /// <exception cref="DatasetFormatException">A file is malformed; or, under <see cref="BadAnnotationPolicy.Fail"/>, a
    /// shape is bad or an image is missing — under Skip only when every file's image is missing.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><see cref="LabelMeOptions.BadAnnotations"/> is not a defined value.</exception>
    /// <exception cref="DirectoryNotFoundException">The directory does not exist.</exception>
    public static DetectionDataset Load(string directory, LabelMeOptions? options = null,
        IProgress<DatasetLoadProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(directory);
        options ??= new LabelMeOptions();
        if (!Directory.Exists(directory))
        {
            throw new DirectoryNotFoundException($"LabelMe directory {directory} does not exist");
        }

        var files = Directory.GetFiles(directory, "*.json",
            options.Recursive ? SearchOption.AllDirectories : SearchOption.TopDirectoryOnly);
        Array.Sort(files, StringComparer.Ordinal);
        return Load(files, options, progress, cancellationToken);
    }

    /// <summary>Reads the given LabelMe files, one image each, in the given order.</summary>
    /// <param name="jsonFiles">The LabelMe JSON files.</param>
    /// <param name="options">Options, or null for the defaults.</param>
    /// <param name="progress">Receives progress of the <c>"files"</c> stage.</param>
    /// <param name="cancellationToken">Stops reading.</param>
    /// <returns>The dataset; image ids are the files' positions.</returns>
    /// <exception cref="DatasetFormatException">A file is malformed; or, under <see cref="BadAnnotationPolicy.Fail"/>, a
    /// shape is bad (a label is unknown, …) or an image is missing — under Skip only when every file's image is
    /// missing.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><see cref="LabelMeOptions.BadAnnotations"/> is not a defined value.</exception>
    public static DetectionDataset Load(IEnumerable<string> jsonFiles, LabelMeOptions? options = null,
        IProgress<DatasetLoadProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(jsonFiles);
        options ??= new LabelMeOptions();
        var reporter = new BadAnnotationReporter(options.BadAnnotations, options.Logger, nameof(LabelMeOptions));
        var files = jsonFiles.ToList();
        var tracker = new ProgressTracker(progress, cancellationToken, "files", files.Count);
        var parsed = new List<ParsedFile>();
        var missing = new List<DatasetFormatException>();
        var found = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var file in files)
        {
            var p = ParseFile(file, reporter, cancellationToken, out var noImage);
            if (p is null)
            {
                missing.Add(noImage!);
                tracker.Advance();
                continue;
            }

            parsed.Add(p);
            foreach (var instance in p.Instances)
            {
                found.Add(instance.Label);
            }

            tracker.Advance();
        }

        reporter.MissingImages(missing, files.Count);
        var classNames = options.ClassNames?.ToList() ?? [.. found];
        var labelOf = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < classNames.Count; i++)
        {
            if (!labelOf.TryAdd(classNames[i], i + 1))
            {
                throw new ArgumentException($"class name \"{classNames[i]}\" appears twice in LabelMeOptions.ClassNames", nameof(options));
            }
        }

        var samples = new List<DatasetSample>();
        foreach (var p in parsed)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var annotations = new List<Annotation>();
            foreach (var instance in p.Instances)
            {
                if (!labelOf.TryGetValue(instance.Label, out var label))
                {
                    reporter.BadAnnotation(instance.At, $"unknown label \"{instance.Label}\" (the classes are {string.Join(", ", classNames)})");
                    continue;
                }

                if (Shapes.FromPolygons(instance.At, instance.Polygons, label, p.Height, p.Width, reporter) is { } a)
                {
                    annotations.Add(a);
                }
            }

            samples.Add(new DatasetSample(samples.Count, p.FileName, p.Width, p.Height, annotations)
            {
                ImagePath = p.ImagePath,
                EmbeddedImage = p.Embedded,
            });
        }

        return new DetectionDataset([DetectionDataset.BackgroundName, .. classNames], samples)
        {
            LoadReport = reporter.Finish(files.Count == 1 ? files[0] : $"{files.Count} LabelMe files"),
        };
    }

    private sealed record Instance(string Label, JsonCursor At, List<double[]> Polygons);

    private sealed record ParsedFile(string FileName, string? ImagePath, ReadOnlyMemory<byte> Embedded, int Width, int Height, List<Instance> Instances);

    /// <summary>
    /// Reads one file; null, with <paramref name="noImage"/> set, when its image file is missing and it embeds no
    /// image (under <see cref="BadAnnotationPolicy.Fail"/> that is thrown at once).
    /// </summary>
    private static ParsedFile? ParseFile(string file, BadAnnotationReporter reporter, CancellationToken cancellationToken,
        out DatasetFormatException? noImage)
    {
        noImage = null;
        using var document = JsonCursor.ParseFile(file, cancellationToken);
        var root = JsonCursor.Root(file, document).ExpectObject();

        // The image: the file named by imagePath, else the embedded imageData.
        string? imagePath = null;
        string? fileName = null;
        ReadOnlyMemory<byte> embedded = default;
        if (root.TryGet("imagePath", out var pathNode) && pathNode.GetString() is { Length: > 0 } relative)
        {
            fileName = relative;
            var normalised = relative.Replace('\\', Path.DirectorySeparatorChar);
            string candidate;
            try
            {
                candidate = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(Path.GetFullPath(file)) ?? ".", normalised));
            }
            catch (Exception e) when (e is ArgumentException or NotSupportedException or PathTooLongException)
            {
                throw pathNode.Error($"imagePath is not a valid path: {e.Message}", e);
            }

            if (File.Exists(candidate))
            {
                imagePath = candidate;
            }
            else if (!root.TryGet("imageData", out _))
            {
                noImage = pathNode.Error($"image file {candidate} does not exist and the file has no imageData");
                if (reporter.Policy == BadAnnotationPolicy.Fail)
                {
                    throw noImage;
                }

                return null;
            }
        }

        if (imagePath is null)
        {
            if (!root.TryGet("imageData", out var dataNode))
            {
                throw root.Error("the file has neither an imagePath nor imageData");
            }

            try
            {
                embedded = Convert.FromBase64String(dataNode.GetString());
            }
            catch (FormatException e)
            {
                throw dataNode.Error($"imageData is not valid base64: {e.Message}", e);
            }

            if (embedded.IsEmpty)
            {
                throw dataNode.Error(fileName is null
                    ? "imageData is empty and there is no imagePath"
                    : $"imageData is empty and the image file of imagePath \"{fileName}\" does not exist");
            }

            fileName ??= Path.GetFileNameWithoutExtension(file);
        }

        int width, height;
        if (root.TryGet("imageWidth", out var wNode) && root.TryGet("imageHeight", out var hNode))
        {
            width = wNode.GetPositiveInt32();
            height = hNode.GetPositiveInt32();
            Shapes.CheckImageSize(wNode, width, height);
        }
        else
        {
            try
            {
                var info = imagePath is not null ? ImageCodec.ReadInfo(imagePath) : ImageCodec.ReadInfo(embedded.Span);
                (width, height) = (checked((int)info.Width), checked((int)info.Height));
            }
            catch (ImageDecodeException e)
            {
                throw new DatasetFormatException(imagePath ?? file, imagePath is null ? "$.imageData" : null,
                    $"cannot read the image header: {e.Reason}", e);
            }
        }

        // Shapes, grouped into instances.
        var instances = new List<Instance>();
        var groups = new Dictionary<(string Label, long Group), Instance>();
        foreach (var shape in root.Get("shapes").Items())
        {
            shape.ExpectObject();
            var label = shape.Get("label").GetNonEmptyString();
            var type = shape.TryGet("shape_type", out var typeNode) ? typeNode.GetString() : "polygon";
            var pointsNode = shape.Get("points");
            var points = ReadPoints(pointsNode);
            double[] polygon;
            switch (type)
            {
                case "polygon":
                    if (points.Length < 6)
                    {
                        reporter.BadAnnotation(shape, $"a polygon needs at least 3 points, found {points.Length / 2}");
                        continue;
                    }

                    polygon = points;
                    break;
                case "rectangle":
                    if (points.Length != 4)
                    {
                        throw pointsNode.Error($"a rectangle needs 2 points (opposite corners), found {points.Length / 2}");
                    }

                    polygon = Shapes.Rectangle(Math.Min(points[0], points[2]), Math.Min(points[1], points[3]),
                        Math.Max(points[0], points[2]), Math.Max(points[1], points[3]));
                    break;
                case "circle":
                    if (points.Length != 4)
                    {
                        throw pointsNode.Error($"a circle needs 2 points (centre and a point on the circle), found {points.Length / 2}");
                    }

                    var r = Math.Sqrt(Math.Pow(points[2] - points[0], 2) + Math.Pow(points[3] - points[1], 2));
                    polygon = Shapes.Ellipse(points[0], points[1], r, r);
                    break;
                case "line" or "linestrip" or "point" or "points":
                    reporter.IgnoredShape(shape, $"skipped a shape of type \"{type}\" (only polygon, rectangle and circle have an area)");
                    continue;
                default:
                    reporter.BadAnnotation(typeNode,
                        $"unknown shape type \"{type}\" (polygon, rectangle and circle are read; line, linestrip and point are skipped)");
                    continue;
            }

            Shapes.CheckPolygon(pointsNode, polygon, i => $"{pointsNode.Path}[{i / 2}][{i % 2}]");
            if (shape.TryGet("group_id", out var groupNode))
            {
                var key = (label, groupNode.GetInt64());
                if (groups.TryGetValue(key, out var existing))
                {
                    existing.Polygons.Add(polygon);
                    continue;
                }

                var grouped = new Instance(label, shape, [polygon]);
                groups[key] = grouped;
                instances.Add(grouped);
            }
            else
            {
                instances.Add(new Instance(label, shape, [polygon]));
            }
        }

        return new ParsedFile(fileName ?? Path.GetFileName(file), imagePath, embedded, width, height, instances);
    }

    private static double[] ReadPoints(JsonCursor pointsNode)
    {
        var n = pointsNode.ArrayLength;
        var xy = new double[2 * n];
        for (var i = 0; i < n; i++)
        {
            var point = pointsNode.At(i);
            if (point.ArrayLength != 2)
            {
                throw point.Error($"a point must be [x, y], found {point.ArrayLength} numbers");
            }

            xy[2 * i] = point.At(0).GetDouble();
            xy[2 * i + 1] = point.At(1).GetDouble();
        }

        return xy;
    }
}
