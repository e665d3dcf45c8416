using System.Runtime.InteropServices;
using MaskRcnn.Net.Core.Tests.TestSupport;

namespace MaskRcnn.Net.Tests;

/// <summary>
/// How the native shim is found in the layouts a NuGet consumer gets, and what a user sees when libtorch is missing.
/// The end-to-end consumer check (pack, fresh console app, predict) is scripts/smoke-test.sh, run by scripts/test.sh.
/// </summary>
public class PackagingTests
{
    private const string Shim = "libmaskrcnn_native.so";

    [Fact]
    public void Shim_is_probed_in_the_nuget_layouts_first()
    {
        var candidates = NativeLoader.CandidatePaths(["/app/bin/", "/app/bin", "/pkg/lib/net10.0"], "linux-x64", Shim);

        // No RuntimeIdentifier: NuGet copies runtimes/linux-x64/native/ under bin/; with one: the file lands in bin/.
        candidates.Should().Equal(
            "/app/bin/runtimes/linux-x64/native/" + Shim,
            "/app/bin/" + Shim,
            "/pkg/lib/net10.0/runtimes/linux-x64/native/" + Shim,
            "/pkg/lib/net10.0/" + Shim);
        NativeLoader.CandidatePaths(["", "/app"], "linux-x64", Shim).Should().HaveCount(2, "empty directories are skipped");
    }

    [Fact]
    public void This_process_loaded_the_shim_from_runtimes_linux_x64_native_under_its_base_directory()
    {
        Torch.NumThreads.Should().BePositive(); // forces the shim to load
        var expected = Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", Shim);
        NativeLoader.RuntimeFolder.Should().Be("linux-x64");
        File.ReadLines("/proc/self/maps").Should().Contain(l => l.EndsWith(" " + expected, StringComparison.Ordinal));
    }

    [Fact]
    public void Shim_next_to_the_assemblies_is_loaded_as_a_RuntimeIdentifier_build_places_it()
    {
        Torch.NumThreads.Should().BePositive();
        var dir = Directory.CreateTempSubdirectory("mr-loader-");
        try
        {
            // A symbolic link to the shim already loaded: the dynamic loader returns the same handle, no second copy.
            var real = Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", Shim);
            File.CreateSymbolicLink(Path.Combine(dir.FullName, Shim), real);
            var candidates = NativeLoader.CandidatePaths([dir.FullName], "linux-x64", Shim);

            NativeLoader.TryLoadFirst(candidates, out var handle, out var error).Should().BeTrue(error?.Message);
            handle.Should().NotBe(0);
        }
        finally
        {
            dir.Delete(true);
        }
    }

    [Fact]
    public void A_shim_whose_libtorch_is_missing_gives_one_clear_exception_naming_what_to_install()
    {
        // A stand-in shim linked against a libtorch that is not there, so the real dynamic loader fails exactly as it
        // does on a machine without libtorch (the real shim needs libtorch_cpu.so.1.13 etc.).
        var dir = Directory.CreateTempSubdirectory("mr-nolibtorch-");
        try
        {
            File.WriteAllText(Path.Combine(dir.FullName, "dep.c"), "int mr_stub_dep(void) { return 1; }\n");
            File.WriteAllText(Path.Combine(dir.FullName, "shim.c"), "int mr_stub_dep(void);\nint mr_last_error(void) { return mr_stub_dep(); }\n");
            Cc(dir.FullName, "-shared", "-fPIC", "-o", "libtorch_cpu.so.99", "-Wl,-soname,libtorch_cpu.so.99", "dep.c");
            var native = Directory.CreateDirectory(Path.Combine(dir.FullName, "runtimes", "linux-x64", "native")).FullName;
            Cc(dir.FullName, "-shared", "-fPIC", "-o", Path.Combine(native, Shim), "shim.c", "-L.", "-l:libtorch_cpu.so.99");
            File.Delete(Path.Combine(dir.FullName, "libtorch_cpu.so.99"));
            var candidates = NativeLoader.CandidatePaths([dir.FullName], "linux-x64", Shim);

            NativeLoader.TryLoadFirst(candidates, out _, out var error).Should().BeFalse();
            var e = NativeLoader.Missing(Shim, candidates, error);

            e.Should().BeOfType<NativeLibraryMissingException>().Which.Should().BeAssignableTo<TorchException>();
            e.Message.Should().StartWith("libtorch is not installed").And.Contain("libtorch_cpu.so.99")
                .And.Contain("sudo apt-get install libtorch-dev").And.Contain("LIBTORCH_DIR");
            e.InnerException.Should().BeOfType<DllNotFoundException>();
        }
        finally
        {
            dir.Delete(true);
        }
    }

    [Fact]
    public void A_shim_of_another_ABI_version_is_refused_with_a_clear_message()
    {
        Torch.NumThreads.Should().BePositive();
        var real = NativeLibrary.Load(Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", Shim));
        FluentActions.Invoking(() => NativeLoader.CheckAbi(real, Shim)).Should().NotThrow("the shim built with these sources matches");
        Torch.NativeAbiVersion.Should().Be(NativeLoader.ExpectedAbiVersion);

        var dir = Directory.CreateTempSubdirectory("mr-abi-");
        try
        {
            File.WriteAllText(Path.Combine(dir.FullName, "old.c"), "int mr_abi_version(void) { return 1; }\n");
            File.WriteAllText(Path.Combine(dir.FullName, "other.c"), "int something_else(void) { return 1; }\n");
            Cc(dir.FullName, "-shared", "-fPIC", "-o", "libold.so", "old.c");
            Cc(dir.FullName, "-shared", "-fPIC", "-o", "libother.so", "other.c");

            var old = NativeLibrary.Load(Path.Combine(dir.FullName, "libold.so"));
            FluentActions.Invoking(() => NativeLoader.CheckAbi(old, Shim)).Should().Throw<NativeLibraryMissingException>()
                .Which.Message.Should().Contain("ABI version 1").And.Contain($"expects {NativeLoader.ExpectedAbiVersion}");
            var other = NativeLibrary.Load(Path.Combine(dir.FullName, "libother.so"));
            FluentActions.Invoking(() => NativeLoader.CheckAbi(other, Shim)).Should().Throw<NativeLibraryMissingException>()
                .Which.Message.Should().Contain("not a MaskRcnn.Net native shim");
        }
        finally
        {
            dir.Delete(true);
        }
    }

    [Theory]
    [InlineData("libjpeg.so.62: cannot open shared object file: No such file or directory", "libjpeg-turbo is not installed", "libjpeg.so.62")]
    [InlineData("libpng16.so.16: cannot open shared object file: No such file or directory", "libpng is not installed", "libpng16.so.16")]
    [InlineData("libc10.so.1.13: cannot open shared object file: No such file or directory", "libtorch is not installed", "libc10.so.1.13")]
    [InlineData("libgflags.so.2.2: cannot open shared object file: No such file or directory", "A library that the native shim", "libgflags.so.2.2")]
    [InlineData("/x/libmaskrcnn_native.so: invalid ELF header", "The native shim libmaskrcnn_native.so could not be loaded", "invalid ELF header")]
    public void Loader_errors_are_mapped_to_what_is_missing(string dlopenError, string start, string named)
    {
        var e = NativeLoader.Missing(Shim, ["/x/" + Shim], new DllNotFoundException("Unable to load shared library '/x/libmaskrcnn_native.so' or one of its dependencies.\n" + dlopenError));

        e.Message.Should().StartWith(start).And.Contain(named).And.EndWith(NativeLoader.InstallHint);
    }

    [Fact]
    public void A_missing_shim_says_where_it_was_looked_for_and_where_it_ships()
    {
        var e = NativeLoader.Missing(Shim, ["/app/runtimes/linux-x64/native/" + Shim, "/app/" + Shim], null);

        e.Message.Should().Contain("was not found").And.Contain("/app/runtimes/linux-x64/native/" + Shim)
            .And.Contain("MaskRcnn.Net.Core package").And.Contain("sudo apt-get install libtorch-dev");
        e.InnerException.Should().BeOfType<DllNotFoundException>();
    }

    private static void Cc(string workDir, params string[] args)
    {
        var r = PythonOracle.RunProcess("cc", args, workDir, TimeSpan.FromMinutes(1));
        r.ExitCode.Should().Be(0, $"cc {string.Join(' ', args)} failed (g++/gcc come with scripts/setup.sh): {r.Stderr}");
    }
}
