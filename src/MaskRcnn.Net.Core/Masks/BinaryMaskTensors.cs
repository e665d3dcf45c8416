namespace MaskRcnn.Net.Core.Masks;

/// <summary>Conversions between <see cref="BinaryMask"/> (plain .NET) and [H, W] tensors.</summary>
public static class BinaryMaskTensors
{
    /// <summary>
    /// A mask from an [H, W] tensor of dtype <see cref="DType.Bool"/> or <see cref="DType.UInt8"/> on any device
    /// (a pixel is set when its value is non-zero). Other dtypes are rejected: threshold probabilities first.
    /// </summary>
    public static BinaryMask ToBinaryMask(this Tensor mask)
    {
        ArgumentNullException.ThrowIfNull(mask);
        var shape = mask.Shape;
        if (shape.Length != 2)
        {
            throw new ArgumentException($"mask must be an [H, W] tensor, got shape [{string.Join(", ", shape)}]", nameof(mask));
        }

        var dtype = mask.DType;
        if (dtype is not (DType.Bool or DType.UInt8))
        {
            throw new ArgumentException($"mask must have dtype Bool or UInt8, got {dtype}", nameof(mask));
        }

        if (shape[0] > int.MaxValue || shape[1] > int.MaxValue || shape[0] * shape[1] > int.MaxValue)
        {
            throw new ArgumentException($"mask of {shape[0]}x{shape[1]} pixels is too large", nameof(mask));
        }

        var values = mask.ToArray<byte>();
        return BinaryMask.FromBytes(values, (int)shape[0], (int)shape[1]);
    }

    /// <summary>
    /// The mask as a new [H, W] tensor of <paramref name="dtype"/> (default <see cref="DType.Bool"/>; numeric
    /// dtypes get 1 and 0) on <paramref name="device"/> (default CPU).
    /// </summary>
    public static Tensor ToTensor(this BinaryMask mask, DType dtype = DType.Bool, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(mask);
        ReadOnlySpan<long> shape = [mask.Height, mask.Width];
        if (dtype == DType.Bool)
        {
            return Tensor.FromSpan<bool>(mask.ToBools(), shape, device);
        }

        if (dtype == DType.UInt8)
        {
            return Tensor.FromSpan<byte>(mask.ToBytes(), shape, device);
        }

        using var bytes = Tensor.FromSpan<byte>(mask.ToBytes(), shape, device);
        return bytes.To(dtype);
    }
}
