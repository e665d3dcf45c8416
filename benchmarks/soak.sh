#!/usr/bin/env bash
# Prediction soak and RSS checks (benchmarks/MaskRcnn.Net.Benchmarks/Soak.cs), built and run in Release:
#   soak: one model, 2000 predictions from 4 threads on the validation MRI slices;
#   rss:  the same model, 500 sequential predictions ("RSS flat over 500 predictions").
# Each prints RSS after warm-up (first 10 %, then a full GC), at the end (same) and the maximum, and fails when the
# final RSS exceeds the post-warm-up RSS by more than 5 % or a prediction throws. Both points also show the RSS after
# glibc's malloc_trim (memory still in use, without the freed pages glibc keeps cached); --gate trimmed applies the
# limit to that. Default model: ResNet-50-FPN (frozen batch norm, random init, seed 0) at 256 px, score threshold 0,
# up to 10 detections with masks per image. On the 2-core machine under load, soak took ~31 min, rss ~17 min.
# The library caps glibc malloc arenas at 2 and fixes the mmap threshold at 128 KiB when it loads (NativeAllocator);
# MASKRCNN_MALLOC_TUNING=0 bash benchmarks/soak.sh measures glibc's defaults instead.
# Usage: bash benchmarks/soak.sh [soak|rss|both] [--predictions N] [--threads T] [--depth 18|50] [--norm frozen|group]
#        [--image-size PX] [--detections D] [--max-growth PERCENT] [--gate rss|trimmed] ...
#        (default: both; the options apply to each)
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
