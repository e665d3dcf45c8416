using MaskRcnn.Net.Imaging;

namespace MaskRcnn.Net;

/// <summary>Options of <see cref="DetectionPainter"/> (and the libtorch package's <c>Visualizer</c>).</summary>
/// <param name="MaskOpacity">Opacity of the mask colour (0–1).</param>
/// <param name="BoxThickness">Box line width in pixels.</param>
/// <param name="FontScale">Integer scale of the built-in 5×7 font.</param>
/// <param name="MinScore">Detections below this score are not drawn.</param>
/// <param name="ShowScores">Write the score after the class name (off for ground truth).</param>
public sealed record VisualizerOptions(double MaskOpacity = 0.45, int BoxThickness = 2, int FontScale = 2, double MinScore = 0.0, bool ShowScores = true);

/// <summary>
/// Draws detections onto an <see cref="RgbImage"/>: a translucent colour per instance mask, its box, and "label score"
/// text in a small built-in bitmap font. Plain arrays, no native code: the libtorch and ONNX Runtime packages draw
/// through it.
/// </summary>
public static class DetectionPainter
{
    private static readonly byte[][] Palette =
    [
        [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48], [145, 30, 180], [70, 240, 240],
        [240, 50, 230], [210, 245, 60], [250, 190, 212], [0, 128, 128], [220, 190, 255], [170, 110, 40], [128, 0, 0],
    ];

    /// <summary>Colour used for detection number <paramref name="index"/>.</summary>
    public static (byte R, byte G, byte B) ColorOf(int index)
    {
        var c = Palette[((index % Palette.Length) + Palette.Length) % Palette.Length];
        return (c[0], c[1], c[2]);
    }

    /// <summary>Returns a new image with the detections drawn on a copy of <paramref name="image"/>.</summary>
    /// <exception cref="ArgumentException">The image and the detections are of different sizes.</exception>
    public static RgbImage Draw(RgbImage image, ImageDetections detections, VisualizerOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentNullException.ThrowIfNull(detections);
        var o = options ?? new VisualizerOptions();
        int h = image.Height, w = image.Width;
        if (h != detections.Height || w != detections.Width)
        {
            throw new ArgumentException($"image is {w}x{h} but the detections are for {detections.Width}x{detections.Height}", nameof(detections));
        }

        var px = (byte[])image.Pixels.Clone();
        var canvas = new Canvas(px, w, h);
        // Lowest score first, so the best detection's mask, box and label end up on top; colours follow the rank.
        var visible = detections.Detections.Select((d, i) => (d, i)).Where(x => x.d.Score >= o.MinScore)
            .OrderBy(x => x.d.Score).ThenByDescending(x => x.i).ToList();
        foreach (var (d, i) in visible)
        {
            if (d.Mask is { } m)
            {
                var c = ColorOf(i);
                for (var y = 0; y < h; y++)
                {
                    for (var x = 0; x < w; x++)
                    {
                        if (m[y, x])
                        {
                            canvas.Blend(x, y, c, o.MaskOpacity);
                        }
                    }
                }
            }
        }

        foreach (var (d, i) in visible)
        {
            var c = ColorOf(i);
            canvas.Rect((int)MathF.Round(d.Box.X1), (int)MathF.Round(d.Box.Y1), (int)MathF.Round(d.Box.X2), (int)MathF.Round(d.Box.Y2), c, o.BoxThickness);
            var text = o.ShowScores ? $"{d.ClassName} {d.Score:0.00}" : d.ClassName;
            var scale = Math.Max(1, o.FontScale);
            var labelWidth = (BitmapFont.Advance * text.Length + 1) * scale;
            var labelHeight = (BitmapFont.Height + 2) * scale;
            // Above the box, moved left and down as far as needed to stay inside the image.
            var tx = Math.Clamp((int)d.Box.X1, 0, Math.Max(0, w - labelWidth));
            var ty = (int)d.Box.Y1 - labelHeight;
            if (ty < 0)
            {
                ty = Math.Min(Math.Max(0, h - labelHeight), (int)d.Box.Y1 + 1);
            }

            canvas.FillRect(tx, ty, tx + labelWidth, ty + labelHeight, c);
            canvas.Text(tx + scale, ty + scale, text, (255, 255, 255), scale);
        }

        return new RgbImage(w, h, px);
    }

    /// <summary>
    /// The ground truth (left, captioned "truth") next to the predictions (right, captioned "predicted") on the same
    /// image, as one image of (2W + gap) x (H + caption) pixels.
    /// </summary>
    public static RgbImage DrawComparison(RgbImage image, ImageDetections truth, ImageDetections predicted, VisualizerOptions? options = null)
    {
        var o = options ?? new VisualizerOptions();
        var left = Draw(image, truth, o with { MinScore = 0, ShowScores = false });
        var right = Draw(image, predicted, o);
        int h = left.Height, w = left.Width;
        var scale = Math.Max(1, o.FontScale);
        var band = (BitmapFont.Height + 4) * scale;
        const int Gap = 6;
        int outW = 2 * w + Gap, outH = h + band;
        var px = new byte[outW * outH * 3];
        Array.Fill(px, (byte)255);
        for (var y = 0; y < h; y++)
        {
            Array.Copy(left.Pixels, y * w * 3, px, ((y + band) * outW) * 3, w * 3);
            Array.Copy(right.Pixels, y * w * 3, px, ((y + band) * outW + w + Gap) * 3, w * 3);
        }

        var canvas = new Canvas(px, outW, outH);
        canvas.Text(2 * scale, 2 * scale, "truth", (0, 0, 0), scale);
        canvas.Text(w + Gap + 2 * scale, 2 * scale, "predicted", (0, 0, 0), scale);
        return new RgbImage(outW, outH, px);
    }

    private sealed class Canvas(byte[] px, int w, int h)
    {
        public void Blend(int x, int y, (byte R, byte G, byte B) c, double a)
        {
            var k = (y * w + x) * 3;
            px[k] = (byte)Math.Round(px[k] * (1 - a) + c.R * a);
            px[k + 1] = (byte)Math.Round(px[k + 1] * (1 - a) + c.G * a);
            px[k + 2] = (byte)Math.Round(px[k + 2] * (1 - a) + c.B * a);
        }

        public void Set(int x, int y, (byte R, byte G, byte B) c)
        {
            if ((uint)x >= (uint)w || (uint)y >= (uint)h)
            {
                return;
            }

            var k = (y * w + x) * 3;
            (px[k], px[k + 1], px[k + 2]) = (c.R, c.G, c.B);
        }

        public void FillRect(int x1, int y1, int x2, int y2, (byte R, byte G, byte B) c)
        {
            for (var y = Math.Max(0, y1); y < Math.Min(h, y2); y++)
            {
                for (var x = Math.Max(0, x1); x < Math.Min(w, x2); x++)
                {
                    Set(x, y, c);
                }
            }
        }

        public void Rect(int x1, int y1, int x2, int y2, (byte R, byte G, byte B) c, int t)
        {
            FillRect(x1, y1, x2 + 1, y1 + t, c);
            FillRect(x1, y2 - t + 1, x2 + 1, y2 + 1, c);
            FillRect(x1, y1, x1 + t, y2 + 1, c);
            FillRect(x2 - t + 1, y1, x2 + 1, y2 + 1, c);
        }

        public void Text(int x, int y, string text, (byte R, byte G, byte B) c, int scale)
        {
            foreach (var ch in text)
            {
                var glyph = BitmapFont.Glyph(ch);
                for (var row = 0; row < BitmapFont.Height; row++)
                {
                    for (var col = 0; col < BitmapFont.Width; col++)
                    {
                        if ((glyph[row] >> (BitmapFont.Width - 1 - col) & 1) != 0)
                        {
                            FillRect(x + col * scale, y + row * scale, x + (col + 1) * scale, y + (row + 1) * scale, c);
                        }
                    }
                }

                x += BitmapFont.Advance * scale;
            }
        }
    }
}

/// <summary>A 5×7 bitmap font for digits, letters (upper case shapes), and a few symbols.</summary>
internal static class BitmapFont
{
    public const int Width = 5;
    public const int Height = 7;
    public const int Advance = 6;

    private static readonly Dictionary<char, byte[]> Glyphs = new()
    {
        ['0'] = [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E], ['1'] = [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        ['2'] = [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F], ['3'] = [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        ['4'] = [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02], ['5'] = [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        ['6'] = [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E], ['7'] = [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        ['8'] = [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E], ['9'] = [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        ['A'] = [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11], ['B'] = [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
        ['C'] = [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E], ['D'] = [0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C],
        ['E'] = [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F], ['F'] = [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
        ['G'] = [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F], ['H'] = [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        ['I'] = [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E], ['J'] = [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
        ['K'] = [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11], ['L'] = [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        ['M'] = [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11], ['N'] = [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        ['O'] = [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E], ['P'] = [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
        ['Q'] = [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D], ['R'] = [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        ['S'] = [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E], ['T'] = [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        ['U'] = [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E], ['V'] = [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
        ['W'] = [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A], ['X'] = [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
        ['Y'] = [0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04], ['Z'] = [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
        ['.'] = [0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C], ['-'] = [0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00],
        ['_'] = [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F], [':'] = [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00],
        ['%'] = [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03], [' '] = [0, 0, 0, 0, 0, 0, 0],
    };

    private static readonly byte[] Unknown = [0x1F, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1F];

    public static byte[] Glyph(char c) => Glyphs.TryGetValue(char.ToUpperInvariant(c), out var g) ? g : Unknown;
}
