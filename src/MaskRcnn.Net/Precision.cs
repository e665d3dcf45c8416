using System.Runtime.Intrinsics.X86;
using MaskRcnn.Net.Core;

namespace MaskRcnn.Net;

/// <summary>
/// The number format prediction computes in (<see cref="GeneralizedRcnn.Precision"/>,
/// <see cref="MaskRcnnBuilder.WithPrecision"/>, <c>maskrcnn predict --precision</c>). Weights stay float32 in memory
/// and in files; training always runs in float32.
/// </summary>
public enum Precision
{
    /// <summary>float32 throughout (the default; matches torchvision within float tolerance).</summary>
    Float32 = 0,

    /// <summary>
    /// bfloat16 for the convolutions and fully connected layers of the backbone, FPN, RPN head, box head and mask head
    /// (8 bits of mantissa instead of 24); proposals, RoIAlign, box decoding, NMS and mask pasting stay float32. On a
    /// CPU this needs native bfloat16 instructions (AVX512_BF16 or AMX-BF16), where it runs several times faster than
    /// float32; detections differ slightly from float32 (see docs/benchmarks.md for the measured cost).
    /// </summary>
    BFloat16 = 1,
}

/// <summary>What each <see cref="Precision"/> needs and maps to.</summary>
public static class PrecisionSupport
{
    /// <summary>The tensor type activations are computed in.</summary>
    /// <param name="precision">The precision.</param>
    public static DType ComputeType(this Precision precision) => precision switch
    {
        Precision.Float32 => DType.Float32,
        Precision.BFloat16 => DType.BFloat16,
        _ => throw new ArgumentOutOfRangeException(nameof(precision), precision, "unknown precision"),
    };

    /// <summary>
    /// Whether this CPU executes bfloat16 natively: AVX512_BF16 (CPUID leaf 7 sub-leaf 1, EAX bit 5) or AMX-BF16
    /// (leaf 7 sub-leaf 0, EDX bit 22), with AVX-512 enabled by the operating system. Without them oneDNN would
    /// emulate bfloat16, slower than float32.
    /// </summary>
    public static bool CpuHasBFloat16
    {
        get
        {
            if (!X86Base.IsSupported || !Avx512F.IsSupported || X86Base.CpuId(0, 0).Eax < 7)
            {
                return false;
            }

            var avx512Bf16 = (X86Base.CpuId(7, 1).Eax & (1 << 5)) != 0;
            var amxBf16 = (X86Base.CpuId(7, 0).Edx & (1 << 22)) != 0;
            return avx512Bf16 || amxBf16;
        }
    }

    /// <summary>Throws when <paramref name="precision"/> cannot run fast on <paramref name="device"/>.</summary>
    /// <param name="precision">The precision asked for.</param>
    /// <param name="device">Where the model runs.</param>
    /// <exception cref="NotSupportedException">bfloat16 on a CPU without native bfloat16 instructions.</exception>
    public static void EnsureSupported(Precision precision, Device device)
    {
        _ = precision.ComputeType();
        if (precision == Precision.BFloat16 && device.Type == DeviceType.Cpu && !CpuHasBFloat16)
        {
            throw new NotSupportedException(
                "bfloat16 prediction needs a CPU with AVX512_BF16 or AMX-BF16 instructions (Intel Cooper Lake / Sapphire Rapids or " +
                "later, AMD Zen 4 or later); this CPU has neither, and emulated bfloat16 would be slower than float32. Use Precision.Float32 " +
                "(predict --precision fp32).");
        }
    }
}
