#!/usr/bin/env bash
# Full Mask R-CNN inference (ResNet-50-FPN, images resized to 800 px) of MaskRcnn.Net next to torchvision, in one run,
# for the two configurations users meet (benchmarks/inference_reference.py builds and saves both):
#   frozenbn   torchvision's COCO checkpoint layout: FrozenBatchNorm2d with non-trivial frozen statistics;
#   batchnorm  maskrcnn_resnet50_fpn(weights=None): eval-mode BatchNorm2d with default statistics.
# Also the batchnorm model exported with `maskrcnn export` and run by ONNX Runtime (`maskrcnn predict --onnx`).
# Prints per-image seconds (median of 3 rounds, each a warm-up and one timed run; the rounds of torchvision, ours and
# ONNX Runtime interleaved, so a slower minute of the machine hits every side), the ratios to torchvision,
# and the time of each stage (ours: `predict --profile`; torchvision: its modules called stage by stage) with the
# GFLOP/s of the convolution/linear stages against one large convolution (the practical peak of this machine).
# Usage: bash benchmarks/compare_inference.sh [IMAGE...]   (default: three shipped validation MRI slices)
#        PRECISION=bf16 adds `predict --precision bf16` runs of the frozenbn model.
set -euo pipefail
cd "$(dirname "$0")/.."
out=artifacts/benchmarks/inference
mkdir -p "$out"
if [ $# -gt 0 ]; then images=("$@"); else images=(data/brain-tumor/val/images/00124_10.jpg data/brain-tumor/val/images/00124_11.jpg data/brain-tumor/val/images/00124_12.jpg); fi
/usr/bin/python3 benchmarks/inference_reference.py "$out" "${images[@]}"
dotnet build src/MaskRcnn.Net.Cli -c Release -v q -nologo >/dev/null
cli=(dotnet src/MaskRcnn.Net.Cli/bin/Release/net10.0/maskrcnn.dll)
"${cli[@]}" export --weights "$out/batchnorm.pth" --onnx "$out/batchnorm.onnx" >/dev/null
kinds=(frozenbn batchnorm onnx)
for run in 1 2 3; do   # interleaved, so a slower minute of the machine hits every side, torchvision's too
  /usr/bin/python3 benchmarks/inference_reference.py --time "$out" "$run" "${images[@]}"
  for config in frozenbn batchnorm; do
    "${cli[@]}" predict --weights "$out/$config.pth" --score-threshold 0.05 --warmup --threads 2 --profile \
      --json "$out/$config$run.json" "${images[@]}" 2>/dev/null
  done
  if [ "${PRECISION:-}" = bf16 ]; then
    kinds=(frozenbn batchnorm onnx frozenbn_bf16)
    "${cli[@]}" predict --weights "$out/frozenbn.pth" --precision bf16 --score-threshold 0.05 --warmup --threads 2 --profile \
      --json "$out/frozenbn_bf16$run.json" "${images[@]}" 2>/dev/null
  fi
  "${cli[@]}" predict --onnx "$out/batchnorm.onnx" --warmup --threads 2 --json "$out/onnx$run.json" "${images[@]}" 2>/dev/null
done
/usr/bin/python3 - "$out" "${kinds[@]}" <<'PY'
import sys, os, json, statistics
out, kinds = sys.argv[1], sys.argv[2:]
tv = json.load(open(os.path.join(out, 'torchvision.json')))
tv_runs = [json.load(open(os.path.join(out, f'torchvision{i}.json'))) for i in (1, 2, 3)]
for config in tv['configs']:   # torchvision per image and stage: median of its three rounds, as ours
    paths0 = list(tv_runs[0][config])
    tv['configs'][config]['images'] = {
        p: {'seconds': statistics.median(r[config][p]['seconds'] for r in tv_runs),
            'runs': [r[config][p]['seconds'] for r in tv_runs],
            'detections': tv_runs[0][config][p]['detections'],
            'stages': {s: statistics.median(r[config][p]['stages'][s] for r in tv_runs) for s in tv_runs[0][config][p]['stages']}}
        for p in paths0}
runs = {k: [json.load(open(os.path.join(out, f'{k}{i}.json')))['results'] for i in (1, 2, 3)] for k in kinds}
peak = tv['peak_conv_fp32']['gflops']
print(f"one 256->256 3x3 convolution on [1,256,136,200] channels-last, output memory reused (torch, 2 threads): fp32 {peak:.0f} GFLOP/s"
      + (f", bf16 {tv['peak_conv_bf16']['gflops']:.0f} GFLOP/s" if 'gflops' in tv['peak_conv_bf16'] else ''))
for kind in kinds:
    config = 'batchnorm' if kind == 'onnx' else kind.split('_')[0]
    ref = tv['configs'][config]
    paths = list(ref['images'])
    ratios = []
    print(f"\n== {kind} (torchvision: {config}, fp32) ==")
    print(f"{'image':<44} {'ours s':>8} {'runs':>20} {'torchvision s':>14} {'runs':>20} {'ratio':>6} {'dets':>9}")
    for i, p in enumerate(paths):
        secs = [r[i]['seconds'] for r in runs[kind]]
        ours = statistics.median(secs)
        t = ref['images'][p]['seconds']
        ratios.append(ours / t)
        dets = f"{len(runs[kind][0][i]['detections'])}/{ref['images'][p]['detections']}"
        tv_secs = '/'.join(f'{s:.2f}' for s in ref['images'][p]['runs'])
        print(f"{p:<44} {ours:>8.3f} {'/'.join(f'{s:.2f}' for s in secs):>20} {t:>14.3f} {tv_secs:>20} {ratios[-1]:>6.2f} {dets:>9}")
    print(f"mean ratio {kind}/torchvision: {statistics.mean(ratios):.2f} (per image {min(ratios):.2f}-{max(ratios):.2f})")
    if kind == 'onnx':
        continue
    flops = ref['flops']
    stages = list(ref['images'][paths[0]]['stages'])
    ours_st = {s: statistics.median(r[i]['stages'].get(s, 0.0) for r in runs[kind] for i in range(len(paths))) for s in stages}
    tv_st = {s: statistics.median(r[config][p]['stages'][s] for r in tv_runs for p in paths) for s in stages}
    print(f"{'stage (median over images and runs)':<36} {'GFLOP':>7} {'ours ms':>8} {'GFLOP/s':>8} {'tv ms':>8} {'GFLOP/s':>8} {'ratio':>6}")
    for s in stages:
        g = flops.get(s, 0) / 1e9
        rate = lambda sec: f"{g / sec:>8.0f}" if g > 0 and sec > 0 else f"{'':>8}"
        print(f"{s:<36} {g:>7.1f} {ours_st[s]*1e3:>8.0f} {rate(ours_st[s])} {tv_st[s]*1e3:>8.0f} {rate(tv_st[s])} {ours_st[s]/tv_st[s]:>6.2f}")
    extra = {k for r in runs[kind] for res in r for k in res['stages']} - set(stages)
    for s in sorted(extra):
        print(f"{s:<36} {'':>7} {statistics.median(r[i]['stages'].get(s, 0.0) for r in runs[kind] for i in range(len(paths)))*1e3:>8.0f}  (ours only)")
    total = sum(flops.values()) / 1e9
    print(f"{'all stages':<36} {total:>7.1f} {sum(ours_st.values())*1e3:>8.0f} {total/sum(ours_st.values()):>8.0f} {sum(tv_st.values())*1e3:>8.0f} {total/sum(tv_st.values()):>8.0f}")
if 'frozenbn_bf16' in kinds:
    def iou(a, b):
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0])); h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        u = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
        return w * h / u if u > 0 else 0.0
    matched = total = 0
    for f32, b16 in zip(runs['frozenbn'][0], runs['frozenbn_bf16'][0]):
        free = list(b16['detections'])
        for d in f32['detections']:   # greedy, in score order: same label and box IoU >= 0.5
            best = max(((iou(d['box'], e['box']), k) for k, e in enumerate(free) if e['label'] == d['label']), default=(0, -1))
            total += 1
            if best[0] >= 0.5:
                matched += 1
                free.pop(best[1])
    print(f"\nfp32 detections of the frozenbn model matched in bf16 (same label, box IoU >= 0.5): {matched}/{total} = {matched / total:.1%}")
PY
