using System.Runtime.CompilerServices;
using System.Text.Json;
using MaskRcnn.Net.Core.Tests.TestSupport;

namespace MaskRcnn.Net.Core.Tests.Checkpoints;

/// <summary>Reference files written once per test run by make_checkpoints.py through the Python oracle.</summary>
public sealed class CheckpointFiles : IDisposable
{
    private readonly JsonDocument expected;

    public CheckpointFiles()
    {
        Dir = Directory.CreateTempSubdirectory("mr_ckpt_").FullName;
        Marker = Path.Combine(Dir, "CODE_WAS_EXECUTED");
        PythonOracle.Run(File.ReadAllText(ScriptPath), "make", Dir, Marker);
        expected = JsonDocument.Parse(File.ReadAllText(Path.Combine(Dir, "expected.json")));
    }

    /// <summary>The temp directory holding the generated files.</summary>
    public string Dir { get; }

    /// <summary>The file the malicious pickles would create if anything ran them.</summary>
    public string Marker { get; }

    /// <summary>The generator script committed next to the tests.</summary>
    public static string ScriptPath { get; } = FindScript();

    public string PathOf(string name) => Path.Combine(Dir, name);

    /// <summary>{"tensors": [[key, dtype, shape, values]...], "extras": {...}, "metadata": {...}} of one file.</summary>
    public JsonElement Expected(string name) => expected.RootElement.GetProperty(name);

    /// <summary>Runs the generator's independent safetensors reader on a file.</summary>
    public static JsonElement ReadSafeTensorsWithPython(string file)
    {
        var json = PythonOracle.Run(File.ReadAllText(ScriptPath), "read_safetensors", file);
        return JsonDocument.Parse(json).RootElement.Clone();
    }

    public void Dispose()
    {
        expected.Dispose();
        Directory.Delete(Dir, recursive: true);
    }

    private static string FindScript([CallerFilePath] string thisFile = "")
    {
        const string name = "make_checkpoints.py";
        var beside = Path.Combine(Path.GetDirectoryName(thisFile) ?? ".", name);
        if (File.Exists(beside))
        {
            return beside;
        }

        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "tests", "MaskRcnn.Net.Core.Tests", "Checkpoints", name);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new FileNotFoundException($"cannot find {name} next to {thisFile} or above {AppContext.BaseDirectory}");
    }

    /// <summary>Asserts a tensor equals a Python description [key, dtype, shape, values] exactly.</summary>
    public static void AssertTensor(Tensor actual, JsonElement description, string what)
    {
        var dtype = Enum.Parse<DType>(description[1].GetString()!);
        var shape = description[2].EnumerateArray().Select(e => e.GetInt64()).ToArray();
        var values = description[3];
        actual.DType.Should().Be(dtype, what);
        actual.Shape.Should().Equal(shape, what);
        actual.Device.Should().Be(Device.Cpu, what);
        if (dtype.IsFloatingPoint())
        {
            actual.ToArray<double>().Should().Equal(values.EnumerateArray().Select(e => e.GetDouble()), what);
        }
        else
        {
            actual.ToArray<long>().Should().Equal(values.EnumerateArray().Select(e => e.GetInt64()), what);
        }
    }

    /// <summary>Asserts a non-tensor value equals its JSON form.</summary>
    public static void AssertExtra(object? actual, JsonElement expected, string what)
    {
        switch (expected.ValueKind)
        {
            case JsonValueKind.Null:
                actual.Should().BeNull(what);
                break;
            case JsonValueKind.True:
            case JsonValueKind.False:
                actual.Should().Be(expected.GetBoolean(), what);
                break;
            case JsonValueKind.String:
                actual.Should().Be(expected.GetString(), what);
                break;
            case JsonValueKind.Number when actual is long l:
                l.Should().Be(expected.GetInt64(), what);
                break;
            case JsonValueKind.Number:
                actual.Should().BeOfType<double>(what).Which.Should().Be(expected.GetDouble(), what);
                break;
            default:
                throw new Xunit.Sdk.XunitException($"{what}: unexpected JSON {expected.GetRawText()}");
        }
    }
}

[CollectionDefinition(Name)]
public sealed class CheckpointCollection : ICollectionFixture<CheckpointFiles>
{
    public const string Name = "Checkpoints";
}
