#!/usr/bin/env bash
# Churn (connect, subscribe, unsubscribe, disconnect) against the config
# apps store and the PostgreSQL apps store, alternated ROUNDS times, each on
# a fresh server. Needs PostgreSQL (PG, default the local test database);
# the schema it makes is dropped at the end. Prints one JSON line per run.
# HERALD_BIN (or BIN; default bin/herald) is the server, HERALD_BENCH_BIN
# (default bin/herald-bench) the load tool; each is built if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PG=${PG:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}
ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-15s}
PORT=${PORT:-16610}
BIN=${HERALD_BIN:-${BIN:-bin/herald}}
BENCH_BIN=${HERALD_BENCH_BIN:-bin/herald-bench}
[ -x "$BIN" ] || go build -o "$BIN" ./cmd/herald
[ -x "$BENCH_BIN" ] || go build -o "$BENCH_BIN" ./cmd/herald-bench
SCHEMA=herald_bench_$RANDOM$RANDOM
psql "$PG" -qc "CREATE SCHEMA $SCHEMA"
trap 'psql "$PG" -qc "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" >/dev/null' EXIT
STORE="postgres://postgres@127.0.0.1:5432/test?sslmode=disable&search_path=$SCHEMA"
HERALD_APPS_STORE=$STORE "$BIN" apps migrate >/dev/null
HERALD_APPS_STORE=$STORE "$BIN" apps create --id app-id --key app-key --secret app-secret >/dev/null

run() { # $1 = label, rest = env for the server
	local label=$1; shift
	env "$@" HERALD_IP_LIMIT_EXEMPT=127.0.0.0/8 HERALD_PORT=$PORT HERALD_HOST=127.0.0.1 HERALD_LOG_LEVEL=warn "$BIN" serve >/dev/null 2>&1 &
	local pid=$!
	for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/ready" >/dev/null && break; sleep 0.1; done
	printf '%s ' "$label"
	"$BENCH_BIN" churn --url "ws://127.0.0.1:$PORT" --api "http://127.0.0.1:$PORT" --conns 50 --channels 10 \
		--duration "$DURATION" --server-pid "$pid" --json
	kill "$pid"; wait "$pid" || true
}
for _ in $(seq "$ROUNDS"); do
	run config HERALD_APPS_STORE=config
	run postgres HERALD_APPS_STORE="$STORE" HERALD_APPS_CACHE_TTL=5s
done
