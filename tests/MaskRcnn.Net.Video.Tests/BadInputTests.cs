using System.Diagnostics;

namespace MaskRcnn.Net.Video.Tests;

/// <summary>
/// Files that are not videos, truncated videos, missing files and a missing ffmpeg: typed exceptions naming the file
/// (or the executable), and no ffmpeg/ffprobe child left behind after any of them.
/// </summary>
[Collection("video")]
public sealed class BadInputTests(VideoFixture videos)
{
    private string TextFile()
    {
        var path = videos.NewPath("notes.mp4");
        File.WriteAllText(path, "these are meeting notes, not a video\n");
        return path;
    }

    /// <summary>The first half of an MP4 whose index (moov) is at its end: the index is gone.</summary>
    private string TruncatedIndexAtEnd()
    {
        var whole = videos.NewPath("whole.mp4");
        Tool.Encode(whole, videos.Frames, VideoFixture.Fps, "-c:v", "libx264rgb", "-qp", "0", "-pix_fmt", "rgb24");
        var path = videos.NewPath("truncated.mp4");
        var bytes = File.ReadAllBytes(whole);
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        return path;
    }

    /// <summary>The first half of a fast-start MP4 (index first): it declares 12 frames, half of their data is missing.</summary>
    private string TruncatedIndexFirst()
    {
        var whole = videos.NewPath("whole-faststart.mp4");
        Tool.Encode(whole, videos.Frames, VideoFixture.Fps, "-c:v", "libx264rgb", "-qp", "0", "-pix_fmt", "rgb24", "-movflags", "+faststart");
        var path = videos.NewPath("truncated-faststart.mp4");
        var bytes = File.ReadAllBytes(whole);
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        return path;
    }

    private static async Task<List<T>> Collect<T>(IAsyncEnumerable<T> items)
    {
        var list = new List<T>();
        await foreach (var item in items)
        {
            list.Add(item);
        }

        return list;
    }

    private static async Task<int> ReadAll(string path, FfmpegOptions? ffmpeg = null)
    {
        await using var reader = await VideoFrameReader.OpenAsync(path, ffmpeg);
        var n = 0;
        await foreach (var _ in reader.ReadFramesAsync())
        {
            n++;
        }

        return n;
    }

    [Fact]
    public async Task A_text_file_named_mp4_is_a_VideoFormatException_naming_it()
    {
        var path = TextFile();
        var e = (await ((Func<Task>)(() => VideoProbe.ProbeAsync(path))).Should().ThrowAsync<VideoFormatException>()).Which;
        e.Path.Should().Be(path);
        e.Message.Should().Contain(path).And.Contain("Invalid data", "ffprobe's own words are quoted");
        e.Should().BeAssignableTo<IOException>();

        var predict = async () => await Collect(VideoPredictor.PredictVideoAsync(videos.Painter, path));
        (await predict.Should().ThrowAsync<VideoFormatException>()).Which.Message.Should().Contain(path);
        var annotate = () => VideoAnnotator.AnnotateAsync(videos.Painter, path, videos.NewPath("out.mp4"));
        (await annotate.Should().ThrowAsync<VideoFormatException>()).Which.Message.Should().Contain(path);
        ChildProcesses.FfmpegChildren().Should().BeEmpty();
    }

    [Fact]
    public async Task A_truncated_mp4_is_a_VideoFormatException_naming_it()
    {
        var noIndex = TruncatedIndexAtEnd();
        var e = (await ((Func<Task>)(() => ReadAll(noIndex))).Should().ThrowAsync<VideoFormatException>()).Which;
        e.Message.Should().Contain(noIndex).And.Contain("moov atom not found");

        // Index first: it opens, yields the frames that are there, then fails naming the file.
        var halfData = TruncatedIndexFirst();
        (await VideoProbe.ProbeAsync(halfData)).FrameCount.Should().Be(VideoFixture.FrameCount, "the index still declares every frame");
        var frames = 0;
        var read = async () =>
        {
            await using var reader = await VideoFrameReader.OpenAsync(halfData);
            await foreach (var f in reader.ReadFramesAsync())
            {
                if (f.Index == 0)
                {
                    f.Image.Pixels.Should().Equal(videos.Frames[0].Pixels, "the frames before the cut are there");
                }

                frames++;
            }
        };
        var truncated = (await read.Should().ThrowAsync<VideoFormatException>()).Which;
        truncated.Path.Should().Be(halfData);
        truncated.Message.Should().Contain(halfData);
        frames.Should().BeLessThan(VideoFixture.FrameCount);
        ChildProcesses.FfmpegChildren().Should().BeEmpty();
    }

    [Fact]
    public async Task A_truncated_matroska_file_is_a_VideoFormatException_after_the_frames_before_the_cut()
    {
        // Matroska declares no frame count, but its header keeps the whole duration: 1.2 s at 10 frames/s.
        var bytes = File.ReadAllBytes(videos.LosslessMkv);
        var path = videos.NewPath("truncated.mkv");
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        var info = await VideoProbe.ProbeAsync(path);
        (info.FrameCount, info.EstimatedFrameCount).Should().Be(((long?)null, (long?)VideoFixture.FrameCount));

        var frames = new List<VideoFrame>();
        var read = async () =>
        {
            await using var reader = await VideoFrameReader.OpenAsync(path);
            await foreach (var f in reader.ReadFramesAsync())
            {
                frames.Add(f);
            }
        };
        var e = (await read.Should().ThrowAsync<VideoFormatException>()).Which;
        e.Message.Should().Contain(path).And.Contain("truncated");
        frames.Should().NotBeEmpty().And.HaveCountLessThan(VideoFixture.FrameCount);
        for (var i = 0; i < frames.Count - 1; i++)
        {
            frames[i].Image.Pixels.Should().Equal(videos.Frames[i].Pixels, $"frame {i}, whole before the cut, decodes losslessly (ffv1 frames are independent)");
        }

        ChildProcesses.FfmpegChildren().Should().BeEmpty();
    }

    [Fact]
    public async Task A_missing_file_is_a_FileNotFoundException_naming_it()
    {
        var path = Path.Combine(videos.Dir, "no-such-video.mp4");
        var e = (await ((Func<Task>)(() => VideoFrameReader.OpenAsync(path))).Should().ThrowAsync<FileNotFoundException>()).Which;
        e.FileName.Should().Be(path);
        e.Message.Should().Contain(path);

        var audio = () => VideoWriter.CreateAsync(videos.NewPath("x.mp4"), new VideoWriterOptions(8, 8, new FrameRate(1, 1)) { AudioFrom = path });
        (await audio.Should().ThrowAsync<FileNotFoundException>()).Which.Message.Should().Contain(path).And.Contain("AudioFrom");
        ChildProcesses.FfmpegChildren().Should().BeEmpty();
    }

    [Fact]
    public async Task A_missing_ffmpeg_or_ffprobe_is_an_FfmpegNotFoundException_naming_it_and_how_to_install()
    {
        var noProbe = new FfmpegOptions { FfprobePath = "/nonexistent/bin/ffprobe" };
        var e = (await ((Func<Task>)(() => VideoProbe.ProbeAsync(videos.LosslessMkv, noProbe))).Should().ThrowAsync<FfmpegNotFoundException>()).Which;
        e.Executable.Should().Be("/nonexistent/bin/ffprobe");
        e.Message.Should().Contain("/nonexistent/bin/ffprobe").And.Contain("apt-get install ffmpeg");

        var noFfmpeg = new FfmpegOptions { FfmpegPath = "no-such-ffmpeg-on-the-path" };
        var decode = () => ReadAll(videos.LosslessMkv, noFfmpeg);
        (await decode.Should().ThrowAsync<FfmpegNotFoundException>()).Which.Message.Should().Contain("no-such-ffmpeg-on-the-path");
        var encode = () => VideoWriter.CreateAsync(videos.NewPath("x.mp4"), new VideoWriterOptions(8, 8, new FrameRate(1, 1)), noFfmpeg);
        await encode.Should().ThrowAsync<FfmpegNotFoundException>();
        var annotate = () => VideoAnnotator.AnnotateAsync(videos.Painter, videos.LosslessMkv, videos.NewPath("out.mp4"), new VideoAnnotationOptions { Prediction = new() { Ffmpeg = noFfmpeg } });
        await annotate.Should().ThrowAsync<FfmpegNotFoundException>();
        ChildProcesses.FfmpegChildren().Should().BeEmpty();
    }

    [Fact]
    public async Task A_probe_that_never_finishes_is_killed_at_its_timeout()
    {
        // A named pipe with no writer: ffprobe blocks opening it forever, whatever the machine's speed.
        var fifo = videos.NewPath("fifo.mp4");
        using (var mkfifo = Process.Start("mkfifo", [fifo]))
        {
            mkfifo.WaitForExit();
            mkfifo.ExitCode.Should().Be(0);
        }

        var act = () => VideoProbe.ProbeAsync(fifo, new FfmpegOptions { ProbeTimeout = TimeSpan.FromMilliseconds(300) });
        (await act.Should().ThrowAsync<TimeoutException>()).Which.Message.Should().Contain(fifo).And.Contain("ProbeTimeout");
        ChildProcesses.FfmpegChildren().Should().BeEmpty("the hanging ffprobe was killed and reaped");
    }
}
