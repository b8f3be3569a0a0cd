#!/usr/bin/env bash
# Stops the object store started by scripts/start-s3.sh [PORT].
set -euo pipefail
PORT="${1:-19300}"
RUN_DIR="${LEADSCORE_RUN_DIR:-/tmp/leadscore-run}"
pidfile="$RUN_DIR/moto-$PORT.pid"
if [ -f "$pidfile" ]; then
  kill "$(cat "$pidfile")" 2>/dev/null || true
  rm -f "$pidfile"
  echo "s3: stopped (port $PORT)"
fi
