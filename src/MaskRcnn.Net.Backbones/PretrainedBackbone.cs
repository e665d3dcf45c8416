using MaskRcnn.Net.Core;
using MaskRcnn.Net.Core.Checkpoints;

namespace MaskRcnn.Net.Backbones;

/// <summary>
/// ImageNet-pretrained weights for a <see cref="ResNet"/> body, with the layout and input normalisation they were
/// trained with. Load one with <see cref="ImageNetResNet18(string?, string?)"/>; build the body from
/// <see cref="Options"/> and load <see cref="StateDict"/> into it (the Mask R-CNN builder does both).
/// </summary>
public sealed class PretrainedBackbone : IDisposable
{
    /// <summary>The NuGet package that ships the ImageNet ResNet-18 (MIT; only its files are used, not its code).</summary>
    public const string ResNet18PackageId = "Microsoft.ML.DnnImageFeaturizer.ResNet18";

    /// <summary>The version of <see cref="ResNet18PackageId"/> this library reads.</summary>
    public const string ResNet18PackageVersion = "0.24.0";

    /// <summary>Where the package (and this library's build props) put the network, relative to an app's output folder.</summary>
    public static readonly string ResNet18RelativePath = Path.Combine("DnnImageModels", "ResNet18Onnx", "ResNet18.onnx");

    /// <summary>Where the package puts the input normalisation next to the network, relative to an app's output folder.</summary>
    public static readonly string PreprocessRelativePath = Path.Combine("DnnImageModels", "ResNetPrepOnnx", "ResNetPreprocess.onnx");

    /// <summary>Environment variable naming ResNet18.onnx explicitly (checked before the default locations).</summary>
    public const string ResNet18Variable = "MASKRCNN_RESNET18_ONNX";

    private PretrainedBackbone(string name, string source, ResNetOptions options, Dictionary<string, Tensor> stateDict,
        IReadOnlyList<double> mean, IReadOnlyList<double> std)
    {
        Name = name;
        Source = source;
        Options = options;
        StateDict = stateDict;
        PixelMean = mean;
        PixelStd = std;
    }

    /// <summary>A short name (<c>imagenet-resnet18</c>).</summary>
    public string Name { get; }

    /// <summary>The file the weights came from.</summary>
    public string Source { get; }

    /// <summary>The body the weights fit: depth, blocks per stage (read from the graph), frozen batch norm and its epsilon.</summary>
    public ResNetOptions Options { get; }

    /// <summary>The weights under the body's (torchvision's) keys: <c>conv1.weight</c>, <c>layer4.2.bn2.running_var</c>, ….</summary>
    public IReadOnlyDictionary<string, Tensor> StateDict { get; }

    /// <summary>Per-channel (RGB) mean the network expects subtracted from images in [0, 1].</summary>
    public IReadOnlyList<double> PixelMean { get; }

    /// <summary>Per-channel (RGB) standard deviation the network expects images in [0, 1] divided by.</summary>
    public IReadOnlyList<double> PixelStd { get; }

    /// <summary>
    /// The default locations of ResNet18.onnx, in the order they are tried: <see cref="ResNet18Variable"/>; the app's
    /// output folder (where the package's build props copy it); the NuGet package cache (<c>NUGET_PACKAGES</c> or
    /// <c>~/.nuget/packages</c>), where <c>&lt;PackageDownload&gt;</c> puts it.
    /// </summary>
    public static IReadOnlyList<string> ResNet18Candidates()
    {
        var list = new List<string>();
        if (Environment.GetEnvironmentVariable(ResNet18Variable) is { Length: > 0 } env)
        {
            list.Add(env);
        }

        list.Add(Path.Combine(AppContext.BaseDirectory, ResNet18RelativePath));
        var cache = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } packages
            ? packages
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        list.Add(Path.Combine(cache, ResNet18PackageId.ToLowerInvariant(), ResNet18PackageVersion, "tools", ResNet18RelativePath));
        return list;
    }

    /// <summary>The first existing default location of ResNet18.onnx, or null.</summary>
    public static string? FindResNet18() => ResNet18Candidates().FirstOrDefault(File.Exists);

    /// <summary>
    /// Loads the ImageNet-trained ResNet-18 that ML.NET ships as ONNX (CNTK 2.6 export, opset 8). The weights are mapped
    /// onto the body by the graph's topology — stem, then each residual block found from its <c>Add</c> node, stages
    /// split at the projection shortcuts — so the block layout ([2, 2, 2, 3] in that file) is read, not assumed; every
    /// convolution's kernel, stride, padding and shape is checked. The network takes BGR input: the stem's input
    /// channels are reversed so the body takes RGB like the rest of this library. The input normalisation comes
    /// from <c>ResNetPreprocess.onnx</c> (channel order and mean image; the pixel scale is 0–255): the per-channel means
    /// of its 224×224 mean image become <see cref="PixelMean"/>, and <see cref="PixelStd"/> is 1/255.
    /// </summary>
    /// <param name="path">ResNet18.onnx, or null to search <see cref="ResNet18Candidates"/>.</param>
    /// <param name="preprocessPath">ResNetPreprocess.onnx, or null for the package's place next to ResNet18.onnx.</param>
    /// <exception cref="FileNotFoundException">A file is missing; the message says how to get the package.</exception>
    /// <exception cref="CheckpointFormatException">A file is not the expected network; names the file and the first mismatch.</exception>
    public static PretrainedBackbone ImageNetResNet18(string? path = null, string? preprocessPath = null)
    {
        path ??= FindResNet18() ?? throw new FileNotFoundException(
            $"the ImageNet ResNet-18 (ResNet18.onnx from the NuGet package {ResNet18PackageId} {ResNet18PackageVersion}) was not found; " +
            $"looked in: {string.Join(", ", ResNet18Candidates())}. Get it with <PackageDownload Include=\"{ResNet18PackageId}\" " +
            $"Version=\"[{ResNet18PackageVersion}]\" /> in a project (or the MaskRcnn.Net package's build props), set {ResNet18Variable}, " +
            "or pass the path; train without it with --pretrained none");
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"ResNet18.onnx not found: {path}", path);
        }

        preprocessPath ??= Path.Combine(Path.GetDirectoryName(Path.GetDirectoryName(Path.GetFullPath(path)))!, "ResNetPrepOnnx", "ResNetPreprocess.onnx");
        if (!File.Exists(preprocessPath))
        {
            throw new FileNotFoundException(
                $"ResNetPreprocess.onnx (the input normalisation of {path}) not found: {preprocessPath}; the package {ResNet18PackageId} ships it", preprocessPath);
        }

        var (order, channelMeans) = ReadPreprocess(OnnxGraph.Load(preprocessPath));
        var graph = OnnxGraph.Load(path);
        var weights = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            var (blocks, eps) = new ResNetGraphMapper(graph, weights).Map();
            // The network reads channels in `order` (BGR): reverse the stem's input channels so it reads RGB.
            var stem = weights["conv1.weight"];
            using (var inverse = InvertPermutation(order))
            {
                weights["conv1.weight"] = stem.IndexSelect(1, inverse);
            }

            stem.Dispose();
            var mean = new double[3];
            for (var k = 0; k < 3; k++)
            {
                mean[order[k]] = channelMeans[k] / 255.0;
            }

            var options = new ResNetOptions(18, NormKind.FrozenBatchNorm) { NormEps = eps, StageBlocks = blocks };
            return new PretrainedBackbone("imagenet-resnet18", path, options, weights, mean, [1 / 255.0, 1 / 255.0, 1 / 255.0]);
        }
        catch
        {
            foreach (var t in weights.Values)
            {
                t.Dispose();
            }

            throw;
        }
    }

    private static Tensor InvertPermutation(int[] order)
    {
        // order[k] = the RGB channel the network's input channel k holds; the RGB-reading stem's channel c is the
        // network's channel k with order[k] == c.
        var inverse = new long[order.Length];
        for (var k = 0; k < order.Length; k++)
        {
            inverse[order[k]] = k;
        }

        return Tensor.FromArray(inverse, inverse.Length);
    }

    /// <summary>
    /// Reads ResNetPreprocess.onnx: Split(RGB) → Concat(in some channel order) → Sub(mean image). Returns, for each
    /// of the network's input channels, the RGB channel it holds, and that channel's mean over the mean image.
    /// </summary>
    private static (int[] Order, double[] Means) ReadPreprocess(OnnxGraph g)
    {
        CheckpointFormatException Bad(string what) => new(g.Source, $"not ML.NET's ResNet preprocessing graph: {what}");
        var split = g.Nodes.FirstOrDefault(n => n.OpType == "Split") ?? throw Bad("no Split node");
        var concat = g.Nodes.FirstOrDefault(n => n.OpType == "Concat") ?? throw Bad("no Concat node");
        var sub = g.Nodes.FirstOrDefault(n => n.OpType == "Sub") ?? throw Bad("no Sub node");
        if (split.Outputs.Count != 3 || concat.Inputs.Count != 3)
        {
            throw Bad($"Split has {split.Outputs.Count} outputs and Concat {concat.Inputs.Count} inputs, expected 3 and 3");
        }

        var order = concat.Inputs.Select(i => split.Outputs.ToList().IndexOf(i)).ToArray();
        if (order.Any(o => o < 0) || order.Distinct().Count() != 3)
        {
            throw Bad("the Concat does not reorder the three Split outputs");
        }

        var meanName = sub.Inputs.FirstOrDefault(i => g.Initializers.ContainsKey(i)) ?? throw Bad("the Sub has no mean-image initializer");
        var meanImage = g.Initializers[meanName];
        if (meanImage.Shape.Count != 4 || meanImage.Shape[0] != 1 || meanImage.Shape[1] != 3)
        {
            throw Bad($"mean image of shape [{string.Join(", ", meanImage.Shape)}], expected [1, 3, H, W]");
        }

        var plane = (int)(meanImage.Shape[2] * meanImage.Shape[3]);
        var means = new double[3];
        for (var c = 0; c < 3; c++)
        {
            var sum = 0.0;
            for (var k = 0; k < plane; k++)
            {
                sum += meanImage.Values[c * plane + k];
            }

            means[c] = sum / plane;
        }

        return (order, means);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var t in StateDict.Values)
        {
            t.Dispose();
        }
    }

    /// <summary>Walks a ResNet graph of basic blocks and names its weights as torchvision's ResNet does.</summary>
    private sealed class ResNetGraphMapper(OnnxGraph g, Dictionary<string, Tensor> weights)
    {
        private readonly Dictionary<string, OnnxNode> producers = g.Nodes
            .SelectMany(n => n.Outputs.Select(o => (o, n))).GroupBy(p => p.o).ToDictionary(p => p.Key, p => p.First().n, StringComparer.Ordinal);

        private double? eps;

        private CheckpointFormatException Mismatch(string what) =>
            new(g.Source, $"not the expected ImageNet ResNet-18 graph ({g.Producer}): {what}");

        public (int[] Blocks, double Eps) Map()
        {
            var input = g.Inputs.FirstOrDefault(i => !g.Initializers.ContainsKey(i)) ?? throw Mismatch("the graph has no image input");
            // Stem: Conv 7x7/2 → BatchNormalization → Relu → MaxPool 3x3/2.
            var stemConv = g.Nodes.FirstOrDefault(n => n.OpType == "Conv" && n.Inputs[0] == input) ?? throw Mismatch("no convolution reads the input");
            Conv(stemConv, "conv1", 64, 3, 7, 2, [3, 3, 3, 3], [3, 3, 2, 2]);
            var bn = Consumer(stemConv.Outputs[0], "BatchNormalization", "the stem");
            Norm(bn, "bn1", 64);
            var relu = Consumer(bn.Outputs[0], "Relu", "the stem");
            var pool = Consumer(relu.Outputs[0], "MaxPool", "the stem");
            CheckWindow(pool, "the stem's max pool", 3, 2, [1, 1, 1, 1], [1, 1, 0, 0]);

            var x = pool.Outputs[0];
            var channels = 64;
            var stage = 0;
            var counts = new List<int> { 0 };
            foreach (var add in g.Nodes.Where(n => n.OpType == "Add"))
            {
                var block = $"block after '{x}'";
                var (mainBn, shortcut) = SplitAdd(add, x) ?? throw Mismatch($"the Add node '{add.Outputs[0]}' is not a residual block reading '{x}'");
                var projection = shortcut is not null;
                if (projection && counts[stage] > 0)
                {
                    stage++;
                    counts.Add(0);
                }

                if (stage > 3)
                {
                    throw Mismatch($"a fifth stage starts at {block}");
                }

                var planes = 64 << stage;
                var stride = projection && stage > 0 ? 2 : 1;
                var prefix = $"layer{stage + 1}.{counts[stage]}";
                var conv2 = Producer(mainBn.Inputs[0], "Conv", block);
                var relu1 = Producer(conv2.Inputs[0], "Relu", block);
                var bn1 = Producer(relu1.Inputs[0], "BatchNormalization", block);
                var conv1 = Producer(bn1.Inputs[0], "Conv", block);
                if (conv1.Inputs[0] != x)
                {
                    throw Mismatch($"{prefix}: its first convolution reads '{conv1.Inputs[0]}', expected the block input '{x}'");
                }

                Conv(conv1, $"{prefix}.conv1", planes, channels, 3, stride, [1, 1, 1, 1], [1, 1, 0, 0]);
                Norm(bn1, $"{prefix}.bn1", planes);
                Conv(conv2, $"{prefix}.conv2", planes, planes, 3, 1, [1, 1, 1, 1], null);
                Norm(mainBn, $"{prefix}.bn2", planes);
                if (shortcut is var (projConv, projBn))
                {
                    Conv(projConv, $"{prefix}.downsample.0", planes, channels, 1, stride, [0, 0, 0, 0], null);
                    Norm(projBn, $"{prefix}.downsample.1", planes);
                }
                else if (channels != planes)
                {
                    throw Mismatch($"{prefix}: {channels} → {planes} channels without a projection shortcut");
                }

                var out_ = Consumer(add.Outputs[0], "Relu", prefix);
                x = out_.Outputs[0];
                channels = planes;
                counts[stage]++;
            }

            if (counts.Count != 4)
            {
                throw Mismatch($"{counts.Count} stages of residual blocks ([{string.Join(", ", counts)}]), expected 4");
            }

            return ([.. counts], eps ?? 1e-5);
        }

        /// <summary>For an Add closing a block on input <paramref name="x"/>: the main path's last norm and the projection (conv, norm), if any.</summary>
        private (OnnxNode MainBn, (OnnxNode Conv, OnnxNode Bn)? Shortcut)? SplitAdd(OnnxNode add, string x)
        {
            if (add.Inputs.Count != 2)
            {
                return null;
            }

            foreach (var (main, other) in new[] { (add.Inputs[0], add.Inputs[1]), (add.Inputs[1], add.Inputs[0]) })
            {
                if (!producers.TryGetValue(main, out var mainBn) || mainBn.OpType != "BatchNormalization" ||
                    !producers.TryGetValue(mainBn.Inputs[0], out var c2) || c2.OpType != "Conv" ||
                    !producers.TryGetValue(c2.Inputs[0], out var r) || r.OpType != "Relu")
                {
                    continue;
                }

                if (other == x)
                {
                    return (mainBn, null);
                }

                if (producers.TryGetValue(other, out var projBn) && projBn.OpType == "BatchNormalization" &&
                    producers.TryGetValue(projBn.Inputs[0], out var projConv) && projConv.OpType == "Conv" && projConv.Inputs[0] == x)
                {
                    return (mainBn, (projConv, projBn));
                }
            }

            return null;
        }

        private OnnxNode Producer(string value, string op, string where) =>
            producers.TryGetValue(value, out var n) && n.OpType == op ? n
                : throw Mismatch($"{where}: '{value}' should come from a {op} node, comes from {(producers.TryGetValue(value, out var m) ? m.OpType : "nothing")}");

        private OnnxNode Consumer(string value, string op, string where)
        {
            var users = g.Nodes.Where(n => n.Inputs.Contains(value)).ToList();
            return users.FirstOrDefault(n => n.OpType == op)
                ?? throw Mismatch($"{where}: '{value}' should feed a {op} node, feeds [{string.Join(", ", users.Select(u => u.OpType))}]");
        }

        private void CheckWindow(OnnxNode node, string what, int kernel, int stride, long[] pads, long[]? altPads)
        {
            var k = node.Ints("kernel_shape");
            var s = node.Ints("strides") ?? [1, 1];
            var p = node.Ints("pads") ?? [0, 0, 0, 0];
            if (k is null || !k.SequenceEqual([kernel, kernel]))
            {
                throw Mismatch($"{what}: kernel [{string.Join(", ", k ?? [])}], expected [{kernel}, {kernel}]");
            }

            if (!s.SequenceEqual([stride, stride]))
            {
                throw Mismatch($"{what}: strides [{string.Join(", ", s)}], expected [{stride}, {stride}]");
            }

            // CNTK pads stride-2 windows "same" asymmetrically (top/left only when the rest is odd): on the even sizes
            // a detector's padded batches have, that equals the symmetric padding torchvision's ResNet uses.
            if (!p.SequenceEqual(pads) && (altPads is null || !p.SequenceEqual(altPads)))
            {
                throw Mismatch($"{what}: pads [{string.Join(", ", p)}], expected [{string.Join(", ", pads)}]" +
                    (altPads is null ? "" : $" or [{string.Join(", ", altPads)}]"));
            }

            if (node.Attributes.TryGetValue("group", out var group) && group.Int is { } gr && gr != 1)
            {
                throw Mismatch($"{what}: grouped convolution ({gr} groups)");
            }

            if (node.Ints("dilations") is { } d && d.Any(v => v != 1))
            {
                throw Mismatch($"{what}: dilations [{string.Join(", ", d)}]");
            }
        }

        private void Conv(OnnxNode conv, string key, int outChannels, int inChannels, int kernel, int stride, long[] pads, long[]? altPads)
        {
            CheckWindow(conv, key, kernel, stride, pads, altPads);
            if (conv.Inputs.Count > 2)
            {
                throw Mismatch($"{key}: the convolution has a bias; torchvision's ResNet convolutions have none");
            }

            weights[$"{key}.weight"] = Initializer(conv.Inputs[1], key, outChannels, inChannels, kernel, kernel);
        }

        private void Norm(OnnxNode bn, string key, int channels)
        {
            if (bn.Inputs.Count != 5)
            {
                throw Mismatch($"{key}: BatchNormalization with {bn.Inputs.Count} inputs, expected 5");
            }

            if (bn.Attributes.TryGetValue("epsilon", out var e) && e.Float is { } f)
            {
                eps ??= f;
                if (Math.Abs(f - eps.Value) > 1e-12)
                {
                    throw Mismatch($"{key}: epsilon {f} differs from the other layers' {eps}");
                }
            }

            string[] names = ["weight", "bias", "running_mean", "running_var"];
            for (var k = 0; k < 4; k++)
            {
                weights[$"{key}.{names[k]}"] = Initializer(bn.Inputs[k + 1], key, channels);
            }
        }

        private Tensor Initializer(string name, string key, params long[] shape)
        {
            if (!g.Initializers.TryGetValue(name, out var init))
            {
                throw Mismatch($"{key}: the initializer '{name}' is missing");
            }

            if (!init.Shape.SequenceEqual(shape))
            {
                throw Mismatch($"{key}: '{name}' has shape [{string.Join(", ", init.Shape)}], expected [{string.Join(", ", shape)}]");
            }

            return Tensor.FromArray(init.Values, shape);
        }
    }
}
