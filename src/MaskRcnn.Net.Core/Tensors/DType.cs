namespace MaskRcnn.Net.Core;

/// <summary>Element types of tensors. The values are libtorch's <c>c10::ScalarType</c> codes.</summary>
public enum DType
{
    /// <summary>8-bit unsigned integer (images).</summary>
    UInt8 = 0,

    /// <summary>8-bit signed integer.</summary>
    Int8 = 1,

    /// <summary>16-bit signed integer.</summary>
    Int16 = 2,

    /// <summary>32-bit signed integer.</summary>
    Int32 = 3,

    /// <summary>64-bit signed integer (indices, labels).</summary>
    Int64 = 4,

    /// <summary>IEEE half precision.</summary>
    Float16 = 5,

    /// <summary>IEEE single precision (the default).</summary>
    Float32 = 6,

    /// <summary>IEEE double precision.</summary>
    Float64 = 7,

    /// <summary>Boolean (masks).</summary>
    Bool = 11,

    /// <summary>Brain floating point (bfloat16).</summary>
    BFloat16 = 15,
}

/// <summary>Facts about <see cref="DType"/> values and the .NET types that map to them.</summary>
public static class DTypeInfo
{
    /// <summary>Size of one element in bytes.</summary>
    public static int ElementSize(this DType dtype) => dtype switch
    {
        DType.UInt8 or DType.Int8 or DType.Bool => 1,
        DType.Int16 or DType.Float16 or DType.BFloat16 => 2,
        DType.Int32 or DType.Float32 => 4,
        DType.Int64 or DType.Float64 => 8,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown dtype"),
    };

    /// <summary>True for floating-point types.</summary>
    public static bool IsFloatingPoint(this DType dtype) =>
        dtype is DType.Float16 or DType.Float32 or DType.Float64 or DType.BFloat16;

    /// <summary>True for the 16-bit floating-point types (bfloat16, float16) reduced-precision prediction computes in.</summary>
    public static bool IsReducedFloat(this DType dtype) => dtype is DType.BFloat16 or DType.Float16;

    /// <summary>The dtype that holds elements of the .NET type <typeparamref name="T"/>.</summary>
    public static DType Of<T>() where T : unmanaged
    {
        var t = typeof(T);
        if (t == typeof(float)) return DType.Float32;
        if (t == typeof(double)) return DType.Float64;
        if (t == typeof(long)) return DType.Int64;
        if (t == typeof(int)) return DType.Int32;
        if (t == typeof(byte)) return DType.UInt8;
        if (t == typeof(bool)) return DType.Bool;
        if (t == typeof(Half)) return DType.Float16;
        if (t == typeof(short)) return DType.Int16;
        if (t == typeof(sbyte)) return DType.Int8;
        throw new NotSupportedException($"no tensor dtype for .NET type {t.Name}");
    }
}
