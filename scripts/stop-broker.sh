#!/usr/bin/env bash
# Stops the broker started by scripts/start-broker.sh [PORT].
set -euo pipefail
PORT="${1:-19092}"
RUN_DIR="${LEADSCORE_RUN_DIR:-/tmp/leadscore-run}"
pidfile="$RUN_DIR/tansu-$PORT.pid"
if [ -f "$pidfile" ]; then
  pid="$(cat "$pidfile")"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$pidfile"
  echo "broker: stopped (port $PORT)"
fi
