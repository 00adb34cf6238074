#!/usr/bin/env bash
# The overload runs of bench/README.md ("Overload and hostile clients"),
# each on a fresh server: (a) publishing as fast as possible to 10,000
# subscribers on 100 channels with an 8 MB outbound budget; (b) 1,000 good
# subscribers quiet, then beside hostile clients. RUNS (default 3) of each;
# the JSON lines go to $OUT (default bench/results/<commit>-overload.jsonl),
# the server's refusal and saturation counters after each run to
# $OUT.metrics. (a) runs with saturation_delay 50 ms, (b) with the
# defaults. BIN (default bin/herald), HERALD_BENCH_BIN (default
# bin/herald-bench), PORT (default 16700), ONLY (a or b)
# and BENCH_ARGS (extra load-tool flags) adjust it.
#
# In (b) the good clients are measured by one load-tool process, started
# the same way in the quiet and the mixed run (--ready-file/--start-file);
# in the mixed run the hostile clients run in a second process of their
# own (--subscribers 0 --publishers 0), from another source address
# (HOSTILE_SOURCE, default 127.0.0.2), as attackers would run on other
# machines: their load-tool work (Go scheduler, GC, timers) no longer
# delays the measuring process's reads. Their line goes to $OUT.hostile.
# HOSTILE_SAME_PROCESS=1 runs them inside the measuring process instead,
# as up to session 6; HOSTILE_NICE=n runs their process at that nice
# level (an experiment of session 7, not the default: see
# docs/benchmarks.md).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin/herald}
BENCH_BIN=${HERALD_BENCH_BIN:-bin/herald-bench}
PORT=${PORT:-16700}
RUNS=${RUNS:-3}
OUT=${OUT:-bench/results/$(git rev-parse --short HEAD)-overload.jsonl}
# The servers' logs (with the banner's one-off admin token) stay out of
# bench/results.
SERVER_LOG=${SERVER_LOG:-$(mktemp -t herald-overload-XXXXXX.log)}
{ [ -x "$BIN" ] && [ -x "$BENCH_BIN" ]; } || make build
# shellcheck source=bench/server.sh
. bench/server.sh
SERVE_ARGS=()
start_server() {
  stop_server
  "$BIN" serve --host 127.0.0.1 --port "$PORT" --log-level warn --shutdown-timeout 2s \
    --memory-limit-mb 1024 "${SERVE_ARGS[@]}" >>"$SERVER_LOG" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then return 0; fi
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "server did not start; its log:" >&2
  cat "$SERVER_LOG" >&2
  exit 1
}
bench() {
  # shellcheck disable=SC2086
  "$BENCH_BIN" fanout --url "ws://127.0.0.1:$PORT" --api "http://127.0.0.1:$PORT" \
    --server-pid "$server_pid" --json $BENCH_ARGS "$@" >>"$OUT"
  { echo "# $*"; curl -s "http://127.0.0.1:$PORT/metrics" |
    grep -E '^herald_(refusals_total[{]|shed_connections_total |outbound_bytes )'; } >>"$OUT.metrics" || true
}
# bench_b [hostile flags]: (b)'s good clients in one process and, with
# flags, the hostile clients in another, both started from one start file.
bench_b() {
  local dir; dir=$(mktemp -d -t herald-overload-b-XXXXXX)
  local coord=(--url "ws://127.0.0.1:$PORT" --api "http://127.0.0.1:$PORT" --server-pid "$server_pid" --json
    --start-file "$dir/start" --start-wait 60s)
  local pids=()
  # shellcheck disable=SC2086
  "$BENCH_BIN" fanout "${coord[@]}" --ready-file "$dir/ready.good" $BENCH_ARGS "${good[@]}" >"$dir/good.jsonl" &
  pids+=($!)
  local want=("$dir/ready.good")
  if [ $# -gt 0 ]; then
    # shellcheck disable=SC2086
    ${HOSTILE_NICE:+nice -n $HOSTILE_NICE} "$BENCH_BIN" fanout "${coord[@]}" --ready-file "$dir/ready.hostile" --subscribers 0 --publishers 0 \
      --channels 10 --duration 15s --warmup 3s --source-ips "${HOSTILE_SOURCE:-127.0.0.2}" "$@" >"$dir/hostile.jsonl" &
    pids+=($!)
    want+=("$dir/ready.hostile")
  fi
  for _ in $(seq 1 600); do
    local ready=1
    for f in "${want[@]}"; do [ -f "$f" ] || ready=0; done
    [ $ready = 1 ] && break
    sleep 0.1
  done
  date +%s%N >"$dir/start"
  local rc=0
  for p in "${pids[@]}"; do wait "$p" || rc=1; done
  cat "$dir/good.jsonl" >>"$OUT"
  [ -f "$dir/hostile.jsonl" ] && cat "$dir/hostile.jsonl" >>"$OUT.hostile"
  { echo "# ${good[*]} $*"; curl -s "http://127.0.0.1:$PORT/metrics" |
    grep -E '^herald_(refusals_total[{]|shed_connections_total |outbound_bytes )'; } >>"$OUT.metrics" || true
  rm -rf "$dir"
  [ $rc = 0 ] || echo "a load-tool process failed (rc $rc)" >&2
}
BENCH_ARGS=${BENCH_ARGS:-}
ONLY=${ONLY:-ab}
for i in $(seq 1 "$RUNS"); do
  if [[ $ONLY == *a* ]]; then
    echo "run $i/$RUNS: (a) fanout flood" >&2
    SERVE_ARGS=(--outbound-budget-mb 8 --saturation-delay 50ms)
    start_server
    bench --subscribers 10000 --channels 100 --publishers 8 --rate 0 --duration 20s --warmup 3s
  fi
  if [[ $ONLY == *b* ]]; then
    SERVE_ARGS=()
    good=(--subscribers 1000 --channels 10 --publishers 2 --rate 200 --duration 15s --warmup 3s)
    hostile=(--hostile-pingers 20 --hostile-stormers 20 --hostile-stalled 50 --hostile-rate 500)
    echo "run $i/$RUNS: (b) quiet" >&2
    start_server
    if [ "${HOSTILE_SAME_PROCESS:-0}" = 1 ]; then bench "${good[@]}"; else bench_b; fi
    echo "run $i/$RUNS: (b) mixed" >&2
    start_server
    if [ "${HOSTILE_SAME_PROCESS:-0}" = 1 ]; then bench "${good[@]}" "${hostile[@]}"; else bench_b "${hostile[@]}"; fi
  fi
done
stop_server
echo "results in $OUT, server logs in $SERVER_LOG" >&2
