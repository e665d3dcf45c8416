using System.Globalization;

namespace MaskRcnn.Net.Training.Evaluation;

/// <summary>The few NumPy / Python numeric behaviours the COCO evaluation depends on, reproduced bit for bit.</summary>
internal static class NumPy
{
    /// <summary><c>np.spacing(1)</c>: the gap between 1 and the next double (2⁻⁵²).</summary>
    public const double SpacingOfOne = 2.220446049250313e-16;

    /// <summary>
    /// <c>np.mean(s[s &gt; -1])</c> as pycocotools' <c>_summarize</c> uses it, or −1 when nothing is left: NumPy's
    /// pairwise summation (blocks of 8 partial sums up to 128 values, halves above) divided by the count.
    /// </summary>
    public static double MeanOrMinusOne(IReadOnlyList<double> values)
    {
        if (values.Count == 0)
        {
            return -1;
        }

        var array = values as double[] ?? values.ToArray();
        return PairwiseSum(array) / array.Length;
    }

    /// <summary>NumPy's <c>pairwise_sum</c> for a contiguous float64 array.</summary>
    public static double PairwiseSum(ReadOnlySpan<double> a)
    {
        var n = a.Length;
        if (n < 8)
        {
            var sum = 0.0;
            for (var i = 0; i < n; i++)
            {
                sum += a[i];
            }

            return sum;
        }

        if (n <= 128)
        {
            Span<double> r = stackalloc double[8];
            a[..8].CopyTo(r);
            var i = 8;
            for (; i < n - n % 8; i += 8)
            {
                for (var j = 0; j < 8; j++)
                {
                    r[j] += a[i + j];
                }
            }

            var res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
            for (; i < n; i++)
            {
                res += a[i];
            }

            return res;
        }

        var half = n / 2;
        half -= half % 8;
        return PairwiseSum(a[..half]) + PairwiseSum(a[half..]);
    }

    /// <summary>
    /// Python's <c>'{:0.Nf}'.format(value)</c> for N = <paramref name="decimals"/> (≤ 6): the exact binary value
    /// rounded to N decimals, exact ties to even (.NET rounds them away from zero).
    /// </summary>
    public static string FormatFixed(double value, int decimals)
    {
        var inv = CultureInfo.InvariantCulture;
        var format = "F" + decimals.ToString(inv);
        var scale = 2 * Math.Pow(10, decimals);
        if (double.IsFinite(value) && Math.Abs(value) < 1e9)
        {
            // An exact tie is value = (2j + 1) / scale: value · scale is then an odd integer with no rounding residue.
            var doubled = Math.Round(value * scale);
            if (Math.FusedMultiplyAdd(value, scale, -doubled) == 0 && Math.IEEERemainder(doubled, 2) != 0)
            {
                var below = Math.Floor(doubled / 2);
                var even = Math.IEEERemainder(below, 2) == 0 ? below : below + 1;
                return (even / (scale / 2)).ToString(format, inv);
            }
        }

        return value.ToString(format, inv);
    }
}
