using System.Net.Http.Headers;
using System.Text.Json;
using MaskRcnn.Net.Core.Imaging;
using MaskRcnn.Net.Core.Masks;
using MaskRcnn.Net.Imaging;
using MaskRcnn.Net.Tests;
using Microsoft.Playwright;

namespace MaskRcnn.Net.Cli.Tests;

/// <summary>
/// The page of <c>maskrcnn serve</c> in a real headless browser (Debian's chromium driven by Playwright): an MRI slice
/// chosen in its file input comes back as the overlay, and the screenshot's pixels show the mask colour blended in
/// exactly where the server's JSON says the mask is, and nowhere in the plain input.
/// </summary>
[Collection("cli")]
public sealed class ServePageBrowserTests(ServeModels models) : IClassFixture<ServeModels>
{
    private const string Chromium = "/usr/bin/chromium";

    /// <summary>The flags chromium needs here (no sandbox as root, no GPU, no network of its own).</summary>
    private static readonly string[] Flags =
    [
        "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--force-color-profile=srgb",
    ];

    /// <summary>The colour of the first (best) detection and the mask opacity, by hand from the drawing's definition.</summary>
    private static readonly byte[] FirstColour = [230, 25, 75];

    private const double Opacity = 0.45;

    [Fact]
    public async Task The_page_shows_the_overlay_with_the_mask_drawn_where_the_json_puts_it()
    {
        File.Exists(Chromium).Should().BeTrue(
            "the page test drives Debian's chromium: install it with `apt-get install -y --no-install-recommends chromium` (scripts/setup.sh does)");
        var image = Directory.GetFiles(RepoPaths.Get("data", "brain-tumor", "val", "images"), "*.jpg").Order(StringComparer.Ordinal).First();
        var artifacts = RepoPaths.Get("artifacts", "serve");
        Directory.CreateDirectory(artifacts);

        await using var server = await ServeProcess.StartAsync(models.Painter);
        var content = new ByteArrayContent(await File.ReadAllBytesAsync(image));
        content.Headers.ContentType = new MediaTypeHeaderValue("image/jpeg");
        using var response = await server.Client.PostAsync("/predict", content);
        var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        response.IsSuccessStatusCode.Should().BeTrue(json.GetRawText());
        int width = json.GetProperty("width").GetInt32(), height = json.GetProperty("height").GetInt32();
        var detection = json.GetProperty("detections").EnumerateArray().Should().ContainSingle("the painter model keeps one detection per image").Subject;
        var box = detection.GetProperty("box").EnumerateArray().Select(v => v.GetDouble()).ToArray();
        var mask = Rle.FromCompressedString(detection.GetProperty("mask_rle").GetProperty("counts").GetString()!, height, width).Decode();

        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = Chromium,
            Headless = true,
            Args = Flags,
            Timeout = (float)ServeProcess.HangGuard.TotalMilliseconds,
        });
        var page = await browser.NewPageAsync(new BrowserNewPageOptions { ViewportSize = new ViewportSize { Width = 900, Height = 800 }, DeviceScaleFactor = 1 });
        page.SetDefaultTimeout((float)ServeProcess.HangGuard.TotalMilliseconds);
        await page.GotoAsync(server.Url + "/");
        await page.Locator("#file").SetInputFilesAsync(image);
        await page.Locator("#overlay[data-loaded='true']").WaitForAsync();
        (await page.Locator("#status").TextContentAsync()).Should().Be($"{Path.GetFileName(image)}: 1 detection");
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(artifacts, "page.png"), FullPage = true });
        // The image's box may start at a fractional CSS position (the text above it); chromium paints images snapped
        // to whole device pixels, so the screenshot is clipped at the rounded position with the image's size.
        var bounds = (await page.Locator("#overlay").BoundingBoxAsync())!;
        var shotBytes = await page.ScreenshotAsync(new PageScreenshotOptions
        {
            Path = Path.Combine(artifacts, "overlay.png"),
            Clip = new Clip { X = MathF.Round(bounds.X), Y = MathF.Round(bounds.Y), Width = width, Height = height },
        });

        RgbImage shot, input;
        using (var t = ImageCodec.Decode(shotBytes, ImageReadMode.Rgb))
        {
            shot = t.ToRgbImage();
        }

        using (var t = ImageCodec.Decode(image, ImageReadMode.Rgb))
        {
            input = t.ToRgbImage();
        }

        (shot.Width, shot.Height).Should().Be((width, height), "the overlay is shown at its natural size, one screen pixel per image pixel");

        // Inside the mask, away from the box lines (2 px) and the label (above the box's top, 18 px high): the mask
        // colour blended over the input pixel.
        int x1 = (int)Math.Ceiling(box[0]) + 4, x2 = (int)Math.Floor(box[2]) - 4, y1 = (int)Math.Ceiling(box[1]) + 22, y2 = (int)Math.Floor(box[3]) - 4;
        var region = new List<int>();
        for (var y = Math.Max(0, y1); y <= Math.Min(height - 1, y2); y++)
        {
            for (var x = Math.Max(0, x1); x <= Math.Min(width - 1, x2); x++)
            {
                if (mask[y, x])
                {
                    region.Add(y * width + x);
                }
            }
        }

        region.Count.Should().BeGreaterThan(200, $"the detection {string.Join(", ", box)} has a mask interior to look at");
        bool Near(RgbImage img, int p, Func<int, double> expected) => Enumerable.Range(0, 3).All(c => Math.Abs(img.Pixels[p * 3 + c] - expected(c)) <= 3);
        double Blended(int p, int c) => input.Pixels[p * 3 + c] * (1 - Opacity) + FirstColour[c] * Opacity;
        var tinted = region.Count(p => Near(shot, p, c => Blended(p, c)));
        tinted.Should().BeGreaterThanOrEqualTo((int)(0.95 * region.Count), "the screenshot shows the mask colour blended in over the mask");
        region.Count(p => Near(input, p, c => Blended(p, c))).Should().BeLessThan((int)(0.05 * region.Count), "the plain input does not have that colour there");

        // Away from the box and its label the overlay is the input.
        var outside = new List<int>();
        for (var y = 0; y < height; y++)
        {
            for (var x = 0; x < width; x++)
            {
                var nearBox = x >= box[0] - 4 && x <= box[2] + 4 && y >= box[1] - 4 && y <= box[3] + 4;
                var nearLabel = y <= box[1] + 22 && y >= box[1] - 24;
                if (!nearBox && !nearLabel)
                {
                    outside.Add(y * width + x);
                }
            }
        }

        outside.Count.Should().BeGreaterThan(1000);
        outside.Count(p => Near(shot, p, c => input.Pixels[p * 3 + c])).Should().BeGreaterThanOrEqualTo((int)(0.99 * outside.Count), "nothing is drawn away from the detection");

        // A refused upload shows the server's message on the page.
        var corrupt = Path.Combine(models.Dir, "corrupt.jpg");
        await File.WriteAllBytesAsync(corrupt, (await File.ReadAllBytesAsync(image)).Take(300).ToArray());
        await page.Locator("#file").SetInputFilesAsync(corrupt);
        await page.Locator("#status.error").WaitForAsync();
        (await page.Locator("#status").TextContentAsync()).Should().StartWith("400: cannot decode image");
    }
}
