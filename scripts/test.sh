#!/usr/bin/env bash
# The test command: installs (once) and starts the broker and a local S3 store, runs every test
# against them, stops them, and closes with the total "N passed, N failed". Extra arguments go to
# `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${LEADSCORE_TEST_PORT:-19192}"
S3_PORT="${LEADSCORE_TEST_S3_PORT:-19301}"
scripts/start-broker.sh "$PORT"
# Durable broker storage for the broker-restart test: a local S3 store (moto, from PyPI).
scripts/start-s3.sh "$S3_PORT" leadscore-test >/dev/null
trap 'scripts/stop-broker.sh "$PORT" >/dev/null; scripts/stop-s3.sh "$S3_PORT" >/dev/null' EXIT
export LEADSCORE_TEST_BROKERS="127.0.0.1:$PORT"
export LEADSCORE_TEST_S3_ENDPOINT="http://127.0.0.1:$S3_PORT" LEADSCORE_TEST_S3_BUCKET=leadscore-test
export LEADSCORE_TANSU_BIN="${LEADSCORE_TOOLS_DIR:-$HOME/.cache/leadscore-tools}/bin/tansu"
log="$(mktemp)"
set +e
cargo test --lib --bins --tests "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
grep -E "^test result:" "$log" | awk '{p += $4; f += $6} END {printf "%d passed, %d failed\n", p, f}'
rm -f "$log"
exit "$status"
