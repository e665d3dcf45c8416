using System.Text.Json;
using MaskRcnn.Net.Core.Imaging;
using Microsoft.Extensions.Logging;

namespace MaskRcnn.Net.Training.Tests;

/// <summary>Paths of the checked-in test data and helpers for temporary files.</summary>
internal static class TestFiles
{
    public static string DataDir => Path.Combine(AppContext.BaseDirectory, "data");

    public static string BrainTumorJson => Path.Combine(DataDir, "brain-tumor-mini", "annotations.json");

    public static string BrainTumorImages => Path.Combine(DataDir, "brain-tumor-mini", "images");

    public static string ViaEllipses => Path.Combine(DataDir, "via", "ellipses_val.via.json");

    /// <summary>Writes a blank (zero) RGB PNG of the given size.</summary>
    public static void WriteBlankPng(string path, int height, int width, byte value = 0)
    {
        using var image = Tensor.Full([3, height, width], (long)value, DType.UInt8);
        ImageCodec.SavePng(image, path);
    }

    public static string ToJson(object value) => JsonSerializer.Serialize(value);
}

/// <summary>A temporary directory deleted on dispose.</summary>
internal sealed class TempDir : IDisposable
{
    public TempDir() => Path = Directory.CreateTempSubdirectory("mr_training_").FullName;

    public string Path { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public string Write(string name, string content)
    {
        var p = File(name);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(p)!);
        System.IO.File.WriteAllText(p, content);
        return p;
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>An ILogger that keeps the formatted messages.</summary>
internal sealed class ListLogger : ILogger
{
    public List<(LogLevel Level, string Message)> Entries { get; } = [];

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        lock (Entries)
        {
            Entries.Add((logLevel, formatter(state, exception)));
        }
    }
}

/// <summary>Geometry helpers for expected values.</summary>
internal static class Geometry
{
    /// <summary>Polygon area by the shoelace formula.</summary>
    public static double ShoelaceArea(IReadOnlyList<double> xy)
    {
        double s = 0;
        var n = xy.Count / 2;
        for (var i = 0; i < n; i++)
        {
            var j = (i + 1) % n;
            s += xy[2 * i] * xy[2 * j + 1] - xy[2 * j] * xy[2 * i + 1];
        }

        return Math.Abs(s) / 2;
    }

    public static double Perimeter(IReadOnlyList<double> xy)
    {
        double p = 0;
        var n = xy.Count / 2;
        for (var i = 0; i < n; i++)
        {
            var j = (i + 1) % n;
            p += Math.Sqrt(Math.Pow(xy[2 * j] - xy[2 * i], 2) + Math.Pow(xy[2 * j + 1] - xy[2 * i + 1], 2));
        }

        return p;
    }
}
