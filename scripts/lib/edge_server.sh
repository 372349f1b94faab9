# Sourced by the scripts that need a live edge_server on loopback.
#   start_edge_server LOG_DIR [edge_server args...]
# Starts build/bin/edge_server on 127.0.0.1 port 0 (EDGE_LISTEN=HOST:PORT: there instead, e.g. to
# restart an edge where its devices expect it) and waits for its "listening HOST:PORT" line;
# sets EDGE_PID and EDGE_ADDR. stop_edge_server sends SIGTERM and waits. Callers trap EXIT.
start_edge_server() {
  local log=$1
  shift
  "${BIN:-${BUILD_DIR:-build}/bin}/edge_server" --listen "${EDGE_LISTEN:-127.0.0.1:0}" "$@" \
    >"$log/server.out" 2>"$log/server.err" &
  EDGE_PID=$!
  for _ in $(seq 600); do
    grep -q '^listening ' "$log/server.out" 2>/dev/null && break
    kill -0 "$EDGE_PID" 2>/dev/null || { cat "$log/server.err" >&2; return 1; }
    sleep 0.1
  done
  EDGE_ADDR=$(sed -n 's/^listening //p' "$log/server.out")
  if [[ -z "$EDGE_ADDR" ]]; then
    echo "edge_server did not start" >&2
    cat "$log/server.err" >&2
    return 1
  fi
}

stop_edge_server() {
  if [[ -n "${EDGE_PID:-}" ]]; then
    kill -TERM "$EDGE_PID" 2>/dev/null || true
    wait "$EDGE_PID" 2>/dev/null || true
    EDGE_PID=
  fi
}
