#!/usr/bin/env bash
# Video throughput and memory of `maskrcnn predict --video` (a benchmark, not a test; run it on an idle machine):
#   1. 256 px: the demo's ResNet-18 model (artifacts/demo/model.safetensors, trained first with scripts/demo.sh when
#      missing) on a FRAMES-frame (default 1000) 256x256 video made of the 40 validation MRI slices (each scaled to fit
#      256x256, centred on black) looped, 25 frames/s: frames/s of the whole pipeline (ffmpeg decode -> batches of 4 ->
#      draw -> libx264 encode), and the CLI's RSS (VmRSS of /proc/PID/status, sampled every 0.5 s) at the start (its
#      first progress report) and at the end (the last sample before it exits), and its peak (VmHWM);
#   2. 800 px: a ResNet-50-FPN (torchvision's maskrcnn_resnet50_fpn, seeded random weights with sharpened class scores,
#      as benchmarks/compare_inference.sh builds it) on a FRAMES800-frame (default 24) 800x800 video of the same slices.
# Prints one line per run and writes the logs to artifacts/benchmarks/video/.
# Usage: bash benchmarks/video_throughput.sh [--frames 1000] [--frames800 24] [--threads N]
set -euo pipefail
cd "$(dirname "$0")/.."
frames=1000
frames800=24
threads=()
while [ $# -gt 0 ]; do
  case "$1" in
    --frames) frames=$2; shift 2 ;;
    --frames800) frames800=$2; shift 2 ;;
    --threads) threads=(--threads "$2"); shift 2 ;;
    *) echo "video_throughput.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
out=artifacts/benchmarks/video
mkdir -p "$out"
weights=artifacts/demo/model.safetensors
if [ ! -f "$weights" ]; then
  echo "video_throughput.sh: no $weights: training the demo model first (bash scripts/demo.sh)"
  bash scripts/demo.sh
fi
dotnet build src/MaskRcnn.Net.Cli -c Release --nologo -v quiet >/dev/null
cli=src/MaskRcnn.Net.Cli/bin/Release/net10.0/maskrcnn.dll
echo "host: $(hostname), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(date -u '+%Y-%m-%d %H:%M UTC'), $(ffmpeg -version | head -1 | cut -d' ' -f1-3)"

# A video of the validation slices at SIZE x SIZE, looped to N frames, 25 frames/s, lossless-enough H.264 (CRF 12).
make_video() {  # make_video SIZE N OUT
  local size=$1 n=$2 file=$3
  ffmpeg -y -nostdin -v error -framerate 25 -pattern_type glob -i 'data/brain-tumor/val/images/*.jpg' \
    -vf "scale=$size:$size:force_original_aspect_ratio=decrease,pad=$size:$size:(ow-iw)/2:(oh-ih)/2,format=yuv420p" \
    -c:v libx264 -crf 12 "$out/slices-$size.mp4"
  ffmpeg -y -nostdin -v error -stream_loop -1 -i "$out/slices-$size.mp4" -frames:v "$n" -c:v libx264 -crf 12 -pix_fmt yuv420p "$file"
}

# run NAME WEIGHTS VIDEO [extra predict args]: predict --video with RSS sampling; prints the summary.
run() {
  local name=$1 w=$2 video=$3; shift 3
  local log="$out/$name.log" rss="$out/$name.rss.tsv"
  hwm=0
  : >"$rss"
  dotnet "$cli" predict --weights "$w" --video "$video" --out "$out/$name.mp4" --json "$out/$name.jsonl" ${threads[@]+"${threads[@]}"} "$@" 2>"$log" &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    local kib frame
    kib=$(awk '$1 == "VmRSS:" {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    frame=$(sed -n 's/^video: frame \([0-9]*\).*/\1/p' "$log" | tail -n 1)
    [ -n "$kib" ] && printf '%s\t%s\n' "${frame:-0}" "$kib" >>"$rss"
    local h
    h=$(awk '$1 == "VmHWM:" {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    [ -n "$h" ] && hwm=$h
    sleep 0.5
  done
  if ! wait "$pid"; then echo "video_throughput.sh: $name failed:" >&2; tail -n 20 "$log" >&2; exit 1; fi
  local summary
  summary=$(grep -E '^.*: [0-9]+ frames \([0-9]+ predicted\) in ' "$log" | tail -n 1)
  echo "$name: ${summary#*: }"
  awk -v name="$name" -v hwm="${hwm:-0}" -F'\t' '
    $1 > 0 && start == "" { start = $2; sframe = $1 }
    { end = $2; eframe = $1 }
    END { if (start != "") printf "%s: RSS %.1f MiB at frame %d (first progress report), %.1f MiB at frame %d (last sample), %+.1f %%; peak %.1f MiB\n",
            name, start / 1024, sframe, end / 1024, eframe, (end - start) * 100 / start, hwm / 1024 }' "$rss"
}

make_video 256 "$frames" "$out/input-256.mp4"
run "demo-resnet18-256px-${frames}f" "$weights" "$out/input-256.mp4"

# The R50-FPN of compare_inference.sh: torchvision's architecture, seeded random weights, class scores sharpened.
/usr/bin/python3 - "$out/r50.pth" <<'PY'
import sys, torch
from torchvision.models.detection import maskrcnn_resnet50_fpn
torch.manual_seed(0)
m = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91).eval()
with torch.no_grad():
    m.roi_heads.box_predictor.cls_score.weight.mul_(40)
torch.save(m.state_dict(), sys.argv[1])
PY
make_video 800 "$frames800" "$out/input-800.mp4"
run "r50-fpn-800px-${frames800}f" "$out/r50.pth" "$out/input-800.mp4"
