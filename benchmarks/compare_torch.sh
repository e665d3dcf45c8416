#!/usr/bin/env bash
# Runs our BenchmarkDotNet benchmarks and the same operations in Debian's python3-torch / torchvision on identical
# inputs (same seeds; our ManualSeed reproduces torch's CPU random streams) and thread count, then prints
# ours/torch time ratios (< 1 means we are faster).
# Both sides report medians. BenchmarkDotNet runs its short job unless BDN_ARGS is set (e.g. BDN_ARGS="" for the
# default job). Usage: bash benchmarks/compare_torch.sh [binding|kernels|all]
set -euo pipefail
cd "$(dirname "$0")/.."
which=${1:-all}
threads=2
out=artifacts/benchmarks
mkdir -p "$out"
case "$which" in
  binding) filter='*BindingBenchmarks*' ;;
  kernels) filter='*KernelBenchmarks* *NmsBenchmarks*' ;;
  all) filter='*BindingBenchmarks* *KernelBenchmarks* *NmsBenchmarks*' ;;
  *) echo "usage: $0 [binding|kernels|all]" >&2; exit 2 ;;
esac
rm -rf "$out/results"
# shellcheck disable=SC2086
dotnet run -c Release --project benchmarks/MaskRcnn.Net.Benchmarks -- --filter $filter \
  --artifacts "$out" --exporters csv ${BDN_ARGS:---job short} > "$out/bdn.log"
/usr/bin/python3 - "$out/results" "$threads" <<'PY'
import csv, glob, os, sys, timeit, torch
import torch.nn.functional as F
from torchvision.ops import roi_align, nms, MultiScaleRoIAlign
from collections import OrderedDict
results, threads = sys.argv[1], int(sys.argv[2])
torch.set_num_threads(threads)

def best(f, number, repeat=5):
    # Median of repeats, like BenchmarkDotNet's Median column that we compare with.
    f()
    times = sorted(timeit.repeat(f, number=number, repeat=repeat))
    return times[len(times) // 2] / number * 1e9  # ns per call

def binding():
    torch.manual_seed(0)
    x = torch.randn(1, 256, 200, 272); w = torch.randn(256, 256, 3, 3); b = torch.randn(256)
    a = torch.randn(1024, 1024); c = torch.randn(1024, 1024); t = torch.ones(1)
    with torch.inference_mode():
        return {
            ('Conv2d', ''): best(lambda: F.conv2d(x, w, b, padding=1), 3),
            ('MatMul1024', ''): best(lambda: a @ c, 20),
            ('TinyAdd', ''): best(lambda: t + t, 100000),
            ('NumEl', ''): best(lambda: t.numel(), 100000),
        }

def rois(n, width, height):
    xy = torch.rand(n, 2) * torch.tensor([float(width), float(height)])
    wh = torch.rand(n, 2) * 256 + 8
    return torch.cat([torch.zeros(n, 1), xy, xy + wh], 1)

def kernels():
    torch.manual_seed(0)
    feature = torch.randn(1, 256, 200, 272)
    r = rois(1000, 1088, 800)
    torch.manual_seed(1)
    levels = [torch.randn(1, 256, 200, 272), torch.randn(1, 256, 100, 136), torch.randn(1, 256, 50, 68), torch.randn(1, 256, 25, 34)]
    feats = OrderedDict((str(i), l) for i, l in enumerate(levels))
    msra = MultiScaleRoIAlign(['0', '1', '2', '3'], 7, 2)
    def fwd_bwd():
        x = feature.detach().requires_grad_()
        roi_align(x, r, (7, 7), 0.25, 2, False).sum().backward()
    with torch.no_grad():
        res = {
            ('RoIAlignForward', ''): best(lambda: roi_align(feature, r, (7, 7), 0.25, 2, False), 3),
            ('MultiScaleRoIAlign4Levels', ''): best(lambda: msra(feats, [r[:, 1:]], [(800, 1088)]), 3),
        }
    res[('RoIAlignForwardBackward', '')] = best(fwd_bwd, 1, 3)
    for n in (1000, 4000, 12000):
        torch.manual_seed(2)
        xy = torch.rand(n, 2) * 1000
        wh = torch.rand(n, 2) * 200 + 4
        boxes = torch.cat([xy, xy + wh], 1)
        scores = torch.rand(n)
        res[('NmsApply', str(n))] = best(lambda: nms(boxes, scores, 0.5), 3 if n > 4000 else 10)
    return res

def to_ns(s):
    s = s.replace(',', '').strip()
    num, unit = s.split()
    return float(num) * {'ns': 1, 'us': 1e3, 'μs': 1e3, 'ms': 1e6, 's': 1e9}[unit]

rows = []
for path in sorted(glob.glob(os.path.join(results, '*-report.csv'))):
    rows += list(csv.DictReader(open(path)))
torch_ns = {}
if any(r['Method'] in ('Conv2d', 'MatMul1024', 'TinyAdd', 'NumEl') for r in rows):
    torch_ns.update(binding())
if any(r['Method'] not in ('Conv2d', 'MatMul1024', 'TinyAdd', 'NumEl') for r in rows):
    torch_ns.update(kernels())
def fmt(ns):
    if ns is None: return 'n/a'
    return f"{ns:.0f} ns" if ns < 1e4 else (f"{ns / 1e3:.1f} us" if ns < 1e6 else f"{ns / 1e6:.1f} ms")
print(f"{'benchmark':<28} {'ours':>12} {'torch':>12} {'ours/torch':>11}")
for row in rows:
    key = (row['Method'], row.get('Boxes', ''))
    ours = to_ns(row['Median'] if row.get('Median') else row['Mean'])
    name = row['Method'] + (f"({key[1]})" if key[1] else '')
    ref = torch_ns.get(key)
    ratio = f"{ours / ref:>11.2f}" if ref else f"{'n/a':>11}"
    print(f"{name:<28} {fmt(ours):>12} {fmt(ref):>12} {ratio}")
PY
