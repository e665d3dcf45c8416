using System.Diagnostics;

namespace MaskRcnn.Net;

/// <summary>
/// Wall-clock time per stage of a prediction (transform, backbone, fpn, rpn.head, rpn.proposals, box.roialign,
/// box.head, box.postprocess, mask.roialign, mask.head, paste), collected while a profile is active on the current
/// async flow:
/// <code>
/// using var profile = StageProfile.Start();
/// model.Predict(image);
/// foreach (var (stage, time) in profile.Stages) Console.WriteLine($"{stage}: {time.TotalMilliseconds} ms");
/// </code>
/// Each stage ends at its <see cref="Mark"/>: its time is what elapsed since the previous mark (or since
/// <see cref="Start"/>). Work between the last mark and the end of a call is not counted. Stages seen several times
/// (several predictions under one profile) are summed; <see cref="Count"/> says how often each was seen. Without an
/// active profile a mark costs one read of an async-local value. Operations run synchronously on the CPU, so the
/// time of a stage is its work; on an asynchronous device (CUDA) it would be the time to queue it.
/// </summary>
public sealed class StageProfile : IDisposable
{
    private static readonly AsyncLocal<StageProfile?> Current = new();

    private readonly StageProfile? outer;
    private readonly List<string> order = [];
    private readonly Dictionary<string, (TimeSpan Elapsed, int Count)> stages = new(StringComparer.Ordinal);
    private long last;
    private bool disposed;

    private StageProfile(StageProfile? outer)
    {
        this.outer = outer;
        last = Stopwatch.GetTimestamp();
    }

    /// <summary>The stages in the order they were first marked, with their summed time.</summary>
    public IReadOnlyList<KeyValuePair<string, TimeSpan>> Stages =>
        order.Select(s => new KeyValuePair<string, TimeSpan>(s, stages[s].Elapsed)).ToList();

    /// <summary>The sum of all stages' times.</summary>
    public TimeSpan Total => stages.Values.Aggregate(TimeSpan.Zero, (sum, s) => sum + s.Elapsed);

    /// <summary>Starts a profile on the current async flow (it replaces an outer one until disposed).</summary>
    /// <returns>The profile; dispose it to stop collecting.</returns>
    public static StageProfile Start()
    {
        var profile = new StageProfile(Current.Value);
        Current.Value = profile;
        return profile;
    }

    /// <summary>
    /// Ends stage <paramref name="stage"/> of the active profile, if any: the time since the previous mark is added to it.
    /// </summary>
    /// <param name="stage">The stage's name (lower case, dot-separated parts, e.g. <c>box.roialign</c>).</param>
    public static void Mark(string stage)
    {
        if (Current.Value is { } profile)
        {
            profile.Add(stage);
        }
    }

    /// <summary>Restarts the clock without charging the elapsed time to any stage (e.g. after work that is not profiled).</summary>
    public static void Skip()
    {
        if (Current.Value is { } profile)
        {
            profile.last = Stopwatch.GetTimestamp();
        }
    }

    /// <summary>How many times <paramref name="stage"/> was marked (0 if never).</summary>
    /// <param name="stage">The stage's name.</param>
    public int Count(string stage) => stages.TryGetValue(stage, out var s) ? s.Count : 0;

    /// <summary>Stops collecting: the outer profile, if any, becomes active again.</summary>
    public void Dispose()
    {
        if (disposed)
        {
            return;
        }

        disposed = true;
        if (ReferenceEquals(Current.Value, this))
        {
            Current.Value = outer;
        }
    }

    private void Add(string stage)
    {
        lock (stages)
        {
            var now = Stopwatch.GetTimestamp();
            var elapsed = Stopwatch.GetElapsedTime(last, now);
            last = now;
            Record(stage, elapsed);
        }
    }

    private void Record(string stage, TimeSpan elapsed)
    {
        if (stages.TryGetValue(stage, out var s))
        {
            stages[stage] = (s.Elapsed + elapsed, s.Count + 1);
        }
        else
        {
            order.Add(stage);
            stages[stage] = (elapsed, 1);
        }
    }
}
