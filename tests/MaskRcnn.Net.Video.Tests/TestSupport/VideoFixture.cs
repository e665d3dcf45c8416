using MaskRcnn.Net.Backbones;
using MaskRcnn.Net.Imaging;
using MaskRcnn.Net.SkiaSharp;
using MaskRcnn.Net.Tests;

namespace MaskRcnn.Net.Video.Tests;

/// <summary>
/// The test videos, made once per run in a temp folder by the tests' own ffmpeg (<see cref="Tool"/>): 12 MRI slices of
/// the validation set decoded by SkiaSharp, scaled (nearest neighbour) to 160×128 and tinted so that colour and grey
/// differ, encoded losslessly at 10 frames/s; plus the real segmenters (seeded random weights, score threshold 0).
/// </summary>
public sealed class VideoFixture : IDisposable
{
    public const int Width = 160;
    public const int Height = 128;
    public const int Fps = 10;
    public const int FrameCount = 12;

    public VideoFixture()
    {
        Dir = Directory.CreateTempSubdirectory("mr_video_").FullName;
        var slices = Directory.GetFiles(RepoPaths.Get("data", "brain-tumor", "val", "images"), "*.jpg").Order(StringComparer.Ordinal).Take(FrameCount);
        Frames = slices.Select(p => Tint(Scale(SkiaImageDecoder.Decode(p), Width, Height))).ToList();

        LosslessMp4 = Path.Combine(Dir, "lossless.mp4");
        Tool.Encode(LosslessMp4, Frames, Fps, "-c:v", "libx264rgb", "-qp", "0", "-pix_fmt", "rgb24");
        LosslessMkv = Path.Combine(Dir, "lossless.mkv");
        Tool.Encode(LosslessMkv, Frames, Fps, "-c:v", "ffv1");

        // The same frames with a 440 Hz tone (FLAC in Matroska) and with AAC in MP4.
        WithAudioMkv = Path.Combine(Dir, "with-audio.mkv");
        Tool.Encode(WithAudioMkv, Frames, Fps, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=16000:duration=1.2", "-map", "0:v", "-map", "1:a",
            "-c:v", "ffv1", "-c:a", "flac");
        WithAudioMp4 = Path.Combine(Dir, "with-audio.mp4");
        Tool.Encode(WithAudioMp4, Frames, Fps, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=16000:duration=1.2", "-map", "0:v", "-map", "1:a",
            "-c:v", "libx264rgb", "-qp", "0", "-pix_fmt", "rgb24", "-c:a", "aac");

        // Rotation metadata: stored 160x128, displayed rotated. ffmpeg 5.1 turns a rotate tag into the MP4 display
        // matrix when copying the stream (not when encoding it; -display_rotation came with ffmpeg 6).
        Rotated = Path.Combine(Dir, "rotated.mp4");
        Tool.Run("ffmpeg", ["-v", "error", "-y", "-i", LosslessMp4, "-c", "copy", "-metadata:s:v:0", "rotate=90", Rotated]);

        Detector = Small().WithDetectionsPerImage(10).Build();
        Painter = Small().WithDetectionsPerImage(1).WithMaskThreshold(0.0).Build();
    }

    /// <summary>The source frames (what every lossless test video holds).</summary>
    public IReadOnlyList<RgbImage> Frames { get; }

    public string Dir { get; }

    public string LosslessMp4 { get; }

    public string LosslessMkv { get; }

    public string WithAudioMkv { get; }

    public string WithAudioMp4 { get; }

    public string Rotated { get; }

    /// <summary>Up to 10 detections with masks per frame.</summary>
    public MaskRcnnModel Detector { get; }

    /// <summary>One detection per frame whose mask is its whole box (mask threshold 0).</summary>
    public MaskRcnnModel Painter { get; }

    /// <summary>A new path in the scratch folder.</summary>
    public string NewPath(string name) => Path.Combine(Dir, $"{Guid.NewGuid():N}-{name}");

    public void Dispose()
    {
        Detector.Dispose();
        Painter.Dispose();
        Directory.Delete(Dir, true);
    }

    private static MaskRcnnBuilder Small() => new MaskRcnnBuilder().WithBackbone(18, NormKind.FrozenBatchNorm)
        .WithClasses("tumor", "other").WithImageSize(128, 160).WithScoreThreshold(0.0).WithSeed(3);

    /// <summary>Nearest-neighbour resize.</summary>
    public static RgbImage Scale(RgbImage src, int width, int height)
    {
        var px = new byte[3 * width * height];
        for (var y = 0; y < height; y++)
        {
            var sy = y * src.Height / height;
            for (var x = 0; x < width; x++)
            {
                var sx = x * src.Width / width;
                Array.Copy(src.Pixels, 3 * (sy * src.Width + sx), px, 3 * (y * width + x), 3);
            }
        }

        return new RgbImage(width, height, px);
    }

    /// <summary>Grey slices to colour: (v, 3v/4, 255 − v/2), a different value in each channel wherever v &gt; 0.</summary>
    private static RgbImage Tint(RgbImage grey)
    {
        var px = (byte[])grey.Pixels.Clone();
        for (var i = 0; i < px.Length; i += 3)
        {
            var v = px[i];
            (px[i], px[i + 1], px[i + 2]) = (v, (byte)(3 * v / 4), (byte)(255 - v / 2));
        }

        return new RgbImage(grey.Width, grey.Height, px);
    }

    /// <summary>The frame rotated a quarter turn counter-clockwise (width and height swap).</summary>
    public static RgbImage RotateCounterClockwise(RgbImage src)
    {
        int w = src.Height, h = src.Width;
        var px = new byte[3 * w * h];
        for (var y = 0; y < h; y++)
        {
            for (var x = 0; x < w; x++)
            {
                // destination (x, y) shows source column (W_src − 1 − y), row x
                var sx = src.Width - 1 - y;
                var sy = x;
                Array.Copy(src.Pixels, 3 * (sy * src.Width + sx), px, 3 * (y * w + x), 3);
            }
        }

        return new RgbImage(w, h, px);
    }
}

[CollectionDefinition("video")]
public sealed class VideoCollection : ICollectionFixture<VideoFixture>
{
}
