#!/usr/bin/env bash
# Runs Herald's load scenarios (bin/herald-bench) against bin/herald on
# loopback: a short form of each by default (what `make bench` runs, about
# a minute), or the full figures of bench/README.md with --full. Every
# scenario gets a freshly started server so that RSS and CPU figures are
# its own.
#
#   bench/run.sh            short forms
#   bench/run.sh --full     the README's figures (19,000 idle, 10,000 fanout, ...)
#
# Environment:
#   HERALD_BIN        server binary (default bin/herald; built if unset)
#   HERALD_BENCH_BIN  load tool (default bin/herald-bench; built if unset)
#   BENCH_PORT        port for the server (default 16600)
#   BENCH_OUT         file that collects the JSON lines (default a temp file)
#   BENCH_ARGS        extra flags for every scenario (e.g. "--progress 0")
set -euo pipefail
cd "$(dirname "$0")/.."

mode=short
case "${1:-}" in
  --full) mode=full ;;
  ""|--short) ;;
  -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
  *) echo "usage: bench/run.sh [--short|--full]" >&2; exit 2 ;;
esac

GO=${GO:-go}
BIN=${HERALD_BIN:-bin/herald}
BENCH_BIN=${HERALD_BENCH_BIN:-bin/herald-bench}
PORT=${BENCH_PORT:-16600}
OUT=${BENCH_OUT:-$(mktemp "${TMPDIR:-/tmp}/herald-bench.XXXXXX.jsonl")}
EXTRA=${BENCH_ARGS:-}

if [ -z "${HERALD_BIN:-}" ]; then
  echo "building $BIN"
  mkdir -p "$(dirname "$BIN")"
  $GO build -o "$BIN" ./cmd/herald
fi
if [ -z "${HERALD_BENCH_BIN:-}" ]; then
  echo "building $BENCH_BIN"
  mkdir -p "$(dirname "$BENCH_BIN")"
  $GO build -o "$BENCH_BIN" ./cmd/herald-bench
fi

# shellcheck source=bench/server.sh
source bench/server.sh

failed=0
# run NAME SCENARIO FLAGS...: one scenario against a fresh server.
run() {
  local name=$1; shift
  start_server
  echo
  echo "=== $name: herald-bench $*"
  local log
  log=$(mktemp)
  # shellcheck disable=SC2086
  if ! "$BENCH_BIN" "$@" --url "ws://127.0.0.1:$PORT" --server-pid "$server_pid" $EXTRA | tee "$log"; then
    failed=$((failed + 1))
  fi
  grep '^{' "$log" | tail -n 1 | sed "s/^{/{\"name\":\"$name\",/" >>"$OUT" || true
  rm -f "$log"
  stop_server
}

api=(--api "http://127.0.0.1:$PORT")
if [ "$mode" = full ]; then
  run idle-19k      idle   --conns 19000 --channels 100 --settle 5s
  run fanout-1k     fanout --subscribers 1000 --channels 1 --publishers 8 --duration 20s --warmup 3s "${api[@]}"
  run fanout-10k    fanout --subscribers 10000 --channels 100 --publishers 8 --duration 20s --warmup 3s "${api[@]}"
  run latency-1k    fanout --subscribers 1000 --channels 1 --publishers 1 --rate 20 --duration 30s --warmup 3s "${api[@]}"
  run churn         churn  --conns 50 --channels 10 --duration 20s
else
  run idle          idle   --conns 2000 --channels 100 --settle 2s
  run fanout-1k     fanout --subscribers 1000 --channels 1 --publishers 8 --duration 3s --warmup 1s "${api[@]}"
  run fanout-2k-100 fanout --subscribers 2000 --channels 100 --publishers 8 --channels-per-event 10 --duration 3s --warmup 1s "${api[@]}"
  run latency-1k    fanout --subscribers 1000 --channels 1 --publishers 1 --rate 20 --duration 3s --warmup 1s "${api[@]}"
  run churn         churn  --conns 20 --channels 10 --duration 3s
fi

echo
echo "JSON lines: $OUT"
rm -f "$OUT.server.log"
if [ "$failed" -gt 0 ]; then
  echo "$failed scenario(s) failed" >&2
  exit 1
fi
