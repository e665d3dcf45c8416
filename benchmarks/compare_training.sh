#!/usr/bin/env bash
# One Mask R-CNN training iteration (ResNet-50-FPN with frozen BN and 3 trainable stages — torchvision's fine-tuning
# set-up —, batch of 2 images at 512 px, losses + backward + SGD step) of MaskRcnn.Net next to torchvision 0.14 on
# the same weights and the same images/targets, 2 threads each. Prints the median seconds of each and the ratio.
# Usage: bash benchmarks/compare_training.sh [runs]   (default 5 timed iterations after one warm-up)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-5}"
out=artifacts/benchmarks/training
mkdir -p "$out"
/usr/bin/python3 - "$out" "$runs" <<'PY'
import sys, os, json, time, statistics, torch
from torchvision.models import resnet50
from torchvision.ops import FrozenBatchNorm2d
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
from torchvision.io import read_image, ImageReadMode
out, runs = sys.argv[1], int(sys.argv[2])
torch.set_num_threads(2)
torch.manual_seed(0)
backbone = _resnet_fpn_extractor(resnet50(weights=None, norm_layer=FrozenBatchNorm2d), 3)
m = MaskRCNN(backbone, num_classes=91, min_size=512, max_size=512)
torch.save(m.state_dict(), os.path.join(out, 'weights.pth'))
ann = json.load(open('data/brain-tumor/train/annotations.json'))
imgs = [i for i in ann['images'] if i['width'] == 512 and i['height'] == 512][:2]
inputs, images, targets = {}, [], []
for k, info in enumerate(imgs):
    img = read_image(os.path.join('data/brain-tumor/train/images', info['file_name']), ImageReadMode.RGB).float() / 255
    boxes = torch.tensor([[a['bbox'][0], a['bbox'][1], a['bbox'][0] + a['bbox'][2], a['bbox'][1] + a['bbox'][3]]
                          for a in ann['annotations'] if a['image_id'] == info['id']], dtype=torch.float32)
    masks = torch.zeros((len(boxes), 512, 512), dtype=torch.uint8)
    for j, b in enumerate(boxes.round().long().tolist()):
        masks[j, b[1]:b[3], b[0]:b[2]] = 1
    labels = torch.ones(len(boxes), dtype=torch.int64)
    inputs.update({f'image{k}': img, f'boxes{k}': boxes, f'labels{k}': labels, f'masks{k}': masks})
    images.append(img); targets.append({'boxes': boxes, 'labels': labels, 'masks': masks})
torch.save(inputs, os.path.join(out, 'inputs.pth'))
opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.01, momentum=0.9, weight_decay=1e-4)
m.train()
times = []
for r in range(runs + 1):
    t = time.perf_counter()
    losses = m(images, targets)
    opt.zero_grad(); sum(losses.values()).backward(); opt.step()
    if r > 0: times.append(time.perf_counter() - t)
json.dump({'median': statistics.median(times), 'runs': times}, open(os.path.join(out, 'torchvision.json'), 'w'))
PY
dotnet run --project benchmarks/MaskRcnn.Net.Benchmarks -c Release -- train-step "$out/weights.pth" "$out/inputs.pth" "$runs" | tail -1 > "$out/ours.json"
/usr/bin/python3 - "$out" <<'PY'
import sys, os, json
out = sys.argv[1]
tv = json.load(open(os.path.join(out, 'torchvision.json'))); ours = json.load(open(os.path.join(out, 'ours.json')))
print(f"training iteration (R50-FPN, batch 2, 512 px, 2 threads), median seconds: ours {ours['median']:.3f}, torchvision {tv['median']:.3f}")
print(f"  ours runs: {', '.join(f'{t:.3f}' for t in ours['runs'])}")
print(f"  torchvision runs: {', '.join(f'{t:.3f}' for t in tv['runs'])}")
print(f"ratio ours/torchvision: {ours['median'] / tv['median']:.2f}")
PY
