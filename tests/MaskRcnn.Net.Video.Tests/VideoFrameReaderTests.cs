using System.Globalization;
using MaskRcnn.Net.Imaging;

namespace MaskRcnn.Net.Video.Tests;

/// <summary>
/// Probing and decoding: the frames of lossless test videos equal the source slices pixel for pixel, the probe's
/// size, rate, count and duration equal what the tests encoded and what ffprobe itself reports, rotation is applied.
/// </summary>
[Collection("video")]
public sealed class VideoFrameReaderTests(VideoFixture videos)
{
    private static async Task<List<VideoFrame>> ReadAll(string path, FfmpegOptions? ffmpeg = null)
    {
        await using var reader = await VideoFrameReader.OpenAsync(path, ffmpeg);
        var frames = new List<VideoFrame>();
        await foreach (var f in reader.ReadFramesAsync())
        {
            frames.Add(f);
        }

        return frames;
    }

    public static TheoryData<string> LosslessFiles => new() { "mp4", "mkv" };

    [Theory]
    [MemberData(nameof(LosslessFiles))]
    public async Task Decoded_frames_equal_the_source_slices_pixel_for_pixel_with_their_index_and_timestamp(string kind)
    {
        var path = kind == "mp4" ? videos.LosslessMp4 : videos.LosslessMkv;
        var frames = await ReadAll(path);

        frames.Should().HaveCount(VideoFixture.FrameCount, "every frame the tests encoded is decoded once");
        for (var i = 0; i < frames.Count; i++)
        {
            frames[i].Index.Should().Be(i);
            frames[i].Timestamp.Should().Be(TimeSpan.FromMilliseconds(100 * i), "frame i of a 10 frames/s video is shown at i/10 s");
            frames[i].Image.Width.Should().Be(VideoFixture.Width);
            frames[i].Image.Height.Should().Be(VideoFixture.Height);
            frames[i].Image.Pixels.Should().Equal(videos.Frames[i].Pixels, $"frame {i} of the lossless {kind} is the slice that was encoded");
        }

        ChildProcesses.FfmpegChildren().Should().BeEmpty("the decoder exited when its output ended");
    }

    [Theory]
    [MemberData(nameof(LosslessFiles))]
    public async Task The_probe_reports_what_was_encoded_and_what_ffprobe_itself_says(string kind)
    {
        var path = kind == "mp4" ? videos.LosslessMp4 : videos.LosslessMkv;
        var info = await VideoProbe.ProbeAsync(path);
        var stream = Tool.StreamOf(path, "video")!.Value;

        info.Path.Should().Be(path);
        (info.Width, info.Height).Should().Be((VideoFixture.Width, VideoFixture.Height));
        (info.StoredWidth, info.StoredHeight).Should().Be((stream.GetProperty("width").GetInt32(), stream.GetProperty("height").GetInt32()));
        info.FrameRate.Should().Be(new FrameRate(VideoFixture.Fps, 1));
        info.FrameRate.ToString().Should().Be(stream.GetProperty("avg_frame_rate").GetString());
        info.Rotation.Should().Be(0);
        info.Codec.Should().Be(kind == "mp4" ? "h264" : "ffv1").And.Be(stream.GetProperty("codec_name").GetString());
        info.HasAudio.Should().BeFalse();
        info.Duration.Should().NotBeNull();
        info.Duration!.Value.TotalSeconds.Should().BeApproximately(1.2, 0.05, "12 frames at 10 frames/s");
        info.EstimatedFrameCount.Should().Be(VideoFixture.FrameCount);
        if (kind == "mp4")
        {
            info.FrameCount.Should().Be(VideoFixture.FrameCount, "MP4 declares its frame count (nb_frames)");
        }
        else
        {
            stream.TryGetProperty("nb_frames", out _).Should().BeFalse("Matroska does not declare a frame count here");
            info.FrameCount.Should().BeNull();
        }

        var withAudio = await VideoProbe.ProbeAsync(videos.WithAudioMkv);
        withAudio.HasAudio.Should().BeTrue();
        withAudio.AudioCodec.Should().Be("flac");
    }

    [Fact]
    public async Task Rotation_metadata_is_honoured_the_frames_come_upright_at_the_displayed_size()
    {
        var stream = Tool.StreamOf(videos.Rotated, "video")!.Value;
        var sideData = stream.GetProperty("side_data_list").EnumerateArray().Single(s => s.TryGetProperty("rotation", out _));
        var ffprobeRotation = sideData.GetProperty("rotation").GetInt32();

        var frames = await ReadAll(videos.Rotated);
        await using var reader = await VideoFrameReader.OpenAsync(videos.Rotated);
        var info = reader.Info;

        ((ffprobeRotation % 360 + 360) % 360).Should().Be(90, "ffmpeg 5.1 turns the rotate=90 tag into a display matrix that ffprobe reports as 90");
        info.Rotation.Should().Be(90);
        (info.StoredWidth, info.StoredHeight).Should().Be((VideoFixture.Width, VideoFixture.Height));
        (info.Width, info.Height).Should().Be((VideoFixture.Height, VideoFixture.Width), "a quarter turn swaps the displayed sides");
        frames.Should().HaveCount(VideoFixture.FrameCount);
        for (var i = 0; i < frames.Count; i++)
        {
            frames[i].Image.Pixels.Should().Equal(VideoFixture.RotateCounterClockwise(videos.Frames[i]).Pixels,
                $"frame {i} is the stored slice turned {info.Rotation} degrees counter-clockwise (the display matrix's direction)");
        }

        var byFfmpeg = Tool.DecodeAll(videos.Rotated, info.Width, info.Height);
        byFfmpeg.Should().HaveCount(frames.Count);
        for (var i = 0; i < frames.Count; i++)
        {
            byFfmpeg[i].Pixels.Should().Equal(frames[i].Image.Pixels, $"frame {i}: ffmpeg's own autorotated decode (what players show) agrees");
        }
    }

    [Fact]
    public async Task Leaving_the_loop_early_or_cancelling_kills_the_decoder()
    {
        await using (var reader = await VideoFrameReader.OpenAsync(videos.LosslessMkv))
        {
            await foreach (var f in reader.ReadFramesAsync())
            {
                f.Index.Should().Be(0);
                break;
            }

            ChildProcesses.FfmpegChildren().Should().BeEmpty("breaking out of the loop disposes the enumerator, which kills and reaps ffmpeg");
            var again = () => reader.ReadFramesAsync();
            again.Should().Throw<InvalidOperationException>().WithMessage("*once*");
        }

        using var cts = new CancellationTokenSource();
        await using (var reader = await VideoFrameReader.OpenAsync(videos.LosslessMkv))
        {
            var seen = 0;
            var act = async () =>
            {
                await foreach (var f in reader.ReadFramesAsync(cts.Token))
                {
                    if (++seen == 3)
                    {
                        cts.Cancel();
                    }
                }
            };
            await act.Should().ThrowAsync<OperationCanceledException>();
            seen.Should().Be(3);
        }

        ChildProcesses.FfmpegChildren().Should().BeEmpty();
    }

    [Fact]
    public void Frame_rates_parse_reduce_and_time_frames_exactly()
    {
        FrameRate.Parse("30000/1001").Should().Be(new FrameRate(30000, 1001));
        FrameRate.Parse("50/2").Should().Be(new FrameRate(25, 1));
        FrameRate.Parse("24").ToString().Should().Be("24/1");
        new FrameRate(30000, 1001).Value.Should().BeApproximately(29.97003, 1e-5);
        new FrameRate(30000, 1001).TimestampOf(30000).Should().Be(TimeSpan.FromSeconds(1001), "30000 frames at 30000/1001 fps last 1001 s");
        FrameRate.TryParse("0/0", out _).Should().BeFalse("ffprobe's unknown rate");
        FrameRate.TryParse("-5/1", out _).Should().BeFalse();
        FrameRate.TryParse("abc", out _).Should().BeFalse();
        var zero = () => new FrameRate(0, 1);
        zero.Should().Throw<ArgumentOutOfRangeException>();
        default(FrameRate).IsValid.Should().BeFalse();
        string.Create(CultureInfo.InvariantCulture, $"{new FrameRate(25, 1)}").Should().Be("25/1");
    }
}
