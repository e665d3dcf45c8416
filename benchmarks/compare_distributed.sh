#!/usr/bin/env bash
# Data-parallel training on this machine: the same training as 1 process × 2 threads and as 2 worker processes × 1
# thread each (`maskrcnn train --nproc-per-node 2`, Gloo over loopback, the recipe's batch split over the ranks so both
# train on the same samples). Reports optimizer steps per second of the second (warm) epoch and the share of that
# epoch rank 0 spent in collectives (gradient all-reduce, loss averaging, agreement), median and range over repeats,
# the two run kinds interleaved.
# Usage: bash benchmarks/compare_distributed.sh [repeats] [images]   (default 3 repeats, the first 64 training images)
# CONFIGS="recipe r50" selects the configurations: recipe = what `maskrcnn train` picks for this data (ResNet-18, 256
# px, batch 4); r50 = torchvision's fine-tuning layout (ResNet-50-FPN, frozen BN, 512 px, batch 4, 44 M parameters).
set -euo pipefail
cd "$(dirname "$0")/.."
repeats="${1:-3}"
images="${2:-64}"
configs="${CONFIGS:-recipe r50}"
out=artifacts/benchmarks/distributed
rm -rf "$out"; mkdir -p "$out"
dotnet build src/MaskRcnn.Net.Cli -c Release -v q -nologo >/dev/null
cli=src/MaskRcnn.Net.Cli/bin/Release/net10.0/maskrcnn.dll
/usr/bin/python3 - "$images" "$out/subset.json" <<'PY'
import json, sys
n, path = int(sys.argv[1]), sys.argv[2]
a = json.load(open('data/brain-tumor/train/annotations.json'))
a['images'] = a['images'][:n]
ids = {i['id'] for i in a['images']}
a['annotations'] = [x for x in a['annotations'] if x['image_id'] in ids]
json.dump(a, open(path, 'w'))
PY
for config in $configs; do
  case "$config" in
    recipe) extra=() ;;
    r50) extra=(--backbone resnet50 --norm FrozenBatchNorm --pretrained none --min-size 512 --max-size 512) ;;
    *) echo "unknown configuration $config" >&2; exit 2 ;;
  esac
  for r in $(seq 1 "$repeats"); do
    for mode in single after during; do
      dir="$out/$config-$mode-$r"
      args=(train --train "$out/subset.json" --images data/brain-tumor/train/images --out "$dir" --epochs 2 --seed "$r" "${extra[@]}")
      if [ "$mode" = single ]; then
        if [ "$config" = r50 ]; then args+=(--batch-size 4); fi
        dotnet "$cli" "${args[@]}" --threads 2 >"$dir.log" 2>&1
      else
        if [ "$config" = r50 ]; then args+=(--batch-size 2); fi
        sync=AfterBackward; [ "$mode" = during ] && sync=DuringBackward
        MASKRCNN_GRADIENT_SYNC=$sync dotnet "$cli" "${args[@]}" --nproc-per-node 2 >"$dir.log" 2>&1
      fi
    done
  done
done
/usr/bin/python3 - "$out" "$repeats" "$configs" <<'PY'
import re, sys, statistics, os
out, repeats, configs = sys.argv[1], int(sys.argv[2]), sys.argv[3].split()
def parse(path):
    log = open(os.path.join(path, 'train.log')).read()
    batches = int(re.search(r'(\d+) batches per epoch', log).group(1))
    acc = int(re.search(r'batches per epoch[^,]*, (\d+) per step', log).group(1))
    m = re.search(r'epoch 2 done in ([\d.]+) s, mean loss [\d.]+(?:, communication ([\d.]+) % of it)?', log)
    steps = (batches + acc - 1) // acc
    return steps / float(m.group(1)), float(m.group(2)) if m.group(2) else None
for config in configs:
    res = {mode: [parse(f'{out}/{config}-{mode}-{r}') for r in range(1, repeats + 1)] for mode in ('single', 'after', 'during')}
    f = lambda v: f'{statistics.median(v):.3f} ({min(v):.3f}–{max(v):.3f})'
    s = [x[0] for x in res['single']]
    print(f'{config}: steps/s, median (range) of {repeats}: 1 process × 2 threads {f(s)}')
    for mode, name in (('after', 'all-reduce after backward'), ('during', "c10d Reducer during backward")):
        d = [x[0] for x in res[mode]]; c = [x[1] for x in res[mode] if x[1] is not None]
        share = f'; communication share (rank 0, blocking time) {statistics.median(c):.1f} % ({min(c):.1f}–{max(c):.1f})' if c else ''
        print(f'  2 processes × 1 thread, {name}: {f(d)}, ratio to 1 process {statistics.median(d) / statistics.median(s):.2f}{share}')
PY
