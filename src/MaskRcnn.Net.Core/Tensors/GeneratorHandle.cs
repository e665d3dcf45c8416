using System.Runtime.InteropServices;

namespace MaskRcnn.Net.Core;

/// <summary>Owns one native <c>at::Generator*</c> created by <c>mr_generator_new</c>.</summary>
internal sealed class GeneratorHandle : SafeHandle
{
    /// <summary>A handle that stands for "the device's default generator".</summary>
    internal static readonly GeneratorHandle Default = new();

    /// <summary>Creates an empty, non-owning handle (used by the marshaller and for <see cref="Default"/>).</summary>
    public GeneratorHandle() : base(0, ownsHandle: false)
    {
    }

    internal GeneratorHandle(nint handle) : base(0, ownsHandle: true) => SetHandle(handle);

    /// <inheritdoc />
    public override bool IsInvalid => handle == 0;

    /// <inheritdoc />
    protected override bool ReleaseHandle()
    {
        NativeMethods.mr_generator_free(handle);
        return true;
    }
}
