using MaskRcnn.Net.Core.Imaging;
using MaskRcnn.Net.Imaging;
using MaskRcnn.Net.Video;

namespace MaskRcnn.Net.Cli;

/// <summary>
/// The demo's colour-splash video: the validation slices, each scaled to fit <see cref="Size"/>² (centred on black),
/// one per frame at <see cref="FramesPerSecond"/> frames/s, grey outside the predicted masks and in colour inside
/// (<see cref="VideoStyle.Splash"/>), encoded as H.264 by MaskRcnn.Net.Video's <see cref="VideoWriter"/>.
/// </summary>
internal static class DemoVideo
{
    /// <summary>Width and height of the frames (the demo model's input size).</summary>
    public const int Size = 256;

    /// <summary>Frames (slices) per second.</summary>
    public const int FramesPerSecond = 4;

    /// <summary>Slices predicted per model call.</summary>
    private const int BatchSize = 4;

    /// <summary>Writes the splash video of <paramref name="images"/> to <paramref name="output"/>; returns the frames written.</summary>
    public static async Task<int> WriteSplashAsync(IInstanceSegmenter model, IReadOnlyList<string> images, string output, CancellationToken ct)
    {
        var written = 0;
        await using var writer = await VideoWriter.CreateAsync(output, new VideoWriterOptions(Size, Size, new FrameRate(FramesPerSecond, 1)), cancellationToken: ct);
        foreach (var chunk in images.Chunk(BatchSize))
        {
            if (ct.IsCancellationRequested)
            {
                break; // disposing the writer finishes a playable file up to here
            }

            var frames = chunk.Select(path =>
            {
                using var decoded = ImageCodec.Decode(path, ImageReadMode.Rgb);
                return Letterbox(decoded.ToRgbImage(), Size);
            }).ToArray();
            var detections = model.Predict(frames.Select(ImageSource.FromImage).ToArray());
            for (var i = 0; i < frames.Length; i++)
            {
                await writer.WriteFrameAsync(VideoRenderer.Render(frames[i], detections[i], VideoStyle.Splash), ct);
                written++;
            }
        }

        if (!ct.IsCancellationRequested)
        {
            await writer.CompleteAsync(ct);
        }

        return written;
    }

    /// <summary>
    /// <paramref name="image"/> scaled (bilinear, aspect ratio kept) to fit a <paramref name="size"/>² frame and centred
    /// on black.
    /// </summary>
    internal static RgbImage Letterbox(RgbImage image, int size)
    {
        var scale = Math.Min((double)size / image.Width, (double)size / image.Height);
        var w = Math.Clamp((int)Math.Round(image.Width * scale), 1, size);
        var h = Math.Clamp((int)Math.Round(image.Height * scale), 1, size);
        var (x0, y0) = ((size - w) / 2, (size - h) / 2);
        var src = image.Pixels;
        var dst = new byte[size * size * 3];
        for (var y = 0; y < h; y++)
        {
            var sy = Math.Clamp((y + 0.5) * image.Height / h - 0.5, 0, image.Height - 1);
            var ya = (int)sy;
            var yb = Math.Min(ya + 1, image.Height - 1);
            var fy = sy - ya;
            for (var x = 0; x < w; x++)
            {
                var sx = Math.Clamp((x + 0.5) * image.Width / w - 0.5, 0, image.Width - 1);
                var xa = (int)sx;
                var xb = Math.Min(xa + 1, image.Width - 1);
                var fx = sx - xa;
                var o = ((y0 + y) * size + x0 + x) * 3;
                for (var c = 0; c < 3; c++)
                {
                    double P(int px, int py) => src[(py * image.Width + px) * 3 + c];
                    var top = P(xa, ya) * (1 - fx) + P(xb, ya) * fx;
                    var bottom = P(xa, yb) * (1 - fx) + P(xb, yb) * fx;
                    dst[o + c] = (byte)Math.Clamp(Math.Round(top * (1 - fy) + bottom * fy), 0, 255);
                }
            }
        }

        return new RgbImage(size, size, dst);
    }
}
