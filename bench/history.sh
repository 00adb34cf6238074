#!/usr/bin/env bash
# bench/history.sh MODE [SCENARIO]: one interleaved pair (no history, then a
# history rule "*" of 1000 events / 5 m) of the fanout scenario, a fresh
# server each, to measure what history costs a fanout through real sockets
# (issue 18). MODE: memory (one node, history in memory) or redis (the Redis
# engine on 127.0.0.1:6379 under its own prefix, history in Redis streams).
# SCENARIO: 1k (1,000 subscribers on 1 channel, default) or 10k (10,000 over
# 100 channels). Run it under /work/notes/quiet.sh for figures to quote.
# JSON lines go to $OUT (default bench/results/<commit>-history-MODE-SCENARIO.jsonl),
# each with "history" and "engine" added.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:?memory or redis}
SCEN=${2:-1k}
PORT=${PORT:-18010}
BIN=${BIN:-bin/herald}
OUT=${OUT:-bench/results/$(git rev-parse --short HEAD)-history-$MODE-$SCEN.jsonl}
PREFIX="herald-bench-history:"
case $SCEN in
  1k) load=(--subscribers 1000 --channels 1) ;;
  10k) load=(--subscribers 10000 --channels 100) ;;
  *) echo "scenario: 1k or 10k" >&2; exit 2 ;;
esac
dir=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null; rm -rf "$dir"' EXIT
watch=()
if [ "$MODE" = redis ]; then
  rpid=$(pgrep -x redis-server | head -1 || true)
  [ -n "$rpid" ] && watch=(--watch-pid "redis=$rpid")
fi
config() { # $1: on|off
  {
    # The load tool connects from 127.0.0.1, which a configured app's
    # per-IP connection limit charges.
    echo "ip_limit_exempt: [127.0.0.0/8]"
    echo "apps:"
    echo "  - id: app-id"
    echo "    key: app-key"
    echo "    secret: app-secret"
    if [ "$1" = on ]; then
      echo "    history: [{pattern: \"*\", size: 1000, ttl: 5m}]"
    fi
    if [ "$MODE" = redis ]; then
      echo "redis_url: redis://127.0.0.1:6379"
      echo "redis_prefix: \"$PREFIX\""
    fi
  } >"$dir/$1.yaml"
}
for h in off on; do
  config $h
  if [ "$MODE" = redis ]; then
    redis-cli --scan --pattern "$PREFIX*" | xargs -r redis-cli del >/dev/null
  fi
  "$BIN" serve --config "$dir/$h.yaml" --host 127.0.0.1 --port "$PORT" --log-level warn --shutdown-timeout 2s >"$dir/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null || { cat "$dir/server.log" >&2; exit 1; }
  bin/herald-bench fanout "${load[@]}" --publishers 8 --duration 8s --warmup 2s \
    --url "ws://127.0.0.1:$PORT" --api "http://127.0.0.1:$PORT" --server-pid "$pid" "${watch[@]}" --progress 0 --json |
    sed "s/^{/{\"history\":\"$h\",\"engine\":\"$MODE\",\"commit\":\"$(git rev-parse --short HEAD)\",/" | tee -a "$OUT" |
    grep -o '"history":"[a-z]*"\|"deliveries_per_server_cpu_second":[0-9.]*\|"server_cpu_cores":[0-9.]*\|"deliveries_per_sec":[0-9.]*\|"publish_rate":[0-9.]*\|"watched":{[^}]*}' | tr '\n' ' '
  echo
  # Shows the rule was in force: events kept (memory) or appended (Redis).
  curl -s "http://127.0.0.1:$PORT/metrics" | grep -E '^herald_history_(events|appended_total)' >&2 || true
  kill -TERM "$pid"; wait "$pid" || true
  pid=""
done
