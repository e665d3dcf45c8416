using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using MaskRcnn.Net.Imaging;

namespace MaskRcnn.Net.Video.Tests;

/// <summary>
/// The tests' own use of ffmpeg/ffprobe, independent of the library: encodes frames into test videos and asks
/// ffprobe what a file holds (streams, sizes, rates, a decoded frame count).
/// </summary>
internal static class Tool
{
    /// <summary>Runs a program to its end with stdin fed from <paramref name="stdin"/>; returns stdout, throws on failure.</summary>
    public static string Run(string program, IEnumerable<string> args, Action<Stream>? stdin = null)
    {
        var info = new ProcessStartInfo(program) { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        using var p = Process.Start(info)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        stdin?.Invoke(p.StandardInput.BaseStream);
        p.StandardInput.Close();
        p.WaitForExit();
        if (p.ExitCode != 0)
        {
            throw new InvalidOperationException($"{program} {string.Join(' ', info.ArgumentList)} exited with {p.ExitCode}: {stderr.Result}");
        }

        return stdout.Result;
    }

    /// <summary>Encodes <paramref name="frames"/> (raw rgb24 at <paramref name="fps"/>) with the output options given.</summary>
    public static void Encode(string path, IReadOnlyList<RgbImage> frames, int fps, params string[] outputArgs)
    {
        var (w, h) = (frames[0].Width, frames[0].Height);
        Run("ffmpeg", ["-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", $"{w}x{h}", "-framerate", fps.ToString(CultureInfo.InvariantCulture), "-i", "pipe:0",
            .. outputArgs, path], s =>
        {
            foreach (var f in frames)
            {
                s.Write(f.Pixels);
            }
        });
    }

    /// <summary>ffprobe's JSON of the streams (with <c>-count_frames</c>: nb_read_frames is the decoded count).</summary>
    public static JsonElement Streams(string path)
    {
        var json = Run("ffprobe", ["-v", "error", "-count_frames", "-of", "json", "-show_streams", path]);
        return JsonDocument.Parse(json).RootElement.GetProperty("streams").Clone();
    }

    /// <summary>The first stream of a type ("video", "audio"), or null.</summary>
    public static JsonElement? StreamOf(string path, string type) =>
        Streams(path).EnumerateArray().Where(s => s.GetProperty("codec_type").GetString() == type).Select(s => (JsonElement?)s).FirstOrDefault();

    /// <summary>The number of video frames ffprobe decodes from the file.</summary>
    public static long DecodedFrames(string path) => long.Parse(StreamOf(path, "video")!.Value.GetProperty("nb_read_frames").GetString()!, CultureInfo.InvariantCulture);

    /// <summary>Every frame of the file decoded by ffmpeg itself (rgb24, autorotated), as the tests' second opinion.</summary>
    public static List<RgbImage> DecodeAll(string path, int width, int height)
    {
        var info = new ProcessStartInfo("ffmpeg") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "-nostdin", "-v", "error", "-i", path, "-f", "rawvideo", "-pix_fmt", "rgb24", "-" })
        {
            info.ArgumentList.Add(a);
        }

        using var p = Process.Start(info)!;
        var stderr = p.StandardError.ReadToEndAsync();
        using var ms = new MemoryStream();
        p.StandardOutput.BaseStream.CopyTo(ms);
        p.WaitForExit();
        p.ExitCode.Should().Be(0, stderr.Result);
        var bytes = ms.ToArray();
        var size = 3 * width * height;
        (bytes.Length % size).Should().Be(0, $"whole {width}x{height} frames");
        return Enumerable.Range(0, bytes.Length / size).Select(i => new RgbImage(width, height, bytes[(i * size)..((i + 1) * size)])).ToList();
    }
}

/// <summary>The ffmpeg/ffprobe processes whose parent is this test process (from /proc/*/stat), to find orphans.</summary>
internal static class ChildProcesses
{
    public static List<string> FfmpegChildren()
    {
        var me = Environment.ProcessId;
        var found = new List<string>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            string stat;
            try
            {
                stat = File.ReadAllText(Path.Combine(dir, "stat"));
            }
            catch (IOException)
            {
                continue; // exited meanwhile
            }
            catch (UnauthorizedAccessException)
            {
                continue;
            }

            // pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
            var close = stat.LastIndexOf(')');
            var open = stat.IndexOf('(');
            if (open < 0 || close < open)
            {
                continue;
            }

            var comm = stat[(open + 1)..close];
            var fields = stat[(close + 2)..].Split(' ');
            if (fields.Length > 1 && int.TryParse(fields[1], out var ppid) && ppid == me && comm is "ffmpeg" or "ffprobe" or "setsid")
            {
                found.Add($"{stat[..open].Trim()} {comm} ({fields[0]})");
            }
        }

        return found;
    }
}
