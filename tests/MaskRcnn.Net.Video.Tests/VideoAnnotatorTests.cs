using MaskRcnn.Net.Core.Detection;
using MaskRcnn.Net.Core.Masks;
using MaskRcnn.Net.Imaging;

namespace MaskRcnn.Net.Video.Tests;

/// <summary>
/// Rendering (overlay = DetectionPainter, splash = grey outside the masks) and AnnotateAsync end to end: output frame
/// count, size and rate equal the input's, the pixels are the rendering of the model's detections, audio is carried,
/// rotation is applied, and cancelling leaves a playable shorter file.
/// </summary>
[Collection("video")]
public sealed class VideoAnnotatorTests(VideoFixture videos)
{
    /// <summary>
    /// Lossless output (libx264rgb, CRF 0, rgb24), so rendered pixels can be compared exactly; one frame per batch, so
    /// the detections equal the model's Predict of each frame alone to the last bit.
    /// </summary>
    private static readonly VideoAnnotationOptions Lossless = new() { Codec = "libx264rgb", Quality = 0, PixelFormat = "rgb24", Prediction = new() { BatchSize = 1 } };

    private static byte Grey(byte r, byte g, byte b) => (byte)Math.Round(0.299 * r + 0.587 * g + 0.114 * b, MidpointRounding.AwayFromZero);

    [Fact]
    public void Splash_keeps_the_colour_inside_the_masks_and_greys_the_rest_overlay_is_the_painter()
    {
        var frame = videos.Frames[5];
        var mask = new bool[frame.Width * frame.Height];
        for (var y = 30; y < 70; y++)
        {
            for (var x = 40; x < 100; x++)
            {
                mask[y * frame.Width + x] = (x + y) % 3 != 0; // not a rectangle: the mask, not the box, decides
            }
        }

        var detections = new ImageDetections(frame.Width, frame.Height,
        [
            new Detection(new BoundingBox(40, 30, 100, 70), 1, "tumor", 0.9f, BinaryMask.FromBools(mask, frame.Height, frame.Width)),
            new Detection(new BoundingBox(0, 0, 20, 20), 2, "other", 0.1f, BinaryMask.FromBools(Enumerable.Repeat(true, frame.Width * frame.Height).ToArray(), frame.Height, frame.Width)),
        ]);

        // MinScore 0.5 leaves the second (whole-frame) detection out.
        var splash = VideoRenderer.Render(frame, detections, VideoStyle.Splash, new VisualizerOptions(MinScore: 0.5));
        SplashMismatches(frame, mask, splash).Should().BeEmpty("colour inside the mask, grey (R = G = B = luma) outside");
        Enumerable.Range(0, mask.Length).Count(i => !mask[i] && (frame.Pixels[3 * i] != frame.Pixels[3 * i + 1] || frame.Pixels[3 * i + 1] != frame.Pixels[3 * i + 2]))
            .Should().BeGreaterThan(1000, "the frames are coloured, so greying is visible");
        frame.Pixels.Should().NotEqual(splash.Pixels);

        VideoRenderer.Render(frame, detections, VideoStyle.Overlay).Pixels.Should().Equal(DetectionPainter.Draw(frame, detections).Pixels);
        var wrongSize = () => VideoRenderer.Render(RgbImage.Filled(3, 3, 0, 0, 0), detections, VideoStyle.Splash);
        wrongSize.Should().Throw<ArgumentException>();
    }

    /// <summary>The pixels of <paramref name="splash"/> that are not the source's colour where covered and its grey elsewhere.</summary>
    private static List<string> SplashMismatches(RgbImage source, bool[] covered, RgbImage splash)
    {
        var wrong = new List<string>();
        var (src, got) = (source.Pixels, splash.Pixels);
        for (var p = 0; p < covered.Length; p++)
        {
            var (r, g, b) = (src[3 * p], src[3 * p + 1], src[3 * p + 2]);
            var v = Grey(r, g, b);
            var expected = covered[p] ? (r, g, b) : (v, v, v);
            if ((got[3 * p], got[3 * p + 1], got[3 * p + 2]) != expected)
            {
                wrong.Add($"pixel {p} (covered: {covered[p]}): ({got[3 * p]}, {got[3 * p + 1]}, {got[3 * p + 2]}) instead of {expected}");
            }
        }

        return wrong;
    }

    public static TheoryData<VideoStyle> Styles => new() { VideoStyle.Overlay, VideoStyle.Splash };

    [Theory]
    [MemberData(nameof(Styles))]
    public async Task The_annotated_video_has_the_inputs_frames_size_and_rate_and_each_frame_is_the_rendered_prediction(VideoStyle style)
    {
        var output = videos.NewPath($"{style}.mp4");
        var seen = new List<VideoFrameDetections>();
        var result = await VideoAnnotator.AnnotateAsync(videos.Detector, videos.LosslessMp4, output, Lossless with { Style = style },
            onFrame: f => { seen.Add(f); return ValueTask.CompletedTask; });

        result.Cancelled.Should().BeFalse();
        (result.FramesRead, result.FramesPredicted, result.FramesWritten).Should().Be((12L, 12L, 12L));
        (result.OutputWidth, result.OutputHeight).Should().Be((VideoFixture.Width, VideoFixture.Height));
        seen.Select(f => f.FrameIndex).Should().Equal(Enumerable.Range(0, 12).Select(i => (long)i), "onFrame sees every frame in order");

        var input = Tool.StreamOf(videos.LosslessMp4, "video")!.Value;
        var stream = Tool.StreamOf(output, "video")!.Value;
        stream.GetProperty("nb_read_frames").GetString().Should().Be(input.GetProperty("nb_read_frames").GetString());
        stream.GetProperty("width").GetInt32().Should().Be(input.GetProperty("width").GetInt32());
        stream.GetProperty("height").GetInt32().Should().Be(input.GetProperty("height").GetInt32());
        stream.GetProperty("avg_frame_rate").GetString().Should().Be(input.GetProperty("avg_frame_rate").GetString());

        var decoded = Tool.DecodeAll(output, VideoFixture.Width, VideoFixture.Height);
        decoded.Should().HaveCount(12);
        for (var i = 0; i < 12; i++)
        {
            var expected = videos.Detector.Predict(ImageSource.FromImage(videos.Frames[i]));
            seen[i].Detections.Detections.Should().Equal(expected.Detections, $"frame {i}'s detections are the model's on that frame");
            if (style == VideoStyle.Overlay)
            {
                decoded[i].Pixels.Should().Equal(DetectionPainter.Draw(videos.Frames[i], expected).Pixels, $"frame {i} is the painter's drawing");
                continue;
            }

            // Splash, checked pixel by pixel against the masks: colour inside their union, grey outside.
            var covered = new bool[VideoFixture.Width * VideoFixture.Height];
            foreach (var d in expected.Detections)
            {
                for (var y = 0; y < VideoFixture.Height; y++)
                {
                    for (var x = 0; x < VideoFixture.Width; x++)
                    {
                        covered[y * VideoFixture.Width + x] |= d.Mask![y, x];
                    }
                }
            }

            covered.Count(c => c).Should().BeInRange(1, covered.Length - 1, $"frame {i} has pixels inside and outside the masks");
            SplashMismatches(videos.Frames[i], covered, decoded[i]).Should().BeEmpty($"frame {i}: colour inside the union of the masks, grey outside");
        }

        ChildProcesses.FfmpegChildren().Should().BeEmpty();
    }

    [Fact]
    public async Task Audio_is_carried_and_a_rotated_input_is_written_upright_at_its_displayed_size()
    {
        var withAudio = videos.NewPath("audio.mp4");
        var result = await VideoAnnotator.AnnotateAsync(videos.Painter, videos.WithAudioMkv, withAudio, new VideoAnnotationOptions { Style = VideoStyle.Splash, Prediction = new() { Every = 4 } });
        result.FramesPredicted.Should().Be(3);
        Tool.StreamOf(withAudio, "audio").Should().NotBeNull("the input's tone is in the output");
        Tool.DecodedFrames(withAudio).Should().Be(12);

        var upright = videos.NewPath("upright.mkv");
        var rotated = await VideoAnnotator.AnnotateAsync(videos.Painter, videos.Rotated, upright, Lossless with { Codec = "ffv1", Quality = null, PixelFormat = "bgr0", Prediction = new() { Every = 12 } },
            onFrame: f => ValueTask.CompletedTask);
        rotated.Input.Rotation.Should().Be(90);
        (rotated.OutputWidth, rotated.OutputHeight).Should().Be((VideoFixture.Height, VideoFixture.Width));
        var stream = Tool.StreamOf(upright, "video")!.Value;
        (stream.GetProperty("width").GetInt32(), stream.GetProperty("height").GetInt32()).Should().Be((VideoFixture.Height, VideoFixture.Width));
        stream.TryGetProperty("side_data_list", out _).Should().BeFalse("the frames are already upright: no rotation is written");
        var first = Tool.DecodeAll(upright, VideoFixture.Height, VideoFixture.Width)[0];
        var expected = VideoRenderer.Render(VideoFixture.RotateCounterClockwise(videos.Frames[0]),
            videos.Painter.Predict(ImageSource.FromImage(VideoFixture.RotateCounterClockwise(videos.Frames[0]))), VideoStyle.Overlay);
        first.Pixels.Should().Equal(expected.Pixels, "the model saw, and the output shows, the upright frame");
    }

    [Fact]
    public async Task Cancelling_midway_finishes_a_playable_shorter_file_and_reports_it()
    {
        var output = videos.NewPath("cancelled.mp4");
        using var cts = new CancellationTokenSource();
        var result = await VideoAnnotator.AnnotateAsync(videos.Painter, videos.WithAudioMp4, output, new VideoAnnotationOptions { Prediction = new() { BatchSize = 2 } },
            onFrame: f =>
            {
                if (f.FrameIndex == 4)
                {
                    cts.Cancel();
                }

                return ValueTask.CompletedTask;
            },
            cancellationToken: cts.Token);

        result.Cancelled.Should().BeTrue();
        result.FramesWritten.Should().Be(5, "the frame in hand when cancelled is still written, then the loop stops");
        var frames = Tool.DecodedFrames(output);
        frames.Should().Be(5).And.BeGreaterThan(0).And.BeLessThan(VideoFixture.FrameCount, "a playable file of the frames reached");
        Tool.StreamOf(output, "audio").Should().NotBeNull();
        ChildProcesses.FfmpegChildren().Should().BeEmpty("the decoder was killed and the encoder finished");
    }
}
