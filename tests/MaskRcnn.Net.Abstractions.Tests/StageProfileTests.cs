namespace MaskRcnn.Net.Abstractions.Tests;

/// <summary><see cref="StageProfile"/>: what marks add to which profile (times are not asserted, only their bookkeeping).</summary>
public class StageProfileTests
{
    [Fact]
    public async Task Marks_go_to_the_innermost_active_profile_on_the_async_flow()
    {
        StageProfile.Mark("nobody");   // no profile: nothing happens
        using var outer = StageProfile.Start();
        StageProfile.Mark("a");
        using (var inner = StageProfile.Start())
        {
            StageProfile.Mark("b");
            StageProfile.Mark("b");
            inner.Stages.Select(s => s.Key).Should().Equal("b");
            inner.Count("b").Should().Be(2);
        }

        await Task.Run(() => StageProfile.Mark("c"));   // the profile flows into work started from here
        StageProfile.Skip();
        StageProfile.Mark("a");
        outer.Stages.Select(s => s.Key).Should().Equal("a", "c");
        outer.Count("a").Should().Be(2);
        outer.Count("b").Should().Be(0);
        outer.Count("nobody").Should().Be(0);
        outer.Stages.Should().OnlyContain(s => s.Value >= TimeSpan.Zero);
        outer.Total.Should().Be(outer.Stages[0].Value + outer.Stages[1].Value);

        outer.Dispose();
        outer.Dispose();   // idempotent
        StageProfile.Mark("after");
        outer.Count("after").Should().Be(0);
    }
}
