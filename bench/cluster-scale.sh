#!/usr/bin/env bash
# The cluster scale run: N Herald nodes (default 6) and a redis-server of
# their own, all on this machine, loaded by several herald-bench processes
# that together hold CONNS subscribed connections (default 100,000), with
# fanout through Redis, then one merged report (docs/scaling.md,
# "Capacity planning").
#
#   bench/cluster-scale.sh [flags]
#
#   --nodes N          Herald nodes (default 6)
#   --conns N          subscribed connections in all (default 100000)
#   --loaders N        herald-bench processes (default: conns / 15000, rounded
#                      up; each must stay below the open-file limit)
#   --channels N       public channels bench-0..N-1 (default conns / 100)
#   --rate R           events/s over all publishers (default 500; 0 = as
#                      fast as possible)
#   --publishers N     HTTP API publishers, publisher p on node p mod nodes
#                      (default: one per node)
#   --duration D       measured window (default 60s)
#   --warmup D         publishing before the window (default 5s)
#   --payload BYTES    event data size (default 100)
#   --connect-rate R   new connections per second in all, shared by the
#                      load-tool processes (default 3000: a faster storm on
#                      this shared 2-core box makes the nodes' Redis calls
#                      time out and answer subscriptions with 503)
#   --subscription-count  the app sends subscription_count events (off by
#                      default, as for any app but the development one:
#                      the nodes serve app-id/app-key/app-secret from
#                      HERALD_APP_*)
#   --small            6 nodes x 1,000 connections over 3 processes, 10 s
#                      (a quick check of the whole chain)
#   --out FILE         where the JSON lines go (default
#                      bench/results/<commit>-cluster-scale.jsonl)
#   -h, --help         this text
#
# Connection i of a load-tool process goes to node i mod nodes, and every
# process spreads its sockets over source addresses of its own
# (127.0.0.x, the 4-tuple space per source address), so every channel has
# subscribers on every node and 1 - 1/nodes of each event's deliveries
# cross Redis. One process publishes; the others only subscribe
# (--publishers 0) and all measure one window (--ready-file/--start-file).
# Per node: connections, RSS per connection (RSS at the window's start
# minus RSS before any client), CPU in the window. Redis: CPU in the
# window per delivery and per event, commands and PUBLISH per event, its
# memory per connection. Latency p50/p99 from the merged histograms of
# every process. The JSON lines (one per process, then the merged line with
# the Redis figures) are appended to --out; the table goes to stdout.
#
# Environment: HERALD_BIN, HERALD_BENCH_BIN (binaries; built into bin/ when
# unset), BENCH_PORT (first port tried, default 16800), BENCH_ARGS (extra
# flags for every herald-bench process), NODE_ARGS (extra flags for every
# node).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }
die() { echo "bench/cluster-scale.sh: $*" >&2; exit 2; }

nodes=6 conns=100000 loaders="" channels="" rate=500 publishers="" duration=60s warmup=5s payload=100
connect_rate=3000 out="" small=0 subcount=false
is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }
is_dur() { [[ $1 =~ ^[0-9]+(\.[0-9]+)?(ms|s|m)$ ]]; }
while [ $# -gt 0 ]; do
  opt=$1
  case "$opt" in
    -h|--help) usage; exit 0 ;;
    --small) small=1; shift; continue ;;
    --subscription-count) subcount=true; shift; continue ;;
    --nodes|--conns|--loaders|--channels|--rate|--publishers|--duration|--warmup|--payload|--connect-rate|--out)
      [ $# -ge 2 ] || die "$opt needs a value"
      val=$2; shift 2 ;;
    --*=*) set -- "${opt%%=*}" "${opt#*=}" "${@:2}"; continue ;;
    *) die "unknown argument $opt (see --help)" ;;
  esac
  case "$opt" in
    --duration|--warmup) is_dur "$val" || die "$opt $val: want a duration such as 30s, 500ms or 2m" ;;
    --out) ;;
    *) is_uint "$val" || die "$opt $val: want a whole number" ;;
  esac
  case "$opt" in
    --nodes) nodes=$val ;; --conns) conns=$val ;; --loaders) loaders=$val ;; --channels) channels=$val ;;
    --rate) rate=$val ;; --publishers) publishers=$val ;; --duration) duration=$val ;; --warmup) warmup=$val ;;
    --payload) payload=$val ;; --connect-rate) connect_rate=$val ;; --out) out=$val ;;
  esac
done
if [ "$small" = 1 ]; then
  nodes=6 conns=1000 loaders=${loaders:-3} duration=10s warmup=2s
  [ -n "$channels" ] || channels=10
fi
[ "$nodes" -ge 1 ] || die "--nodes must be at least 1"
[ "$conns" -ge 1 ] || die "--conns must be at least 1"
[ -n "$loaders" ] || loaders=$(( (conns + 14999) / 15000 ))
[ "$loaders" -ge 1 ] && [ "$loaders" -le 60 ] || die "--loaders must be between 1 and 60"
[ -n "$channels" ] || channels=$(( conns / 100 > 0 ? conns / 100 : 1 ))
[ "$channels" -ge 1 ] || die "--channels must be at least 1"
[ -n "$publishers" ] || publishers=$nodes
[ "$publishers" -ge 1 ] || die "--publishers must be at least 1"

# Open files: every process here inherits the soft limit; raise it to the
# hard one and check that each load-tool process and each node fits.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
nofile=$(ulimit -n)
per_loader=$(( (conns + loaders - 1) / loaders ))
per_node=$(( (conns + nodes - 1) / nodes ))
if [ "$nofile" != unlimited ]; then
  [ $((per_loader + publishers + 200)) -le "$nofile" ] ||
    die "$per_loader connections per load-tool process do not fit the open-file limit $nofile: raise --loaders"
  [ $((per_node + 200)) -le "$nofile" ] ||
    die "$per_node connections per node do not fit the open-file limit $nofile: raise --nodes"
fi
for tool in redis-server redis-cli awk; do
  command -v "$tool" >/dev/null || die "$tool not found (Debian: apt-get install redis-server)"
done

GO=${GO:-go}
BIN=${HERALD_BIN:-bin/herald}
BENCH_BIN=${HERALD_BENCH_BIN:-bin/herald-bench}
EXTRA=${BENCH_ARGS:-}
NODE_EXTRA=${NODE_ARGS:-}
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -n "$out" ] || out="bench/results/$commit-cluster-scale.jsonl"
mkdir -p "$(dirname "$out")"
if [ -z "${HERALD_BIN:-}" ]; then
  echo "building $BIN"; mkdir -p "$(dirname "$BIN")"; $GO build -o "$BIN" ./cmd/herald
fi
if [ -z "${HERALD_BENCH_BIN:-}" ]; then
  echo "building $BENCH_BIN"; mkdir -p "$(dirname "$BENCH_BIN")"; $GO build -o "$BENCH_BIN" ./cmd/herald-bench
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/herald-scale.XXXXXX")
redis_pid="" node_pids=() loader_pids=()
cleanup() {
  for p in "${loader_pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${loader_pids[@]}"; do wait "$p" 2>/dev/null || true; done
  for p in "${node_pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${node_pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ -n "$redis_pid" ]; then kill -TERM "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# free_port FIRST: sets $port to the first port from FIRST on that nothing
# listens on and that no earlier call of this run took (not run in a
# subshell, so that it remembers).
taken=" "
free_port() {
  port=$1
  while port_busy "$port" || [[ $taken == *" $port "* ]]; do port=$((port + 1)); done
  taken="$taken$port "
}
wait_port() {
  for _ in $(seq 1 300); do
    if port_busy "$1"; then return 0; fi
    sleep 0.1
  done
  echo "nothing listens on port $1; logs in $work:" >&2
  tail -n 20 "$work"/*.log >&2 || true
  exit 1
}
# dur_ms 1.5s|500ms|2m: a duration in milliseconds.
dur_ms() { awk -v d="$1" 'BEGIN { u = d; sub(/^[0-9.]+/, "", u); v = substr(d, 1, length(d) - length(u)); print int(v * (u == "ms" ? 1 : u == "m" ? 60000 : 1000)) }'; }
proc_rss() { awk '/^VmRSS:/ { print $2 * 1024 }' "/proc/$1/status"; }
proc_cpu() { awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.3f", ($12 + $13) / hz }' "/proc/$1/stat"; }
redis() { redis-cli -p "$redis_port" "$@"; }
redis_info() { redis INFO "$1" | tr -d '\r' | awk -F: -v k="$2" '$1 == k { print $2 }'; }
# redis_cmdstats: "command calls" lines since Redis started.
redis_cmdstats() {
  redis INFO commandstats | tr -d '\r' | awk -F'[=,:]' '/^cmdstat_/ { print substr($1, 9), $3 }'
}
# redis_calls [COMMAND...]: commands executed since Redis started (all, or
# the named ones').
redis_calls() {
  redis INFO commandstats | tr -d '\r' | awk -F'[=,:]' -v only=" $* " \
    '/^cmdstat_/ { c = substr($1, 9); if (only == "  " || index(only, " " c " ")) s += $3 } END { print s + 0 }'
}

base=${BENCH_PORT:-16800}
free_port "$base"
redis_port=$port
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" \
  --maxclients 10000 --logfile "$work/redis.log" &
redis_pid=$!
wait_port "$redis_port"
urls="" apis="" pids=""
for i in $(seq 0 $((nodes - 1))); do
  free_port $((redis_port + 1))
  p=$port
  # shellcheck disable=SC2086
  HERALD_APP_ID=app-id HERALD_APP_KEY=app-key HERALD_APP_SECRET=app-secret \
    HERALD_APP_ENABLE_SUBSCRIPTION_COUNT=$subcount HERALD_APP_ENABLE_CLIENT_MESSAGES=true \
  "$BIN" serve --host 127.0.0.1 --port "$p" --log-level warn --shutdown-timeout 2s \
    --redis-url "redis://127.0.0.1:$redis_port/0" --redis-prefix "scale:" $NODE_EXTRA >"$work/node$i.log" 2>&1 &
  node_pids+=($!)
  urls="$urls${urls:+,}ws://127.0.0.1:$p"
  apis="$apis${apis:+,}http://127.0.0.1:$p"
  ports[i]=$p
done
for p in "${ports[@]}"; do wait_port "$p"; done
pids=$(IFS=,; echo "${node_pids[*]}")

echo "=== cluster scale run: $nodes nodes, $conns connections over $loaders load-tool processes, $channels channels, $publishers publishers at ${rate} events/s, window $duration after $warmup, subscription counts $subcount"
echo "    Redis on :$redis_port (pid $redis_pid), nodes on ${ports[*]} (pids ${node_pids[*]}), open-file limit $nofile, load average $(cut -d' ' -f1-3 /proc/loadavg)"

# Baselines before any client: each node's RSS, Redis's memory.
rss_before=""
for p in "${node_pids[@]}"; do rss_before="$rss_before${rss_before:+,}$p=$(proc_rss "$p")"; done
redis_mem0=$(redis_info memory used_memory)
rcpu_idle=$(proc_cpu "$redis_pid")
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
t_start=$(date +%s)

start_file="$work/start"
for j in $(seq 0 $((loaders - 1))); do
  n=$(( conns / loaders + (j < conns % loaders ? 1 : 0) ))
  pubs=0
  [ "$j" = 0 ] && pubs=$publishers
  # Four source addresses per process, 127.0.0.10 upwards.
  src="127.0.0.$((10 + 4 * j))-127.0.0.$((13 + 4 * j))"
  # shellcheck disable=SC2086
  "$BENCH_BIN" fanout --url "$urls" --api "$apis" --server-pid "$pids" --watch-pid "redis=$redis_pid" \
    --subscribers "$n" --channels "$channels" --publishers "$pubs" --rate "$rate" --payload "$payload" \
    --duration "$duration" --warmup "$warmup" --drain 15s --timeout 60s --connect-rate "$(awk -v r="$connect_rate" -v n="$loaders" 'BEGIN { printf "%.1f", r / n }')" \
    --dial-concurrency 16 --source-ips "$src" --max-fail 0.01 \
    --ready-file "$work/ready$j" --start-file "$start_file" --start-wait 10m --progress 5s --json $EXTRA \
    >"$work/loader$j.out" 2>"$work/loader$j.err" &
  loader_pids+=($!)
done

# Wait until every process has subscribed its connections (or one failed).
echo "    connecting..."
last=""
while :; do
  ready=0
  for j in $(seq 0 $((loaders - 1))); do
    [ -f "$work/ready$j" ] && ready=$((ready + 1))
  done
  [ "$ready" = "$loaders" ] && break
  for j in "${!loader_pids[@]}"; do
    if ! kill -0 "${loader_pids[j]}" 2>/dev/null; then
      echo "load-tool process $j ended before it was ready:" >&2
      cat "$work/loader$j.out" "$work/loader$j.err" >&2
      exit 1
    fi
  done
  msg="    $ready/$loaders processes ready"
  if [ "$msg" != "$last" ]; then echo "$msg"; last=$msg; fi
  sleep 0.5
done
t_ready=$(date +%s)
connected=0
for j in $(seq 0 $((loaders - 1))); do connected=$((connected + $(cat "$work/ready$j"))); done
echo "    $connected connections subscribed in $((t_ready - t_start)) s; load average $(cut -d' ' -f1-3 /proc/loadavg)"

# Redis after connecting and before publishing: the state the connections
# hold, and the command counters the publishing is measured from.
redis_mem1=$(redis_info memory used_memory)
rcpu_connected=$(proc_cpu "$redis_pid")
redis_keys=$(redis DBSIZE | tr -d '\r')
calls0=$(redis_calls)
pub0=$(redis_calls publish spublish)
redis_cmdstats >"$work/cmdstats0"
rcpu0=$(proc_cpu "$redis_pid")
# One start time for every process, a second from now.
start_ns=$(( $(date +%s%N) + 1000000000 ))
echo "$start_ns" >"$work/start.tmp"
mv "$work/start.tmp" "$start_file"

# Redis's counters once publishing has ended (the window's end plus
# 300 ms), before the processes close their connections (each waits for 3
# s without deliveries): what the publishing cost, not the
# disconnects.
end_ns=$(( start_ns + ($(dur_ms "$warmup") + $(dur_ms "$duration") + 300) * 1000000 ))
sleep "$(awk -v d=$(( end_ns - $(date +%s%N) )) 'BEGIN { printf "%.3f", (d > 0 ? d / 1e9 : 0) }')"
calls1=$(redis_calls)
pub1=$(redis_calls publish spublish)
rcpu1=$(proc_cpu "$redis_pid")
redis_cmdstats >"$work/cmdstats1"

failed=0
for j in "${!loader_pids[@]}"; do
  if ! wait "${loader_pids[j]}"; then
    failed=$((failed + 1))
    echo "load-tool process $j failed:" >&2
    tail -n 5 "$work/loader$j.err" >&2
  fi
done
loader_pids=()
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
# The nodes remove the closed connections' subscriptions from Redis (one
# unsubscribe script each, as the reaper does for a dead node's sockets):
# wait until Redis's CPU stops growing, at most 60 s.
prev=-1 cur=$(proc_cpu "$redis_pid")
for _ in $(seq 1 60); do
  [ "$cur" = "$prev" ] && break
  sleep 1
  prev=$cur cur=$(proc_cpu "$redis_pid")
done
rcpu_closed=$cur
# Commands per kind from the start file to the end of publishing (those run
# inside Lua scripts included), most first.
redis_cmds_run=$(awk 'NR == FNR { a[$1] = $2; next } { d = $2 - a[$1]; if (d > 0) print d, $1 }' \
  "$work/cmdstats0" "$work/cmdstats1" | sort -rn | awk '{ printf "%s%s=%s", sep, $2, $1; sep = " " }')

run="$commit-$(date -u +%Y%m%dT%H%M%SZ)"
# Keep what explains a surprise: the nodes' logs and metrics (lease losses,
# state repairs, Redis errors) and the load tools' stderr.
logs="${TMPDIR:-/tmp}/herald-scale-logs-$run"
mkdir -p "$logs"
for i in "${!ports[@]}"; do
  curl -s --max-time 10 "http://127.0.0.1:${ports[i]}/metrics" >"$logs/node$i.metrics" || true
done
cp "$work"/*.log "$work"/loader*.err "$logs/" 2>/dev/null || true
merged=$("$BENCH_BIN" merge --json --rss-before "$rss_before" "$work"/loader*.out) || failed=$((failed + 1))
line=$(printf '%s\n' "$merged" | grep '^{' | tail -n 1 || true)
[ -n "$line" ] || { echo "no merged result" >&2; exit 1; }
"$BENCH_BIN" merge --rss-before "$rss_before" "$work"/loader*.out | grep -v '^{' || true

events=$(printf '%s' "$line" | sed -n 's/.*"events_published":\([0-9]*\).*/\1/p')
per_event=null pub_per_event=null
if [ -n "$events" ] && [ "$events" -gt 0 ]; then
  per_event=$(awk -v c=$((calls1 - calls0)) -v e="$events" 'BEGIN { printf "%.3f", c / e }')
  pub_per_event=$(awk -v c=$((pub1 - pub0)) -v e="$events" 'BEGIN { printf "%.3f", c / e }')
fi
# Redis CPU per subscribe (connect phase: one subscribe script per
# connection, plus the lease ticks meanwhile) and per unsubscribe (close
# phase), in µs.
sub_us=$(awk -v a="$rcpu_idle" -v b="$rcpu_connected" -v n="$connected" 'BEGIN { printf "%.1f", (n > 0 ? (b - a) * 1e6 / n : 0) }')
unsub_us=$(awk -v a="$rcpu1" -v b="$rcpu_closed" -v n="$connected" 'BEGIN { printf "%.1f", (n > 0 ? (b - a) * 1e6 / n : 0) }')
mem_per_conn=$(awk -v a="$redis_mem0" -v b="$redis_mem1" -v n="$connected" 'BEGIN { printf "%.1f", (n > 0 ? (b - a) / n : 0) }')
rcpu=$(awk -v a="$rcpu0" -v b="$rcpu1" 'BEGIN { printf "%.3f", b - a }')
cat <<EOF
  redis                      $((calls1 - calls0)) commands from the start to the end of publishing ($per_event per event, PUBLISH per event $pub_per_event), ${rcpu} CPU-s
  redis commands             $redis_cmds_run
  redis per connection       ${sub_us} µs CPU to subscribe (connect phase), ${unsub_us} µs to unsubscribe (close phase)
  redis memory               $redis_mem0 -> $redis_mem1 bytes used for $connected connections ($mem_per_conn B per connection, $redis_keys keys)
  load average               $load_start at the start, $load_end at the end
EOF

extra="\"run\":\"$run\",\"commit\":\"$commit\",\"subscription_count\":$subcount,\"node_count\":$nodes,\"loaders\":$loaders,\"redis_commands\":$((calls1 - calls0)),\"redis_commands_per_event\":$per_event,\"redis_publish_per_event\":$pub_per_event,\"redis_cpu_seconds_run\":$rcpu,\"redis_used_memory_before\":$redis_mem0,\"redis_used_memory_connected\":$redis_mem1,\"redis_memory_per_conn_bytes\":$mem_per_conn,\"redis_cpu_us_per_subscribe\":$sub_us,\"redis_cpu_us_per_unsubscribe\":$unsub_us,\"redis_keys\":$redis_keys,\"redis_commands_by_kind\":\"$redis_cmds_run\",\"connect_wall_seconds\":$((t_ready - t_start)),\"loadavg_start\":\"$load_start\",\"loadavg_end\":\"$load_end\","
for j in $(seq 0 $((loaders - 1))); do
  grep '^{' "$work/loader$j.out" | tail -n 1 | sed "s/^{/{\"run\":\"$run\",\"role\":\"loader-$j\",/" >>"$out"
done
printf '%s\n' "$line" | sed "s/^{/{$extra/" >>"$out"
echo
echo "JSON lines: $out (run $run); node logs and metrics in $logs"
if [ "$failed" -gt 0 ]; then
  echo "$failed process(es) failed; logs were in $work (removed)" >&2
  exit 1
fi
