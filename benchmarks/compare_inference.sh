#!/usr/bin/env bash
# Full Mask R-CNN inference (ResNet-50-FPN, images resized to 800 px) of MaskRcnn.Net next to torchvision on the
# same weights (a seeded maskrcnn_resnet50_fpn state dict) and the same images, 2 threads each, in one run.
# Prints per-image seconds (median of 3 timed runs after a warm-up) and the ours/torchvision ratio.
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
ours=()
for run in 1 2 3; do
  dotnet run --project src/MaskRcnn.Net.Cli -c Release -- predict --weights "$out/weights.pth" --score-threshold 0.05 \
    --warmup --threads 2 --json "$out/ours$run.json" "${images[@]}" 2>/dev/null
done
/usr/bin/python3 - "$out" "${images[@]}" <<'PY'
import sys, os, json, statistics
out, paths = sys.argv[1], sys.argv[2:]
tv = json.load(open(os.path.join(out, 'torchvision.json')))
runs = [json.load(open(os.path.join(out, f'ours{i}.json')))['results'] for i in (1, 2, 3)]
print(f"{'image':<44} {'ours s':>8} {'torchvision s':>14} {'ratio':>6} {'dets ours/tv':>13}")
ratios = []
for i, p in enumerate(paths):
    ours = statistics.median(r[i]['seconds'] for r in runs)
    ratio = ours / tv[p]['seconds']; ratios.append(ratio)
    print(f"{p:<44} {ours:>8.3f} {tv[p]['seconds']:>14.3f} {ratio:>6.2f} {len(runs[0][i]['detections']):>6}/{tv[p]['detections']}")
print(f"mean ratio ours/torchvision: {statistics.mean(ratios):.2f}")
PY
