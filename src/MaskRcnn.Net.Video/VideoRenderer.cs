using MaskRcnn.Net.Imaging;

namespace MaskRcnn.Net.Video;

/// <summary>How <see cref="VideoRenderer"/> (and <see cref="VideoAnnotator"/>) draws a frame's detections.</summary>
public enum VideoStyle
{
    /// <summary>Translucent masks, boxes and "label score" text (<see cref="DetectionPainter.Draw"/>).</summary>
    Overlay,

    /// <summary>
    /// A colour splash (matterport's balloon demo): the frame in grey, with the original colours inside the union of
    /// the detections' masks.
    /// </summary>
    Splash,
}

/// <summary>Draws one frame's detections in a <see cref="VideoStyle"/>.</summary>
public static class VideoRenderer
{
    /// <summary>
    /// A new image: <paramref name="frame"/> with <paramref name="detections"/> drawn in <paramref name="style"/>.
    /// Detections scoring below <see cref="VisualizerOptions.MinScore"/> are left out. Splash greys a pixel to its
    /// Rec. 601 luma (round(0.299 R + 0.587 G + 0.114 B), the same value in R, G and B) unless a drawn detection's
    /// mask covers it (a detection without a mask covers its box).
    /// </summary>
    /// <exception cref="ArgumentException">The frame and the detections are of different sizes.</exception>
    public static RgbImage Render(RgbImage frame, ImageDetections detections, VideoStyle style, VisualizerOptions? options = null) => style switch
    {
        VideoStyle.Overlay => DetectionPainter.Draw(frame, detections, options),
        VideoStyle.Splash => Splash(frame, detections, options ?? new VisualizerOptions()),
        _ => throw new ArgumentOutOfRangeException(nameof(style), style, "VideoStyle must be Overlay or Splash"),
    };

    /// <summary>
    /// The pixels covered by the detections that <paramref name="options"/> would draw: the union of their masks (a
    /// detection without a mask covers its box, rounded to whole pixels and clipped to the frame); row-major flags.
    /// </summary>
    public static bool[] Coverage(ImageDetections detections, VisualizerOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(detections);
        var o = options ?? new VisualizerOptions();
        int w = detections.Width, h = detections.Height;
        var covered = new bool[checked(w * h)];
        foreach (var d in detections.Detections.Where(d => d.Score >= o.MinScore))
        {
            if (d.Mask is { } mask)
            {
                if (mask.Width != w || mask.Height != h)
                {
                    throw new ArgumentException($"a {mask.Width}x{mask.Height} mask in detections of a {w}x{h} image", nameof(detections));
                }

                var bits = mask.ToBools();
                for (var i = 0; i < bits.Length; i++)
                {
                    covered[i] |= bits[i];
                }
            }
            else
            {
                int x1 = Math.Clamp((int)MathF.Round(d.Box.X1), 0, w), x2 = Math.Clamp((int)MathF.Round(d.Box.X2), 0, w);
                int y1 = Math.Clamp((int)MathF.Round(d.Box.Y1), 0, h), y2 = Math.Clamp((int)MathF.Round(d.Box.Y2), 0, h);
                for (var y = y1; y < y2 && x2 > x1; y++)
                {
                    Array.Fill(covered, true, y * w + x1, x2 - x1);
                }
            }
        }

        return covered;
    }

    private static RgbImage Splash(RgbImage frame, ImageDetections detections, VisualizerOptions options)
    {
        ArgumentNullException.ThrowIfNull(frame);
        ArgumentNullException.ThrowIfNull(detections);
        if (frame.Width != detections.Width || frame.Height != detections.Height)
        {
            throw new ArgumentException($"frame is {frame.Width}x{frame.Height} but the detections are for {detections.Width}x{detections.Height}", nameof(detections));
        }

        var covered = Coverage(detections, options);
        var src = frame.Pixels;
        var px = new byte[src.Length];
        for (var i = 0; i < covered.Length; i++)
        {
            var k = 3 * i;
            if (covered[i])
            {
                (px[k], px[k + 1], px[k + 2]) = (src[k], src[k + 1], src[k + 2]);
            }
            else
            {
                // Rec. 601 luma in integers: (299 R + 587 G + 114 B + 500) / 1000.
                var grey = (byte)((299 * src[k] + 587 * src[k + 1] + 114 * src[k + 2] + 500) / 1000);
                px[k] = px[k + 1] = px[k + 2] = grey;
            }
        }

        return new RgbImage(frame.Width, frame.Height, px);
    }
}
