#!/usr/bin/env bash
# Fanout sweep for the chart of docs/benchmarks.md: for each subscriber
# count on ONE channel, a fresh server and two runs:
#   fast   8 HTTP API publishers as fast as possible (deliveries per server CPU-second)
#   paced  1 publisher at 20,000/S events/s, i.e. 20,000 deliveries/s in total
#          whatever S (p99 latency at a constant delivery rate)
# then draws docs/benchmarks-fanout.svg with bench/chart (Go, stdlib only).
#
#   bench/sweep.sh                      S = 100 1000 2000 5000 10000
#   SWEEP_SUBS="100 1000" bench/sweep.sh
#
# Environment: HERALD_BIN (default bin/herald, built if missing),
# HERALD_BENCH_BIN (the load tool, default bin/herald-bench, built if
# missing), BENCH_PORT (default 16600), SWEEP_OUT (JSON lines, default
# bench/results/sweep.jsonl),
# SWEEP_SVG (default docs/benchmarks-fanout.svg), SWEEP_DURATION (default 8s),
# SWEEP_SUBTITLE (the chart's second line).
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
BIN=${HERALD_BIN:-bin/herald}
BENCH_BIN=${HERALD_BENCH_BIN:-bin/herald-bench}
PORT=${BENCH_PORT:-16600}
SUBS=${SWEEP_SUBS:-100 1000 2000 5000 10000}
OUT=${SWEEP_OUT:-bench/results/sweep.jsonl}
SVG=${SWEEP_SVG:-docs/benchmarks-fanout.svg}
DUR=${SWEEP_DURATION:-8s}
SUBTITLE=${SWEEP_SUBTITLE:-$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), Linux $(uname -r); server and load tool on the same box; 100-byte events; medians}

if [ ! -x "$BIN" ] || [ -z "${HERALD_BIN:-}" ]; then
  mkdir -p "$(dirname "$BIN")"
  $GO build -o "$BIN" ./cmd/herald
fi
if [ ! -x "$BENCH_BIN" ] || [ -z "${HERALD_BENCH_BIN:-}" ]; then
  mkdir -p "$(dirname "$BENCH_BIN")"
  $GO build -o "$BENCH_BIN" ./cmd/herald-bench
fi
mkdir -p "$(dirname "$OUT")"
: >"$OUT"

# shellcheck source=bench/server.sh
source bench/server.sh

# run NAME FLAGS...: one fanout run against a fresh server, JSON line kept.
run() {
  local name=$1; shift
  start_server
  echo "=== $name: herald-bench fanout $*" >&2
  "$BENCH_BIN" fanout "$@" --url "ws://127.0.0.1:$PORT" --api "http://127.0.0.1:$PORT" \
    --server-pid "$server_pid" --progress 0 --json | sed "s/^{/{\"name\":\"$name\",/" | tee -a "$OUT"
  stop_server
}

for s in $SUBS; do
  run "fast-$s"  --subscribers "$s" --channels 1 --publishers 8 --duration "$DUR" --warmup 2s
  run "paced-$s" --subscribers "$s" --channels 1 --publishers 1 --rate $((20000 / s)) --duration "$DUR" --warmup 2s
done
rm -f "$OUT.server.log"

$GO run ./bench/chart -o "$SVG" -subtitle "$SUBTITLE" "$OUT"
echo "JSON lines: $OUT; chart: $SVG" >&2
