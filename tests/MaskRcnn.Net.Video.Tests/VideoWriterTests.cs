using System.Globalization;
using MaskRcnn.Net.Imaging;

namespace MaskRcnn.Net.Video.Tests;

/// <summary>
/// Encoding: a lossless round trip, odd sizes padded for yuv420p (and kept for yuv444p), audio copied or re-encoded for
/// the container, a file finished by disposing, the options' checks and ffmpeg's own failures.
/// </summary>
[Collection("video")]
public sealed class VideoWriterTests(VideoFixture videos)
{
    private static readonly FrameRate Ten = new(10, 1);

    private static async Task<List<RgbImage>> ReadBack(string path)
    {
        await using var reader = await VideoFrameReader.OpenAsync(path);
        var frames = new List<RgbImage>();
        await foreach (var f in reader.ReadFramesAsync())
        {
            frames.Add(f.Image);
        }

        return frames;
    }

    private static async Task Write(string path, VideoWriterOptions options, IEnumerable<RgbImage> frames)
    {
        await using var writer = await VideoWriter.CreateAsync(path, options);
        foreach (var f in frames)
        {
            await writer.WriteFrameAsync(f);
        }

        await writer.CompleteAsync();
        writer.FramesWritten.Should().Be(frames.Count());
    }

    [Fact]
    public async Task Frames_written_losslessly_read_back_equal_at_the_rate_given()
    {
        var path = videos.NewPath("roundtrip.mp4");
        var rate = new FrameRate(30000, 1001);
        await Write(path, new VideoWriterOptions(VideoFixture.Width, VideoFixture.Height, rate) { Codec = "libx264rgb", Quality = 0, PixelFormat = "rgb24" }, videos.Frames);

        var back = await ReadBack(path);
        back.Should().HaveCount(videos.Frames.Count);
        for (var i = 0; i < back.Count; i++)
        {
            back[i].Pixels.Should().Equal(videos.Frames[i].Pixels, $"frame {i}: libx264rgb at CRF 0 in rgb24 is lossless");
        }

        var stream = Tool.StreamOf(path, "video")!.Value;
        stream.GetProperty("avg_frame_rate").GetString().Should().Be("30000/1001");
        stream.GetProperty("nb_read_frames").GetString().Should().Be("12");
        ChildProcesses.FfmpegChildren().Should().BeEmpty();
    }

    [Fact]
    public async Task An_odd_size_is_padded_with_black_to_even_for_yuv420p_and_kept_for_yuv444p()
    {
        const int W = 255, H = 201;
        // Grey frames (the red channel everywhere): no chroma, so 4:2:0 subsampling changes nothing but the rounding.
        var frames = videos.Frames.Take(3).Select(f => VideoFixture.Scale(Grey(f), W, H)).ToList();
        var options = new VideoWriterOptions(W, H, Ten) { Quality = 0 };
        (options.EncodedWidth, options.EncodedHeight).Should().Be((256, 202));

        var padded = videos.NewPath("odd420.mp4");
        await Write(padded, options, frames);
        var stream = Tool.StreamOf(padded, "video")!.Value;
        (stream.GetProperty("width").GetInt32(), stream.GetProperty("height").GetInt32()).Should().Be((256, 202), "yuv420p needs even sides: one column and one row of padding");
        stream.GetProperty("pix_fmt").GetString().Should().Be("yuv420p");

        var back = await ReadBack(padded);
        back.Should().HaveCount(3);
        var wrong = new List<string>();
        for (var i = 0; i < back.Count; i++)
        {
            (back[i].Width, back[i].Height).Should().Be((256, 202), "the padded file decodes at its padded size");
            for (var y = 0; y < 202; y++)
            {
                for (var x = 0; x < 256; x++)
                {
                    var k = 3 * (y * 256 + x);
                    var got = Luma(back[i].Pixels, k);
                    // Inside: the original pixel at the same place (limited-range rounding aside); outside: black padding.
                    var expected = x < W && y < H ? Luma(frames[i].Pixels, 3 * (y * W + x)) : 0;
                    if (Math.Abs(got - expected) > 3)
                    {
                        wrong.Add($"frame {i} ({x},{y}): {got:0.#} instead of {expected:0.#}");
                    }
                }
            }
        }

        wrong.Should().BeEmpty("the frames sit at the top-left of the padded picture, the extra column and row are black");

        var kept = videos.NewPath("odd444.mp4");
        var options444 = options with { PixelFormat = "yuv444p" };
        (options444.EncodedWidth, options444.EncodedHeight).Should().Be((W, H));
        await Write(kept, options444, frames);
        var stream444 = Tool.StreamOf(kept, "video")!.Value;
        (stream444.GetProperty("width").GetInt32(), stream444.GetProperty("height").GetInt32()).Should().Be((W, H), "4:4:4 holds an odd size as it is");
    }

    private static RgbImage Grey(RgbImage f)
    {
        var px = (byte[])f.Pixels.Clone();
        for (var i = 0; i < px.Length; i += 3)
        {
            px[i + 1] = px[i + 2] = px[i];
        }

        return new RgbImage(f.Width, f.Height, px);
    }

    private static double Luma(byte[] px, int k) => 0.299 * px[k] + 0.587 * px[k + 1] + 0.114 * px[k + 2];

    public static TheoryData<string, string, string> AudioCases => new()
    {
        { "mp4", "out.mp4", "aac" },  // AAC into MP4: copied
        { "mkv", "out.mp4", "aac" },  // FLAC into MP4: re-encoded to AAC (MP4 in ffmpeg 5.1 takes FLAC only as experimental)
        { "mkv", "out.mkv", "flac" }, // FLAC into Matroska: copied
    };

    [Theory]
    [MemberData(nameof(AudioCases))]
    public async Task Audio_of_the_source_is_carried_into_the_output(string source, string output, string expectedCodec)
    {
        var audioFrom = source == "mp4" ? videos.WithAudioMp4 : videos.WithAudioMkv;
        var path = videos.NewPath(output);
        await Write(path, new VideoWriterOptions(VideoFixture.Width, VideoFixture.Height, Ten) { AudioFrom = audioFrom }, videos.Frames);

        var audio = Tool.StreamOf(path, "audio");
        audio.Should().NotBeNull("the source's audio stream is mapped into the output");
        audio!.Value.GetProperty("codec_name").GetString().Should().Be(expectedCodec);
        // MP4 gives the stream's duration in seconds, Matroska as a DURATION tag (hh:mm:ss.fffffffff).
        var audioSeconds = audio.Value.TryGetProperty("duration", out var d)
            ? double.Parse(d.GetString()!, CultureInfo.InvariantCulture)
            : TimeSpan.Parse(audio.Value.GetProperty("tags").GetProperty("DURATION").GetString()![..16], CultureInfo.InvariantCulture).TotalSeconds;
        audioSeconds.Should().BeInRange(1.0, 1.4, "the 1.2 s tone, cut to the video's length at most");
        Tool.DecodedFrames(path).Should().Be(VideoFixture.FrameCount);

        var silent = videos.NewPath("silent.mp4");
        await Write(silent, new VideoWriterOptions(VideoFixture.Width, VideoFixture.Height, Ten) { AudioFrom = videos.LosslessMkv }, videos.Frames.Take(2));
        Tool.StreamOf(silent, "audio").Should().BeNull("a source without audio adds none");
    }

    [Fact]
    public async Task Disposing_without_completing_finishes_a_playable_file_of_the_frames_written()
    {
        var path = videos.NewPath("disposed.mp4");
        await using (var writer = await VideoWriter.CreateAsync(path, new VideoWriterOptions(VideoFixture.Width, VideoFixture.Height, Ten)))
        {
            foreach (var f in videos.Frames.Take(5))
            {
                await writer.WriteFrameAsync(f);
            }
        }

        Tool.DecodedFrames(path).Should().Be(5, "dispose closed ffmpeg's input and waited for it to write the index");
        ChildProcesses.FfmpegChildren().Should().BeEmpty();
    }

    [Fact]
    public async Task A_frame_of_another_size_and_writing_after_completion_are_refused()
    {
        var path = videos.NewPath("refuse.mkv");
        await using var writer = await VideoWriter.CreateAsync(path, new VideoWriterOptions(VideoFixture.Width, VideoFixture.Height, Ten) { Codec = "ffv1", PixelFormat = "bgr0" });
        var wrong = async () => await writer.WriteFrameAsync(RgbImage.Filled(10, 10, 1, 2, 3));
        (await wrong.Should().ThrowAsync<ArgumentException>()).WithMessage("*160x128*10x10*");
        await writer.WriteFrameAsync(videos.Frames[0]);
        await writer.CompleteAsync();
        var late = async () => await writer.WriteFrameAsync(videos.Frames[1]);
        await late.Should().ThrowAsync<InvalidOperationException>();
        (await ReadBack(path)).Single().Pixels.Should().Equal(videos.Frames[0].Pixels, "ffv1 in bgr0 is lossless");
    }

    [Fact]
    public async Task An_unknown_encoder_fails_with_the_command_exit_code_and_ffmpegs_words()
    {
        var path = videos.NewPath("bad.mp4");
        var act = async () =>
        {
            await using var writer = await VideoWriter.CreateAsync(path, new VideoWriterOptions(VideoFixture.Width, VideoFixture.Height, Ten) { Codec = "no-such-encoder" });
            foreach (var f in videos.Frames)
            {
                await writer.WriteFrameAsync(f);
            }

            await writer.CompleteAsync();
        };

        var e = (await act.Should().ThrowAsync<FfmpegException>()).Which;
        e.Message.Should().Contain("-c:v no-such-encoder").And.Contain("Unknown encoder");
        e.ExitCode.Should().NotBeNull().And.NotBe(0);
        ChildProcesses.FfmpegChildren().Should().BeEmpty();
    }

    [Fact]
    public void Options_validate_themselves_naming_the_field()
    {
        void Refused(Action validate, string field) =>
            validate.Should().Throw<ArgumentException>().Where(e => e.ParamName == field && e.Message.Contains(field, StringComparison.Ordinal));

        var ok = new VideoWriterOptions(4, 4, Ten);
        ok.Validate();
        Refused(() => (ok with { Width = 0 }).Validate(), "Width");
        Refused(() => (ok with { Height = -1 }).Validate(), "Height");
        Refused(() => (ok with { FrameRate = default }).Validate(), "FrameRate");
        Refused(() => (ok with { Codec = " " }).Validate(), "Codec");
        Refused(() => (ok with { Quality = 64 }).Validate(), "Quality");
        Refused(() => (ok with { PixelFormat = "" }).Validate(), "PixelFormat");
        Refused(() => (ok with { AudioFrom = "" }).Validate(), "AudioFrom");
        Refused(() => new FfmpegOptions { FfmpegPath = "" }.Validate(), "FfmpegPath");
        Refused(() => new FfmpegOptions { ProbeTimeout = TimeSpan.Zero }.Validate(), "ProbeTimeout");
        Refused(() => new VideoPredictionOptions { BatchSize = 0 }.Validate(), "BatchSize");
        Refused(() => new VideoPredictionOptions { Every = 0 }.Validate(), "Every");
        Refused(() => new VideoAnnotationOptions { Style = (VideoStyle)7 }.Validate(), "Style");
        Refused(() => new VideoAnnotationOptions { Quality = -1 }.Validate(), "Quality");
    }
}
