namespace MaskRcnn.Net.Core;

/// <summary>Kinds of device a tensor can live on (libtorch's <c>c10::DeviceType</c> codes).</summary>
public enum DeviceType
{
    /// <summary>Host memory.</summary>
    Cpu = 0,

    /// <summary>An NVIDIA GPU.</summary>
    Cuda = 1,
}

/// <summary>A device: CPU, or a CUDA GPU with its index.</summary>
/// <param name="Type">The kind of device.</param>
/// <param name="Index">Device index; -1 for "the current one" (always -1 on the CPU).</param>
public readonly record struct Device(DeviceType Type, int Index = -1)
{
    /// <summary>The CPU.</summary>
    public static Device Cpu { get; } = new(DeviceType.Cpu);

    /// <summary>The CUDA device with the given index.</summary>
    public static Device Cuda(int index = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        return new Device(DeviceType.Cuda, index);
    }

    /// <summary>Number of CUDA devices libtorch can use (0 for a CPU-only libtorch).</summary>
    public static int CudaDeviceCount => NativeMethods.mr_cuda_device_count();

    /// <summary>True when at least one CUDA device is usable.</summary>
    public static bool IsCudaAvailable => CudaDeviceCount > 0;

    /// <summary>Parses "cpu", "cuda" or "cuda:N".</summary>
    public static Device Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var s = text.Trim().ToLowerInvariant();
        if (s == "cpu") return Cpu;
        if (s == "cuda") return Cuda(0);
        if (s.StartsWith("cuda:", StringComparison.Ordinal) && int.TryParse(s.AsSpan(5), out var i) && i >= 0)
        {
            return Cuda(i);
        }

        throw new FormatException($"'{text}' is not a device (expected cpu, cuda or cuda:N)");
    }

    /// <inheritdoc />
    public override string ToString() => Type == DeviceType.Cpu ? "cpu" : Index < 0 ? "cuda" : $"cuda:{Index}";
}
