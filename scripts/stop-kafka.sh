#!/usr/bin/env bash
# Stops the Kafka nodes started by scripts/start-kafka.sh [--nodes N] PORT (all nodes of that
# PORT): SIGTERM (a controlled shutdown), then SIGKILL after 20 s.
#   scripts/stop-kafka.sh PORT           stop, keep the data (a later start resumes on it)
#   scripts/stop-kafka.sh --wipe PORT    stop and delete the data
set -euo pipefail
WIPE=""
[ "${1:-}" = "--wipe" ] && { WIPE=1; shift; }
PORT="${1:-19092}"
RUN_DIR="${LEADSCORE_RUN_DIR:-/tmp/leadscore-run}"
for pidfile in "$RUN_DIR"/kafka-"$PORT"-node-*.pid; do
  [ -f "$pidfile" ] || continue
  pid="$(cat "$pidfile")"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$pidfile"
  echo "kafka: stopped $(basename "$pidfile" .pid)"
done
if [ -n "$WIPE" ]; then rm -rf "$RUN_DIR/kafka-$PORT"; fi
