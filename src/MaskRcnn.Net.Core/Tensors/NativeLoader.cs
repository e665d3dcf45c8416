using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;

namespace MaskRcnn.Net.Core;

/// <summary>
/// Finds libmaskrcnn_native next to the managed assemblies and turns a missing shim or a missing libtorch into one
/// clear <see cref="NativeLibraryMissingException"/>. Looked-up places, in order, for the application directory and the
/// directory of MaskRcnn.Net.Core.dll: <c>runtimes/{rid}/native/</c> (a NuGet consumer built without a
/// RuntimeIdentifier, and this repository's own builds) and the directory itself (a consumer built or published for
/// a RuntimeIdentifier); then the runtime's ordinary probing (deps.json native paths, LD_LIBRARY_PATH).
/// </summary>
internal static partial class NativeLoader
{
    /// <summary>What to install when libtorch (or an image library the shim links) is missing.</summary>
    internal const string InstallHint =
        "On Debian 12 / Ubuntu: sudo apt-get install libtorch-dev libopenblas0-pthread libjpeg62-turbo libpng16-16 " +
        "(or set LIBTORCH_DIR to an official libtorch 2.x and rebuild the shim from source).";

#pragma warning disable CA2255 // the resolver must be in place before the first P/Invoke of this assembly
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void Register() =>
        NativeLibrary.SetDllImportResolver(typeof(NativeLoader).Assembly, Resolve);

    /// <summary>The shim's file name on this operating system.</summary>
    internal static string LibraryFileName => OperatingSystem.IsMacOS() ? "libmaskrcnn_native.dylib" : "libmaskrcnn_native.so";

    /// <summary>The runtimes/ folder name the shim is packaged under for this process.</summary>
    internal static string RuntimeFolder => RuntimeInformation.RuntimeIdentifier.StartsWith("linux", StringComparison.Ordinal)
        ? (RuntimeInformation.ProcessArchitecture == Architecture.Arm64 ? "linux-arm64" : "linux-x64")
        : RuntimeInformation.RuntimeIdentifier;

    private static nint Resolve(string name, Assembly assembly, DllImportSearchPath? searchPath)
    {
        if (name != NativeMethods.Lib)
        {
            return 0;
        }

        var file = LibraryFileName;
        var dirs = new[] { AppContext.BaseDirectory, Path.GetDirectoryName(assembly.Location) ?? "" };
        var candidates = CandidatePaths(dirs, RuntimeFolder, file);
        if (TryLoadFirst(candidates, out var handle, out var loadError)
            || NativeLibrary.TryLoad(file, assembly, searchPath, out handle))
        {
            CheckAbi(handle, file);
            NativeAllocator.Apply();
            NativeAllocator.InstallCache(handle);
            WinogradConvolution.ApplyEnvironment(handle);
            return handle;
        }

        throw Missing(file, candidates, loadError);
    }

    /// <summary>The shim ABI this assembly's P/Invoke declarations are written for (the shim's <c>mr_abi_version()</c>).</summary>
    internal const int ExpectedAbiVersion = 2;

    /// <summary>
    /// Refuses a shim built from other sources (a stale build, or packages of different versions mixed): its exports
    /// would be called with the wrong arguments.
    /// </summary>
    internal static unsafe void CheckAbi(nint library, string file)
    {
        if (!NativeLibrary.TryGetExport(library, "mr_abi_version", out var export))
        {
            throw new NativeLibraryMissingException($"{file} is not a MaskRcnn.Net native shim (it has no mr_abi_version export).");
        }

        var version = ((delegate* unmanaged<int>)export)();
        if (version != ExpectedAbiVersion)
        {
            throw new NativeLibraryMissingException(
                $"The native shim {file} has ABI version {version}, but this MaskRcnn.Net.Core expects {ExpectedAbiVersion}: " +
                "the shim and the managed assemblies come from different versions (rebuild with dotnet build, or use one package version).");
        }
    }

    /// <summary>The paths tried for the shim, most specific first, without duplicates.</summary>
    internal static IReadOnlyList<string> CandidatePaths(IEnumerable<string> directories, string runtimeFolder, string file) =>
        directories.Where(d => d.Length > 0)
            .SelectMany(d => new[] { Path.Combine(d, "runtimes", runtimeFolder, "native", file), Path.Combine(d, file) })
            .Select(Path.GetFullPath)
            .Distinct(StringComparer.Ordinal)
            .ToArray();

    /// <summary>
    /// Loads the first existing candidate. A candidate that exists but fails to load (typically: libtorch is not
    /// installed) is remembered in <paramref name="loadError"/> and the next one is tried.
    /// </summary>
    internal static bool TryLoadFirst(IEnumerable<string> candidates, out nint handle, out Exception? loadError)
    {
        loadError = null;
        foreach (var candidate in candidates)
        {
            if (!File.Exists(candidate))
            {
                continue;
            }

            try
            {
                handle = NativeLibrary.Load(candidate);
                return true;
            }
            catch (DllNotFoundException e)
            {
                loadError ??= e;
            }
            catch (BadImageFormatException e)
            {
                loadError ??= e;
            }
        }

        handle = 0;
        return false;
    }

    /// <summary>
    /// The exception for a shim that could not be loaded: <paramref name="loadError"/> is the dynamic loader's error
    /// for a shim file that exists (its missing dependency is named and mapped to the package to install), or null
    /// when no shim file was found at all.
    /// </summary>
    internal static NativeLibraryMissingException Missing(string file, IReadOnlyList<string> searched, Exception? loadError)
    {
        if (loadError is null)
        {
            return new NativeLibraryMissingException(
                $"The native shim {file} was not found (looked in: {string.Join(", ", searched)}). It ships in the " +
                "MaskRcnn.Net.Core package under runtimes/linux-x64/native/ (linux-x64 only); a source build makes it " +
                "with CMake (see docs/native-shim.md). It also needs libtorch. " + InstallHint,
                new DllNotFoundException(file));
        }

        var dependency = MissingDependency().Match(loadError.Message) is { Success: true } m ? m.Groups[1].Value : null;
        var what = dependency switch
        {
            null => $"The native shim {file} could not be loaded: {loadError.Message.Trim()}",
            _ when dependency.StartsWith("libtorch", StringComparison.Ordinal) || dependency.StartsWith("libc10", StringComparison.Ordinal) =>
                $"libtorch is not installed (or not on the library path): the native shim {file} needs {dependency}, which the dynamic loader could not find.",
            _ when dependency.StartsWith("libjpeg", StringComparison.Ordinal) =>
                $"libjpeg-turbo is not installed: the native shim {file} needs {dependency}, which the dynamic loader could not find.",
            _ when dependency.StartsWith("libpng", StringComparison.Ordinal) =>
                $"libpng is not installed: the native shim {file} needs {dependency}, which the dynamic loader could not find.",
            _ => $"A library that the native shim {file} needs is missing: {dependency} (a libtorch dependency; install libtorch with its dependencies).",
        };
        return new NativeLibraryMissingException($"{what} {InstallHint}", loadError);
    }

    [GeneratedRegex(@"(lib[\w+\-]+\.so[\w.]*): cannot open shared object file")]
    private static partial Regex MissingDependency();
}
