#!/usr/bin/env bash
# The test command: installs (once) and starts Apache Kafka (KRaft, one node, loopback), runs
# every test against it, stops it, and closes with the total "N passed, N failed". Tests that
# need brokers of their own (a broker restart, three brokers, SASL_SSL) start them with
# scripts/start-kafka.sh. Extra arguments go to `cargo test`. The tools other tests run
# (Prometheus, promtool) are installed first by scripts/install-test-tools.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${LEADSCORE_TEST_PORT:-19192}"
scripts/install-test-tools.sh
export LEADSCORE_RUN_DIR="${LEADSCORE_RUN_DIR:-$(mktemp -d /tmp/leadscore-test.XXXXXX)}"
scripts/start-kafka.sh "$PORT"
trap 'scripts/stop-kafka.sh --wipe "$PORT" >/dev/null' EXIT
export LEADSCORE_TEST_BROKERS="127.0.0.1:$PORT"
log="$(mktemp)"
set +e
cargo test --no-fail-fast --lib --bins --tests "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
grep -E "^test result:" "$log" | awk '{p += $4; f += $6} END {printf "%d passed, %d failed\n", p, f}'
rm -f "$log"
exit "$status"
