using System.Runtime.InteropServices;

namespace MaskRcnn.Net.Core;

/// <summary>
/// Base of the shim's owned pointers: zero is invalid, and the parameterless constructor makes the empty, non-owning
/// handle the marshaller and the "none" sentinels use.
/// </summary>
internal abstract class NativeHandle : SafeHandle
{
    /// <summary>Creates an empty, non-owning handle.</summary>
    protected NativeHandle() : base(0, ownsHandle: false)
    {
    }

    /// <summary>Takes ownership of a pointer returned by the shim.</summary>
    protected NativeHandle(nint handle) : base(0, ownsHandle: true) => SetHandle(handle);

    /// <inheritdoc />
    public override bool IsInvalid => handle == 0;
}
