#!/usr/bin/env bash
# Prediction soak and RSS checks (benchmarks/MaskRcnn.Net.Benchmarks/Soak.cs), built and run in Release:
#   soak: one model, 2000 predictions from 4 threads on the validation MRI slices;
#   rss:  the same model, 500 sequential predictions ("RSS flat over 500 predictions").
# Each prints RSS after warm-up (first 10 %), at the end and the maximum, and fails when the final RSS exceeds the
# post-warm-up RSS by more than 5 % or a prediction throws. Default model: ResNet-50-FPN (frozen batch norm, random
# init, seed 0) at 256 px, up to 10 detections with masks per image.
# Usage: bash benchmarks/soak.sh [soak|rss|both] [--predictions N] [--threads T] [--depth 18|50] [--norm frozen|group]
#        [--image-size PX] [--detections D] [--max-growth PERCENT] ...   (default: both, options apply to each)
set -euo pipefail
cd "$(dirname "$0")/.."
mode=both
case "${1:-}" in soak|rss|both) mode=$1; shift ;; esac
dotnet build benchmarks/MaskRcnn.Net.Benchmarks -c Release --nologo -v quiet
bin=benchmarks/MaskRcnn.Net.Benchmarks/bin/Release/net10.0/MaskRcnn.Net.Benchmarks.dll
status=0
for m in soak rss; do
  if [ "$mode" = both ] || [ "$mode" = "$m" ]; then
    start=$(date +%s)
    dotnet "$bin" "$m" "$@" || status=1
    echo "$m: wall time $(( $(date +%s) - start )) s"
  fi
done
exit $status
