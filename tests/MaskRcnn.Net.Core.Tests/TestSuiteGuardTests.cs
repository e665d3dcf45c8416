using System.Text.RegularExpressions;

namespace MaskRcnn.Net.Core.Tests;

/// <summary>
/// Keeps the test suite independent of how busy the machine is (issue 11): a test whose verdict depends on
/// wall-clock time or on process-wide memory flakes when other processes or test assemblies load the cores. This
/// scans every test source for the ways of reading a wall clock or the process's memory and fails on a file that is
/// not in the allow-list below, each entry with the reason it is safe. Thread CPU time
/// (<see cref="TestSupport.ThreadCpuTime"/>), a fake <see cref="TimeProvider"/>, events and counts are the ways
/// to check "fast", "prompt" and "within budget" instead.
/// </summary>
public partial class TestSuiteGuardTests
{
    /// <summary>Files allowed to read a wall clock or process memory, and why their verdicts cannot flake.</summary>
    private static readonly Dictionary<string, string> Allowed = new(StringComparer.Ordinal)
    {
        ["tests/MaskRcnn.Net.Core.Tests/TestSupport/FuzzRunner.cs"] =
            "reports a target's duration; the per-case limit is thread CPU time, and the wall-clock wait is a hang guard " +
            "of at least 120 s for targets that take 1-6 s on a loaded machine",
        ["tests/MaskRcnn.Net.Cli.Tests/TrainCommandTests.cs"] =
            "a 3-minute hang guard while waiting for the first checkpoint of a CLI run that writes it within seconds",
        ["tests/MaskRcnn.Net.Core.Tests/Tensors/AutogradAndScopeTests.cs"] =
            "RSS of this process only, in the non-parallel 'memory' collection (nothing else in the process runs); a leak " +
            "would add > 4 GiB against a 64 MiB bound",
        ["tests/MaskRcnn.Net.Core.Tests/Tensors/NativeAllocatorTests.cs"] =
            "RSS of this process only, in the non-parallel 'memory' collection; untuned glibc keeps +50.8 MiB against a 16 MiB bound",
        ["tests/MaskRcnn.Net.Tests/VisualizerAndMemoryTests.cs"] =
            "RSS of this process only, in the non-parallel 'memory' collection; a per-prediction leak of the masks would " +
            "exceed the 48 MiB bound over 200 predictions many times",
    };

    [GeneratedRegex(@"\bStopwatch\b|\bDateTime(Offset)?\.(Utc)?Now\b|\bEnvironment\.TickCount|\bTimeProvider\.System\b|" +
        @"\bWorkingSet64\b|\bVmRSS\b|\bPrivateMemorySize64\b|\bTotalProcessorTime\b|\bGC\.GetTotalMemory\b|\bPeakWorkingSet")]
    private static partial Regex WallClockOrProcessMemory();

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "MaskRcnn.Net.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"no MaskRcnn.Net.sln above {AppContext.BaseDirectory}: the guard reads the test sources of the checkout");
    }

    private static Dictionary<string, List<string>> Findings(string root)
    {
        var self = Path.Combine("tests", "MaskRcnn.Net.Core.Tests", $"{nameof(TestSuiteGuardTests)}.cs").Replace('\\', '/');
        var findings = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        foreach (var file in Directory.EnumerateFiles(Path.Combine(root, "tests"), "*.cs", SearchOption.AllDirectories))
        {
            var relative = Path.GetRelativePath(root, file).Replace('\\', '/');
            if (relative == self || relative.Split('/').Any(part => part is "obj" or "bin"))
            {
                continue;
            }

            var lines = File.ReadAllLines(file);
            for (var i = 0; i < lines.Length; i++)
            {
                var code = lines[i].TrimStart();
                if (code.StartsWith("//", StringComparison.Ordinal))
                {
                    continue;
                }

                if (WallClockOrProcessMemory().Match(code) is { Success: true } m)
                {
                    if (!findings.TryGetValue(relative, out var list))
                    {
                        findings[relative] = list = [];
                    }

                    list.Add($"{relative}:{i + 1}: {m.Value}: {code}");
                }
            }
        }

        return findings;
    }

    [Fact]
    public void No_test_reads_a_wall_clock_or_process_memory_outside_the_allow_list()
    {
        var root = RepositoryRoot();
        var findings = Findings(root);
        findings.Should().NotBeEmpty("the scan must see the allow-listed files (is the checkout's tests/ folder there?)");
        var offending = findings.Where(f => !Allowed.ContainsKey(f.Key)).SelectMany(f => f.Value).ToList();
        offending.Should().BeEmpty(
            "a verdict that depends on elapsed wall-clock time or process-wide memory flakes on a busy machine: check the " +
            "behaviour by events or counts, use ThreadCpuTime for 'refused without doing the work', a fake TimeProvider for " +
            "time budgets, or add the file to the allow-list in this test with the measured margin that makes it safe");
        var stale = Allowed.Keys.Where(k => !findings.ContainsKey(k)).ToList();
        stale.Should().BeEmpty("allow-list entries whose file no longer reads a clock or memory must be removed");
    }

    [Fact]
    public void The_pattern_catches_the_usual_ways_of_timing_a_test()
    {
        string[] caught =
        [
            "var watch = Stopwatch.StartNew();",
            "var t0 = DateTime.UtcNow;",
            "var t0 = DateTimeOffset.Now;",
            "var t0 = Environment.TickCount64;",
            "var rss = Process.GetCurrentProcess().WorkingSet64;",
            "var clock = TimeProvider.System;",
            "GC.GetTotalMemory(true)",
        ];
        string[] notCaught =
        [
            "var (e, cpu) = ThreadCpuTime.Of(() => Decode(file));",
            "result.Elapsed.Should().Be(TimeSpan.FromSeconds(60));",
            "await Task.Delay(200);",
        ];
        caught.Should().OnlyContain(line => WallClockOrProcessMemory().IsMatch(line));
        notCaught.Should().NotContain(line => WallClockOrProcessMemory().IsMatch(line));
    }
}
