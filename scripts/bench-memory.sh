#!/usr/bin/env bash
# Memory budget on Apache Kafka (`max_leads_in_memory`): for 100k, 1M and 10M leads
# (examples/lead_load.rs: a form per lead, then a pricing view per lead an hour later, so every
# second-pass event finds its lead cold under a budget), and budgets of all / 1M / 100k leads,
# `leadscore run` reads the whole topic in a new group and the bench prints: peak RSS,
# throughput, end-to-end p99 afterwards at 10k events/s (examples/latency_probe.rs, with the
# store holding every lead), restore time from the local store, store size on disk. Writes
# docs/memory-budget.csv and docs/memory-budget.png.
#   scripts/bench-memory.sh                       (~25 minutes)
#   SIZES="100000 1000000" scripts/bench-memory.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/leadscore-target}"
PORT="${LEADSCORE_BENCH_PORT:-19292}"
HTTP="127.0.0.1:${LEADSCORE_BENCH_HTTP_PORT:-19464}"
SIZES="${SIZES:-100000 1000000 10000000}"
BUDGETS="${BUDGETS:-none 1000000 100000}"
CSV="${CSV:-docs/memory-budget.csv}"
B="127.0.0.1:$PORT"
WORK="$(mktemp -d /tmp/leadscore-memory.XXXXXX)"
export LEADSCORE_RUN_DIR="$WORK"
cargo build --release --locked --bin leadscore --example lead_load --example latency_probe \
  --example plot_memory 2>&1 | grep -E "^\s*(Finished|error)" || true
R="$CARGO_TARGET_DIR/release"
scripts/start-kafka.sh "$PORT"
SVC=""
trap '[ -n "$SVC" ] && kill $SVC 2>/dev/null; scripts/stop-kafka.sh --wipe "$PORT" >/dev/null; rm -rf "$WORK"' EXIT
metric() { curl -s "http://$HTTP/metrics" | awk -v m="$1" '$1 ~ "^"m"({|$)" {s+=$2} END {print s+0}'; }
rss_mb() { awk '/^VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }
svc() { # group budget output
  LEADSCORE_BROKERS="$B" LEADSCORE_GROUP_ID="$1" LEADSCORE_INPUT_TOPICS="$IN" \
    LEADSCORE_OUTPUT_TOPIC="$3" LEADSCORE_DLQ_TOPIC=mem-dlq LEADSCORE_HTTP_ADDR="$HTTP" \
    LEADSCORE_STATE_DIR="$WORK/state-$1" LEADSCORE_RULES=examples/rules.toml \
    LEADSCORE_MAX_LEADS_IN_MEMORY="$2" RUST_LOG=warn "$R/leadscore" run 2>>"$WORK/service.log" &
  SVC=$!
  until curl -sf "http://$HTTP/readyz" >/dev/null; do sleep 0.05; done
}
stop() { kill -TERM $SVC; wait $SVC || true; SVC=""; }

echo "leads,budget,events,events_per_s,peak_rss_mb,p99_ms,restore_s,store_mb" >"$CSV"
"$R/leadscore" topics create --brokers "$B" mem-dlq:1 >/dev/null
for L in $SIZES; do
  IN="mem-in-$L"; N=$((L * 2))
  "$R/leadscore" topics create --brokers "$B" "$IN:8" >/dev/null
  "$R/examples/lead_load" "$B" "$IN" "$L" 2
  for budget in $BUDGETS; do
    [ "$budget" != none ] && [ "$budget" -ge "$L" ] && continue
    G="mem-$L-$budget"; OUT="out-$G"
    "$R/leadscore" topics create --brokers "$B" "$OUT:4" >/dev/null
    svc "$G" "$budget" "$OUT"
    until [ "$(metric leadscore_events_total)" -gt 0 ] 2>/dev/null; do sleep 0.02; done
    T0=$(date +%s.%N)
    until [ "$(metric leadscore_events_total)" -ge "$N" ]; do sleep 0.1; done
    T1=$(date +%s.%N)
    RATE=$(python3 -c "print(round($N/($T1-$T0)))")
    # End-to-end p99 with every lead in the store (new leads: a store miss each under a budget).
    P99=$("$R/examples/latency_probe" "$B" "$IN" "$OUT" 10000 10 | sed 's/.*p99 \([0-9.]*\) ms.*/\1/')
    RSS=$(rss_mb $SVC)
    stop
    T2=$(date +%s.%N); svc "$G" "$budget" "$OUT"; T3=$(date +%s.%N)
    RESTORE=$(python3 -c "print(round($T3-$T2, 2))")
    stop
    STORE=$(du -sm "$WORK/state-$G" | cut -f1)
    echo "$L leads, budget $budget: $N events at $RATE events/s, peak RSS $RSS MB, p99 $P99 ms at 10k events/s, restart to ready ${RESTORE}s, store ${STORE} MB"
    echo "$L,$budget,$N,$RATE,$RSS,$P99,$RESTORE,$STORE" >>"$CSV"
    rm -rf "$WORK/state-$G"
  done
done
"$R/examples/plot_memory" "$CSV" "${CSV%.csv}.png"
column -s, -t "$CSV"
