using MaskRcnn.Net.Core.Detection;
using MaskRcnn.Net.Core.Masks;
using MaskRcnn.Net.Imaging;

namespace MaskRcnn.Net.Abstractions.Tests;

public class DetectionPainterTests
{
    private static ImageDetections OneSquare(float score = 0.9f)
    {
        var bits = new bool[60 * 80];
        for (var y = 20; y < 40; y++)
        {
            for (var x = 30; x < 50; x++)
            {
                bits[y * 80 + x] = true;
            }
        }

        return new ImageDetections(80, 60, [new Detection(new BoundingBox(25, 15, 55, 45), 1, "tumor", score, BinaryMask.FromBools(bits, 60, 80))]);
    }

    [Fact]
    public void Draw_blends_mask_pixels_draws_the_box_and_leaves_the_rest_on_a_copy()
    {
        var image = RgbImage.Filled(80, 60, 100, 100, 100);
        var drawn = DetectionPainter.Draw(image, OneSquare(), new VisualizerOptions(MaskOpacity: 0.5, BoxThickness: 1, FontScale: 1));
        (drawn.Width, drawn.Height).Should().Be((80, 60));
        (byte R, byte G, byte B) At(int y, int x) => (drawn.Pixels[3 * (y * 80 + x)], drawn.Pixels[3 * (y * 80 + x) + 1], drawn.Pixels[3 * (y * 80 + x) + 2]);
        var (r, g, b) = DetectionPainter.ColorOf(0);
        At(30, 40).Should().Be(((byte)Math.Round(50 + r * 0.5), (byte)Math.Round(50 + g * 0.5), (byte)Math.Round(50 + b * 0.5)));
        At(42, 55).Should().Be((r, g, b), "the box's right edge, outside the mask");
        At(55, 5).Should().Be(((byte)100, (byte)100, (byte)100));
        image.Pixels.Should().OnlyContain(v => v == 100, "the input is not drawn on");

        DetectionPainter.Draw(image, OneSquare(0.2f), new VisualizerOptions(MinScore: 0.5)).Pixels.Should().Equal(image.Pixels, "below MinScore nothing is drawn");
        FluentActions.Invoking(() => DetectionPainter.Draw(image, new ImageDetections(10, 10, []))).Should().Throw<ArgumentException>().WithMessage("*80x60*10x10*");
    }

    [Fact]
    public void DrawComparison_puts_truth_left_and_predictions_right_under_a_caption_band()
    {
        var image = RgbImage.Filled(80, 60, 100, 100, 100);
        var options = new VisualizerOptions(FontScale: 1);
        var both = DetectionPainter.DrawComparison(image, OneSquare(), new ImageDetections(80, 60, []), options);
        var band = 7 + 4;
        (both.Width, both.Height).Should().Be((2 * 80 + 6, 60 + band));
        var left = DetectionPainter.Draw(image, OneSquare(), options with { MinScore = 0, ShowScores = false });
        for (var y = 0; y < 60; y++)
        {
            both.Pixels.AsSpan(3 * ((y + band) * both.Width), 3 * 80).ToArray().Should().Equal(left.Pixels.AsSpan(3 * y * 80, 3 * 80).ToArray());
            both.Pixels.AsSpan(3 * ((y + band) * both.Width + 86), 3 * 80).ToArray().Should().OnlyContain(v => v == 100, "no predictions on the right");
        }
    }
}
