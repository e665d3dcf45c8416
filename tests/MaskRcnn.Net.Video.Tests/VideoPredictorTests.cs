using MaskRcnn.Net.Imaging;

namespace MaskRcnn.Net.Video.Tests;

/// <summary>
/// PredictVideoAsync with a real (seeded, random) libtorch model: per frame the detections equal the model's own
/// Predict of that decoded frame; Every = 3 predicts one frame in three and carries the detections over; progress
/// comes from the clock given.
/// </summary>
[Collection("video")]
public sealed class VideoPredictorTests(VideoFixture videos)
{
    private static async Task<List<VideoFrameDetections>> Collect(IAsyncEnumerable<VideoFrameDetections> frames)
    {
        var list = new List<VideoFrameDetections>();
        await foreach (var f in frames)
        {
            list.Add(f);
        }

        return list;
    }

    [Fact]
    public async Task Every_frame_is_predicted_and_equals_the_models_own_prediction_of_that_frame()
    {
        var results = await Collect(VideoPredictor.PredictVideoAsync(videos.Detector, videos.LosslessMp4, new VideoPredictionOptions { BatchSize = 1 }));

        results.Select(r => r.FrameIndex).Should().Equal(Enumerable.Range(0, VideoFixture.FrameCount).Select(i => (long)i));
        results.Should().OnlyContain(r => r.Predicted);
        results.Sum(r => r.Detections.Detections.Count).Should().BeGreaterThan(0, "a random model at score threshold 0 detects something: the comparison is not of empty lists");
        for (var i = 0; i < results.Count; i++)
        {
            results[i].Frame.Pixels.Should().Equal(videos.Frames[i].Pixels, "the lossless frame is the source slice");
            results[i].Timestamp.Should().Be(TimeSpan.FromMilliseconds(100 * i));
            var expected = videos.Detector.Predict(ImageSource.FromImage(videos.Frames[i]));
            (results[i].Detections.Width, results[i].Detections.Height).Should().Be((expected.Width, expected.Height));
            results[i].Detections.Detections.Should().Equal(expected.Detections, $"frame {i}: the same pixels through the same model");
        }
    }

    [Fact]
    public async Task Batches_are_consecutive_frames_predicted_together_as_the_model_predicts_that_list()
    {
        // libtorch's batched convolutions differ from single-image ones in the last float bits (scores like 0.4447544
        // against 0.4447542), so a batch of 4 is compared with the model's Predict of the same 4 frames as one list.
        var results = await Collect(VideoPredictor.PredictVideoAsync(videos.Detector, videos.LosslessMkv, new VideoPredictionOptions { BatchSize = 4 }));

        results.Should().HaveCount(VideoFixture.FrameCount);
        for (var b = 0; b < VideoFixture.FrameCount / 4; b++)
        {
            var expected = videos.Detector.Predict(videos.Frames.Skip(4 * b).Take(4).Select(ImageSource.FromImage).ToList());
            for (var j = 0; j < 4; j++)
            {
                results[4 * b + j].Detections.Detections.Should().Equal(expected[j].Detections, $"frame {4 * b + j} is image {j} of batch {b}");
            }
        }
    }

    [Fact]
    public async Task With_every_3_one_frame_in_three_is_predicted_and_the_others_carry_the_last_detections()
    {
        var results = await Collect(VideoPredictor.PredictVideoAsync(videos.Detector, videos.LosslessMkv, new VideoPredictionOptions { BatchSize = 2, Every = 3 }));

        results.Should().HaveCount(VideoFixture.FrameCount);
        results.Select(r => r.Predicted).Should().Equal(Enumerable.Range(0, VideoFixture.FrameCount).Select(i => i % 3 == 0));
        results.Count(r => r.Predicted).Should().Be(VideoFixture.FrameCount / 3);
        for (var i = 0; i < results.Count; i++)
        {
            var key = i - i % 3;
            results[i].Frame.Pixels.Should().Equal(videos.Frames[i].Pixels, "every frame is still yielded with its own pixels");
            results[i].Detections.Should().BeSameAs(results[key].Detections, $"frame {i} carries frame {key}'s detections");
        }

        // Batches of 2 key frames: (0, 3) and (6, 9), each predicted as the model predicts that list.
        foreach (var batch in new[] { new[] { 0, 3 }, new[] { 6, 9 } })
        {
            var expected = videos.Detector.Predict(batch.Select(i => ImageSource.FromImage(videos.Frames[i])).ToList());
            for (var j = 0; j < batch.Length; j++)
            {
                results[batch[j]].Detections.Detections.Should().Equal(expected[j].Detections, $"key frame {batch[j]} is predicted on its own pixels");
            }
        }

        // Carried frames differ from their key frame, so carrying is visible: a fresh prediction of frame 1 is not frame 0's.
        videos.Frames[1].Pixels.Should().NotEqual(videos.Frames[0].Pixels);
    }

    [Fact]
    public async Task Progress_is_reported_after_every_batch_with_rate_and_eta_from_the_given_clock()
    {
        var clock = new SteppingClock(TimeSpan.FromSeconds(1));
        var reports = new List<VideoProgress>();
        var progress = new SyncProgress(reports.Add);
        await Collect(VideoPredictor.PredictVideoAsync(videos.Painter, videos.LosslessMp4, new VideoPredictionOptions { BatchSize = 5, Clock = clock }, progress));

        reports.Select(r => r.FramesDone).Should().Equal(5, 10, 12);
        reports.Should().OnlyContain(r => r.TotalFrames == VideoFixture.FrameCount);
        // The clock advances 1 s per reading: read once at the start, then once per report.
        reports.Select(r => r.Elapsed).Should().Equal(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(3));
        reports.Select(r => r.FramesPerSecond).Should().Equal(5.0, 5.0, 4.0);
        reports.Select(r => r.Eta).Should().Equal(TimeSpan.FromSeconds(7 / 5.0), TimeSpan.FromSeconds(2 / 5.0), TimeSpan.Zero);
    }

    [Fact]
    public async Task Cancelling_stops_the_frames_and_kills_the_decoder()
    {
        using var cts = new CancellationTokenSource();
        var seen = 0;
        var act = async () =>
        {
            await foreach (var f in VideoPredictor.PredictVideoAsync(videos.Painter, videos.LosslessMp4, new VideoPredictionOptions { BatchSize = 2 }, null, cts.Token))
            {
                if (++seen == 3)
                {
                    cts.Cancel();
                }
            }
        };

        await act.Should().ThrowAsync<OperationCanceledException>();
        seen.Should().BeInRange(3, 4, "at most the rest of the batch in hand after the cancel");
        ChildProcesses.FfmpegChildren().Should().BeEmpty();
    }

    /// <summary>A clock that moves forward by a fixed step every time it is read.</summary>
    private sealed class SteppingClock(TimeSpan step) : TimeProvider
    {
        private long ticks;

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => Interlocked.Add(ref ticks, step.Ticks) - step.Ticks;
    }

    /// <summary>IProgress that reports on the calling thread (Progress&lt;T&gt; posts to the thread pool).</summary>
    private sealed class SyncProgress(Action<VideoProgress> report) : IProgress<VideoProgress>
    {
        public void Report(VideoProgress value) => report(value);
    }
}
