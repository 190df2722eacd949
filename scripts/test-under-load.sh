#!/usr/bin/env bash
# The whole suite from a clean clone while a CPU hog holds one core (issue 17): proves the
# suite does not depend on a quiet machine. Clones the local checkout's committed HEAD (not
# the work tree) into a temp dir, runs `npm ci` there, then `npm test` (extra arguments are
# passed on to it, e.g. -- --sequence.shuffle) with `node -e 'for(;;){}'` running, and prints
# the wall time of each step. The hog and the clone are removed on any exit.
#
# Each run also writes vitest's JSON report (per-file durations) to $RESULTS (default: a new
# directory under /tmp, printed) and prints the slowest files; `node scripts/test-durations.mjs
# --write $RESULTS/run-*.json` refreshes test/durations.json (the order test files start in).
#
#   scripts/test-under-load.sh                 # one run
#   RUNS=3 scripts/test-under-load.sh          # three runs in a row, one clone
#   KEEP=1 scripts/test-under-load.sh          # keep the clone (its path is printed)
#   HOG=0 scripts/test-under-load.sh           # no CPU hog (the quiet-machine wall time)
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
runs="${RUNS:-1}"
work="$(mktemp -d "${TMPDIR:-/tmp}/enclave-load-XXXXXX")"
results="${RESULTS:-$(mktemp -d "${TMPDIR:-/tmp}/enclave-load-results-XXXXXX")}"
mkdir -p "$results"
hog=""

cleanup() {
  if [ -n "$hog" ] && kill -0 "$hog" 2>/dev/null; then
    kill "$hog" 2>/dev/null || true
    wait "$hog" 2>/dev/null || true
  fi
  if [ "${KEEP:-0}" = 1 ]; then echo "clone kept: $work/enclave"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "cloning $repo (HEAD $(git -C "$repo" rev-parse --short HEAD)) into $work"
git clone --quiet --no-hardlinks "$repo" "$work/enclave"
cd "$work/enclave"

t0=$(date +%s)
npm ci --no-audit --no-fund
echo "npm ci: $(( $(date +%s) - t0 )) s"

# One core busy for the whole run; killed by its PID (the trap), never by name.
if [ "${HOG:-1}" = 1 ]; then
  node -e 'for(;;){}' &
  hog=$!
  echo "CPU hog: pid $hog"
  load="under the CPU hog"
else
  load="no CPU hog"
fi

status=0
for i in $(seq 1 "$runs"); do
  t0=$(date +%s)
  report="$results/run-$i.json"
  if npm test -- --reporter=default --reporter=json --outputFile.json="$report" "$@"; then result=passed; else result=FAILED; status=1; fi
  echo "run $i/$runs: $result in $(( $(date +%s) - t0 )) s (wall, $load)"
  if [ -f "$report" ]; then node "$repo/scripts/test-durations.mjs" "$report" | tail -n 11; fi
done
echo "vitest reports: $results"
exit "$status"
