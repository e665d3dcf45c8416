#!/usr/bin/env bash
# Full Mask R-CNN inference (ResNet-50-FPN, images resized to 800 px) of MaskRcnn.Net next to torchvision on the
# same weights (a seeded maskrcnn_resnet50_fpn state dict) and the same images, 2 threads each, in one run; also the
# same model exported with `maskrcnn export` and run by ONNX Runtime (`maskrcnn predict --onnx`, no libtorch).
# Prints per-image seconds (median of 3 timed runs after a warm-up) and the ratios to torchvision.
# Usage: bash benchmarks/compare_inference.sh [IMAGE...]   (default: three shipped validation MRI slices)
set -euo pipefail
cd "$(dirname "$0")/.."
out=artifacts/benchmarks/inference
mkdir -p "$out"
if [ $# -gt 0 ]; then images=("$@"); else images=(data/brain-tumor/val/images/00124_10.jpg data/brain-tumor/val/images/00124_11.jpg data/brain-tumor/val/images/00124_12.jpg); fi
/usr/bin/python3 - "$out" "${images[@]}" <<'PY'
import sys, os, json, time, statistics, torch
from torchvision.models.detection import maskrcnn_resnet50_fpn
from torchvision.io import read_image, ImageReadMode
out, paths = sys.argv[1], sys.argv[2:]
torch.set_num_threads(2)
torch.manual_seed(0)
m = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91).eval()
with torch.no_grad():
    m.roi_heads.box_predictor.cls_score.weight.mul_(40)
torch.save(m.state_dict(), os.path.join(out, 'weights.pth'))
res = {}
with torch.inference_mode():
    for p in paths:
        img = read_image(p, ImageReadMode.RGB).float() / 255
        m([img])
        times = []
        for _ in range(3):
            t = time.perf_counter(); d = m([img]); times.append(time.perf_counter() - t)
        res[p] = {'seconds': statistics.median(times), 'detections': len(d[0]['boxes'])}
json.dump(res, open(os.path.join(out, 'torchvision.json'), 'w'))
PY
dotnet build src/MaskRcnn.Net.Cli -c Release -v q -nologo >/dev/null
cli=(dotnet src/MaskRcnn.Net.Cli/bin/Release/net10.0/maskrcnn.dll)
"${cli[@]}" export --weights "$out/weights.pth" --onnx "$out/model.onnx" >/dev/null
for run in 1 2 3; do   # interleaved, so a slower minute of the machine hits both
  "${cli[@]}" predict --weights "$out/weights.pth" --score-threshold 0.05 \
    --warmup --threads 2 --json "$out/ours$run.json" "${images[@]}" 2>/dev/null
  "${cli[@]}" predict --onnx "$out/model.onnx" --warmup --threads 2 --json "$out/onnx$run.json" "${images[@]}" 2>/dev/null
done
/usr/bin/python3 - "$out" "${images[@]}" <<'PY'
import sys, os, json, statistics
out, paths = sys.argv[1], sys.argv[2:]
tv = json.load(open(os.path.join(out, 'torchvision.json')))
def load(kind):
    return [json.load(open(os.path.join(out, f'{kind}{i}.json')))['results'] for i in (1, 2, 3)]
runs, onnx = load('ours'), load('onnx')
print(f"{'image':<44} {'ours s':>8} {'onnx s':>8} {'torchvision s':>14} {'ours/tv':>8} {'onnx/tv':>8} {'dets ours/onnx/tv':>18}")
ratios, onnx_ratios = [], []
for i, p in enumerate(paths):
    ours = statistics.median(r[i]['seconds'] for r in runs)
    ort = statistics.median(r[i]['seconds'] for r in onnx)
    ratios.append(ours / tv[p]['seconds']); onnx_ratios.append(ort / tv[p]['seconds'])
    dets = f"{len(runs[0][i]['detections'])}/{len(onnx[0][i]['detections'])}/{tv[p]['detections']}"
    print(f"{p:<44} {ours:>8.3f} {ort:>8.3f} {tv[p]['seconds']:>14.3f} {ratios[-1]:>8.2f} {onnx_ratios[-1]:>8.2f} {dets:>18}")
print(f"mean ratio ours/torchvision: {statistics.mean(ratios):.2f}")
print(f"mean ratio onnx runtime/torchvision: {statistics.mean(onnx_ratios):.2f}")
PY
