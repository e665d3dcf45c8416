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
        ["MaskRcnn.Net.Cli"] = ["MaskRcnn.Net", "MaskRcnn.Net.DependencyInjection"],
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
