#!/usr/bin/env bash
# Load figure of `maskrcnn serve`: starts the server on 127.0.0.1 (a free port) with the demo model
# (artifacts/demo/model.safetensors, the ResNet-18 model `maskrcnn demo` trains; trained first with scripts/demo.sh
# when missing), runs CLIENTS closed-loop clients POSTing the validation MRI slices to /predict for SECONDS
# (benchmarks/MaskRcnn.Net.Benchmarks serve-load), prints requests/s and p50/p95/p99 latency, and the server's RSS
# after the model load (before any request), after the run, and its peak (VmRSS, VmHWM of /proc/PID/status); then
# stops the server with SIGTERM and checks it exits 0.
# Usage: bash benchmarks/serve_load.sh [--weights FILE] [--seconds 120] [--clients 4] [-- extra serve options]
set -euo pipefail
cd "$(dirname "$0")/.."
weights=artifacts/demo/model.safetensors
seconds=120
clients=4
serve_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --weights) weights=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    --) shift; serve_args=("$@"); break ;;
    *) echo "serve_load.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
if [ ! -f "$weights" ]; then
  if [ "$weights" != artifacts/demo/model.safetensors ]; then echo "serve_load.sh: $weights does not exist" >&2; exit 1; fi
  echo "serve_load.sh: no $weights: training the demo model first (bash scripts/demo.sh)"
  bash scripts/demo.sh
fi
dotnet build src/MaskRcnn.Net.Cli -c Release --nologo -v quiet >/dev/null
dotnet build benchmarks/MaskRcnn.Net.Benchmarks -c Release --nologo -v quiet >/dev/null
cli=src/MaskRcnn.Net.Cli/bin/Release/net10.0/maskrcnn.dll
bench=benchmarks/MaskRcnn.Net.Benchmarks/bin/Release/net10.0/MaskRcnn.Net.Benchmarks.dll
work=$(mktemp -d)
dotnet "$cli" serve --weights "$weights" --host 127.0.0.1 --port 0 ${serve_args[@]+"${serve_args[@]}"} >"$work/stdout" 2>"$work/server.log" &
pid=$!
cleanup() { if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi; rm -rf "$work"; }
trap cleanup EXIT
url=""
for _ in $(seq 1 600); do
  url=$(sed -n 's/^maskrcnn serve: listening on //p' "$work/stdout" | head -n 1)
  [ -n "$url" ] && break
  if ! kill -0 "$pid" 2>/dev/null; then echo "serve_load.sh: the server exited:" >&2; cat "$work/server.log" >&2; exit 1; fi
  sleep 0.5
done
[ -n "$url" ] || { echo "serve_load.sh: the server did not start within 300 s" >&2; cat "$work/server.log" >&2; exit 1; }
kib() { awk -v k="$1" '$1 == k":" {print $2}' "/proc/$pid/status"; }
echo "server: $url, model $weights ($(grep -m1 'Mask R-CNN ready' "$work/server.log" | sed 's/.*ready/ready/'))"
rss_before=$(kib VmRSS)
status=0
dotnet "$bench" serve-load --url "$url" --clients "$clients" --seconds "$seconds" || status=1
rss_after=$(kib VmRSS); rss_peak=$(kib VmHWM)
echo "server RSS: $((rss_before / 1024)) MiB after loading the model, $((rss_after / 1024)) MiB after the run, peak $((rss_peak / 1024)) MiB"
echo "server errors logged: $(grep -c -E 'warn|fail|error' "$work/server.log" || true)"
kill -TERM "$pid"
if wait "$pid"; then echo "server: stopped with SIGTERM, exit 0"; else echo "server: exit code $? after SIGTERM" >&2; status=1; fi
exit $status
