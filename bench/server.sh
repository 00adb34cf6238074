# Shared by bench/run.sh and bench/sweep.sh: start and stop a fresh herald
# ($BIN on 127.0.0.1:$PORT, log in $OUT.server.log) around each scenario.
# shellcheck shell=bash

server_pid=""
stop_server() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  server_pid=""
}
trap stop_server EXIT INT TERM

start_server() {
  stop_server
  "$BIN" serve --host 127.0.0.1 --port "$PORT" --log-level warn --shutdown-timeout 2s >"$OUT.server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then return 0; fi
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "server did not start; its log:" >&2
  cat "$OUT.server.log" >&2
  exit 1
}
