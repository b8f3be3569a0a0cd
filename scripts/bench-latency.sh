#!/usr/bin/env bash
# End-to-end latency of `leadscore run` on Apache Kafka: examples/latency_probe.rs produces at a
# fixed rate and records produce -> sales_ready received in an HDR histogram, per rate, under
# at_least_once and exactly_once (and, for exactly_once, per commit interval). Also prints the
# service's own histogram (message timestamp -> processed) from /metrics. Numbers go to
# docs/BENCHMARKS.md.
#   scripts/bench-latency.sh                    (~5 minutes)
#   RATES="10000" SECONDS_PER_RUN=10 scripts/bench-latency.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/leadscore-target}"
PORT="${LEADSCORE_BENCH_PORT:-19292}"
HTTP="127.0.0.1:${LEADSCORE_BENCH_HTTP_PORT:-19464}"
RATES="${RATES:-1000 10000 50000}"
SECS="${SECONDS_PER_RUN:-20}"
EOS_INTERVALS="${EOS_INTERVALS:-100ms 1s}"
B="127.0.0.1:$PORT"
WORK="$(mktemp -d /tmp/leadscore-latency.XXXXXX)"
export LEADSCORE_RUN_DIR="$WORK"
cargo build --release --locked --bin leadscore --example latency_probe 2>&1 | grep -E "^\s*(Finished|error)" || true
BIN="$CARGO_TARGET_DIR/release/leadscore"
PROBE="$CARGO_TARGET_DIR/release/examples/latency_probe"
scripts/start-kafka.sh "$PORT"
SVC=""
trap '[ -n "$SVC" ] && kill $SVC 2>/dev/null; scripts/stop-kafka.sh --wipe "$PORT" >/dev/null' EXIT

# The service's own histogram: upper bounds of the buckets holding p50/p99/p99.9.
own_latency() {
  curl -s "http://$HTTP/metrics" | python3 -c '
import sys
b = []
for line in sys.stdin:
    if line.startswith("leadscore_event_latency_seconds_bucket"):
        le = line.split("le=\"")[1].split("\"")[0]
        b.append((float("inf") if le == "+Inf" else float(le), float(line.split()[-1])))
total = b[-1][1] if b else 0
out = []
for q in (0.5, 0.99, 0.999):
    ub = next((le for le, c in b if c >= q * total), float("nan"))
    out.append("p%g <= %g ms" % (q * 100, ub * 1000))
print("  service histogram (timestamp -> processed, %d events): %s" % (total, ", ".join(out)))'
}

run() { # guarantee commit_interval rate
  local n=$((RUN += 1))
  "$BIN" topics create --brokers "$B" "lat-in-$n:8" "lat-out-$n:4" "lat-dlq-$n:1" >/dev/null
  LEADSCORE_BROKERS="$B" LEADSCORE_GROUP_ID="lat-$n" LEADSCORE_INPUT_TOPICS="lat-in-$n" \
    LEADSCORE_OUTPUT_TOPIC="lat-out-$n" LEADSCORE_DLQ_TOPIC="lat-dlq-$n" LEADSCORE_HTTP_ADDR="$HTTP" \
    LEADSCORE_STATE_DIR="$WORK/state-$n" LEADSCORE_RULES=examples/rules.toml \
    LEADSCORE_GUARANTEE="$1" LEADSCORE_COMMIT_INTERVAL="$2" RUST_LOG=warn \
    "$BIN" run 2>>"$WORK/service.log" &
  SVC=$!
  until curl -sf "http://$HTTP/readyz" >/dev/null; do sleep 0.05; done
  echo "== $1, commit_interval $2"
  "$PROBE" "$B" "lat-in-$n" "lat-out-$n" "$3" "$SECS" | sed 's/^/  /'
  own_latency
  kill -TERM $SVC; wait $SVC || true; SVC=""
}

RUN=0
for rate in $RATES; do run at_least_once 1s "$rate"; done
for rate in $RATES; do run exactly_once 1s "$rate"; done
for iv in $EOS_INTERVALS; do [ "$iv" = 1s ] || run exactly_once "$iv" 10000; done
