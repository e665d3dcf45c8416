using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace MaskRcnn.Net.Core;

/// <summary>
/// Finds libmaskrcnn_native next to the managed assemblies (<c>runtimes/linux-x64/native/</c>) and turns a missing
/// libtorch into one clear <see cref="NativeLibraryMissingException"/>.
/// </summary>
internal static class NativeLoader
{
    private const string InstallHint =
        "MaskRcnn.Net needs libtorch. On Debian/Ubuntu: sudo apt-get install libtorch-dev libopenblas0-pthread " +
        "libjpeg62-turbo libpng16-16 (or set LIBTORCH_DIR to an official libtorch 2.x and rebuild the shim).";

#pragma warning disable CA2255 // the resolver must be in place before the first P/Invoke of this assembly
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void Register() =>
        NativeLibrary.SetDllImportResolver(typeof(NativeLoader).Assembly, Resolve);

    private static nint Resolve(string name, Assembly assembly, DllImportSearchPath? searchPath)
    {
        if (name != NativeMethods.Lib)
        {
            return 0;
        }

        var file = OperatingSystem.IsMacOS() ? "libmaskrcnn_native.dylib" : "libmaskrcnn_native.so";
        var rid = RuntimeInformation.RuntimeIdentifier.StartsWith("linux", StringComparison.Ordinal)
            ? (RuntimeInformation.ProcessArchitecture == Architecture.Arm64 ? "linux-arm64" : "linux-x64")
            : RuntimeInformation.RuntimeIdentifier;
        var dirs = new[] { AppContext.BaseDirectory, Path.GetDirectoryName(assembly.Location) ?? "" };
        Exception? lastError = null;
        foreach (var dir in dirs.Where(d => d.Length > 0).Distinct())
        {
            foreach (var candidate in new[] { Path.Combine(dir, "runtimes", rid, "native", file), Path.Combine(dir, file) })
            {
                if (!File.Exists(candidate))
                {
                    continue;
                }

                try
                {
                    return NativeLibrary.Load(candidate);
                }
                catch (DllNotFoundException e)
                {
                    lastError = e;
                }
            }
        }

        if (NativeLibrary.TryLoad(file, assembly, searchPath, out var h))
        {
            return h;
        }

        throw new NativeLibraryMissingException(
            lastError is null
                ? $"The native shim {file} was not found next to {assembly.GetName().Name}. {InstallHint}"
                : $"The native shim {file} could not be loaded: {lastError.Message}. {InstallHint}",
            lastError ?? new DllNotFoundException(file));
    }
}
