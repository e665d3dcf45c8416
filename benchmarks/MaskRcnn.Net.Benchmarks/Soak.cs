using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using MaskRcnn.Net.Backbones;
using MaskRcnn.Net.Core;

namespace MaskRcnn.Net.Benchmarks;

/// <summary>
/// Soak and RSS checks of prediction on one model: <c>soak</c> runs N predictions (default 2000) from T threads
/// (default 4), <c>rss</c> runs 500 sequential ones. Both use real images (data/brain-tumor/val/images), read the
/// process's resident set (/proc/self/status VmRSS) after a warm-up (the first 10 % of the predictions, all threads
/// joined, then a full GC), at the end (same), and every 100 ms in between for the maximum, and fail (exit code 1)
/// when the final RSS exceeds the post-warm-up RSS by more than the allowed growth (default 5 %) or any prediction
/// throws. Both points also report the RSS after glibc's malloc_trim, which separates memory still in use from
/// freed memory that the allocator keeps in its arenas; <c>--gate trimmed</c> applies the limit to that instead.
/// </summary>
public static partial class Soak
{
    /// <summary>The settings of one run (command-line options in brackets).</summary>
    /// <param name="Predictions">Predictions in total, warm-up included [--predictions].</param>
    /// <param name="Threads">Managed threads calling Predict on the same model concurrently [--threads].</param>
    /// <param name="Depth">ResNet depth of the backbone [--depth].</param>
    /// <param name="Norm">Backbone normalisation [--norm frozen|group|batch].</param>
    /// <param name="ImageSize">Resize target (shorter and longer side limit); 0 keeps torchvision's 800/1333 [--image-size].</param>
    /// <param name="FpnChannels">FPN output channels [--fpn-channels].</param>
    /// <param name="ScoreThreshold">Detection score threshold; 0 keeps every detection up to the limit [--score-threshold].</param>
    /// <param name="Detections">Detections (each with its mask) kept per image [--detections].</param>
    /// <param name="TorchThreads">libtorch intra-op threads (soak: 1, the managed threads fill the cores; rss: one per core) [--torch-threads].</param>
    /// <param name="WarmupFraction">Share of the predictions run before the baseline RSS is taken [--warmup-fraction].</param>
    /// <param name="MaxGrowthPercent">Allowed growth of the final RSS over the baseline [--max-growth].</param>
    /// <param name="GateOnTrimmed">Apply the growth limit to the RSS after malloc_trim instead of the plain RSS [--gate trimmed|rss].</param>
    /// <param name="Seed">Seed of the random initialisation [--seed].</param>
    /// <param name="ImagesDir">Directory of JPEG/PNG images, used round-robin [--images].</param>
    public sealed record Options(int Predictions, int Threads, int Depth, NormKind Norm, int ImageSize, int FpnChannels,
        double ScoreThreshold, int Detections, int TorchThreads, double WarmupFraction, double MaxGrowthPercent, bool GateOnTrimmed, ulong Seed, string? ImagesDir);

    /// <summary>Parses the options of <paramref name="mode"/> ("soak" or "rss"), runs it, returns the exit code.</summary>
    public static int Run(string mode, string[] args)
    {
        Options options;
        try
        {
            options = Parse(mode, args);
        }
        catch (ArgumentException e)
        {
            Console.Error.WriteLine($"{mode}: {e.Message}");
            Console.Error.WriteLine($"usage: {mode} [--predictions N] [--threads T] [--depth 18|34|50|101] [--norm frozen|group|batch] " +
                "[--image-size PX|0] [--fpn-channels C] [--score-threshold S] [--detections D] [--torch-threads K] [--warmup-fraction F] " +
                "[--max-growth PERCENT] [--gate rss|trimmed] [--seed N] [--images DIR]");
            return 2;
        }

        return Run(mode, options);
    }

    /// <summary>The defaults of a mode: soak = 2000 predictions from 4 threads, rss = 500 sequential predictions.</summary>
    public static Options Defaults(string mode) => new(
        Predictions: mode == "rss" ? 500 : 2000, Threads: mode == "rss" ? 1 : 4, Depth: 50, Norm: NormKind.FrozenBatchNorm,
        ImageSize: 256, FpnChannels: 256, ScoreThreshold: 0.0, Detections: 10, TorchThreads: mode == "rss" ? Environment.ProcessorCount : 1, WarmupFraction: 0.1, MaxGrowthPercent: 5,
        GateOnTrimmed: false, Seed: 0, ImagesDir: null);

    private static Options Parse(string mode, string[] args)
    {
        var o = Defaults(mode);
        for (var i = 0; i < args.Length; i++)
        {
            string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            int Int() => int.Parse(Value(), CultureInfo.InvariantCulture);
            double Double() => double.Parse(Value(), CultureInfo.InvariantCulture);
            o = args[i] switch
            {
                "--predictions" => o with { Predictions = Int() },
                "--threads" => o with { Threads = Int() },
                "--depth" => o with { Depth = Int() },
                "--norm" => o with
                {
                    Norm = Value() switch
                    {
                        "frozen" => NormKind.FrozenBatchNorm,
                        "group" => NormKind.GroupNorm,
                        "batch" => NormKind.BatchNorm,
                        var v => throw new ArgumentException($"unknown norm {v}"),
                    },
                },
                "--image-size" => o with { ImageSize = Int() },
                "--fpn-channels" => o with { FpnChannels = Int() },
                "--score-threshold" => o with { ScoreThreshold = Double() },
                "--detections" => o with { Detections = Int() },
                "--torch-threads" => o with { TorchThreads = Int() },
                "--warmup-fraction" => o with { WarmupFraction = Double() },
                "--max-growth" => o with { MaxGrowthPercent = Double() },
                "--gate" => o with
                {
                    GateOnTrimmed = Value() switch
                    {
                        "rss" => false,
                        "trimmed" => true,
                        var v => throw new ArgumentException($"unknown gate {v} (rss or trimmed)"),
                    },
                },
                "--seed" => o with { Seed = ulong.Parse(Value(), CultureInfo.InvariantCulture) },
                "--images" => o with { ImagesDir = Value() },
                var a => throw new ArgumentException($"unknown option {a}"),
            };
        }

        if (o.Predictions < 10 || o.Threads < 1 || o.Detections < 1 || o.TorchThreads < 1 || o.WarmupFraction is <= 0 or >= 1)
        {
            throw new ArgumentException("need --predictions >= 10, --threads, --detections, --torch-threads >= 1 and 0 < --warmup-fraction < 1");
        }

        return o;
    }

    private static int Run(string mode, Options o)
    {
        var imagesDir = o.ImagesDir ?? FindRepoFile("data", "brain-tumor", "val", "images");
        var images = Directory.EnumerateFiles(imagesDir).Where(f => f.EndsWith(".jpg", StringComparison.OrdinalIgnoreCase)
                || f.EndsWith(".jpeg", StringComparison.OrdinalIgnoreCase) || f.EndsWith(".png", StringComparison.OrdinalIgnoreCase))
            .Order(StringComparer.Ordinal).Select(File.ReadAllBytes).ToArray();
        if (images.Length == 0)
        {
            Console.Error.WriteLine($"{mode}: no images in {imagesDir}");
            return 2;
        }

        Torch.NumThreads = o.TorchThreads;

        Torch.ManualSeed(o.Seed);
        var builder = new MaskRcnnBuilder().WithClasses("tumor")
            .WithBackbone(o.Depth, o.Norm, trainableLayers: 0, outChannels: o.FpnChannels)
            .WithScoreThreshold(o.ScoreThreshold).WithDetectionsPerImage(o.Detections);
        if (o.ImageSize > 0)
        {
            builder.WithImageSize(o.ImageSize, o.ImageSize);
        }

        using var model = builder.Build();
        var sizeText = o.ImageSize > 0 ? $"{o.ImageSize} px" : "800/1333 px";
        Console.WriteLine($"{mode}: ResNet-{o.Depth}-FPN ({o.Norm}, {o.FpnChannels} FPN channels, random init seed {o.Seed}), " +
            $"{sizeText}, score threshold {o.ScoreThreshold}, up to {o.Detections} detections with masks; {o.Predictions} predictions from {o.Threads} thread(s) on " +
            $"{images.Length} images of {imagesDir}; libtorch threads {Torch.NumThreads}; {Environment.ProcessorCount} cores; " +
            $"glibc allocator tuned by NativeAllocator: {(NativeAllocator.IsTuned ? $"yes (arenas {NativeAllocator.ArenaMax}, mmap threshold {NativeAllocator.MmapThreshold / 1024} KiB)" : $"no ({NativeAllocator.OptOutVariable}=0 or MALLOC_* set)")}");
        var startRss = RssKiB();

        var warmup = Math.Max(1, (int)Math.Round(o.Predictions * o.WarmupFraction));
        var errors = new List<Exception>();
        long detections = 0;
        var maxRss = 0L;
        using var stopSampling = new CancellationTokenSource();
        var sampler = new Thread(() =>
        {
            while (!stopSampling.Token.WaitHandle.WaitOne(100))
            {
                var now = RssKiB();
                if (now > Interlocked.Read(ref maxRss))
                {
                    Interlocked.Exchange(ref maxRss, now);
                }
            }
        }) { IsBackground = true, Name = "rss-sampler" };
        sampler.Start();

        void Phase(int from, int to)
        {
            var next = from - 1;
            var workers = Enumerable.Range(0, o.Threads).Select(t => new Thread(() =>
            {
                int i;
                while ((i = Interlocked.Increment(ref next)) < to)
                {
                    try
                    {
                        var result = model.Predict(images[i % images.Length]);
                        Interlocked.Add(ref detections, result.Detections.Count);
                    }
                    catch (Exception e)
                    {
                        lock (errors)
                        {
                            errors.Add(e);
                        }
                    }
                }
            }) { Name = $"soak-{t}" }).ToList();
            workers.ForEach(w => w.Start());
            workers.ForEach(w => w.Join());
        }

        var clock = Stopwatch.StartNew();
        Phase(0, warmup);
        var warmupSeconds = clock.Elapsed.TotalSeconds;
        var baseline = Settle();
        Interlocked.Exchange(ref maxRss, Math.Max(Interlocked.Read(ref maxRss), baseline.Rss));
        Console.WriteLine($"{mode}: RSS at start {Mib(startRss)}; after {warmup} warm-up predictions ({warmupSeconds:0.0} s): {baseline}");

        clock.Restart();
        var progressEvery = Math.Max(1, (o.Predictions - warmup) / 4);
        for (var from = warmup; from < o.Predictions; from += progressEvery)
        {
            var to = Math.Min(o.Predictions, from + progressEvery);
            Phase(from, to);
            Console.WriteLine($"{mode}:   {to,6} predictions, {clock.Elapsed.TotalSeconds,7:0.0} s, RSS {Mib(RssKiB())}");
        }

        var measuredSeconds = clock.Elapsed.TotalSeconds;
        var final = Settle();
        stopSampling.Cancel();
        sampler.Join();
        var max = Math.Max(Interlocked.Read(ref maxRss), final.Rss);
        var growth = 100.0 * (final.Rss - baseline.Rss) / baseline.Rss;
        var trimmedGrowth = 100.0 * (final.TrimmedRss - baseline.TrimmedRss) / baseline.TrimmedRss;
        var measured = o.Predictions - warmup;
        Console.WriteLine($"{mode}: {measured} predictions after warm-up in {measuredSeconds:0.0} s " +
            $"({measuredSeconds / measured * 1000:0.0} ms each, {measured / measuredSeconds:0.00}/s), {detections} detections in total, {errors.Count} exceptions");
        Console.WriteLine($"{mode}: at the end: {final}");
        Console.WriteLine($"{mode}: RSS after warm-up {Mib(baseline.Rss)}, final {Mib(final.Rss)}, max {Mib(max)} (process peak VmHWM {Mib(StatusKiB("VmHWM"))}); " +
            $"growth {growth:+0.00;-0.00;0.00} %; after malloc_trim {Mib(baseline.TrimmedRss)} -> {Mib(final.TrimmedRss)}, " +
            $"{trimmedGrowth:+0.00;-0.00;0.00} %; allowed {o.MaxGrowthPercent} % on {(o.GateOnTrimmed ? "the RSS after malloc_trim" : "the RSS")}");

        foreach (var e in errors.Take(3))
        {
            Console.Error.WriteLine($"{mode}: prediction failed: {e}");
        }

        var ok = errors.Count == 0 && (o.GateOnTrimmed ? trimmedGrowth : growth) <= o.MaxGrowthPercent;
        Console.WriteLine($"{mode}: {(ok ? "PASS" : "FAIL")}");
        return ok ? 0 : 1;
    }

    /// <summary>Memory at one point: RSS after a full GC, managed heap, RSS after glibc's malloc_trim as well.</summary>
    private sealed record Snapshot(long Rss, long ManagedHeap, long TrimmedRss)
    {
        public override string ToString() =>
            $"RSS {Mib(Rss)} (managed heap {Mib(ManagedHeap / 1024)}), after malloc_trim {Mib(TrimmedRss)}";
    }

    /// <summary>
    /// A full, compacting GC with finalizers run, then RSS; then glibc's malloc_trim (returns freed heap pages that
    /// the allocator keeps cached in its arenas) and RSS again. The same at the baseline and at the end.
    /// </summary>
    private static Snapshot Settle()
    {
        for (var i = 0; i < 2; i++)
        {
            GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
            GC.WaitForPendingFinalizers();
        }

        var rss = RssKiB();
        var heap = GC.GetGCMemoryInfo().HeapSizeBytes;
        MallocTrim(0);
        return new Snapshot(rss, heap, RssKiB());
    }

    [LibraryImport("libc", EntryPoint = "malloc_trim")]
    private static partial int MallocTrim(nuint pad);

    private static long RssKiB() => StatusKiB("VmRSS");

    private static long StatusKiB(string field)
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith(field + ":", StringComparison.Ordinal))
            {
                return long.Parse(line[(field.Length + 1)..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
            }
        }

        throw new InvalidOperationException($"/proc/self/status has no {field}");
    }

    private static string Mib(long kib) => $"{kib / 1024.0:0.0} MiB";

    private static string FindRepoFile(params string[] parts)
    {
        foreach (var start in new[] { Environment.CurrentDirectory, AppContext.BaseDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "MaskRcnn.Net.sln")))
                {
                    return Path.Combine([dir.FullName, .. parts]);
                }
            }
        }

        throw new DirectoryNotFoundException("repository root (MaskRcnn.Net.sln) not found; pass --images DIR");
    }
}
