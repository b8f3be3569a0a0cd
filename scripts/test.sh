#!/usr/bin/env bash
# The test command: installs (once) and starts the broker, runs every test against it, stops it.
# Extra arguments go to `cargo test` (e.g. scripts/test.sh --test service).
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${LEADSCORE_TEST_PORT:-19192}"
scripts/start-broker.sh "$PORT"
trap 'scripts/stop-broker.sh "$PORT" >/dev/null' EXIT
export LEADSCORE_TEST_BROKERS="127.0.0.1:$PORT"
cargo test "$@"
