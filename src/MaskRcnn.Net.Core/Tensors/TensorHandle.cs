namespace MaskRcnn.Net.Core;

/// <summary>Owns one native <c>at::Tensor*</c>; releasing it drops libtorch's reference to the storage.</summary>
internal sealed class TensorHandle : NativeHandle
{
    /// <summary>A handle that stands for "no tensor" (an optional argument left out).</summary>
    internal static readonly TensorHandle Null = new();

    /// <summary>Creates an empty, non-owning handle (used by the marshaller and for <see cref="Null"/>).</summary>
    public TensorHandle()
    {
    }

    internal TensorHandle(nint handle) : base(handle)
    {
    }

    /// <inheritdoc />
    protected override bool ReleaseHandle()
    {
        NativeMethods.mr_tensor_free(handle);
        return true;
    }
}
