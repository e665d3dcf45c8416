using MaskRcnn.Net.Core.Masks;

namespace MaskRcnn.Net.Training.Evaluation;

/// <summary>
/// COCO detection / instance-segmentation evaluation with the semantics of pycocotools' <c>COCOeval</c>
/// (<c>evaluate</c>, <c>accumulate</c>, <c>summarize</c>) for the <c>bbox</c> and <c>segm</c> IoU types.
/// </summary>
/// <remarks>
/// <para>
/// Images are the ground-truth images (in increasing id order); categories are the ground truth's (or
/// <see cref="CocoEvaluationOptions.CategoryIds"/>). For every image and category, detections are ranked by
/// decreasing score (a stable sort) and cut to the largest detection limit; ground truths outside the area range
/// or marked crowd are "ignored". At each IoU threshold every detection, best first, takes the unmatched
/// ground truth it overlaps most (at least the threshold, ties going to the later ground truth), preferring
/// ground truths that count: once matched to one that counts it never moves to an ignored one. Crowd ground
/// truths can absorb any number of detections. Detections matched to ignored ground truths, and unmatched
/// detections outside the area range, are ignored.
/// </para>
/// <para>
/// Per category, area range and detection limit, the detections of all images are merged by score; cumulative
/// true and false positives give recall <c>tp / npig</c> and precision <c>tp / (tp + fp + 2⁻⁵²)</c>; the
/// precision is made non-increasing from the right and sampled at the first point whose recall reaches each
/// recall threshold (0 past the last). AP is the mean of the defined samples, AR the mean final recall.
/// </para>
/// <para>
/// Differences from pycocotools: inputs are validated (unknown images, non-finite values, missing masks and
/// mask sizes raise <see cref="ArgumentException"/>), and the per-image ids are replaced by positions, so a
/// ground truth or detection with id 0 is not mistaken for "unmatched".
/// </para>
/// </remarks>
public static class CocoEvaluator
{
    /// <summary>
    /// Evaluates <paramref name="detections"/> against <paramref name="groundTruth"/> and summarizes like
    /// <c>COCOeval(gt, dt, iouType).evaluate(); accumulate(); summarize()</c>.
    /// </summary>
    /// <param name="groundTruth">Every evaluated image with its objects (images without objects included).</param>
    /// <param name="detections">Detections per image; every image id must be one of <paramref name="groundTruth"/>.</param>
    /// <param name="iouType">Box or mask overlap.</param>
    /// <param name="options">Parameters; null for COCO's defaults.</param>
    /// <exception cref="ArgumentException">Invalid input or options (see the remarks of <see cref="CocoEvaluator"/>).</exception>
    public static CocoEvaluationResult Evaluate(
        IReadOnlyList<GroundTruthImage> groundTruth,
        IReadOnlyList<DetectionImage> detections,
        CocoIouType iouType,
        CocoEvaluationOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(groundTruth);
        ArgumentNullException.ThrowIfNull(detections);
        if (!Enum.IsDefined(iouType))
        {
            throw new ArgumentOutOfRangeException(nameof(iouType), iouType, "unknown IoU type");
        }

        options ??= CocoEvaluationOptions.Default;
        options.Validate();
        options = options with { MaxDetections = Array.AsReadOnly(options.MaxDetections.Order().ToArray()) };
        var segm = iouType == CocoIouType.Segmentation;

        // ---- images and categories (pycocotools: sorted unique ids) -------------------------------------------
        var images = groundTruth.Select((image, i) => image ?? throw new ArgumentException($"groundTruth[{i}] is null", nameof(groundTruth)))
            .OrderBy(image => image.ImageId).ToArray();
        var imageIndex = new Dictionary<long, int>();
        for (var i = 0; i < images.Length; i++)
        {
            if (!imageIndex.TryAdd(images[i].ImageId, i))
            {
                throw new ArgumentException($"image id {images[i].ImageId} appears twice in the ground truth", nameof(groundTruth));
            }
        }

        var categoryIds = (options.CategoryIds ?? images.SelectMany(image => image.Objects ?? []).Where(o => o is not null).Select(o => o.CategoryId).ToArray())
            .Distinct().Order().ToArray();
        var categoryIndex = new Dictionary<int, int>();
        for (var c = 0; c < categoryIds.Length; c++)
        {
            categoryIndex.Add(categoryIds[c], c);
        }

        // ---- objects per (image, category) ---------------------------------------------------------------------
        var gts = new Dictionary<(int Image, int Category), List<Gt>>();
        for (var i = 0; i < images.Length; i++)
        {
            var image = images[i];
            if (image.Width < 0 || image.Height < 0)
            {
                throw new ArgumentException($"ground-truth image {image.ImageId} has a negative size", nameof(groundTruth));
            }

            var objects = image.Objects ?? throw new ArgumentException($"ground-truth image {image.ImageId} has no object list", nameof(groundTruth));
            for (var j = 0; j < objects.Count; j++)
            {
                var o = objects[j] ?? throw new ArgumentException($"object {j} of ground-truth image {image.ImageId} is null", nameof(groundTruth));
                var where = $"object {j} of ground-truth image {image.ImageId}";
                CheckBox(o.Box, where, nameof(groundTruth));
                CheckMask(o.Mask, image, segm, where, nameof(groundTruth));
                var area = o.EffectiveArea;
                if (double.IsNaN(area))
                {
                    throw new ArgumentException($"{where} has a NaN area", nameof(groundTruth));
                }

                if (categoryIndex.TryGetValue(o.CategoryId, out var c))
                {
                    GetList(gts, (i, c)).Add(new Gt(o.Box, o.Mask, o.IsCrowd, area));
                }
            }
        }

        var dts = new Dictionary<(int Image, int Category), List<Dt>>();
        for (var n = 0; n < detections.Count; n++)
        {
            var entry = detections[n] ?? throw new ArgumentException($"detections[{n}] is null", nameof(detections));
            if (!imageIndex.TryGetValue(entry.ImageId, out var i))
            {
                throw new ArgumentException($"detections[{n}] is for image {entry.ImageId}, which is not in the ground truth", nameof(detections));
            }

            var image = images[i];
            var list = entry.Detections ?? throw new ArgumentException($"detections[{n}] has no detection list", nameof(detections));
            for (var j = 0; j < list.Count; j++)
            {
                var d = list[j] ?? throw new ArgumentException($"detection {j} of detections[{n}] is null", nameof(detections));
                var where = $"detection {j} of detections[{n}] (image {entry.ImageId})";
                if (double.IsNaN(d.Score))
                {
                    throw new ArgumentException($"{where} has a NaN score", nameof(detections));
                }

                CheckBox(d.Box, where, nameof(detections));
                CheckMask(d.Mask, image, segm, where, nameof(detections));
                if (categoryIndex.TryGetValue(d.CategoryId, out var c))
                {
                    // loadRes: a box result's area is w·h, a mask result's area is the mask's.
                    GetList(dts, (i, c)).Add(new Dt(d.Box, d.Mask, d.Score, segm ? d.Mask!.Area : d.Box.Area));
                }
            }
        }

        // ---- evaluate ------------------------------------------------------------------------------------------
        var maxDets = options.MaxDetections;
        var largestLimit = maxDets[^1];
        var thresholds = options.IouThresholds;
        var areaRanges = options.AreaRanges;
        var cellCategories = options.UseCategories ? categoryIds.Length : 1;
        var imageCount = images.Length;
        var evaluations = new ImageEvaluation?[cellCategories * areaRanges.Count * imageCount];
        for (var c = 0; c < cellCategories; c++)
        {
            for (var i = 0; i < imageCount; i++)
            {
                var cell = BuildCell(gts, dts, i, c, options.UseCategories, categoryIds.Length, largestLimit, segm);
                if (cell is null)
                {
                    continue;
                }

                for (var a = 0; a < areaRanges.Count; a++)
                {
                    evaluations[(c * areaRanges.Count + a) * imageCount + i] = EvaluateImage(cell, areaRanges[a], thresholds);
                }
            }
        }

        // ---- accumulate ----------------------------------------------------------------------------------------
        var (precision, recall) = Accumulate(evaluations, cellCategories, imageCount, options);
        return new CocoEvaluationResult(
            iouType,
            options,
            Array.AsReadOnly(images.Select(image => image.ImageId).ToArray()),
            Array.AsReadOnly(categoryIds),
            cellCategories,
            precision,
            recall);
    }

    // ---- per image -----------------------------------------------------------------------------------------

    /// <summary>
    /// The ground truths (annotation order), detections (best first, at most <paramref name="limit"/>) and their
    /// IoU matrix for one image and category (or all categories); null when both lists are empty.
    /// </summary>
    private static Cell? BuildCell(
        Dictionary<(int, int), List<Gt>> gts,
        Dictionary<(int, int), List<Dt>> dts,
        int image,
        int category,
        bool useCategories,
        int categoryCount,
        int limit,
        bool segm)
    {
        var g = new List<Gt>();
        var d = new List<Dt>();
        var first = useCategories ? category : 0;
        var last = useCategories ? category : categoryCount - 1;
        for (var c = first; c <= last; c++)
        {
            if (gts.TryGetValue((image, c), out var gl))
            {
                g.AddRange(gl);
            }

            if (dts.TryGetValue((image, c), out var dl))
            {
                d.AddRange(dl);
            }
        }

        if (g.Count == 0 && d.Count == 0)
        {
            return null;
        }

        // np.argsort(-score, kind='mergesort'): stable, so equal scores keep their order.
        var ranked = d.OrderByDescending(x => x.Score).Take(limit).ToArray();
        var groundTruths = g.ToArray();
        var ious = new double[ranked.Length, groundTruths.Length];
        for (var di = 0; di < ranked.Length; di++)
        {
            for (var gi = 0; gi < groundTruths.Length; gi++)
            {
                var gt = groundTruths[gi];
                ious[di, gi] = segm
                    ? Rle.Iou(ranked[di].Mask!, gt.Mask!, gt.IsCrowd)
                    : CocoBox.Iou(ranked[di].Box, gt.Box, gt.IsCrowd);
            }
        }

        return new Cell(groundTruths, ranked, ious);
    }

    /// <summary>pycocotools' <c>evaluateImg</c> for one image, category and area range.</summary>
    private static ImageEvaluation EvaluateImage(Cell cell, CocoAreaRange range, IReadOnlyList<double> thresholds)
    {
        var gts = cell.GroundTruths;
        var dts = cell.Detections;
        int g = gts.Length, d = dts.Length, t = thresholds.Count;

        // Ground truths that count first, ignored ones last, each group in annotation order (stable argsort).
        var order = Enumerable.Range(0, g).Where(j => !IsIgnored(gts[j], range))
            .Concat(Enumerable.Range(0, g).Where(j => IsIgnored(gts[j], range))).ToArray();
        var gtIgnore = order.Select(j => IsIgnored(gts[j], range)).ToArray();
        var crowd = order.Select(j => gts[j].IsCrowd).ToArray();

        var dtMatched = new bool[t][];
        var dtIgnore = new bool[t][];
        for (var ti = 0; ti < t; ti++)
        {
            var gtMatched = new bool[g];
            dtMatched[ti] = new bool[d];
            dtIgnore[ti] = new bool[d];
            if (g == 0 || d == 0)
            {
                continue; // maskUtils.iou returns [] and nothing is matched
            }

            for (var di = 0; di < d; di++)
            {
                var best = Math.Min(thresholds[ti], 1 - 1e-10);
                var match = -1;
                for (var gi = 0; gi < g; gi++)
                {
                    if (gtMatched[gi] && !crowd[gi])
                    {
                        continue; // taken, and only crowds take several detections
                    }

                    if (match > -1 && !gtIgnore[match] && gtIgnore[gi])
                    {
                        break; // matched to a ground truth that counts; the rest are ignored ones
                    }

                    var iou = cell.Ious[di, order[gi]];
                    if (iou < best)
                    {
                        continue;
                    }

                    best = iou;
                    match = gi;
                }

                if (match == -1)
                {
                    continue;
                }

                dtIgnore[ti][di] = gtIgnore[match];
                dtMatched[ti][di] = true;
                gtMatched[match] = true;
            }
        }

        // Unmatched detections outside the area range are ignored.
        for (var di = 0; di < d; di++)
        {
            if (!range.Contains(dts[di].Area))
            {
                for (var ti = 0; ti < t; ti++)
                {
                    dtIgnore[ti][di] |= !dtMatched[ti][di];
                }
            }
        }

        return new ImageEvaluation(
            dts.Select(x => x.Score).ToArray(),
            dtMatched,
            dtIgnore,
            gtIgnore.Count(ignored => !ignored));
    }

    private static bool IsIgnored(Gt gt, CocoAreaRange range) => gt.IsCrowd || !range.Contains(gt.Area);

    // ---- accumulate ----------------------------------------------------------------------------------------

    /// <summary>pycocotools' <c>accumulate</c>: the flat [T, R, K, A, M] precision and [T, K, A, M] recall arrays.</summary>
    private static (double[] Precision, double[] Recall) Accumulate(
        ImageEvaluation?[] evaluations, int categories, int imageCount, CocoEvaluationOptions options)
    {
        var thresholds = options.IouThresholds;
        var recallThresholds = options.RecallThresholds;
        var maxDets = options.MaxDetections;
        int t = thresholds.Count, r = recallThresholds.Count, k = categories, a = options.AreaRanges.Count, m = maxDets.Count;
        var precision = new double[t * r * k * a * m];
        var recall = new double[t * k * a * m];
        Array.Fill(precision, -1.0);
        Array.Fill(recall, -1.0);

        var selected = new List<ImageEvaluation>();
        var entries = new List<(double Score, ImageEvaluation Image, int Detection)>();
        for (var ki = 0; ki < k; ki++)
        {
            for (var ai = 0; ai < a; ai++)
            {
                selected.Clear();
                for (var i = 0; i < imageCount; i++)
                {
                    if (evaluations[(ki * a + ai) * imageCount + i] is { } e)
                    {
                        selected.Add(e);
                    }
                }

                if (selected.Count == 0)
                {
                    continue;
                }

                var npig = selected.Sum(e => e.CountedGroundTruths);
                for (var mi = 0; mi < m; mi++)
                {
                    // The first maxDet detections of every image, merged by score (stable: image order breaks ties).
                    entries.Clear();
                    foreach (var e in selected)
                    {
                        for (var di = 0; di < Math.Min(maxDets[mi], e.Scores.Length); di++)
                        {
                            entries.Add((e.Scores[di], e, di));
                        }
                    }

                    if (npig == 0)
                    {
                        continue;
                    }

                    var ranked = entries.OrderByDescending(x => x.Score).ToArray();
                    var nd = ranked.Length;
                    var rc = new double[nd];
                    var pr = new double[nd];
                    for (var ti = 0; ti < t; ti++)
                    {
                        double tp = 0, fp = 0;
                        for (var i = 0; i < nd; i++)
                        {
                            var (_, e, di) = ranked[i];
                            if (!e.Ignored[ti][di])
                            {
                                if (e.Matched[ti][di])
                                {
                                    tp++;
                                }
                                else
                                {
                                    fp++;
                                }
                            }

                            rc[i] = tp / npig;
                            pr[i] = tp / (fp + tp + NumPy.SpacingOfOne);
                        }

                        recall[((ti * k + ki) * a + ai) * m + mi] = nd > 0 ? rc[nd - 1] : 0;

                        // Precision envelope: non-increasing from the right.
                        for (var i = nd - 1; i > 0; i--)
                        {
                            if (pr[i] > pr[i - 1])
                            {
                                pr[i - 1] = pr[i];
                            }
                        }

                        // np.searchsorted(rc, recThrs, side='left'); pycocotools stops at the first index past the end.
                        for (var ri = 0; ri < r; ri++)
                        {
                            var index = LowerBound(rc, recallThresholds[ri]);
                            if (index >= nd)
                            {
                                for (var rest = ri; rest < r; rest++)
                                {
                                    precision[PrecisionIndex(ti, rest)] = 0;
                                }

                                break;
                            }

                            precision[PrecisionIndex(ti, ri)] = pr[index];
                        }
                    }

                    int PrecisionIndex(int ti, int ri) => (((ti * r + ri) * k + ki) * a + ai) * m + mi;
                }
            }
        }

        return (precision, recall);
    }

    /// <summary>The first index whose value is at least <paramref name="value"/> in non-decreasing
    /// <paramref name="sorted"/> (its length when there is none).</summary>
    private static int LowerBound(double[] sorted, double value)
    {
        int lo = 0, hi = sorted.Length;
        while (lo < hi)
        {
            var mid = (lo + hi) >>> 1;
            if (sorted[mid] < value)
            {
                lo = mid + 1;
            }
            else
            {
                hi = mid;
            }
        }

        return lo;
    }

    // ---- validation and helpers ----------------------------------------------------------------------------

    private static void CheckBox(CocoBox box, string where, string paramName)
    {
        if (!box.IsFinite)
        {
            throw new ArgumentException($"{where} has a non-finite box {box}", paramName);
        }
    }

    private static void CheckMask(Rle? mask, GroundTruthImage image, bool required, string where, string paramName)
    {
        if (mask is null)
        {
            if (required)
            {
                throw new ArgumentException($"{where} has no mask, which segmentation evaluation needs", paramName);
            }

            return;
        }

        if (mask.Height != image.Height || mask.Width != image.Width)
        {
            throw new ArgumentException(
                $"{where} has a {mask.Height}x{mask.Width} mask but image {image.ImageId} is {image.Height}x{image.Width}", paramName);
        }
    }

    private static List<T> GetList<T>(Dictionary<(int, int), List<T>> lists, (int, int) key)
    {
        if (!lists.TryGetValue(key, out var list))
        {
            list = [];
            lists.Add(key, list);
        }

        return list;
    }

    private sealed record Gt(CocoBox Box, Rle? Mask, bool IsCrowd, double Area);

    private sealed record Dt(CocoBox Box, Rle? Mask, double Score, double Area);

    private sealed record Cell(Gt[] GroundTruths, Dt[] Detections, double[,] Ious);

    /// <summary>pycocotools' per-image result: scores, and per threshold the matched and ignored flags.</summary>
    private sealed record ImageEvaluation(double[] Scores, bool[][] Matched, bool[][] Ignored, int CountedGroundTruths);
}
