#!/usr/bin/env bash
# The test command: installs prerequisites (scripts/setup.sh), builds everything (the native shim is built by
# MSBuild through CMake), runs the whole test suite and the NuGet consumer smoke test (scripts/smoke-test.sh; skip it
# with MR_SKIP_SMOKE_TEST=1), and prints a closing "N passed, N failed" line.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
results="$(pwd)/artifacts/test-results"
rm -rf "$results"
status=0
dotnet test MaskRcnn.Net.sln -c Release --logger "trx" --results-directory "$results" "$@" || status=$?
passed=0; failed=0; skipped=0
shopt -s nullglob
for trx in "$results"/*.trx; do
  counters=$(grep -o '<Counters [^>]*>' "$trx" | head -1)
  p=$(sed -n 's/.* passed="\([0-9]*\)".*/\1/p' <<<"$counters"); f=$(sed -n 's/.* failed="\([0-9]*\)".*/\1/p' <<<"$counters")
  n=$(sed -n 's/.* notExecuted="\([0-9]*\)".*/\1/p' <<<"$counters")
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0})); skipped=$((skipped + ${n:-0}))
done
# The NuGet consumer smoke test (pack, fresh console app outside the repo, predict): one more test in the count.
dotnet_passed=$passed
mkdir -p "$results"; smoke_log="$results/smoke-test.log"
if [ "${MR_SKIP_SMOKE_TEST:-0}" = "1" ]; then
  skipped=$((skipped + 1)); echo "smoke test: skipped (MR_SKIP_SMOKE_TEST=1)"
elif timeout 1200 bash scripts/smoke-test.sh >"$smoke_log" 2>&1; then
  passed=$((passed + 1)); echo "smoke test: $(tail -n 1 "$smoke_log") (log: $smoke_log)"
else
  failed=$((failed + 1)); status=1
  echo "smoke test: FAILED (scripts/smoke-test.sh; last lines of $smoke_log):"; tail -n 60 "$smoke_log"
fi
echo "tests: ${passed} passed, ${failed} failed, ${skipped} skipped"
if [ "$dotnet_passed" -eq 0 ] && [ "$status" -eq 0 ]; then echo "no test ran" >&2; exit 1; fi
exit $status
