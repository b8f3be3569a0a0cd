#!/usr/bin/env bash
# Starts the tansu broker on loopback in the background (installing it first if needed).
# Usage: scripts/start-broker.sh [PORT] [STORAGE]   STORAGE defaults to memory://tansu/
# Writes the pid to $LEADSCORE_RUN_DIR/tansu-PORT.pid and the log to tansu-PORT.log.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
PORT="${1:-19092}"
STORAGE="${2:-memory://tansu/}"
TOOLS_DIR="${LEADSCORE_TOOLS_DIR:-$HOME/.cache/leadscore-tools}"
RUN_DIR="${LEADSCORE_RUN_DIR:-/tmp/leadscore-run}"
mkdir -p "$RUN_DIR"
"$here/install-broker.sh"
pidfile="$RUN_DIR/tansu-$PORT.pid"
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  echo "broker: already running on 127.0.0.1:$PORT (pid $(cat "$pidfile"))"
  exit 0
fi
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
  echo "broker: port $PORT is taken by another process; choose another port" >&2
  exit 1
fi
# Always loopback: tansu would otherwise listen on 0.0.0.0:9092.
nohup "$TOOLS_DIR/bin/tansu" broker \
  --listener-url "tcp://127.0.0.1:$PORT" \
  --advertised-listener-url "tcp://127.0.0.1:$PORT" \
  --storage-engine "$STORAGE" \
  >"$RUN_DIR/tansu-$PORT.log" 2>&1 &
echo $! >"$pidfile"
for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
    echo "broker: tansu up on 127.0.0.1:$PORT (pid $(cat "$pidfile"), storage $STORAGE)"
    exit 0
  fi
  if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "broker: tansu exited at start; log:" >&2
    tail -20 "$RUN_DIR/tansu-$PORT.log" >&2
    exit 1
  fi
  sleep 0.1
done
echo "broker: tansu did not open port $PORT within 10s; log: $RUN_DIR/tansu-$PORT.log" >&2
exit 1
