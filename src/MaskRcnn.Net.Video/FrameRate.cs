using System.Globalization;

namespace MaskRcnn.Net.Video;

/// <summary>
/// A frame rate as the exact rational ffmpeg uses (30000/1001 for NTSC's 29.97 frames per second), reduced to lowest
/// terms.
/// </summary>
public readonly record struct FrameRate
{
    /// <summary>A rate of <paramref name="numerator"/>/<paramref name="denominator"/> frames per second.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A part is not positive.</exception>
    public FrameRate(int numerator, int denominator)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(numerator);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(denominator);
        var g = Gcd(numerator, denominator);
        (Numerator, Denominator) = (numerator / g, denominator / g);
    }

    /// <summary>Frames (numerator).</summary>
    public int Numerator { get; }

    /// <summary>Per this many seconds (denominator).</summary>
    public int Denominator { get; }

    /// <summary>Frames per second as a double (29.97002997… for 30000/1001).</summary>
    public double Value => Denominator == 0 ? 0 : (double)Numerator / Denominator;

    /// <summary>True for a rate made by the constructor (false for <c>default(FrameRate)</c>).</summary>
    public bool IsValid => Numerator > 0 && Denominator > 0;

    /// <summary>The presentation time of frame <paramref name="index"/> (0-based) at this constant rate.</summary>
    public TimeSpan TimestampOf(long index) =>
        TimeSpan.FromTicks((long)Math.Round((decimal)index * Denominator * TimeSpan.TicksPerSecond / Numerator));

    /// <summary>Parses "30000/1001", "25/1" or "25" (ffprobe's <c>avg_frame_rate</c> / <c>r_frame_rate</c>).</summary>
    /// <exception cref="FormatException">Not a positive rational.</exception>
    public static FrameRate Parse(string text)
    {
        if (TryParse(text, out var rate))
        {
            return rate;
        }

        throw new FormatException($"'{text}' is not a frame rate (a positive N or N/D)");
    }

    /// <summary>Parses like <see cref="Parse"/>; false for "0/0", negative or malformed text.</summary>
    public static bool TryParse(string? text, out FrameRate rate)
    {
        rate = default;
        if (string.IsNullOrWhiteSpace(text))
        {
            return false;
        }

        var parts = text.Split('/');
        if (parts.Length > 2
            || !long.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var n)
            || n is < 1 or > int.MaxValue)
        {
            return false;
        }

        long d = 1;
        if (parts.Length == 2 && (!long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out d) || d is < 1 or > int.MaxValue))
        {
            return false;
        }

        rate = new FrameRate((int)n, (int)d);
        return true;
    }

    /// <summary>"N/D", the form ffmpeg's <c>-framerate</c> and <c>-r</c> take.</summary>
    public override string ToString() => $"{Numerator.ToString(CultureInfo.InvariantCulture)}/{Denominator.ToString(CultureInfo.InvariantCulture)}";

    private static int Gcd(int a, int b)
    {
        while (b != 0)
        {
            (a, b) = (b, a % b);
        }

        return a;
    }
}
