using System.Globalization;
using MaskRcnn.Net.Core.Checkpoints;

namespace MaskRcnn.Net.Backbones.Tests;

/// <summary>
/// Builds torchvision's <c>resnet_fpn_backbone</c> with seeded random weights and non-trivial norm statistics, saves
/// its state dict, a random input and its five outputs with <c>torch.save</c>, and lists the parameters that require
/// grad.
/// </summary>
internal sealed class TorchvisionBackboneOracle : IDisposable
{
    private const string Script = """
        import json, sys, os, functools, torch
        from torchvision.ops.misc import FrozenBatchNorm2d
        from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
        d, arch, norm, tl, eps, n, h, w, mode = sys.argv[1:10]
        tl, eps, n, h, w = int(tl), float(eps), int(n), int(h), int(w)
        torch.manual_seed(1234)
        if norm == "frozen":
            norm_layer = functools.partial(FrozenBatchNorm2d, eps=eps)
        elif norm == "bn":
            norm_layer = functools.partial(torch.nn.BatchNorm2d, eps=eps)
        else:
            norm_layer = lambda c: torch.nn.GroupNorm(32, c, eps=eps)
        m = resnet_fpn_backbone(backbone_name=arch, weights=None, norm_layer=norm_layer, trainable_layers=tl)
        with torch.no_grad():
            for mod in m.modules():
                if isinstance(mod, (FrozenBatchNorm2d, torch.nn.BatchNorm2d, torch.nn.GroupNorm)):
                    c = mod.weight.shape[0]
                    mod.weight.copy_(torch.empty(c).uniform_(0.5, 1.0))
                    mod.bias.copy_(0.1 * torch.randn(c))
                if isinstance(mod, (FrozenBatchNorm2d, torch.nn.BatchNorm2d)):
                    mod.running_mean.copy_(0.1 * torch.randn(c))
                    mod.running_var.copy_(torch.empty(c).uniform_(0.5, 1.5))
                if isinstance(mod, torch.nn.BatchNorm2d):
                    mod.num_batches_tracked.fill_(7)
            for name, p in m.fpn.named_parameters():
                if name.endswith("bias"):
                    p.copy_(0.1 * torch.randn_like(p))
        torch.save(m.state_dict(), os.path.join(d, "model.pt"))
        x = torch.randn(n, 3, h, w)
        io = {"input": x}
        if mode == "train":
            m.train()
            out = m(x)
            sum(v.pow(2).mean() for v in out.values()).backward()
            for k, p in m.named_parameters():
                if p.grad is not None:
                    io["grad." + k] = p.grad
            for k, b in m.named_buffers():
                io["after." + k] = b
        else:
            m.eval()
            with torch.no_grad():
                out = m(x)
        for k, v in out.items():
            io["out." + k] = v.detach()
        torch.save(io, os.path.join(d, "io.pt"))
        json.dump({"names": list(out.keys()),
                   "trainable": [k for k, p in m.named_parameters() if p.requires_grad]},
                  open(os.path.join(d, "meta.json"), "w"))
        """;

    private readonly string dir;

    public TorchvisionBackboneOracle(string arch, string norm, int trainableLayers, double eps, int n, int h, int w,
        bool train = false)
    {
        dir = Directory.CreateTempSubdirectory("mr_backbone_").FullName;
        var inv = CultureInfo.InvariantCulture;
        PythonOracle.Run(Script, dir, arch, norm, trainableLayers.ToString(inv), eps.ToString("R", inv),
            n.ToString(inv), h.ToString(inv), w.ToString(inv), train ? "train" : "eval");
        StateDict = TorchCheckpoint.Load(Path.Combine(dir, "model.pt"));
        InputsAndOutputs = TorchCheckpoint.Load(Path.Combine(dir, "io.pt"));
        var meta = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "meta.json")));
        OutputNames = meta.RootElement.GetProperty("names").EnumerateArray().Select(e => e.GetString()!).ToArray();
        TrainableNames = meta.RootElement.GetProperty("trainable").EnumerateArray().Select(e => e.GetString()!).ToArray();
    }

    /// <summary>torchvision's state dict.</summary>
    public TorchStateDict StateDict { get; }

    /// <summary>
    /// "input" [N, 3, H, W] and "out.{name}" for each output map; in training mode also "grad.{parameter}" of
    /// loss = Σ mean(map²) and "after.{buffer}" (running statistics after the step).
    /// </summary>
    public TorchStateDict InputsAndOutputs { get; }

    /// <summary>Output names in order.</summary>
    public IReadOnlyList<string> OutputNames { get; }

    /// <summary>Parameter names with requires_grad in torchvision's model.</summary>
    public IReadOnlyList<string> TrainableNames { get; }

    public Tensor Input => InputsAndOutputs["input"];

    public Tensor Output(string name) => InputsAndOutputs["out." + name];

    public void Dispose()
    {
        StateDict.Dispose();
        InputsAndOutputs.Dispose();
        Directory.Delete(dir, recursive: true);
    }
}
