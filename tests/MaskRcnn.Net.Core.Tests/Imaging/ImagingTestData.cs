using System.Text.Json;
using MaskRcnn.Net.Core.Tests.TestSupport;

namespace MaskRcnn.Net.Core.Tests.Imaging;

/// <summary>Locates the imaging test data in the source tree (the test project does not copy it to the output).</summary>
public static class ImagingTestData
{
    private static readonly Lazy<string> Root = new(() =>
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "MaskRcnn.Net.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"cannot find MaskRcnn.Net.sln above {AppContext.BaseDirectory}");
    });

    /// <summary>tests/MaskRcnn.Net.Core.Tests/Imaging/data in the repository.</summary>
    public static string DataDir => Path.Combine(Root.Value, "tests", "MaskRcnn.Net.Core.Tests", "Imaging", "data");

    /// <summary>The real grayscale MRI JPEGs copied from the brain-tumor dataset.</summary>
    public static string[] MriJpegs => Directory.GetFiles(DataDir, "*.jpg").Order(StringComparer.Ordinal).ToArray();

    /// <summary>Asserts that a decoded image has exactly the expected shape and bytes, naming the first mismatch.</summary>
    public static void AssertPixels(Tensor actual, long[] shape, byte[] expected, string what)
    {
        actual.DType.Should().Be(DType.UInt8, what);
        actual.Shape.Should().Equal(shape, $"{what}: shape");
        actual.IsContiguous.Should().BeTrue(what);
        var bytes = actual.ToBytes();
        bytes.Length.Should().Be(expected.Length, what);
        var mismatches = 0;
        var first = -1;
        for (var i = 0; i < bytes.Length; i++)
        {
            if (bytes[i] != expected[i])
            {
                mismatches++;
                first = first < 0 ? i : first;
            }
        }

        if (mismatches > 0)
        {
            var plane = shape[1] * shape[2];
            throw new Xunit.Sdk.XunitException(
                $"{what}: {mismatches} of {bytes.Length} values differ; first at channel {first / plane}, row " +
                $"{first % plane / shape[2]}, column {first % shape[2]}: {bytes[first]} instead of {expected[first]}");
        }
    }
}

/// <summary>One oracle case: an image file, a read mode and the expected CHW pixels.</summary>
public sealed record OracleImageCase(string Name, string File, string Mode, long[] Shape, string Source);

/// <summary>Runs data/oracle_images.py once (torchvision 0.14 + Pillow) and holds the cases it wrote.</summary>
public sealed class OracleImageCases : IDisposable
{
    public OracleImageCases()
    {
        Dir = Directory.CreateTempSubdirectory("mr_image_oracle_").FullName;
        var script = File.ReadAllText(Path.Combine(ImagingTestData.DataDir, "oracle_images.py"));
        PythonOracle.Run(script, Dir, ImagingTestData.DataDir);
        var options = new JsonSerializerOptions { PropertyNameCaseInsensitive = true };
        Cases = JsonSerializer.Deserialize<List<OracleImageCase>>(File.ReadAllText(Path.Combine(Dir, "manifest.json")), options)!;
    }

    /// <summary>The temporary directory holding the generated images.</summary>
    public string Dir { get; }

    /// <summary>All generated cases.</summary>
    public IReadOnlyList<OracleImageCase> Cases { get; }

    /// <summary>The expected pixels of a case.</summary>
    public byte[] Expected(OracleImageCase c) => File.ReadAllBytes(Path.Combine(Dir, c.Name + ".ref"));

    public void Dispose() => Directory.Delete(Dir, recursive: true);
}
