using System.Reflection;
using System.Xml.Linq;

namespace MaskRcnn.Net.Abstractions.Tests;

/// <summary>The project graph of docs/architecture.md, checked against the project files.</summary>
public class ArchitectureTests
{
    /// <summary>
    /// The allowed project references between the libraries under src/ (direct references only). Anything else fails
    /// the test: a new edge must be argued in docs/architecture.md first.
    /// </summary>
    private static readonly Dictionary<string, string[]> Allowed = new()
    {
        ["MaskRcnn.Net.Abstractions"] = [],
        ["MaskRcnn.Net.Core"] = ["MaskRcnn.Net.Abstractions"],
        ["MaskRcnn.Net.RoIAlign"] = ["MaskRcnn.Net.Core"],
        ["MaskRcnn.Net.Backbones"] = ["MaskRcnn.Net.Core"],
        ["MaskRcnn.Net.Heads"] = ["MaskRcnn.Net.Core", "MaskRcnn.Net.RoIAlign"],
        // Training -> Heads (for DetectionTarget and LossDictionary) and the facade -> Training (for TrainingRecipe and
        // ModelEvaluation) are the two edges issue 13 still has to remove.
        ["MaskRcnn.Net.Training"] = ["MaskRcnn.Net.Core", "MaskRcnn.Net.Heads"],
        ["MaskRcnn.Net"] = ["MaskRcnn.Net.Core", "MaskRcnn.Net.RoIAlign", "MaskRcnn.Net.Backbones", "MaskRcnn.Net.Heads", "MaskRcnn.Net.Training"],
        ["MaskRcnn.Net.DependencyInjection"] = ["MaskRcnn.Net"],
        ["MaskRcnn.Net.Cli"] = ["MaskRcnn.Net"],
        // Input adapters: on the libtorch-free assembly only, so every runtime (libtorch, ONNX Runtime) can take their images.
        ["MaskRcnn.Net.ImageSharp"] = ["MaskRcnn.Net.Abstractions"],
        ["MaskRcnn.Net.SkiaSharp"] = ["MaskRcnn.Net.Abstractions"],
    };

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

    [Fact]
    public void Project_references_follow_the_documented_graph()
    {
        var src = Path.Combine(Root(), "src");
        var projects = Directory.GetFiles(src, "*.csproj", SearchOption.AllDirectories).ToDictionary(p => Path.GetFileNameWithoutExtension(p));
        projects.Keys.Should().BeEquivalentTo(Allowed.Keys, "every library under src/ has its place in the graph (docs/architecture.md)");
        foreach (var (name, path) in projects)
        {
            var references = XDocument.Load(path).Descendants("ProjectReference")
                .Select(e => Path.GetFileNameWithoutExtension(e.Attribute("Include")!.Value.Replace('\\', '/'))).ToArray();
            references.Should().BeSubsetOf(Allowed[name], $"{name}'s project references must follow docs/architecture.md");
        }

        var abstractions = XDocument.Load(projects["MaskRcnn.Net.Abstractions"]);
        abstractions.Descendants("PackageReference").Should().BeEmpty("the libtorch-free assembly has no package dependency");
        abstractions.Descendants("Import").Should().BeEmpty("nor the native shim's build");
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
    public void The_abstractions_assembly_depends_on_nothing_but_the_runtime()
    {
        var assembly = typeof(ImageDetections).Assembly;
        assembly.GetName().Name.Should().Be("MaskRcnn.Net.Abstractions");
        assembly.GetReferencedAssemblies().Select(a => a.Name).Should().OnlyContain(n => n!.StartsWith("System") || n == "netstandard",
            "no libtorch, no shim, no package: the ONNX Runtime package builds on this");
        var nativeImports = assembly.GetTypes().SelectMany(t => t.GetMethods(BindingFlags.Static | BindingFlags.NonPublic | BindingFlags.Public | BindingFlags.DeclaredOnly))
            .Where(m => m.Attributes.HasFlag(MethodAttributes.PinvokeImpl)).Select(m => $"{m.DeclaringType}.{m.Name}");
        nativeImports.Should().BeEmpty("it calls no native code");
        foreach (var type in new[] { typeof(Detection), typeof(Core.Masks.BinaryMask), typeof(Core.Masks.Rle), typeof(Core.Detection.BoundingBox), typeof(IInstanceSegmenter), typeof(ImageSource), typeof(DetectionPainter), typeof(Core.Masks.MaskPasting) })
        {
            type.Assembly.Should().BeSameAs(assembly, $"{type.Name} is a libtorch-free type");
        }
    }
}
