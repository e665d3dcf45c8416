using System.Reflection;
using System.Xml.Linq;

namespace MaskRcnn.Net.Abstractions.Tests;

/// <summary>The project graph of docs/architecture.md, checked against the project files.</summary>
public class ArchitectureTests
{
    private const string Training = "MaskRcnn.Net.Training";
    private const string Heads = "MaskRcnn.Net.Heads";

    /// <summary>
    /// The assemblies an app that only predicts loads: none of them may reach Training, directly or through another
    /// project.
    /// </summary>
    private static readonly string[] InferenceSide =
    [
        "MaskRcnn.Net", "MaskRcnn.Net.Heads", "MaskRcnn.Net.Backbones", "MaskRcnn.Net.RoIAlign", "MaskRcnn.Net.Core",
        "MaskRcnn.Net.Abstractions", "MaskRcnn.Net.DependencyInjection", Onnx, Video,
    ];

    /// <summary>The ONNX Runtime package: predicts without libtorch, so nothing in its closure may bring libtorch or the shim.</summary>
    private const string Onnx = "MaskRcnn.Net.Onnx";

    /// <summary>The video package: runs the system ffmpeg as a child process, so it needs no package and no native code of ours.</summary>
    private const string Video = "MaskRcnn.Net.Video";

    /// <summary>The packages each adapter may depend on (its image library; SkiaSharp's native Skia, never libtorch).</summary>
    private static readonly Dictionary<string, string[]> AdapterPackages = new()
    {
        ["MaskRcnn.Net.ImageSharp"] = ["SixLabors.ImageSharp"],
        ["MaskRcnn.Net.SkiaSharp"] = ["SkiaSharp", "SkiaSharp.NativeAssets.Linux.NoDependencies"],
    };

    private static string Root()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "MaskRcnn.Net.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("repository root (MaskRcnn.Net.sln) not found above " + AppContext.BaseDirectory);
    }

    private static Dictionary<string, string> ProjectFiles() =>
        Directory.GetFiles(Path.Combine(Root(), "src"), "*.csproj", SearchOption.AllDirectories).ToDictionary(p => Path.GetFileNameWithoutExtension(p));

    /// <summary>The direct project references of every library under src/, read from the project files.</summary>
    private static Dictionary<string, string[]> ActualGraph() =>
        ProjectFiles().ToDictionary(kv => kv.Key, kv => XDocument.Load(kv.Value).Descendants("ProjectReference")
            .Select(e => Path.GetFileNameWithoutExtension(e.Attribute("Include")!.Value.Replace('\\', '/'))).ToArray());

    /// <summary>
    /// The graph drawn in docs/architecture.md: the table between <c>&lt;!-- project-references</c> and
    /// <c>&lt;!-- /project-references --&gt;</c>, one row "| project | reference, reference |" per library ("—": none).
    /// </summary>
    private static Dictionary<string, string[]> DocumentedGraph()
    {
        var path = Path.Combine(Root(), "docs", "architecture.md");
        var lines = File.ReadAllLines(path);
        var start = Array.FindIndex(lines, l => l.StartsWith("<!-- project-references", StringComparison.Ordinal));
        var end = Array.FindIndex(lines, l => l.StartsWith("<!-- /project-references", StringComparison.Ordinal));
        if (start < 0 || end < start)
        {
            throw new InvalidOperationException($"{path} has no <!-- project-references --> ... <!-- /project-references --> table");
        }

        var graph = new Dictionary<string, string[]>();
        foreach (var line in lines[(start + 1)..end])
        {
            var cells = line.Trim().Trim('|').Split('|').Select(c => c.Trim()).ToArray();
            if (cells.Length != 2)
            {
                throw new InvalidOperationException($"{path}: a project-references row needs two cells: '{line}'");
            }

            if (cells[0] == "project" || cells[0].All(c => c is '-' or ':'))
            {
                continue; // header and separator
            }

            graph.Add(cells[0], cells[1] == "—" ? [] : cells[1].Split(',').Select(r => r.Trim()).ToArray());
        }

        return graph;
    }

    /// <summary>Every project reachable from <paramref name="project"/> through project references (itself excluded).</summary>
    private static HashSet<string> Reachable(IReadOnlyDictionary<string, string[]> graph, string project)
    {
        var seen = new HashSet<string>();
        var stack = new Stack<string>(graph.GetValueOrDefault(project, []));
        while (stack.TryPop(out var next))
        {
            if (seen.Add(next))
            {
                foreach (var r in graph.GetValueOrDefault(next, []))
                {
                    stack.Push(r);
                }
            }
        }

        return seen;
    }

    /// <summary>The layering rules of issue 13, as messages naming each broken one (empty when the graph keeps them).</summary>
    private static List<string> LayeringViolations(IReadOnlyDictionary<string, string[]> graph)
    {
        var violations = InferenceSide.Where(p => Reachable(graph, p).Contains(Training))
            .Select(p => $"{p} reaches {Training} (directly or through another project): an app that only predicts would load the trainer")
            .ToList();
        if (graph.GetValueOrDefault(Training, []).Contains(Heads))
        {
            violations.Add($"{Training} references {Heads} directly: the trainer works on Core's ITrainableDetector, not on a model's parts");
        }

        violations.AddRange(graph.Keys.Where(p => Reachable(graph, p).Contains(p)).Select(p => $"{p} depends on itself (a cycle)"));
        return violations;
    }

    [Fact]
    public void Project_references_equal_the_graph_in_the_architecture_document()
    {
        var documented = DocumentedGraph();
        var actual = ActualGraph();
        actual.Keys.Should().BeEquivalentTo(documented.Keys, "every library under src/ has its row in docs/architecture.md and every row is a library");
        foreach (var (name, references) in actual)
        {
            references.Should().BeEquivalentTo(documented[name], $"{name}'s project references must be the ones docs/architecture.md lists");
        }

        var abstractions = XDocument.Load(ProjectFiles()["MaskRcnn.Net.Abstractions"]);
        abstractions.Descendants("PackageReference").Should().BeEmpty("the libtorch-free assembly has no package dependency");
        abstractions.Descendants("Import").Should().BeEmpty("nor the native shim's build");
    }

    [Fact]
    public void Inference_side_never_reaches_Training_and_Training_does_not_reference_Heads()
    {
        var actual = ActualGraph();
        actual.Keys.Should().Contain(InferenceSide).And.Contain(Training);
        LayeringViolations(actual).Should().BeEmpty("the project files must keep the layering");
        LayeringViolations(DocumentedGraph()).Should().BeEmpty("the documented graph must keep the layering too (it is not the place to allow an exception)");
    }

    [Theory]
    [InlineData("MaskRcnn.Net.DependencyInjection", Training, "MaskRcnn.Net.DependencyInjection reaches MaskRcnn.Net.Training")]
    [InlineData("MaskRcnn.Net.Backbones", "MaskRcnn.Net.Cli", "MaskRcnn.Net.Backbones reaches MaskRcnn.Net.Training")] // transitively, through the CLI
    [InlineData("MaskRcnn.Net.Core", "MaskRcnn.Net.Cli", "MaskRcnn.Net reaches MaskRcnn.Net.Training")] // and everything above Core with it
    [InlineData(Training, Heads, "MaskRcnn.Net.Training references MaskRcnn.Net.Heads directly")]
    public void The_layering_rules_catch_a_wrong_edge(string from, string to, string expected)
    {
        var graph = ActualGraph();
        graph[from] = [.. graph[from], to];
        LayeringViolations(graph).Should().Contain(v => v.StartsWith(expected, StringComparison.Ordinal));
    }

    [Fact]
    public void The_image_adapters_closure_holds_no_libtorch_and_no_shim()
    {
        var src = Path.Combine(Root(), "src");
        var projects = Directory.GetFiles(src, "*.csproj", SearchOption.AllDirectories).ToDictionary(p => Path.GetFileNameWithoutExtension(p));
        foreach (var (adapter, packages) in AdapterPackages)
        {
            // Every project reachable through project references, and what each of them imports or references.
            var closure = new HashSet<string>();
            var pending = new Stack<string>([adapter]);
            while (pending.TryPop(out var name))
            {
                if (!closure.Add(name))
                {
                    continue;
                }

                foreach (var reference in XDocument.Load(projects[name]).Descendants("ProjectReference"))
                {
                    pending.Push(Path.GetFileNameWithoutExtension(reference.Attribute("Include")!.Value.Replace('\\', '/')));
                }
            }

            closure.Should().BeEquivalentTo([adapter, "MaskRcnn.Net.Abstractions"], $"{adapter} builds on the libtorch-free assembly alone");
            var project = XDocument.Load(projects[adapter]);
            project.Descendants("PackageReference").Select(e => e.Attribute("Include")!.Value).Should().BeSubsetOf(packages,
                $"{adapter} depends on its image library only (no TorchSharp/libtorch package)");
            project.Descendants("Import").Should().BeEmpty($"{adapter} does not import the native shim's build");
            var settings = project.Descendants().SelectMany(e => e.Attributes().Select(a => a.Value).Append(e.HasElements ? "" : e.Value));
            settings.Should().NotContain(v => v.Contains("libtorch", StringComparison.OrdinalIgnoreCase) || v.Contains("maskrcnn_native", StringComparison.OrdinalIgnoreCase)
                || v.Contains("MaskRcnn.Net.Native", StringComparison.Ordinal), $"{adapter} carries no libtorch or shim asset (comments aside)");
        }
    }

    [Fact]
    public void The_onnx_runtime_package_closure_holds_no_libtorch_and_no_shim()
    {
        var projects = ProjectFiles();
        var closure = new HashSet<string>();
        var pending = new Stack<string>([Onnx]);
        while (pending.TryPop(out var name))
        {
            if (closure.Add(name))
            {
                foreach (var reference in XDocument.Load(projects[name]).Descendants("ProjectReference"))
                {
                    pending.Push(Path.GetFileNameWithoutExtension(reference.Attribute("Include")!.Value.Replace('\\', '/')));
                }
            }
        }

        closure.Should().BeEquivalentTo([Onnx, "MaskRcnn.Net.Abstractions", "MaskRcnn.Net.SkiaSharp"],
            "the ONNX Runtime package builds on the libtorch-free assembly and the SkiaSharp decoder alone (no Core, no shim)");
        var allowed = new Dictionary<string, string[]>
        {
            [Onnx] = ["Microsoft.ML.OnnxRuntime"],
            ["MaskRcnn.Net.SkiaSharp"] = AdapterPackages["MaskRcnn.Net.SkiaSharp"],
            ["MaskRcnn.Net.Abstractions"] = [],
        };
        foreach (var name in closure)
        {
            var project = XDocument.Load(projects[name]);
            project.Descendants("PackageReference").Select(e => e.Attribute("Include")!.Value).Should().BeSubsetOf(allowed[name],
                $"{name} (in {Onnx}'s closure) brings no TorchSharp/libtorch package");
            project.Descendants("Import").Should().BeEmpty($"{name} (in {Onnx}'s closure) does not import the native shim's build");
            // Every setting but the package's prose (a description may say "libtorch-free").
            var settings = project.Descendants().Where(e => e.Name.LocalName is not ("Description" or "PackageTags"))
                .SelectMany(e => e.Attributes().Select(a => a.Value).Append(e.HasElements ? "" : e.Value));
            settings.Should().NotContain(v => v.Contains("libtorch", StringComparison.OrdinalIgnoreCase) || v.Contains("maskrcnn_native", StringComparison.OrdinalIgnoreCase)
                || v.Contains("MaskRcnn.Net.Native", StringComparison.Ordinal),
                $"{name} (in {Onnx}'s closure) carries no libtorch or shim asset (comments and descriptions aside)");
        }
    }

    [Fact]
    public void The_video_package_builds_on_the_abstractions_alone_with_no_package_and_no_shim()
    {
        var projects = ProjectFiles();
        var closure = new HashSet<string>();
        var pending = new Stack<string>([Video]);
        while (pending.TryPop(out var name))
        {
            if (closure.Add(name))
            {
                foreach (var reference in XDocument.Load(projects[name]).Descendants("ProjectReference"))
                {
                    pending.Push(Path.GetFileNameWithoutExtension(reference.Attribute("Include")!.Value.Replace('\\', '/')));
                }
            }
        }

        closure.Should().BeEquivalentTo([Video, "MaskRcnn.Net.Abstractions"],
            "the video package works with any IInstanceSegmenter (libtorch or ONNX Runtime), so it references the libtorch-free assembly alone");
        foreach (var name in closure)
        {
            var project = XDocument.Load(projects[name]);
            project.Descendants("PackageReference").Should().BeEmpty($"{name} (in {Video}'s closure) needs no package: ffmpeg is a system executable");
            project.Descendants("Import").Should().BeEmpty($"{name} (in {Video}'s closure) does not import the native shim's build");
        }
    }

    [Fact]
    public void The_abstractions_assembly_depends_on_nothing_but_the_runtime()
    {
        var assembly = typeof(ImageDetections).Assembly;
        assembly.GetName().Name.Should().Be("MaskRcnn.Net.Abstractions");
        assembly.GetReferencedAssemblies().Select(a => a.Name).Should().OnlyContain(n => n!.StartsWith("System") || n == "netstandard",
            "no libtorch, no shim, no package: the ONNX Runtime package builds on this");
        var nativeImports = assembly.GetTypes().SelectMany(t => t.GetMethods(BindingFlags.Static | BindingFlags.NonPublic | BindingFlags.Public | BindingFlags.DeclaredOnly))
            .Where(m => m.Attributes.HasFlag(MethodAttributes.PinvokeImpl)).Select(m => $"{m.DeclaringType}.{m.Name}");
        nativeImports.Should().BeEmpty("it calls no native code");
        foreach (var type in new[] { typeof(Detection), typeof(Core.Masks.BinaryMask), typeof(Core.Masks.Rle), typeof(Core.Detection.BoundingBox), typeof(IInstanceSegmenter), typeof(ImageSource), typeof(DetectionPainter), typeof(Core.Masks.MaskPasting), typeof(DetectionPostprocessing), typeof(DuplicateSuppression) })
        {
            type.Assembly.Should().BeSameAs(assembly, $"{type.Name} is a libtorch-free type");
        }
    }
}
