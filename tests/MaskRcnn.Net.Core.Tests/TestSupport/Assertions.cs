namespace MaskRcnn.Net.Core.Tests.TestSupport;

/// <summary>Numeric comparison helpers for parity tests.</summary>
public static class Assertions
{
    /// <summary>Asserts |actual - expected| &lt;= atol + rtol·|expected| elementwise, naming the worst element.</summary>
    public static void AllClose(double[] actual, double[] expected, double atol = 1e-5, double rtol = 1e-5, string what = "values")
    {
        actual.Length.Should().Be(expected.Length, $"{what}: element count");
        var worst = -1;
        var worstExcess = 0.0;
        for (var i = 0; i < actual.Length; i++)
        {
            var diff = Math.Abs(actual[i] - expected[i]);
            var excess = diff - (atol + rtol * Math.Abs(expected[i]));
            var nanMismatch = double.IsNaN(actual[i]) != double.IsNaN(expected[i]);
            if (nanMismatch || excess > worstExcess)
            {
                worst = i;
                worstExcess = nanMismatch ? double.PositiveInfinity : excess;
            }
        }

        if (worst >= 0)
        {
            throw new Xunit.Sdk.XunitException(
                $"{what}: element {worst} is {actual[worst]:R}, expected {expected[worst]:R} (atol {atol}, rtol {rtol})");
        }
    }

    /// <summary>Compares a tensor with oracle output (shape and values).</summary>
    public static void AllClose(Tensor actual, (double[] Data, long[] Shape) expected, double atol = 1e-5, double rtol = 1e-5, string what = "tensor")
    {
        actual.Shape.Should().Equal(expected.Shape, $"{what}: shape");
        AllClose(actual.ToArray<double>(), expected.Data, atol, rtol, what);
    }
}
