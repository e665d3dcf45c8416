using System.Globalization;
using MaskRcnn.Net.Training;

namespace MaskRcnn.Net.Cli;

/// <summary>
/// The history of a training run — every loss component per optimizer step and the validation APs — kept in
/// <c>DIR/training.csv</c> (appended, so a resumed run continues it) and drawn to <c>DIR/training.png</c> with ScottPlot:
/// losses per step (a moving average over an epoch's steps) on the left axis, validation box and mask AP on the right.
/// </summary>
internal sealed class TrainingChart : IProgress<TrainingProgress>
{
    private const string Header = "step,epoch,series,value";
    private readonly string csvPath;
    private readonly IProgress<TrainingProgress>? next;

    /// <summary>Records into <paramref name="outputDir"/>/training.csv, forwarding each report to <paramref name="next"/>.</summary>
    public TrainingChart(string outputDir, IProgress<TrainingProgress>? next, bool resuming)
    {
        csvPath = Path.Combine(outputDir, "training.csv");
        PngPath = Path.Combine(outputDir, "training.png");
        this.next = next;
        if (!resuming || !File.Exists(csvPath))
        {
            File.WriteAllText(csvPath, Header + "\n");
        }
    }

    /// <summary>The picture written by <see cref="Save"/>.</summary>
    public string PngPath { get; }

    /// <summary>The optimizer steps done at the last report.</summary>
    public long LastStep { get; private set; }

    /// <inheritdoc/>
    public void Report(TrainingProgress value)
    {
        ArgumentNullException.ThrowIfNull(value);
        LastStep = value.Step;
        var lines = value.Losses.Select(kv => Line(value.Step, value.Epoch, kv.Key, kv.Value)).Append(Line(value.Step, value.Epoch, "loss", value.TotalLoss));
        File.AppendAllLines(csvPath, lines);
        next?.Report(value);
    }

    /// <summary>Records a validation result after <paramref name="step"/> optimizer steps.</summary>
    public void ReportValidation(long step, int epoch, double boxAp, double? maskAp)
    {
        var lines = new List<string> { Line(step, epoch, "val box AP", boxAp) };
        if (maskAp is { } m)
        {
            lines.Add(Line(step, epoch, "val mask AP", m));
        }

        File.AppendAllLines(csvPath, lines);
    }

    private static string Line(long step, int epoch, string series, double value) =>
        string.Create(CultureInfo.InvariantCulture, $"{step},{epoch},{series},{value:R}");

    /// <summary>Draws the history to <see cref="PngPath"/>.</summary>
    public void Save()
    {
        var series = new Dictionary<string, List<(double Step, double Value)>>(StringComparer.Ordinal);
        foreach (var line in File.ReadLines(csvPath).Skip(1))
        {
            var parts = line.Split(',');
            if (parts.Length != 4 || !double.TryParse(parts[0], NumberStyles.Float, CultureInfo.InvariantCulture, out var step) ||
                !double.TryParse(parts[3], NumberStyles.Float, CultureInfo.InvariantCulture, out var v) || !double.IsFinite(v))
            {
                continue;
            }

            if (!series.TryGetValue(parts[2], out var list))
            {
                series[parts[2]] = list = [];
            }

            list.Add((step, v));
        }

        var plot = new ScottPlot.Plot();
        plot.Title("training");
        plot.XLabel("optimizer step");
        plot.YLabel("loss (moving average)");
        foreach (var (name, points) in series.Where(s => !s.Key.StartsWith("val ", StringComparison.Ordinal)))
        {
            // Several reports can share a step (gradient accumulation): average them, then smooth over ~1/20 of the run.
            var perStep = points.GroupBy(p => p.Step).Select(g => (Step: g.Key, Value: g.Average(p => p.Value))).OrderBy(p => p.Step).ToArray();
            var window = Math.Max(1, perStep.Length / 20);
            var smooth = perStep.Select((p, i) => perStep.Skip(Math.Max(0, i - window + 1)).Take(Math.Min(window, i + 1)).Average(q => q.Value)).ToArray();
            var line = plot.Add.ScatterLine(perStep.Select(p => p.Step).ToArray(), smooth);
            line.LegendText = name;
            line.LineWidth = name == "loss" ? 2.5f : 1.2f;
        }

        var right = plot.Axes.Right;
        foreach (var (name, points) in series.Where(s => s.Key.StartsWith("val ", StringComparison.Ordinal)))
        {
            right.Label.Text = "validation AP";
            var scatter = plot.Add.Scatter(points.Select(p => p.Step).ToArray(), points.Select(p => p.Value).ToArray());
            scatter.LegendText = name;
            scatter.MarkerSize = 8;
            scatter.LineWidth = 2;
            scatter.Axes.YAxis = right;
        }

        // Below the data area: inside it, the legend hid the validation points (drawn late in the run, upper right).
        plot.ShowLegend(ScottPlot.Edge.Bottom);
        plot.SavePng(PngPath, 1000, 620);
    }
}
