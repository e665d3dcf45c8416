namespace MaskRcnn.Net.Core;

/// <summary>Element-wise arithmetic, comparisons and reductions (broadcasting like PyTorch).</summary>
public sealed partial class Tensor
{
    // Op codes shared with ops.cpp.
    private enum Unary
    {
        Neg = 0, Abs, Exp, Log, Sqrt, Rsqrt, Sigmoid, Relu, Tanh, Floor, Ceil, Round, Sign, LogicalNot, IsFinite,
        IsNan, Sin, Cos, Log1p, Expm1, Reciprocal, Trunc, Clone, Contiguous, Square, Log2, IsInf, BitwiseNot,
    }

    private enum Binary
    {
        Add = 0, Sub, Mul, Div, Pow, Maximum, Minimum, Eq, Ne, Lt, Le, Gt, Ge, LogicalAnd, LogicalOr, LogicalXor,
        Remainder, FloorDivide, Atan2, BitwiseAnd, BitwiseOr, TruncDivide,
    }

    private enum Reduce
    {
        Sum = 0, Mean, Amax, Amin, Prod, All, Any, Std, Var, LogSumExp, Norm,
    }

    private Tensor U(Unary op) => new(NativeMethods.mr_unary(Handle, (int)op));

    private Tensor UInPlace(Unary op)
    {
        Native.Check(NativeMethods.mr_unary_(Handle, (int)op));
        return this;
    }

    private Tensor B(Tensor other, Binary op, double alpha = 1)
    {
        ArgumentNullException.ThrowIfNull(other);
        return new Tensor(NativeMethods.mr_binary(Handle, other.Handle, (int)op, alpha));
    }

    private Tensor B(double value, Binary op, bool scalarFirst = false) =>
        new(NativeMethods.mr_binary_scalar(Handle, value, 0, 0, (int)op, scalarFirst ? 1 : 0));

    private Tensor B(long value, Binary op, bool scalarFirst = false) =>
        new(NativeMethods.mr_binary_scalar(Handle, value, value, 1, (int)op, scalarFirst ? 1 : 0));

    private Tensor BInPlace(Tensor other, Binary op, double alpha = 1)
    {
        ArgumentNullException.ThrowIfNull(other);
        Native.Check(NativeMethods.mr_binary_(Handle, other.Handle, (int)op, alpha));
        return this;
    }

    private Tensor BInPlace(long value, Binary op)
    {
        Native.Check(NativeMethods.mr_binary_scalar_(Handle, value, value, 1, (int)op));
        return this;
    }

    private Tensor BInPlace(double value, Binary op)
    {
        Native.Check(NativeMethods.mr_binary_scalar_(Handle, value, (long)value, 0, (int)op));
        return this;
    }

    // ---- unary -------------------------------------------------------------------------------------------------

    /// <summary>-x.</summary>
    public Tensor Neg() => U(Unary.Neg);

    /// <summary>|x|.</summary>
    public Tensor Abs() => U(Unary.Abs);

    /// <summary>e^x.</summary>
    public Tensor Exp() => U(Unary.Exp);

    /// <summary>Natural logarithm.</summary>
    public Tensor Log() => U(Unary.Log);

    /// <summary>Base-2 logarithm.</summary>
    public Tensor Log2() => U(Unary.Log2);

    /// <summary>log(1 + x).</summary>
    public Tensor Log1p() => U(Unary.Log1p);

    /// <summary>e^x - 1.</summary>
    public Tensor Expm1() => U(Unary.Expm1);

    /// <summary>Square root.</summary>
    public Tensor Sqrt() => U(Unary.Sqrt);

    /// <summary>1 / sqrt(x).</summary>
    public Tensor Rsqrt() => U(Unary.Rsqrt);

    /// <summary>x².</summary>
    public Tensor Square() => U(Unary.Square);

    /// <summary>Logistic sigmoid.</summary>
    public Tensor Sigmoid() => U(Unary.Sigmoid);

    /// <summary>max(x, 0).</summary>
    public Tensor Relu() => U(Unary.Relu);

    /// <summary>Hyperbolic tangent.</summary>
    public Tensor Tanh() => U(Unary.Tanh);

    /// <summary>Sine.</summary>
    public Tensor Sin() => U(Unary.Sin);

    /// <summary>Cosine.</summary>
    public Tensor Cos() => U(Unary.Cos);

    /// <summary>Rounds down.</summary>
    public Tensor Floor() => U(Unary.Floor);

    /// <summary>Rounds up.</summary>
    public Tensor Ceil() => U(Unary.Ceil);

    /// <summary>Rounds half to even.</summary>
    public Tensor Round() => U(Unary.Round);

    /// <summary>Rounds toward zero.</summary>
    public Tensor Trunc() => U(Unary.Trunc);

    /// <summary>-1, 0 or 1.</summary>
    public Tensor Sign() => U(Unary.Sign);

    /// <summary>1 / x.</summary>
    public Tensor Reciprocal() => U(Unary.Reciprocal);

    /// <summary>Logical NOT (bool result).</summary>
    public Tensor LogicalNot() => U(Unary.LogicalNot);

    /// <summary>Bitwise NOT (logical NOT for bool tensors).</summary>
    public Tensor BitwiseNot() => U(Unary.BitwiseNot);

    /// <summary>True where the element is finite.</summary>
    public Tensor IsFinite() => U(Unary.IsFinite);

    /// <summary>True where the element is NaN.</summary>
    public Tensor IsNan() => U(Unary.IsNan);

    /// <summary>True where the element is ±infinity.</summary>
    public Tensor IsInf() => U(Unary.IsInf);

    /// <summary>A copy with its own storage (keeps autograd history).</summary>
    public Tensor Clone() => U(Unary.Clone);

    /// <summary>This tensor if contiguous, else a contiguous copy (new handle either way).</summary>
    public Tensor Contiguous() => U(Unary.Contiguous);

    /// <summary>In-place ReLU.</summary>
    public Tensor ReluInPlace() => UInPlace(Unary.Relu);

    /// <summary>In-place sigmoid.</summary>
    public Tensor SigmoidInPlace() => UInPlace(Unary.Sigmoid);

    /// <summary>In-place exp.</summary>
    public Tensor ExpInPlace() => UInPlace(Unary.Exp);

    /// <summary>In-place sqrt.</summary>
    public Tensor SqrtInPlace() => UInPlace(Unary.Sqrt);

    /// <summary>In-place negation.</summary>
    public Tensor NegInPlace() => UInPlace(Unary.Neg);

    /// <summary>In-place floor.</summary>
    public Tensor FloorInPlace() => UInPlace(Unary.Floor);

    /// <summary>In-place round.</summary>
    public Tensor RoundInPlace() => UInPlace(Unary.Round);

    // ---- binary ------------------------------------------------------------------------------------------------

    /// <summary>this + alpha·other.</summary>
    public Tensor Add(Tensor other, double alpha = 1) => B(other, Binary.Add, alpha);

    /// <summary>this − alpha·other.</summary>
    public Tensor Sub(Tensor other, double alpha = 1) => B(other, Binary.Sub, alpha);

    /// <summary>Element-wise product.</summary>
    public Tensor Mul(Tensor other) => B(other, Binary.Mul);

    /// <summary>True division (integers promote to float).</summary>
    public Tensor Div(Tensor other) => B(other, Binary.Div);

    /// <summary>Division rounded down.</summary>
    public Tensor FloorDivide(Tensor other) => B(other, Binary.FloorDivide);

    /// <summary>Division rounded down by a number (integers stay integers).</summary>
    public Tensor FloorDivide(long value) => B(value, Binary.FloorDivide);

    /// <summary>Division rounded toward zero.</summary>
    public Tensor TruncDivide(Tensor other) => B(other, Binary.TruncDivide);

    /// <summary>Python-style remainder (sign of the divisor).</summary>
    public Tensor Remainder(Tensor other) => B(other, Binary.Remainder);

    /// <summary>Python-style remainder by a number.</summary>
    public Tensor Remainder(long value) => B(value, Binary.Remainder);

    /// <summary>this ^ exponent.</summary>
    public Tensor Pow(Tensor exponent) => B(exponent, Binary.Pow);

    /// <summary>this ^ exponent.</summary>
    public Tensor Pow(double exponent) => new(NativeMethods.mr_pow_scalar(Handle, exponent));

    /// <summary>Element-wise maximum.</summary>
    public Tensor Maximum(Tensor other) => B(other, Binary.Maximum);

    /// <summary>Element-wise minimum.</summary>
    public Tensor Minimum(Tensor other) => B(other, Binary.Minimum);

    /// <summary>atan2(this, other).</summary>
    public Tensor Atan2(Tensor other) => B(other, Binary.Atan2);

    /// <summary>== (bool result).</summary>
    public Tensor Eq(Tensor other) => B(other, Binary.Eq);

    /// <summary>== a number.</summary>
    public Tensor Eq(double value) => B(value, Binary.Eq);

    /// <summary>== an integer.</summary>
    public Tensor Eq(long value) => B(value, Binary.Eq);

    /// <summary>!=.</summary>
    public Tensor Ne(Tensor other) => B(other, Binary.Ne);

    /// <summary>!= a number.</summary>
    public Tensor Ne(double value) => B(value, Binary.Ne);

    /// <summary>!= an integer.</summary>
    public Tensor Ne(long value) => B(value, Binary.Ne);

    /// <summary>&lt;.</summary>
    public Tensor Lt(Tensor other) => B(other, Binary.Lt);

    /// <summary>&lt; a number.</summary>
    public Tensor Lt(double value) => B(value, Binary.Lt);

    /// <summary>&lt;=.</summary>
    public Tensor Le(Tensor other) => B(other, Binary.Le);

    /// <summary>&lt;= a number.</summary>
    public Tensor Le(double value) => B(value, Binary.Le);

    /// <summary>&gt;.</summary>
    public Tensor Gt(Tensor other) => B(other, Binary.Gt);

    /// <summary>&gt; a number.</summary>
    public Tensor Gt(double value) => B(value, Binary.Gt);

    /// <summary>&gt;=.</summary>
    public Tensor Ge(Tensor other) => B(other, Binary.Ge);

    /// <summary>&gt;= a number.</summary>
    public Tensor Ge(double value) => B(value, Binary.Ge);

    /// <summary>Logical AND.</summary>
    public Tensor LogicalAnd(Tensor other) => B(other, Binary.LogicalAnd);

    /// <summary>Logical OR.</summary>
    public Tensor LogicalOr(Tensor other) => B(other, Binary.LogicalOr);

    /// <summary>Logical XOR.</summary>
    public Tensor LogicalXor(Tensor other) => B(other, Binary.LogicalXor);

    /// <summary>Bitwise AND (logical for bool).</summary>
    public Tensor BitwiseAnd(Tensor other) => B(other, Binary.BitwiseAnd);

    /// <summary>Bitwise OR (logical for bool).</summary>
    public Tensor BitwiseOr(Tensor other) => B(other, Binary.BitwiseOr);

    /// <summary>Element-wise sum.</summary>
    public static Tensor operator +(Tensor a, Tensor b) => a.B(b, Binary.Add);

    /// <summary>Adds a number.</summary>
    public static Tensor operator +(Tensor a, double b) => a.B(b, Binary.Add);

    /// <summary>Adds an integer (integer tensors stay integer).</summary>
    public static Tensor operator +(Tensor a, long b) => a.B(b, Binary.Add);

    /// <summary>Adds a number.</summary>
    public static Tensor operator +(double a, Tensor b) => b.B(a, Binary.Add);

    /// <summary>Element-wise difference.</summary>
    public static Tensor operator -(Tensor a, Tensor b) => a.B(b, Binary.Sub);

    /// <summary>Subtracts a number.</summary>
    public static Tensor operator -(Tensor a, double b) => a.B(b, Binary.Sub);

    /// <summary>Subtracts an integer.</summary>
    public static Tensor operator -(Tensor a, long b) => a.B(b, Binary.Sub);

    /// <summary>A number minus a tensor.</summary>
    public static Tensor operator -(double a, Tensor b) => b.B(a, Binary.Sub, scalarFirst: true);

    /// <summary>An integer minus a tensor.</summary>
    public static Tensor operator -(long a, Tensor b) => b.B(a, Binary.Sub, scalarFirst: true);

    /// <summary>Negation.</summary>
    public static Tensor operator -(Tensor a) => a.Neg();

    /// <summary>Element-wise product.</summary>
    public static Tensor operator *(Tensor a, Tensor b) => a.B(b, Binary.Mul);

    /// <summary>Multiplies by a number.</summary>
    public static Tensor operator *(Tensor a, double b) => a.B(b, Binary.Mul);

    /// <summary>Multiplies by an integer.</summary>
    public static Tensor operator *(Tensor a, long b) => a.B(b, Binary.Mul);

    /// <summary>Multiplies by a number.</summary>
    public static Tensor operator *(double a, Tensor b) => b.B(a, Binary.Mul);

    /// <summary>True division.</summary>
    public static Tensor operator /(Tensor a, Tensor b) => a.B(b, Binary.Div);

    /// <summary>Divides by a number.</summary>
    public static Tensor operator /(Tensor a, double b) => a.B(b, Binary.Div);

    /// <summary>A number divided by a tensor.</summary>
    public static Tensor operator /(double a, Tensor b) => b.B(a, Binary.Div, scalarFirst: true);

    /// <summary>Element-wise logical AND of bool tensors.</summary>
    public static Tensor operator &(Tensor a, Tensor b) => a.B(b, Binary.BitwiseAnd);

    /// <summary>Element-wise logical OR of bool tensors.</summary>
    public static Tensor operator |(Tensor a, Tensor b) => a.B(b, Binary.BitwiseOr);

    /// <summary>Logical NOT of a bool tensor.</summary>
    public static Tensor operator !(Tensor a) => a.LogicalNot();

    // ---- in place ----------------------------------------------------------------------------------------------

    /// <summary>this += alpha·other.</summary>
    public Tensor AddInPlace(Tensor other, double alpha = 1) => BInPlace(other, Binary.Add, alpha);

    /// <summary>this += value.</summary>
    public Tensor AddInPlace(double value) => BInPlace(value, Binary.Add);

    /// <summary>this += value (integer tensors stay integer).</summary>
    public Tensor AddInPlace(long value) => BInPlace(value, Binary.Add);

    /// <summary>this -= alpha·other.</summary>
    public Tensor SubInPlace(Tensor other, double alpha = 1) => BInPlace(other, Binary.Sub, alpha);

    /// <summary>this *= other.</summary>
    public Tensor MulInPlace(Tensor other) => BInPlace(other, Binary.Mul);

    /// <summary>this *= value.</summary>
    public Tensor MulInPlace(double value) => BInPlace(value, Binary.Mul);

    /// <summary>this /= other.</summary>
    public Tensor DivInPlace(Tensor other) => BInPlace(other, Binary.Div);

    /// <summary>this /= value.</summary>
    public Tensor DivInPlace(double value) => BInPlace(value, Binary.Div);

    /// <summary>this += value·a·b.</summary>
    public Tensor AddcmulInPlace(Tensor a, Tensor b, double value = 1)
    {
        Native.Check(NativeMethods.mr_addcmul_(Handle, a.Handle, b.Handle, value));
        return this;
    }

    /// <summary>this += value·a/b.</summary>
    public Tensor AddcdivInPlace(Tensor a, Tensor b, double value = 1)
    {
        Native.Check(NativeMethods.mr_addcdiv_(Handle, a.Handle, b.Handle, value));
        return this;
    }

    /// <summary>this += weight·(end − this).</summary>
    public Tensor LerpInPlace(Tensor end, double weight)
    {
        Native.Check(NativeMethods.mr_lerp_(Handle, end.Handle, weight));
        return this;
    }

    /// <summary>Copies <paramref name="source"/> (broadcast, converted) into this tensor.</summary>
    public Tensor CopyFrom(Tensor source)
    {
        ArgumentNullException.ThrowIfNull(source);
        Native.Check(NativeMethods.mr_copy_(Handle, source.Handle));
        return this;
    }

    /// <summary>Sets every element to <paramref name="value"/>.</summary>
    public Tensor FillInPlace(double value)
    {
        Native.Check(NativeMethods.mr_fill_(Handle, value, (long)value, 0));
        return this;
    }

    /// <summary>Sets every element to an integer value (exact for int64).</summary>
    public Tensor FillInPlace(long value)
    {
        Native.Check(NativeMethods.mr_fill_(Handle, value, value, 1));
        return this;
    }

    /// <summary>Sets every element to zero.</summary>
    public Tensor ZeroInPlace()
    {
        Native.Check(NativeMethods.mr_zero_(Handle));
        return this;
    }

    /// <summary>Fills with uniform random values in [from, to), drawn from <see cref="RandomGenerator.Current"/> when one is in use.</summary>
    public Tensor UniformInPlace(double from = 0, double to = 1)
    {
        Native.Check(NativeMethods.mr_uniform_(Handle, from, to, RandomGenerator.CurrentHandle(this)));
        return this;
    }

    /// <summary>Fills with normal random values, drawn from <see cref="RandomGenerator.Current"/> when one is in use.</summary>
    public Tensor NormalInPlace(double mean = 0, double std = 1)
    {
        Native.Check(NativeMethods.mr_normal_(Handle, mean, std, RandomGenerator.CurrentHandle(this)));
        return this;
    }

    // ---- clamp / where -----------------------------------------------------------------------------------------

    /// <summary>Clamps into [min, max]; a null bound is open.</summary>
    public Tensor Clamp(double? min = null, double? max = null) =>
        new(NativeMethods.mr_clamp(Handle, min ?? 0, min.HasValue ? 1 : 0, max ?? 0, max.HasValue ? 1 : 0));

    /// <summary>Clamps against element-wise bounds (broadcast); a null bound is open.</summary>
    public Tensor Clamp(Tensor? min, Tensor? max) => new(NativeMethods.mr_clamp_t(Handle, HandleOf(min), HandleOf(max)));

    /// <summary>In-place clamp.</summary>
    public Tensor ClampInPlace(double? min = null, double? max = null)
    {
        Native.Check(NativeMethods.mr_clamp_(Handle, min ?? 0, min.HasValue ? 1 : 0, max ?? 0, max.HasValue ? 1 : 0));
        return this;
    }

    /// <summary>Picks from <paramref name="a"/> where <paramref name="condition"/> is true, else from <paramref name="b"/>.</summary>
    public static Tensor Where(Tensor condition, Tensor a, Tensor b) =>
        new(NativeMethods.mr_where(condition.Handle, a.Handle, b.Handle));

    /// <summary>True when every element of the two tensors is within atol + rtol·|other|.</summary>
    public bool AllClose(Tensor other, double rtol = 1e-5, double atol = 1e-8)
    {
        using var r = new Tensor(NativeMethods.mr_allclose(Handle, other.Handle, rtol, atol));
        return r.ItemBool();
    }

    // ---- reductions --------------------------------------------------------------------------------------------

    private unsafe Tensor R(Reduce op, ReadOnlySpan<long> dims, bool keepDim, int flag = 0)
    {
        fixed (long* d = dims)
        {
            return new Tensor(NativeMethods.mr_reduce(Handle, (int)op, d, dims.Length, keepDim ? 1 : 0, flag));
        }
    }

    /// <summary>Sum of all elements (bool/integers sum to int64).</summary>
    public Tensor Sum() => R(Reduce.Sum, [], false);

    /// <summary>Sum over the given dimensions.</summary>
    public Tensor Sum(ReadOnlySpan<long> dims, bool keepDim = false) => R(Reduce.Sum, dims, keepDim);

    /// <summary>Sum over one dimension.</summary>
    public Tensor Sum(long dim, bool keepDim = false) => R(Reduce.Sum, [dim], keepDim);

    /// <summary>Mean of all elements.</summary>
    public Tensor Mean() => R(Reduce.Mean, [], false);

    /// <summary>Mean over the given dimensions.</summary>
    public Tensor Mean(ReadOnlySpan<long> dims, bool keepDim = false) => R(Reduce.Mean, dims, keepDim);

    /// <summary>Mean over one dimension.</summary>
    public Tensor Mean(long dim, bool keepDim = false) => R(Reduce.Mean, [dim], keepDim);

    /// <summary>Maximum of all elements.</summary>
    public Tensor Max() => R(Reduce.Amax, [], false);

    /// <summary>Minimum of all elements.</summary>
    public Tensor Min() => R(Reduce.Amin, [], false);

    /// <summary>Maximum over the given dimensions (values only).</summary>
    public Tensor Amax(ReadOnlySpan<long> dims, bool keepDim = false) => R(Reduce.Amax, dims, keepDim);

    /// <summary>Minimum over the given dimensions (values only).</summary>
    public Tensor Amin(ReadOnlySpan<long> dims, bool keepDim = false) => R(Reduce.Amin, dims, keepDim);

    /// <summary>Product of all elements.</summary>
    public Tensor Prod() => R(Reduce.Prod, [], false);

    /// <summary>Product over one dimension.</summary>
    public Tensor Prod(long dim, bool keepDim = false) => R(Reduce.Prod, [dim], keepDim);

    /// <summary>True if all elements are non-zero.</summary>
    public Tensor All() => R(Reduce.All, [], false);

    /// <summary>All over one dimension.</summary>
    public Tensor All(long dim, bool keepDim = false) => R(Reduce.All, [dim], keepDim);

    /// <summary>True if any element is non-zero.</summary>
    public Tensor Any() => R(Reduce.Any, [], false);

    /// <summary>Any over one dimension.</summary>
    public Tensor Any(long dim, bool keepDim = false) => R(Reduce.Any, [dim], keepDim);

    /// <summary>Standard deviation of all elements.</summary>
    public Tensor Std(bool unbiased = true) => R(Reduce.Std, [], false, unbiased ? 1 : 0);

    /// <summary>Standard deviation over dimensions.</summary>
    public Tensor Std(ReadOnlySpan<long> dims, bool unbiased = true, bool keepDim = false) =>
        R(Reduce.Std, dims, keepDim, unbiased ? 1 : 0);

    /// <summary>Variance of all elements.</summary>
    public Tensor Var(bool unbiased = true) => R(Reduce.Var, [], false, unbiased ? 1 : 0);

    /// <summary>Variance over dimensions.</summary>
    public Tensor Var(ReadOnlySpan<long> dims, bool unbiased = true, bool keepDim = false) =>
        R(Reduce.Var, dims, keepDim, unbiased ? 1 : 0);

    /// <summary>log(Σ exp(x)) over dimensions, computed stably.</summary>
    public Tensor LogSumExp(ReadOnlySpan<long> dims, bool keepDim = false) => R(Reduce.LogSumExp, dims, keepDim);

    /// <summary>Euclidean norm of all elements.</summary>
    public Tensor Norm() => R(Reduce.Norm, [], false);

    /// <summary>Euclidean norm over dimensions.</summary>
    public Tensor Norm(ReadOnlySpan<long> dims, bool keepDim = false) => R(Reduce.Norm, dims, keepDim);

    /// <summary>Index of the maximum of the flattened tensor.</summary>
    public Tensor ArgMax() => new(NativeMethods.mr_argmax(Handle, 0, 0, 0, 0));

    /// <summary>Indices of the maxima along a dimension.</summary>
    public Tensor ArgMax(long dim, bool keepDim = false) => new(NativeMethods.mr_argmax(Handle, dim, 1, keepDim ? 1 : 0, 0));

    /// <summary>Index of the minimum of the flattened tensor.</summary>
    public Tensor ArgMin() => new(NativeMethods.mr_argmax(Handle, 0, 0, 0, 1));

    /// <summary>Indices of the minima along a dimension.</summary>
    public Tensor ArgMin(long dim, bool keepDim = false) => new(NativeMethods.mr_argmax(Handle, dim, 1, keepDim ? 1 : 0, 1));

    /// <summary>Maxima along a dimension with their indices.</summary>
    public (Tensor Values, Tensor Indices) Max(long dim, bool keepDim = false)
    {
        Native.Check(NativeMethods.mr_max_dim(Handle, dim, keepDim ? 1 : 0, 0, out var v, out var i));
        return (new Tensor(v), new Tensor(i));
    }

    /// <summary>Minima along a dimension with their indices.</summary>
    public (Tensor Values, Tensor Indices) Min(long dim, bool keepDim = false)
    {
        Native.Check(NativeMethods.mr_max_dim(Handle, dim, keepDim ? 1 : 0, 1, out var v, out var i));
        return (new Tensor(v), new Tensor(i));
    }

    /// <summary>Cumulative sum along a dimension.</summary>
    public Tensor CumSum(long dim) => new(NativeMethods.mr_cumsum(Handle, dim));

    /// <summary>Matrix product with broadcasting (matmul semantics).</summary>
    public Tensor MatMul(Tensor other) => new(NativeMethods.mr_matmul(Handle, other.Handle));
}
