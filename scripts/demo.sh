#!/usr/bin/env bash
# The demo of the main job: a broker, the leadscore service, a realistic stream of lead
# activity, sales-ready alerts printed as they arrive, then the sales loop: verdicts flow back
# on lead-outcomes, are exported, the rules are backtested, retrained, backtested side by side
# and the winner is hot-reloaded (docs/TUNING.md). Ctrl-C stops everything cleanly.
#   LEADS=3000 RATE=1500 scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
PORT="${LEADSCORE_DEMO_PORT:-19092}"
HTTP="${LEADSCORE_DEMO_HTTP:-127.0.0.1:9464}"
LEADS="${LEADS:-3000}"
RATE="${RATE:-1500}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/leadscore-target}"
WORK="$(mktemp -d /tmp/leadscore-demo.XXXXXX)"
BIN="$CARGO_TARGET_DIR/release/leadscore"
export LEADSCORE_RUN_DIR="$WORK"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "1/7 broker (Apache Kafka, KRaft, one node on loopback; the first run fetches its jars from Maven Central)"
scripts/start-kafka.sh "$PORT"
say "2/7 build (release; the first build compiles librdkafka and takes a few minutes)"
cargo build --release --locked 2>&1 | grep -E "^\s*(Compiling leadscore|Finished|error)" || true
[ -x "$BIN" ] || { echo "build failed" >&2; exit 1; }

SVC_PID=""; WATCH_PID=""; GEN_PID=""
cleanup() {
  trap - INT TERM EXIT
  [ -n "$GEN_PID" ] && kill "$GEN_PID" 2>/dev/null || true
  if [ -n "$SVC_PID" ] && kill -0 "$SVC_PID" 2>/dev/null; then
    kill -TERM "$SVC_PID"; wait "$SVC_PID" 2>/dev/null && echo "service: stopped cleanly (exit 0, offsets committed)" || echo "service: exit $?"
  fi
  [ -n "$WATCH_PID" ] && kill "$WATCH_PID" 2>/dev/null || true
  "$ROOT/scripts/stop-kafka.sh" --wipe "$PORT" || true
  echo "logs and data: $WORK"
}
trap cleanup EXIT
trap 'echo; echo "Ctrl-C: stopping"; exit 130' INT TERM

B="127.0.0.1:$PORT"
"$BIN" topics create --brokers "$B" lead-events:8 lead-outcomes:8 sales-ready:4 lead-events-dlq:1
# The activity window ends a month before today, so that sales' verdicts (days to weeks after
# the activity) are in the past too, as the service's time window demands.
START="$(date -u -d '75 days ago' +%Y-%m-%dT00:00:00Z)"
cp "$ROOT/examples/rules.toml" "$WORK/rules.toml"

say "3/7 service (events from lead-events, sales verdicts from lead-outcomes)"
LEADSCORE_BROKERS="$B" LEADSCORE_RULES="$WORK/rules.toml" LEADSCORE_HTTP_ADDR="$HTTP" \
  LEADSCORE_OUTCOMES_TOPIC=lead-outcomes \
  LEADSCORE_STATE_DIR="$WORK/state" "$BIN" run >"$WORK/service.log" 2>&1 &
SVC_PID=$!
for _ in $(seq 1 300); do
  curl -sf "http://$HTTP/readyz" >/dev/null 2>&1 && break
  kill -0 "$SVC_PID" 2>/dev/null || { echo "service exited:"; tail -20 "$WORK/service.log"; exit 1; }
  sleep 0.1
done
echo "service: $(curl -s "http://$HTTP/readyz")   (metrics: http://$HTTP/metrics, log: $WORK/service.log)"

say "4/7 streaming ~$((LEADS * 10)) events for $LEADS leads at $RATE/s; alerts below"
"$BIN" watch --brokers "$B" --topic sales-ready &
WATCH_PID=$!
"$BIN" gen --leads "$LEADS" --seed 7 --start "$START" --invalid-fraction 0.002 -o "$WORK/events.ndjson" 2>/dev/null
"$BIN" gen --leads "$LEADS" --seed 7 --start "$START" --invalid-fraction 0.002 --topic lead-events --brokers "$B" \
  --rate "$RATE" 2>"$WORK/gen.log" &
GEN_PID=$!
wait "$GEN_PID"; GEN_PID=""
SENT=$(grep -c '' "$WORK/events.ndjson")

# Wait until the service has consumed everything that was sent.
metric() { curl -s "http://$HTTP/metrics" | awk -v m="$1" '$1 ~ "^"m"({|$)" {s+=$2} END {print s+0}'; }
for _ in $(seq 1 600); do
  DONE=$(( $(metric leadscore_events_total) + $(metric leadscore_invalid_total) ))
  [ "$DONE" -ge "$SENT" ] && break
  sleep 0.1
done
sleep 1 # let the last alerts print

echo "  -- the stream, consumed:"
REPLAY=$("$BIN" replay -q --rules examples/rules.toml --input "$WORK/events.ndjson" 2>/dev/null | grep -c '' || true)
printf '  events sent            %s\n' "$SENT"
printf '  valid events           %s (bot %s, duplicate %s)\n' "$(metric leadscore_events_total)" "$(metric leadscore_bot_total)" "$(metric leadscore_duplicate_total)"
printf '  dead letters           %s (topic lead-events-dlq)\n' "$(metric leadscore_invalid_total)"
printf '  leads in state         %s\n' "$(metric leadscore_leads)"
printf '  sales-ready alerts     %s (offline replay of the same stream: %s)\n' "$(metric leadscore_sales_ready_total)" "$REPLAY"
kill "$WATCH_PID" 2>/dev/null || true; WATCH_PID=""

say "5/7 sales answers: verdicts (accepted, rejected, won, lost) on lead-outcomes"
"$BIN" gen --leads "$LEADS" --seed 7 --start "$START" --invalid-fraction 0.002 -o /dev/null \
  --outcomes "$WORK/outcomes-gen.csv" --outcomes-topic lead-outcomes --brokers "$B" 2>"$WORK/verdicts.log"
VERDICTS=$(grep -o '[0-9]* sales verdicts acknowledged' "$WORK/verdicts.log" | cut -d' ' -f1)
for _ in $(seq 1 300); do
  [ "$(metric leadscore_sales_outcomes_total)" -ge "${VERDICTS:-0}" ] && break
  sleep 0.1
done
out() { curl -s "http://$HTTP/metrics" | awk -v o="$1" '$1 == "leadscore_sales_outcomes_total{outcome=\""o"\"}" {print $2}'; }
printf '  verdicts applied       %s (accepted %s, rejected %s, won %s, lost %s)\n' "$(metric leadscore_sales_outcomes_total)" "$(out accepted)" "$(out rejected)" "$(out won)" "$(out lost)"
awk -v a="$(out accepted)" -v r="$(out rejected)" 'BEGIN { if (a + r > 0) printf "  acceptance rate        %.1f%% (leadscore:sales_acceptance_ratio:1d on the dashboard)\n", 100 * a / (a + r) }'
echo "  rejections by the top signal of the rejected alert:"
curl -s "http://$HTTP/metrics" | grep '^leadscore_rejections_by_signal_total' | sort -t' ' -k2 -rn | head -3 | sed 's/^/    /'
EXAMPLE=$("$BIN" replay -q --rules examples/rules.toml --input "$WORK/events.ndjson" 2>/dev/null | head -1 | sed 's/.*"lead_id":"\([^"]*\)".*/\1/')
if [ -n "$EXAMPLE" ]; then
  printf '  GET /v1/leads/%s:\n    %s\n' "$EXAMPLE" "$(curl -s "http://$HTTP/v1/leads/$EXAMPLE")"
fi

say "6/7 the loop: export verdicts -> backtest current rules -> train -> backtest both"
"$BIN" outcomes export --brokers "$B" --topic lead-outcomes -o "$WORK/outcomes.csv"
cmp -s "$WORK/outcomes.csv" "$WORK/outcomes-gen.csv" && echo "  exported CSV = the outcomes gen drew, byte for byte"
"$BIN" backtest -q --events "$WORK/events.ndjson" --outcomes "$WORK/outcomes.csv" --rules "$WORK/rules.toml" \
  --thresholds 60:160:20 --reps 4 --plot "$WORK/sweep.png" 2>/dev/null
"$BIN" train --events "$WORK/events.ndjson" --outcomes "$WORK/outcomes.csv" --base-rules "$WORK/rules.toml" \
  -o "$WORK/learned.toml" 2>/dev/null | grep -E "ROC AUC|threshold sales_ready"
"$BIN" backtest -q --events "$WORK/events.ndjson" --outcomes "$WORK/outcomes.csv" --rules "$WORK/rules.toml" \
  --rules "$WORK/learned.toml" 2>/dev/null
echo "  (a fair comparison backtests leads the training did not see: docs/TUNING.md)"

say "7/7 hot-reload the learned rules (SIGHUP)"
cp "$WORK/learned.toml" "$WORK/rules.toml"
RELOADS=$(metric leadscore_rules_reloads_total)
kill -HUP "$SVC_PID"
for _ in $(seq 1 100); do [ "$(metric leadscore_rules_reloads_total)" -gt "$RELOADS" ] && break; sleep 0.1; done
grep -o 'rules reloaded[^"]*' "$WORK/service.log" | tail -1 | sed 's/^/  /'
echo "  sweep chart: $WORK/sweep.png"
