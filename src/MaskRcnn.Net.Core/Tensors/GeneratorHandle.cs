namespace MaskRcnn.Net.Core;

/// <summary>Owns one native <c>at::Generator*</c> created by <c>mr_generator_new</c>.</summary>
internal sealed class GeneratorHandle : NativeHandle
{
    /// <summary>A handle that stands for "the device's default generator".</summary>
    internal static readonly GeneratorHandle Default = new();

    /// <summary>Creates an empty, non-owning handle (used by the marshaller and for <see cref="Default"/>).</summary>
    public GeneratorHandle()
    {
    }

    internal GeneratorHandle(nint handle) : base(handle)
    {
    }

    /// <inheritdoc />
    protected override bool ReleaseHandle()
    {
        NativeMethods.mr_generator_free(handle);
        return true;
    }
}
