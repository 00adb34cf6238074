#!/usr/bin/env bash
# Runs the fanout scenarios across a cluster of three Herald nodes on this
# machine, kept in sync by a redis-server of its own (started here on a free
# port, so that its command counts and CPU are this run's alone).
# Subscribers are spread over the three nodes in turn and so are the
# publishers, so every event crosses Redis to reach two thirds of its
# subscribers.
#
#   bench/cluster.sh            short forms (about half a minute)
#   bench/cluster.sh --full     the figures of docs/benchmarks.md
#
# Environment:
#   HERALD_BIN        server binary (default bin/herald; built if unset)
#   HERALD_BENCH_BIN  load tool (default bin/herald-bench; built if unset)
#   BENCH_PORT        first of the four ports used (default 16610)
#   BENCH_OUT         file that collects the JSON lines (default a temp file)
#   BENCH_ARGS        extra flags for every scenario (e.g. "--progress 0")
set -euo pipefail
cd "$(dirname "$0")/.."

mode=short
case "${1:-}" in
  --full) mode=full ;;
  ""|--short) ;;
  -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
  *) echo "usage: bench/cluster.sh [--short|--full]" >&2; exit 2 ;;
esac

GO=${GO:-go}
BIN=${HERALD_BIN:-bin/herald}
BENCH_BIN=${HERALD_BENCH_BIN:-bin/herald-bench}
BASE=${BENCH_PORT:-16610}
OUT=${BENCH_OUT:-$(mktemp "${TMPDIR:-/tmp}/herald-cluster.XXXXXX.jsonl")}
EXTRA=${BENCH_ARGS:-}
REDIS_PORT=$((BASE + 3))
work=$(mktemp -d "${TMPDIR:-/tmp}/herald-cluster.XXXXXX")

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

redis_pid=""
node_pids=()
cleanup() {
  for p in "${node_pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${node_pids[@]}"; do wait "$p" 2>/dev/null || true; done
  node_pids=()
  if [ -n "$redis_pid" ]; then kill -TERM "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true; fi
  redis_pid=""
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

wait_port() {
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "nothing listens on port $1; logs in $work:" >&2
  tail -n 20 "$work"/*.log >&2 || true
  exit 1
}

# proc_cpu PID: utime+stime of a process in seconds.
proc_cpu() {
  awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.3f", ($12 + $13) / hz }' "/proc/$1/stat"
}

# redis_calls [COMMAND]: commands Redis has executed since it started (all,
# or one command's).
redis_calls() {
  redis-cli -p "$REDIS_PORT" INFO commandstats | awk -F'[=,:]' -v only="${1:-}" \
    '/^cmdstat_/ { if (only == "" || $1 == "cmdstat_" only) s += $3 } END { print s + 0 }'
}

start_cluster() {
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" \
    --logfile "$work/redis.log" &
  redis_pid=$!
  wait_port "$REDIS_PORT"
  for i in 0 1 2; do
    "$BIN" serve --host 127.0.0.1 --port $((BASE + i)) --log-level warn --shutdown-timeout 2s \
      --redis-url "redis://127.0.0.1:$REDIS_PORT/0" --redis-prefix "bench:" >"$work/node$i.log" 2>&1 &
    node_pids+=($!)
  done
  for i in 0 1 2; do wait_port $((BASE + i)); done
}

failed=0
# run NAME FLAGS...: one fanout scenario against a fresh cluster.
run() {
  local name=$1; shift
  start_cluster
  local urls apis pids
  urls="ws://127.0.0.1:$BASE,ws://127.0.0.1:$((BASE + 1)),ws://127.0.0.1:$((BASE + 2))"
  apis="http://127.0.0.1:$BASE,http://127.0.0.1:$((BASE + 1)),http://127.0.0.1:$((BASE + 2))"
  pids=$(IFS=,; echo "${node_pids[*]}")
  echo
  echo "=== $name: herald-bench fanout $* (3 nodes, Redis on :$REDIS_PORT)"
  local log calls0 calls1 pub0 pub1 rcpu0 rcpu1
  log=$(mktemp)
  calls0=$(redis_calls)
  pub0=$(redis_calls publish)
  rcpu0=$(proc_cpu "$redis_pid")
  # shellcheck disable=SC2086
  if ! "$BENCH_BIN" fanout "$@" --url "$urls" --api "$apis" --server-pid "$pids" $EXTRA | tee "$log"; then
    failed=$((failed + 1))
  fi
  calls1=$(redis_calls)
  pub1=$(redis_calls publish)
  rcpu1=$(proc_cpu "$redis_pid")
  local line events
  line=$(grep '^{' "$log" | tail -n 1 || true)
  events=$(printf '%s' "$line" | sed -n 's/.*"events_published":\([0-9]*\).*/\1/p')
  local per_event="null" pub_per_event="null"
  if [ -n "$events" ] && [ "$events" -gt 0 ]; then
    per_event=$(awk -v c=$((calls1 - calls0)) -v e="$events" 'BEGIN { printf "%.2f", c / e }')
    pub_per_event=$(awk -v c=$((pub1 - pub0)) -v e="$events" 'BEGIN { printf "%.3f", c / e }')
  fi
  local rcpu
  rcpu=$(awk -v a="$rcpu0" -v b="$rcpu1" 'BEGIN { printf "%.3f", b - a }')
  echo "  redis                      $((calls1 - calls0)) commands in the run incl. connects ($per_event per event), PUBLISH per event $pub_per_event, ${rcpu} CPU-s"
  if [ -n "$line" ]; then
    printf '%s\n' "$line" | sed "s/^{/{\"name\":\"$name\",\"redis_commands\":$((calls1 - calls0)),\"redis_commands_per_event\":$per_event,\"redis_publish_per_event\":$pub_per_event,\"redis_cpu_seconds\":$rcpu,/" >>"$OUT"
  fi
  rm -f "$log"
  cleanup
  work=$(mktemp -d "${TMPDIR:-/tmp}/herald-cluster.XXXXXX")
}

if [ "$mode" = full ]; then
  run fanout-3n-3k  --subscribers 3000 --channels 30 --publishers 6 --duration 20s --warmup 3s
  run latency-3n-1k --subscribers 999 --channels 1 --publishers 3 --rate 20 --duration 30s --warmup 3s
else
  run fanout-3n-3k  --subscribers 3000 --channels 30 --publishers 6 --duration 3s --warmup 1s
  run latency-3n-1k --subscribers 999 --channels 1 --publishers 3 --rate 20 --duration 3s --warmup 1s
fi

echo
echo "JSON lines: $OUT"
if [ "$failed" -gt 0 ]; then
  echo "$failed scenario(s) failed" >&2
  exit 1
fi
