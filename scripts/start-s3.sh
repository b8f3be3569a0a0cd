#!/usr/bin/env bash
# Starts a local S3-compatible object store (moto's server, from PyPI) on loopback, for tansu's
# object-store storage engine (`--storage-engine s3://BUCKET/`): broker data that survives a
# broker restart. Installs moto once into $LEADSCORE_TOOLS_DIR/moto-venv and creates BUCKET.
# Usage: scripts/start-s3.sh [PORT] [BUCKET]    (stop: scripts/stop-s3.sh [PORT])
# Prints the environment a tansu process needs to use it.
set -euo pipefail
PORT="${1:-19300}"
BUCKET="${2:-leadscore-test}"
TOOLS_DIR="${LEADSCORE_TOOLS_DIR:-$HOME/.cache/leadscore-tools}"
RUN_DIR="${LEADSCORE_RUN_DIR:-/tmp/leadscore-run}"
venv="$TOOLS_DIR/moto-venv"
mkdir -p "$RUN_DIR" "$TOOLS_DIR"
if ! "$venv/bin/python" -c "import moto" 2>/dev/null; then
  echo "s3: installing moto 5.2.5 (PyPI) into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "moto[server]==5.2.5"
fi
pidfile="$RUN_DIR/moto-$PORT.pid"
if ! { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }; then
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
    echo "s3: port $PORT is taken by another process; choose another port" >&2
    exit 1
  fi
  nohup "$venv/bin/moto_server" -H 127.0.0.1 -p "$PORT" >"$RUN_DIR/moto-$PORT.log" 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    kill -0 "$(cat "$pidfile")" 2>/dev/null || { tail -20 "$RUN_DIR/moto-$PORT.log" >&2; exit 1; }
    sleep 0.1
  done
fi
code="$(curl -s -o /dev/null -w '%{http_code}' -X PUT "http://127.0.0.1:$PORT/$BUCKET")"
case "$code" in 200|409) ;; *) echo "s3: cannot create bucket $BUCKET (HTTP $code)" >&2; exit 1 ;; esac
echo "s3: moto up on 127.0.0.1:$PORT (pid $(cat "$pidfile")), bucket $BUCKET" >&2
cat <<ENV
export AWS_ENDPOINT=http://127.0.0.1:$PORT AWS_ALLOW_HTTP=true AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1
ENV
