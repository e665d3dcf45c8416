#!/usr/bin/env bash
# The main job: installs prerequisites, builds, trains Mask R-CNN with the recipe `maskrcnn train` picks from the
# data (the ImageNet-pretrained ResNet-18 when its NuGet package is restored, else from scratch) on the shipped
# brain-MRI tumour data (data/brain-tumor, COCO JSON from makesense.ai), evaluates it on the held-out patients and
# writes the validation images with their predicted masks to artifacts/demo/overlays (metrics in
# artifacts/demo/metrics.txt, the training curves in artifacts/demo/training.png).
# Extra arguments go to `maskrcnn demo` (e.g. --epochs 2 for a quick run, --pretrained none, --seed N).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
dotnet run --project src/MaskRcnn.Net.Cli -c Release -- demo "$@"   # --out defaults to artifacts/demo
