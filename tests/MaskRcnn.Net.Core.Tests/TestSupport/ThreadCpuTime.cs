using System.Runtime.InteropServices;

namespace MaskRcnn.Net.Core.Tests.TestSupport;

/// <summary>
/// CPU time consumed by the calling thread (<c>clock_gettime(CLOCK_THREAD_CPUTIME_ID)</c>). Unlike wall-clock time it
/// does not grow when other processes or other tests keep the cores busy, so "this is refused without doing the
/// expensive work" can be asserted on a loaded machine. Work that the measured code hands to other threads (libtorch's
/// intra-op pool) is not counted: use it for code that runs on the calling thread (decoders, parsers, rasterisers,
/// up-front checks).
/// </summary>
public static class ThreadCpuTime
{
    private const int ClockThreadCpuTimeId = 3; // Linux's CLOCK_THREAD_CPUTIME_ID

    [StructLayout(LayoutKind.Sequential)]
    private struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [DllImport("libc", EntryPoint = "clock_gettime", SetLastError = true)]
    private static extern int ClockGetTime(int clock, out TimeSpec time);

    /// <summary>The calling thread's CPU time so far.</summary>
    public static TimeSpan Now()
    {
        if (ClockGetTime(ClockThreadCpuTimeId, out var t) != 0)
        {
            throw new InvalidOperationException($"clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed: errno {Marshal.GetLastPInvokeError()}");
        }

        return TimeSpan.FromTicks(t.Seconds * TimeSpan.TicksPerSecond + t.Nanoseconds / 100);
    }

    /// <summary>Runs <paramref name="action"/> and returns the CPU time the calling thread spent in it.</summary>
    public static TimeSpan Of(Action action)
    {
        ArgumentNullException.ThrowIfNull(action);
        var start = Now();
        action();
        return Now() - start;
    }

    /// <summary>Runs <paramref name="func"/>, returning its result and the CPU time the calling thread spent in it.</summary>
    public static (T Result, TimeSpan Cpu) Of<T>(Func<T> func)
    {
        ArgumentNullException.ThrowIfNull(func);
        var start = Now();
        var result = func();
        return (result, Now() - start);
    }
}
