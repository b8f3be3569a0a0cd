#!/usr/bin/env bash
# Service throughput against a bare rdkafka consumer on the same preloaded topic, same run;
# then end-to-end latency percentiles at a steady rate. Numbers go to docs/BENCHMARKS.md.
#   EVENTS_LEADS=105000 scripts/bench-service.sh      (~1M events)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/leadscore-target}"
PORT="${LEADSCORE_BENCH_PORT:-19292}"
HTTP="127.0.0.1:${LEADSCORE_BENCH_HTTP_PORT:-19464}"
LEADS="${EVENTS_LEADS:-105000}"
B="127.0.0.1:$PORT"
WORK="$(mktemp -d /tmp/leadscore-bench.XXXXXX)"
export LEADSCORE_RUN_DIR="$WORK"
cargo build --release --locked --bin leadscore --example bare_consumer 2>&1 | grep -E "^\s*(Finished|error)" || true
BIN="$CARGO_TARGET_DIR/release/leadscore"
BARE="$CARGO_TARGET_DIR/release/examples/bare_consumer"
scripts/start-kafka.sh "$PORT"
SVC=""
trap '[ -n "$SVC" ] && kill $SVC 2>/dev/null; scripts/stop-kafka.sh --wipe "$PORT" >/dev/null' EXIT
"$BIN" topics create --brokers "$B" bench-in:8 bench-out:4 bench-dlq:1 live-in:8

echo "== preload"
"$BIN" gen --leads "$LEADS" --seed 5 -o "$WORK/events.ndjson" 2>/dev/null
N=$(grep -c '' "$WORK/events.ndjson")
"$BIN" gen --leads "$LEADS" --seed 5 --topic bench-in --brokers "$B" 2>&1 | tail -1

metric() { curl -s "http://$HTTP/metrics" | awk -v m="$1" '$1 ~ "^"m"({|$)" {s+=$2} END {print s+0}'; }
if [ -z "${LATENCY_ONLY:-}" ]; then
echo "== bare rdkafka consumer"
BARE_OUT=$("$BARE" "$B" bench-in "$N"); echo "$BARE_OUT"
BARE_RATE=$(echo "$BARE_OUT" | sed 's/.*= \([0-9]*\) msg\/s/\1/')

echo "== leadscore run (same topic, new group)"
svc() {
  LEADSCORE_BROKERS="$B" LEADSCORE_GROUP_ID="bench-$$" LEADSCORE_INPUT_TOPICS=bench-in \
    LEADSCORE_OUTPUT_TOPIC=bench-out LEADSCORE_DLQ_TOPIC=bench-dlq LEADSCORE_HTTP_ADDR="$HTTP" \
    LEADSCORE_STATE_DIR="$WORK/state" LEADSCORE_RULES=examples/rules.toml RUST_LOG=info "$BIN" run 2>>"$WORK/service.log" &
  SVC=$!
}
svc
SVC=$!
until [ "$(metric leadscore_events_total)" -gt 0 ] 2>/dev/null; do sleep 0.02; done
T0=$(date +%s.%N)
until [ "$(( $(metric leadscore_events_total) + $(metric leadscore_invalid_total) ))" -ge "$N" ]; do sleep 0.05; done
T1=$(date +%s.%N)
SVC_RATE=$(python3 -c "print(round($N/($T1-$T0)))")
echo "leadscore: $N events in $(python3 -c "print(round($T1-$T0,2))")s = $SVC_RATE events/s ($(metric leadscore_sales_ready_total) sales_ready)"
python3 -c "print('ratio service/bare = %.2f' % ($SVC_RATE/$BARE_RATE))"
CK_SUM=$(metric leadscore_checkpoint_seconds_sum); CK_N=$(metric leadscore_checkpoint_leads_total)
python3 -c "print('checkpoints: %.2fs for %d lead writes = %.2f us per event, %.2f us per lead written' % ($CK_SUM, $CK_N, $CK_SUM/$N*1e6, $CK_SUM/max($CK_N,1)*1e6))"
kill -TERM $SVC; wait $SVC || true; SVC=""

restore_rate() { # sums "partition restored" lines after a given log line number
  tail -n +"$1" "$WORK/service.log" | grep -o 'restored in [0-9.]*s ([0-9]* leads/s) partition=[0-9]* source="[a-z]*" leads=[0-9]*' |
    awk '{gsub("s","",$3); t+=$3; split($NF,a,"="); l+=a[2]; src=$(NF-1)} END {printf "%s: %d leads in %.2fs = %.0f leads/s\n", src, l, t, l/t}'
}
echo "== restore from the local store (restart, same state dir)"
FROM=$(( $(wc -l <"$WORK/service.log") + 1 ))
svc; until curl -sf "http://$HTTP/readyz" >/dev/null; do sleep 0.05; done
restore_rate "$FROM"
kill -TERM $SVC; wait $SVC || true; SVC=""
echo "== restore from the changelog (state dir deleted)"
rm -rf "$WORK/state"
FROM=$(( $(wc -l <"$WORK/service.log") + 1 ))
svc; until curl -sf "http://$HTTP/readyz" >/dev/null; do sleep 0.05; done
restore_rate "$FROM"
kill -TERM $SVC; wait $SVC || true; SVC=""
fi

echo "== latency at a steady 5000 events/s (message timestamp -> processed)"
LEADSCORE_BROKERS="$B" LEADSCORE_GROUP_ID="live-$$" LEADSCORE_INPUT_TOPICS=live-in \
  LEADSCORE_OUTPUT_TOPIC=bench-out LEADSCORE_DLQ_TOPIC=bench-dlq LEADSCORE_HTTP_ADDR="$HTTP" \
  LEADSCORE_STATE_DIR="$WORK/live-state" \
  LEADSCORE_RULES=examples/rules.toml RUST_LOG=warn "$BIN" run 2>>"$WORK/service.log" &
SVC=$!
until curl -sf "http://$HTTP/readyz" >/dev/null; do sleep 0.05; done
"$BIN" gen --leads 5000 --seed 9 --topic live-in --brokers "$B" --rate 5000 2>/dev/null
M=$(( $("$BIN" gen --leads 5000 --seed 9 2>/dev/null | grep -c '') ))
until [ "$(( $(metric leadscore_events_total) + $(metric leadscore_invalid_total) ))" -ge "$M" ]; do sleep 0.05; done
curl -s "http://$HTTP/metrics" | python3 -c '
import sys
b = []
for line in sys.stdin:
    if line.startswith("leadscore_event_latency_seconds_bucket"):
        le = line.split("le=\"")[1].split("\"")[0]
        b.append((float("inf") if le == "+Inf" else float(le), float(line.split()[-1])))
total = b[-1][1]
for q in (0.5, 0.9, 0.99, 0.999):
    ub = next(le for le, c in b if c >= q * total)
    print("p%g <= %gs" % (q * 100, ub))
print("(%d events)" % total)'
