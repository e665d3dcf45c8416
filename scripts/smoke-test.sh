#!/usr/bin/env bash
# Consumer smoke test of the NuGet packages, as a user would meet them:
#   1. packs every package (dotnet pack MaskRcnn.Net.sln -c Release) into a local feed (default artifacts/packages)
#      and checks that MaskRcnn.Net.Core carries the native shim under runtimes/linux-x64/native/;
#   2. creates a fresh console app in a temporary directory outside the repository (own nuget.config: nuget.org +
#      the local feed; its own empty NUGET_PACKAGES, so no stale package of the same version can be picked up),
#      adds MaskRcnn.Net from the feed, and runs a Program.cs that builds a seeded random ResNet-18/GroupNorm model
#      with MaskRcnnBuilder, predicts on a real MRI slice from data/brain-tumor/val/images and checks the result
#      (masks of the image's size, boxes inside the image, scores in [0, 1], the shim loaded from the app's
#      bin/runtimes/linux-x64/native/);
#      It then registers the saved model with services.AddMaskRcnn (MaskRcnn.Net.DependencyInjection), loads a PNG of
#      the slice with ImageSharp (MaskRcnn.Net.ImageSharp) and checks that IInstanceSegmenter.PredictAsync on the
#      adapter's ImageSource equals model.Predict on the PNG's path;
#   3. installs the maskrcnn tool package (MaskRcnn.Net.Cli) into the same temporary directory and runs
#      `maskrcnn predict` on the model that step 2 saved, on an image and on a short video of MRI slices made with
#      ffmpeg (`predict --video`: the output's frame count, size and rate equal the input's, one JSON line per frame);
#   4. exports that model to ONNX with the tool (`maskrcnn export --onnx`), predicts with `maskrcnn predict --onnx`, and
#      builds a second console app that references only MaskRcnn.Net.Onnx: it segments the slice (a PNG, decoded by
#      SkiaSharp) with OnnxMaskRcnn, checks the result against `maskrcnn predict --weights` on the same PNG (label and
#      box IoU >= 0.99 for >= 98 % of the detections scoring >= 0.05, scores within 1e-3) and proves from
#      /proc/self/maps that ONNX Runtime was mapped and no libtorch library (libtorch*.so, libc10*.so) nor our shim
#      (libmaskrcnn_native.so) was, and that no MaskRcnn.Net.Core assembly reached its output folder.
# Exits non-zero on any failed step. Environment: SMOKE_FEED (feed folder), SMOKE_SKIP_PACK=1 (use the packages
# already in the feed), SMOKE_KEEP=1 (keep the temporary directory).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
feed=$(realpath -m "${SMOKE_FEED:-$root/artifacts/packages}")
version=$(sed -n 's:.*<VersionPrefix>\(.*\)</VersionPrefix>.*:\1:p' Directory.Build.props | head -1)
image=$(ls "$root"/data/brain-tumor/val/images/*.jpg | head -1)
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
start=$(date +%s)
step() { echo "smoke-test: [$(( $(date +%s) - start ))s] $*"; }

if [ "${SMOKE_SKIP_PACK:-0}" != "1" ]; then
  step "packing MaskRcnn.Net $version into $feed"
  mkdir -p "$feed"
  rm -f "$feed"/MaskRcnn.Net*."$version".nupkg "$feed"/MaskRcnn.Net*."$version".snupkg
  dotnet pack MaskRcnn.Net.sln -c Release -o "$feed" --nologo -v quiet
fi

step "checking the package contents"
python3 - "$feed" "$version" <<'PY'
import sys, zipfile
feed, version = sys.argv[1], sys.argv[2]
expected = {
    'MaskRcnn.Net': ['lib/net10.0/MaskRcnn.Net.dll', 'lib/net10.0/MaskRcnn.Net.xml'],
    'MaskRcnn.Net.DependencyInjection': ['lib/net10.0/MaskRcnn.Net.DependencyInjection.dll', 'lib/net10.0/MaskRcnn.Net.DependencyInjection.xml'],
    'MaskRcnn.Net.Abstractions': ['lib/net10.0/MaskRcnn.Net.Abstractions.dll', 'lib/net10.0/MaskRcnn.Net.Abstractions.xml'],
    'MaskRcnn.Net.Core': ['lib/net10.0/MaskRcnn.Net.Core.dll', 'lib/net10.0/MaskRcnn.Net.Core.xml',
                          'runtimes/linux-x64/native/libmaskrcnn_native.so'],
    'MaskRcnn.Net.RoIAlign': ['lib/net10.0/MaskRcnn.Net.RoIAlign.dll', 'lib/net10.0/MaskRcnn.Net.RoIAlign.xml'],
    'MaskRcnn.Net.Backbones': ['lib/net10.0/MaskRcnn.Net.Backbones.dll', 'lib/net10.0/MaskRcnn.Net.Backbones.xml'],
    'MaskRcnn.Net.Heads': ['lib/net10.0/MaskRcnn.Net.Heads.dll', 'lib/net10.0/MaskRcnn.Net.Heads.xml'],
    'MaskRcnn.Net.Training': ['lib/net10.0/MaskRcnn.Net.Training.dll', 'lib/net10.0/MaskRcnn.Net.Training.xml'],
    'MaskRcnn.Net.Cli': ['tools/net10.0/any/maskrcnn.dll', 'tools/net10.0/any/runtimes/linux-x64/native/libmaskrcnn_native.so',
                         'tools/net10.0/any/MaskRcnn.Net.Video.dll'],
    'MaskRcnn.Net.ImageSharp': ['lib/net10.0/MaskRcnn.Net.ImageSharp.dll', 'lib/net10.0/MaskRcnn.Net.ImageSharp.xml'],
    'MaskRcnn.Net.SkiaSharp': ['lib/net10.0/MaskRcnn.Net.SkiaSharp.dll', 'lib/net10.0/MaskRcnn.Net.SkiaSharp.xml'],
    'MaskRcnn.Net.Onnx': ['lib/net10.0/MaskRcnn.Net.Onnx.dll', 'lib/net10.0/MaskRcnn.Net.Onnx.xml'],
    'MaskRcnn.Net.Video': ['lib/net10.0/MaskRcnn.Net.Video.dll', 'lib/net10.0/MaskRcnn.Net.Video.xml'],
}
# The adapters depend on the libtorch-free assembly and their image library, nothing that brings libtorch.
adapter_dependencies = {
    'MaskRcnn.Net.ImageSharp': {'MaskRcnn.Net.Abstractions', 'SixLabors.ImageSharp'},
    'MaskRcnn.Net.SkiaSharp': {'MaskRcnn.Net.Abstractions', 'SkiaSharp', 'SkiaSharp.NativeAssets.Linux.NoDependencies'},
    # The ONNX Runtime package: no MaskRcnn.Net.Core (libtorch, the shim) in its closure.
    'MaskRcnn.Net.Onnx': {'MaskRcnn.Net.Abstractions', 'MaskRcnn.Net.SkiaSharp', 'Microsoft.ML.OnnxRuntime'},
    # Video: frames through the system ffmpeg, no package and no libtorch.
    'MaskRcnn.Net.Video': {'MaskRcnn.Net.Abstractions'},
}
bad = []
for pid, files in expected.items():
    path = f'{feed}/{pid}.{version}.nupkg'
    try:
        z = zipfile.ZipFile(path)
    except OSError as e:
        bad.append(f'{path}: {e}'); continue
    names = set(z.namelist())
    nuspec = z.read(f'{pid}.nuspec').decode('utf-8')
    for f in files + ['README.md']:
        if f not in names:
            bad.append(f'{pid}: {f} missing')
    for tag in ('<license type="expression">MIT</license>', '<readme>README.md</readme>', '<repository type="git"'):
        if tag not in nuspec:
            bad.append(f'{pid}: nuspec lacks {tag}')
    if pid in adapter_dependencies:
        import re
        deps = set(re.findall(r'<dependency id="([^"]+)"', nuspec))
        if deps != adapter_dependencies[pid]:
            bad.append(f'{pid}: depends on {sorted(deps)}, expected {sorted(adapter_dependencies[pid])}')
    # Layers (issue 13): an app that only predicts never gets the trainer; Training builds on the model.
    import re
    deps = set(re.findall(r'<dependency id="([^"]+)"', nuspec))
    if pid in ('MaskRcnn.Net', 'MaskRcnn.Net.DependencyInjection') and 'MaskRcnn.Net.Training' in deps:
        bad.append(f'{pid}: depends on MaskRcnn.Net.Training (inference packages must not)')
    if pid == 'MaskRcnn.Net.Training' and 'MaskRcnn.Net' not in deps:
        bad.append(f'{pid}: does not depend on MaskRcnn.Net ({sorted(deps)})')
    print(f'  {pid}.{version}.nupkg: {len(names)} entries')
if bad:
    print('\n'.join('  FAIL ' + b for b in bad)); sys.exit(1)
PY

work=$(mktemp -d "${TMPDIR:-/tmp}/maskrcnn-smoke.XXXXXX")
if [ "${SMOKE_KEEP:-0}" = "1" ]; then echo "smoke-test: keeping $work"; else trap 'rm -rf "$work"' EXIT; fi
# An empty Directory.Build.props/targets stops MSBuild from importing any found further up.
echo '<Project />' > "$work/Directory.Build.props"
echo '<Project />' > "$work/Directory.Build.targets"
cat > "$work/nuget.config" <<EOF
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <packageSources>
    <clear />
    <add key="nuget.org" value="https://api.nuget.org/v3/index.json" />
    <add key="local" value="$feed" />
  </packageSources>
</configuration>
EOF
export NUGET_PACKAGES="$work/nuget-packages"

step "creating a console app in $work/app"
dotnet new console -o "$work/app" -n SmokeApp --framework net10.0 >/dev/null
cd "$work/app"
step "dotnet add package MaskRcnn.Net --version $version"
dotnet add package MaskRcnn.Net --version "$version" >/dev/null
step "dotnet add package MaskRcnn.Net.DependencyInjection, MaskRcnn.Net.ImageSharp --version $version, Microsoft.Extensions.DependencyInjection 10.0.14"
dotnet add package MaskRcnn.Net.DependencyInjection --version "$version" >/dev/null
dotnet add package MaskRcnn.Net.ImageSharp --version "$version" >/dev/null
dotnet add package Microsoft.Extensions.DependencyInjection --version 10.0.14 >/dev/null
# The ImageNet ResNet-18, fetched without referencing ML.NET; MaskRcnn.Net's build targets copy it to bin/.
sed -i 's|</Project>|  <ItemGroup><PackageDownload Include="Microsoft.ML.DnnImageFeaturizer.ResNet18" Version="[0.24.0]" /></ItemGroup>\n</Project>|' SmokeApp.csproj
cat > Program.cs <<'CS'
using MaskRcnn.Net;
using MaskRcnn.Net.Backbones;
using MaskRcnn.Net.Core;
using MaskRcnn.Net.DependencyInjection;
using MaskRcnn.Net.ImageSharp;
using Microsoft.Extensions.DependencyInjection;
using SixLabors.ImageSharp.PixelFormats;

var imagePath = args[0];
var savePath = args[1];
var failures = new List<string>();
void Check(bool ok, string what)
{
    if (!ok)
    {
        failures.Add(what);
        Console.Error.WriteLine("FAIL " + what);
    }
}

Torch.ManualSeed(42);
using var model = new MaskRcnnBuilder()
    .WithClasses("tumor")
    .WithBackbone(18, NormKind.GroupNorm, trainableLayers: 5, outChannels: 64)
    .WithImageSize(256, 256)
    .WithScoreThreshold(0.0)          // random weights: keep every detection so that there is something to check
    .WithDetectionsPerImage(20)
    .Build();
Check(model.Config.NumClasses == 2, $"NumClasses {model.Config.NumClasses}, expected 2 (background + tumor)");

var result = model.Predict(imagePath);
Console.WriteLine($"image {result.Width}x{result.Height}: {result.Detections.Count} detections");
Check(result.Width > 0 && result.Height > 0, "image size");
Check(result.Detections.Count > 0, "no detection at score threshold 0");
Check(result.Detections.Count <= 20, "more detections than DetectionsPerImage");
foreach (var d in result.Detections)
{
    var b = d.Box;
    Console.WriteLine($"  {d.ClassName} (label {d.Label}) score {d.Score:0.000} box ({b.X1:0.0}, {b.Y1:0.0}, {b.X2:0.0}, {b.Y2:0.0}) mask area {d.Mask?.Area}");
    Check(d.Label == 1 && d.ClassName == "tumor", $"label {d.Label} '{d.ClassName}'");
    Check(d.Score is >= 0f and <= 1f && float.IsFinite(d.Score), $"score {d.Score} outside [0, 1]");
    Check(b.X1 >= 0 && b.Y1 >= 0 && b.X2 <= result.Width && b.Y2 <= result.Height && b.X1 <= b.X2 && b.Y1 <= b.Y2,
        $"box {b} outside the {result.Width}x{result.Height} image");
    Check(d.Mask is { } m && m.Width == result.Width && m.Height == result.Height,
        $"mask {d.Mask?.Width}x{d.Mask?.Height}, expected {result.Width}x{result.Height}");
}

// Through the interface an app depends on, asynchronously, from raw pixels: the same detections.
IInstanceSegmenter segmenter = model;
using (var decoded = MaskRcnn.Net.Core.Imaging.ImageCodec.Decode(imagePath, MaskRcnn.Net.Core.Imaging.ImageReadMode.Rgb))
{
    var rgb = MaskRcnn.Net.Core.Imaging.ImageTensors.ToRgbImage(decoded);
    var again = await segmenter.PredictAsync(ImageSource.FromPixels(rgb.Pixels, rgb.Width, rgb.Height, MaskRcnn.Net.Imaging.PixelFormat.Rgb24));
    Check(again.Detections.Count == result.Detections.Count && again.Detections.Zip(result.Detections).All(p => p.First.Box == p.Second.Box && p.First.Score == p.Second.Score),
        "PredictAsync on the raw pixels differs from Predict on the file");
}

for (var i = 1; i < result.Detections.Count; i++)
{
    Check(result.Detections[i - 1].Score >= result.Detections[i].Score, "detections not sorted by score");
}

// The shim must come from the package's runtimes/linux-x64/native asset copied under this app's bin/.
var shim = File.ReadLines("/proc/self/maps").Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
    .Where(p => p.Length >= 6 && p[5].EndsWith("libmaskrcnn_native.so", StringComparison.Ordinal)).Select(p => p[5]).FirstOrDefault();
Console.WriteLine($"native shim loaded from {shim}");
Check(shim == Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "libmaskrcnn_native.so"),
    $"shim loaded from {shim}, expected {AppContext.BaseDirectory}runtimes/linux-x64/native/");

// The ImageNet ResNet-18: copied to bin/ by MaskRcnn.Net's build targets, found there first, loaded onto the body.
var onnx = Path.Combine(AppContext.BaseDirectory, PretrainedBackbone.ResNet18RelativePath);
Check(File.Exists(onnx), $"{onnx} not copied to the output folder");
Check(PretrainedBackbone.FindResNet18() == onnx, $"FindResNet18() gave {PretrainedBackbone.FindResNet18()}, expected {onnx}");
using (var pretrained = new MaskRcnnBuilder().WithClasses("tumor").WithImageSize(128, 128).WithPretrainedBackbone().Build())
{
    Check(pretrained.Config.Backbone.StageBlocks is [2, 2, 2, 3], "the pretrained body's block layout");
    Console.WriteLine($"pretrained backbone: {pretrained.Config.Backbone}");
}

Check(!Directory.EnumerateFiles(AppContext.BaseDirectory, "Microsoft.ML*.dll").Any() && !File.Exists(Path.Combine(AppContext.BaseDirectory, "Newtonsoft.Json.dll")),
    "ML.NET's assemblies reached the app (the package must be fetched, not referenced)");

model.Save(savePath);
Check(File.Exists(savePath), "model not saved");

// An app: the saved model registered with AddMaskRcnn, an image the app loaded with ImageSharp, predicted through
// IInstanceSegmenter on the adapter's ImageSource. A PNG of the slice (lossless, so ImageSharp and our decoder read
// the same pixels): the result must equal model.Predict on the PNG's path.
var pngPath = Path.ChangeExtension(savePath, ".png");
using (var decoded = MaskRcnn.Net.Core.Imaging.ImageCodec.Decode(imagePath, MaskRcnn.Net.Core.Imaging.ImageReadMode.Rgb))
{
    MaskRcnn.Net.Core.Imaging.ImageCodec.SavePng(decoded, pngPath);
}

var fromPath = model.Predict(pngPath);
var services = new ServiceCollection();
services.AddMaskRcnn(o => o.ModelPath = savePath);
await using (var provider = services.BuildServiceProvider())
{
    var app = provider.GetRequiredService<IInstanceSegmenter>();
    using var loaded = SixLabors.ImageSharp.Image.Load<Rgb24>(pngPath);
    var viaApp = await app.PredictAsync(loaded.ToImageSource());
    Console.WriteLine($"AddMaskRcnn + ImageSharp adapter: {viaApp.Detections.Count} detections (model.Predict on the PNG: {fromPath.Detections.Count})");
    Check(fromPath.Detections.Count > 0, "no detection on the PNG at score threshold 0");
    Check(viaApp.Width == fromPath.Width && viaApp.Height == fromPath.Height && viaApp.Detections.Count == fromPath.Detections.Count
        && viaApp.Detections.Zip(fromPath.Detections).All(p => p.First.Box == p.Second.Box && p.First.Score == p.Second.Score
            && p.First.Label == p.Second.Label && Equals(p.First.Mask, p.Second.Mask)),
        "AddMaskRcnn's IInstanceSegmenter on the ImageSharp image differs from model.Predict on the PNG");
}
Console.WriteLine(failures.Count == 0 ? "consumer checks passed" : $"{failures.Count} consumer checks failed");
return failures.Count == 0 ? 0 : 1;
CS
step "building and running the consumer app"
dotnet build -c Release --nologo -v quiet -o "$work/app/bin/out" >/dev/null
test -f "$work/app/bin/out/runtimes/linux-x64/native/libmaskrcnn_native.so" || { echo "smoke-test: FAIL the shim is not in bin/runtimes/linux-x64/native" >&2; exit 1; }
dotnet "$work/app/bin/out/SmokeApp.dll" "$image" "$work/model.safetensors"

step "installing the maskrcnn tool package and predicting with the saved model"
dotnet tool install --tool-path "$work/tool" --add-source "$feed" MaskRcnn.Net.Cli --version "$version" >/dev/null
"$work/tool/maskrcnn" predict --weights "$work/model.safetensors" --score-threshold 0 --json "$work/tool.json" "$image" >/dev/null
python3 - "$work/tool.json" <<'PY'
import json, sys
results = json.load(open(sys.argv[1]))['results']
assert len(results) == 1, results
print(f"  maskrcnn predict: {len(results[0]['detections'])} detections")
PY

step "predicting a video with the tool (predict --video: ffmpeg pipes, JSON Lines)"
ffmpeg -y -nostdin -v error -framerate 5 -pattern_type glob -i "$root/data/brain-tumor/val/images/00124_1*.jpg" \
  -vf "scale=224:256,format=yuv420p" -c:v libx264 "$work/slices.mp4"
"$work/tool/maskrcnn" predict --weights "$work/model.safetensors" --score-threshold 0 --video "$work/slices.mp4" \
  --out "$work/slices-masks.mp4" --json "$work/slices.jsonl" 2>/dev/null
python3 - "$work/slices.mp4" "$work/slices-masks.mp4" "$work/slices.jsonl" <<'PY'
import json, subprocess, sys
def probe(path):
    out = subprocess.run(['ffprobe', '-v', 'error', '-count_frames', '-select_streams', 'v:0', '-show_entries',
                          'stream=width,height,r_frame_rate,nb_read_frames', '-of', 'json', path], check=True, capture_output=True, text=True).stdout
    s = json.loads(out)['streams'][0]
    return int(s['nb_read_frames']), s['width'], s['height'], s['r_frame_rate']
src, dst = probe(sys.argv[1]), probe(sys.argv[2])
assert src == dst, (src, dst)
lines = [json.loads(l) for l in open(sys.argv[3])]
assert [l['frame'] for l in lines] == list(range(src[0])), [l['frame'] for l in lines]
print(f"  maskrcnn predict --video: {dst[0]} frames {dst[1]}x{dst[2]} at {dst[3]}, {sum(len(l['detections']) for l in lines)} detections in {len(lines)} JSON lines")
PY

step "exporting the saved model to ONNX with the tool and predicting with --onnx"
png="$work/model.png"   # the lossless copy of the slice that step 2 wrote beside the saved model
"$work/tool/maskrcnn" export --weights "$work/model.safetensors" --onnx "$work/model.onnx"
"$work/tool/maskrcnn" predict --weights "$work/model.safetensors" --score-threshold 0 --json "$work/weights.json" "$png" >/dev/null
"$work/tool/maskrcnn" predict --onnx "$work/model.onnx" --json "$work/onnx-tool.json" "$png" >/dev/null
python3 - "$work/weights.json" "$work/onnx-tool.json" <<'PY'
import json, sys
a, b = (json.load(open(p))['results'][0] for p in sys.argv[1:3])
assert (a['width'], a['height']) == (b['width'], b['height']), (a['width'], a['height'], b['width'], b['height'])
print(f"  maskrcnn predict --weights: {len(a['detections'])} detections, --onnx: {len(b['detections'])}")
PY

step "creating a console app that references only MaskRcnn.Net.Onnx in $work/onnx-app"
dotnet new console -o "$work/onnx-app" -n OnnxSmokeApp --framework net10.0 >/dev/null
cd "$work/onnx-app"
dotnet add package MaskRcnn.Net.Onnx --version "$version" >/dev/null
cat > Program.cs <<'CS'
using System.Text.Json;
using MaskRcnn.Net;
using MaskRcnn.Net.Onnx;

var (modelPath, imagePath, weightsJson) = (args[0], args[1], args[2]);
var failures = new List<string>();
void Check(bool ok, string what)
{
    if (!ok)
    {
        failures.Add(what);
        Console.Error.WriteLine("FAIL " + what);
    }
}

using var model = OnnxMaskRcnn.Load(modelPath, new OnnxMaskRcnnOptions(IntraOpThreads: 2));
Console.WriteLine($"loaded {modelPath}: classes [{string.Join(", ", model.ClassNames)}], producer {model.Metadata.ProducerName}");
IInstanceSegmenter segmenter = model;
var result = segmenter.Predict(ImageSource.FromFile(imagePath));
Console.WriteLine($"image {result.Width}x{result.Height}: {result.Detections.Count} detections");
Check(result.Detections.Count > 0, "no detection at score threshold 0");
foreach (var d in result.Detections)
{
    var b = d.Box;
    Check(d.Label == 1 && d.ClassName == "tumor", $"label {d.Label} '{d.ClassName}'");
    Check(d.Score is >= 0f and <= 1f, $"score {d.Score} outside [0, 1]");
    Check(b.X1 >= 0 && b.Y1 >= 0 && b.X2 <= result.Width && b.Y2 <= result.Height, $"box {b} outside the image");
    Check(d.Mask is { } m && m.Width == result.Width && m.Height == result.Height, "mask not of the image's size");
}

// The same detections as `maskrcnn predict --weights` (libtorch) on the same PNG: issue 14's parity standard.
using (var json = JsonDocument.Parse(File.ReadAllText(weightsJson)))
{
    var reference = json.RootElement.GetProperty("results")[0].GetProperty("detections").EnumerateArray()
        .Select(e => (Label: e.GetProperty("label").GetInt32(), Score: e.GetProperty("score").GetSingle(),
            Box: e.GetProperty("box").EnumerateArray().Select(v => v.GetSingle()).ToArray()))
        .Where(r => r.Score >= 0.05f).ToList();
    var unused = result.Detections.ToList();
    var matched = 0;
    foreach (var r in reference)
    {
        var box = new MaskRcnn.Net.Core.Detection.BoundingBox(r.Box[0], r.Box[1], r.Box[2], r.Box[3]);
        var best = unused.Where(d => d.Label == r.Label).OrderByDescending(d => d.Box.Iou(box)).FirstOrDefault();
        if (best is not null && best.Box.Iou(box) >= 0.99 && Math.Abs(best.Score - r.Score) <= 1e-3f)
        {
            matched++;
            unused.Remove(best);
        }
    }

    Console.WriteLine($"matched {matched} of the {reference.Count} libtorch detections scoring >= 0.05");
    Check(reference.Count == 0 || matched >= 0.98 * reference.Count, $"only {matched} of {reference.Count} libtorch detections matched");
}

// Proof that no libtorch library and not our shim was loaded: the process's mapped files.
var mapped = File.ReadLines("/proc/self/maps").Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
    .Where(p => p.Length >= 6).Select(p => p[5]).Distinct().ToList();
var torch = mapped.Where(f => Path.GetFileName(f) is var n && (n.StartsWith("libtorch", StringComparison.Ordinal) || n.StartsWith("libc10", StringComparison.Ordinal)
    || n.Contains("maskrcnn_native", StringComparison.Ordinal))).ToList();
Console.WriteLine($"mapped: {mapped.Count(f => f.EndsWith(".so", StringComparison.Ordinal) || f.Contains(".so.", StringComparison.Ordinal))} shared objects; onnxruntime: {mapped.FirstOrDefault(f => f.Contains("libonnxruntime", StringComparison.Ordinal))}");
Check(torch.Count == 0, $"libtorch/shim libraries were mapped: {string.Join(", ", torch)}");
Check(mapped.Any(f => Path.GetFileName(f).StartsWith("libonnxruntime", StringComparison.Ordinal)), "ONNX Runtime's library was not mapped (did the model run?)");
Check(!File.Exists(Path.Combine(AppContext.BaseDirectory, "MaskRcnn.Net.Core.dll")), "MaskRcnn.Net.Core.dll reached the app's output");
Check(AppDomain.CurrentDomain.GetAssemblies().All(a => a.GetName().Name != "MaskRcnn.Net.Core"), "MaskRcnn.Net.Core was loaded");
Console.WriteLine(failures.Count == 0 ? "ONNX consumer checks passed" : $"{failures.Count} ONNX consumer checks failed");
return failures.Count == 0 ? 0 : 1;
CS
step "building and running the ONNX Runtime consumer app"
dotnet build -c Release --nologo -v quiet -o "$work/onnx-app/bin/out" >/dev/null
if find "$work/onnx-app/bin/out" -name 'libtorch*' -o -name 'libc10*' -o -name 'libmaskrcnn_native*' -o -name 'MaskRcnn.Net.Core.dll' | grep -q .; then
  echo "smoke-test: FAIL libtorch, the shim or MaskRcnn.Net.Core reached the ONNX app's output folder" >&2; exit 1
fi
dotnet "$work/onnx-app/bin/out/OnnxSmokeApp.dll" "$work/model.onnx" "$png" "$work/weights.json"

step "passed"
