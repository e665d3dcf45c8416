using System.Diagnostics;
using System.Globalization;
using Xunit.Abstractions;

namespace MaskRcnn.Net.Core.Tests.TestSupport;

/// <summary>
/// Runs a bounded, seeded fuzz target: case i is generated from <see cref="ByteMutator.CaseSeed"/>(target, i) and
/// must either succeed or throw an exception the target documents. Anything else (NullReference, IndexOutOfRange,
/// InvalidCast, an undocumented ArgumentException...), a case that uses more CPU time than the per-case limit, or a hang fails the
/// test, listing each failing seed. Environment variables: <c>MR_FUZZ_CASES</c> overrides the number of cases
/// (longer local runs), <c>MR_FUZZ_SEED</c> runs just that one seed (reproduction). Before each case the target and
/// seed are written to <see cref="InFlightFile"/>, so a case that kills the process can still be identified.
/// </summary>
public static class FuzzRunner
{
    /// <summary>Holds "target seed" of the case in progress (deleted when a target finishes).</summary>
    public static string InFlightFile { get; } = Path.Combine(Path.GetTempPath(), $"maskrcnn-fuzz-inflight-{Environment.ProcessId}.txt");

    /// <summary>Runs <paramref name="cases"/> cases of one target and fails the test on any undocumented outcome.</summary>
    /// <param name="target">The target's name (part of every seed).</param>
    /// <param name="cases">Number of cases (unless <c>MR_FUZZ_CASES</c> says otherwise).</param>
    /// <param name="generate">Makes the input of a case from its random source.</param>
    /// <param name="consume">Feeds an input to the code under test (and checks a successful result).</param>
    /// <param name="documented">True for the exception types the code under test documents.</param>
    /// <param name="output">Receives the summary line.</param>
    /// <returns>The outcome counts (for assertions that the fuzzer reached both outcomes).</returns>
    public static FuzzSummary Run(string target, int cases, Func<Random, byte[]> generate, Action<byte[]> consume,
        Func<Exception, bool> documented, ITestOutputHelper? output = null)
    {
        var seeds = SeedsFor(target, cases);
        var summary = new FuzzSummary(target);
        var failures = new List<string>();
        var perCaseLimit = TimeSpan.FromSeconds(10);
        var inFlight = -1;
        var clock = Stopwatch.StartNew();
        var worker = new Thread(() =>
        {
            foreach (var seed in seeds)
            {
                Volatile.Write(ref inFlight, seed);
                File.WriteAllText(InFlightFile, $"{target} {seed}");
                var started = ThreadCpuTime.Now(); // CPU time: another busy process cannot make a case "slow"
                byte[] input;
                try
                {
                    input = generate(new Random(seed));
                }
                catch (Exception e)
                {
                    lock (failures)
                    {
                        failures.Add($"seed {seed}: the generator failed: {e}");
                    }

                    continue;
                }

                try
                {
                    consume(input);
                    summary.Succeeded++;
                }
                catch (Exception e) when (documented(e))
                {
                    summary.Rejected++;
                    summary.CountType(e);
                }
                catch (Exception e)
                {
                    lock (failures)
                    {
                        failures.Add($"seed {seed} ({input.Length} bytes): undocumented {e.GetType().FullName}: {e.Message}\n{e.StackTrace}");
                    }
                }

                var took = ThreadCpuTime.Now() - started;
                if (took > perCaseLimit)
                {
                    lock (failures)
                    {
                        failures.Add($"seed {seed}: took {took.TotalSeconds:0.0} s of CPU time (limit {perCaseLimit.TotalSeconds} s)");
                    }
                }
            }

            Volatile.Write(ref inFlight, -1);
        }, 64 << 20) { IsBackground = true, Name = $"fuzz {target}" };
        worker.Start();
        var overall = TimeSpan.FromSeconds(Math.Max(120, seeds.Count * 0.5));
        if (!worker.Join(overall))
        {
            throw new Xunit.Sdk.XunitException(
                $"fuzz target {target}: no result after {overall.TotalSeconds} s; case with seed {Volatile.Read(ref inFlight)} hangs " +
                $"(reproduce with MR_FUZZ_SEED={Volatile.Read(ref inFlight)})");
        }

        File.Delete(InFlightFile);
        summary.Elapsed = clock.Elapsed;
        output?.WriteLine(summary.ToString());
        if (failures.Count > 0)
        {
            throw new Xunit.Sdk.XunitException(
                $"fuzz target {target}: {failures.Count} of {seeds.Count} cases failed (reproduce one with MR_FUZZ_SEED=<seed>):\n" +
                string.Join("\n", failures.Take(10)));
        }

        return summary;
    }

    private static List<int> SeedsFor(string target, int cases)
    {
        if (Environment.GetEnvironmentVariable("MR_FUZZ_SEED") is { Length: > 0 } one)
        {
            return [int.Parse(one, CultureInfo.InvariantCulture)];
        }

        if (Environment.GetEnvironmentVariable("MR_FUZZ_CASES") is { Length: > 0 } n)
        {
            cases = int.Parse(n, CultureInfo.InvariantCulture);
        }

        return Enumerable.Range(0, cases).Select(i => ByteMutator.CaseSeed(target, i)).ToList();
    }
}

/// <summary>Outcome counts of one fuzz target.</summary>
public sealed class FuzzSummary(string target)
{
    private readonly SortedDictionary<string, int> types = new(StringComparer.Ordinal);

    /// <summary>Cases whose input was accepted.</summary>
    public int Succeeded { get; set; }

    /// <summary>Cases rejected with a documented exception.</summary>
    public int Rejected { get; set; }

    /// <summary>Wall time of the whole target.</summary>
    public TimeSpan Elapsed { get; set; }

    /// <summary>Documented exceptions by type name.</summary>
    public IReadOnlyDictionary<string, int> RejectedByType => types;

    internal void CountType(Exception e)
    {
        var name = e.GetType().Name;
        types[name] = types.GetValueOrDefault(name) + 1;
    }

    /// <inheritdoc />
    public override string ToString() =>
        $"fuzz {target}: {Succeeded + Rejected} cases in {Elapsed.TotalSeconds:0.00} s: {Succeeded} accepted, {Rejected} rejected " +
        $"({string.Join(", ", types.Select(kv => $"{kv.Key} {kv.Value}"))})";
}
