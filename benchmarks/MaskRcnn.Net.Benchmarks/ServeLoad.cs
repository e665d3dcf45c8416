using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;

namespace MaskRcnn.Net.Benchmarks;

/// <summary>
/// <c>serve-load --url URL [--images DIR] [--clients 4] [--seconds 120] [--warmup 2]</c>: a closed-loop load client
/// for <c>maskrcnn serve</c> (benchmarks/serve_load.sh). Each client POSTs the JPEGs of DIR in turn to /predict and
/// waits for the answer before sending the next; after the warm-up requests, prints requests/s and the latency
/// percentiles of the timed window. Non-200 answers are counted and make the exit code 1.
/// </summary>
public static class ServeLoad
{
    /// <summary>Runs the load and prints the figures.</summary>
    public static int Run(string[] args)
    {
        string? url = null;
        var images = Path.Combine("data", "brain-tumor", "val", "images");
        int clients = 4, warmup = 2;
        double seconds = 120;
        for (var i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--url": url = Next(); break;
                case "--images": images = Next(); break;
                case "--clients": clients = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--seconds": seconds = double.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--warmup": warmup = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                default: throw new ArgumentException($"serve-load: unknown option {args[i]}");
            }
        }

        if (url is null || clients < 1 || seconds <= 0)
        {
            throw new ArgumentException("serve-load: --url is required; --clients >= 1, --seconds > 0");
        }

        var bodies = Directory.GetFiles(images, "*.jpg").Order(StringComparer.Ordinal).Select(File.ReadAllBytes).ToArray();
        if (bodies.Length == 0)
        {
            throw new ArgumentException($"serve-load: no .jpg in {images}");
        }

        using var http = new HttpClient { BaseAddress = new Uri(url), Timeout = TimeSpan.FromMinutes(5) };
        async Task<(bool Ok, double Seconds)> Post(int n)
        {
            using var content = new ByteArrayContent(bodies[n % bodies.Length]);
            content.Headers.ContentType = new MediaTypeHeaderValue("image/jpeg");
            var clock = Stopwatch.StartNew();
            using var response = await http.PostAsync("/predict", content).ConfigureAwait(false);
            await response.Content.ReadAsByteArrayAsync().ConfigureAwait(false);
            return (response.IsSuccessStatusCode, clock.Elapsed.TotalSeconds);
        }

        // Warm-up: every client's first requests (model caches, allocator, JIT) are not timed.
        Task.WhenAll(Enumerable.Range(0, clients).Select(async c =>
        {
            for (var k = 0; k < warmup; k++)
            {
                await Post(c + k * clients).ConfigureAwait(false);
            }
        })).GetAwaiter().GetResult();

        var latencies = new List<double>();
        var failures = 0;
        var window = Stopwatch.StartNew();
        var end = TimeSpan.FromSeconds(seconds);
        Task.WhenAll(Enumerable.Range(0, clients).Select(async c =>
        {
            for (var k = 0; window.Elapsed < end; k++)
            {
                var (ok, s) = await Post(c + k * clients).ConfigureAwait(false);
                lock (latencies)
                {
                    if (ok)
                    {
                        latencies.Add(s);
                    }
                    else
                    {
                        failures++;
                    }
                }
            }
        })).GetAwaiter().GetResult();
        var elapsed = window.Elapsed.TotalSeconds;

        latencies.Sort();
        double Percentile(double p) => latencies.Count == 0 ? double.NaN : latencies[Math.Min(latencies.Count - 1, (int)Math.Ceiling(p * latencies.Count) - 1)];
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"serve-load: {clients} clients, {elapsed:0.0} s: {latencies.Count} requests ok, {failures} failed; {latencies.Count / elapsed:0.00} requests/s; " +
            $"latency p50 {Percentile(0.50) * 1000:0} ms, p95 {Percentile(0.95) * 1000:0} ms, p99 {Percentile(0.99) * 1000:0} ms, max {(latencies.Count > 0 ? latencies[^1] * 1000 : double.NaN):0} ms"));
        return failures == 0 && latencies.Count > 0 ? 0 : 1;
    }
}
