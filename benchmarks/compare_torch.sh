#!/usr/bin/env bash
# Runs BindingBenchmarks (ours, BenchmarkDotNet) and the same ops in Debian's python3-torch on the same shapes
# and thread count, then prints ours/torch time ratios. Usage: bash benchmarks/compare_torch.sh
set -euo pipefail
cd "$(dirname "$0")/.."
threads=2
out=artifacts/benchmarks
mkdir -p "$out"
dotnet run -c Release --project benchmarks/MaskRcnn.Net.Benchmarks -- --filter '*BindingBenchmarks*' \
  --artifacts "$out" --exporters csv > "$out/bdn.log"
csv=$(ls "$out"/results/*BindingBenchmarks-report.csv)
/usr/bin/python3 - "$csv" "$threads" <<'PY'
import csv, sys, timeit, torch
import torch.nn.functional as F
path, threads = sys.argv[1], int(sys.argv[2])
torch.set_num_threads(threads)
torch.manual_seed(0)
x = torch.randn(1, 256, 200, 272); w = torch.randn(256, 256, 3, 3); b = torch.randn(256)
a = torch.randn(1024, 1024); c = torch.randn(1024, 1024); t = torch.ones(1)
def bench(f, n):
    with torch.inference_mode():
        f()
        return min(timeit.repeat(f, number=n, repeat=5)) / n * 1e9  # ns per call
torch_ns = {
    'Conv2d': bench(lambda: F.conv2d(x, w, b, padding=1), 3),
    'MatMul1024': bench(lambda: a @ c, 20),
    'TinyAdd': min(timeit.repeat(lambda: t + t, number=100000, repeat=5)) / 100000 * 1e9,
    'NumEl': min(timeit.repeat(lambda: t.numel(), number=100000, repeat=5)) / 100000 * 1e9,
}
def to_ns(s):
    s = s.replace(',', '').strip()
    num, unit = s.split()
    return float(num) * {'ns': 1, 'us': 1e3, 'μs': 1e3, 'ms': 1e6, 's': 1e9}[unit]
print(f"{'benchmark':<12} {'ours':>14} {'torch':>14} {'ours/torch':>11}")
for row in csv.DictReader(open(path)):
    name = row['Method']; ours = to_ns(row['Mean'])
    print(f"{name:<12} {ours:>12.0f}ns {torch_ns[name]:>12.0f}ns {ours / torch_ns[name]:>11.2f}")
PY
