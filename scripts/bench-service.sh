#!/usr/bin/env bash
# Throughput on Apache Kafka, every reader in one run on the same preloaded 8-partition topic,
# each in a new consumer group from the beginning:
#   - a bare rdkafka consumer (examples/bare_consumer.rs: poll, count, discard);
#   - `leadscore run`, at_least_once and exactly_once;
#   - the Kafka Streams and Quix Streams peers (benches/peers/, same scoring, README there).
# Each prints events/s and the CPU seconds of its own process per million events (from its
# first event to its last), and the broker's CPU seconds per million events while it ran. Every scoring reader's sales_ready topic is checked against
# `leadscore replay` of the same stream: same count for the same leads.
# Then restores of the service's state (local store, changelog). Numbers: docs/BENCHMARKS.md.
#   scripts/bench-service.sh                       (5M events; ~20 minutes)
#   EVENTS_LEADS=105000 PEERS="kafka-streams" scripts/bench-service.sh   (~1M events)
#   PROFILE=1 PEERS= scripts/bench-service.sh     (perf record of the at_least_once run)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/leadscore-target}"
PORT="${LEADSCORE_BENCH_PORT:-19292}"
HTTP="127.0.0.1:${LEADSCORE_BENCH_HTTP_PORT:-19464}"
LEADS="${EVENTS_LEADS:-525000}"
PEERS="${PEERS-kafka-streams quix-streams}"
RULES=benches/peers/rules.toml
B="127.0.0.1:$PORT"
WORK="$(mktemp -d /tmp/leadscore-bench.XXXXXX)"
export LEADSCORE_RUN_DIR="$WORK"
cargo build --release --locked --bin leadscore --example bare_consumer 2>&1 | grep -E "^\s*(Finished|error)" || true
BIN="$CARGO_TARGET_DIR/release/leadscore"
BARE="$CARGO_TARGET_DIR/release/examples/bare_consumer"
PEER_PATHS="$(scripts/build-peers.sh)"
KS_CP="$(sed -n 's/^kafka-streams: //p' <<<"$PEER_PATHS")"
QUIX_PY="$(sed -n 's/^quix-python: //p' <<<"$PEER_PATHS")"
scripts/start-kafka.sh "$PORT"
SVC=""
trap '[ -n "$SVC" ] && kill $SVC 2>/dev/null; scripts/stop-kafka.sh --wipe "$PORT" >/dev/null; rm -rf "$WORK"' EXIT
"$BIN" topics create --brokers "$B" bench-in:8 bench-dlq:1 \
  out-alo:4 out-eos:4 out-kafka-streams:4 out-quix-streams:4 >/dev/null

echo "== preload: gen --leads $LEADS --seed 5 --duplicate-fraction 0 (the peers do not deduplicate)"
GEN=(--leads "$LEADS" --seed 5 --duplicate-fraction 0)
"$BIN" gen "${GEN[@]}" -o "$WORK/events.ndjson" 2>/dev/null
N=$(grep -c '' "$WORK/events.ndjson")
"$BIN" gen "${GEN[@]}" --topic bench-in --brokers "$B" 2>&1 | tail -1
"$BIN" replay --rules "$RULES" --input "$WORK/events.ndjson" >"$WORK/replay.ndjson" 2>"$WORK/replay.log"
tail -1 "$WORK/replay.log"
python3 -c 'import tomllib,json,sys; json.dump(tomllib.load(open(sys.argv[1],"rb")), sys.stdout)' "$RULES" >"$WORK/rules.json"

TABLE="$WORK/table"
row() { # reader events seconds cpu_seconds sales_ready broker_cpu_seconds
  python3 -c "import sys; r, n, s, c, a, b = sys.argv[1:7]; n, s, c, b = int(n), float(s), float(c), float(b)
print('| %s | %s | %.2f | %s | %s | %.2f |' % (r, format(round(n / s), ','), c / n * 1e6, format(round(n / c), ','), a, b / n * 1e6))" "$@" >>"$TABLE"
  tail -1 "$TABLE"
}
check() { "$QUIX_PY" scripts/bench_peers_check.py "$B" "$1" "$WORK/replay.ndjson"; }
cpu_of() { awk '{sub(/.*\) /, ""); split($0, f, " "); print (f[12] + f[13]) / 100}' "/proc/$1/stat"; }
BROKER=$(cat "$WORK/kafka-$PORT-node-1.pid")
# The broker's CPU seconds per million events during a reader's run: `broker_window start|stop`.
broker_window() {
  if [ "$1" = start ]; then BROKER_C0=$(cpu_of "$BROKER"); else
    python3 -c "print($(cpu_of "$BROKER") - $BROKER_C0)"; fi
}
metric() { curl -s "http://$HTTP/metrics" | awk -v m="$1" '$1 ~ "^"m"({|$)" {s+=$2} END {print s+0}'; }

echo "== bare rdkafka consumer"
broker_window start
BARE_OUT=$("$BARE" "$B" bench-in "$N"); echo "$BARE_OUT"
read -r BARE_S BARE_CPU < <(sed 's/.* in \([0-9.]*\)s = .* msg\/s, \([0-9.]*\) CPU-s/\1 \2/' <<<"$BARE_OUT")
row "bare rdkafka consumer (poll, count, discard)" "$N" "$BARE_S" "$BARE_CPU" "—" "$(broker_window stop)"

svc() { # guarantee group output
  LEADSCORE_BROKERS="$B" LEADSCORE_GROUP_ID="$2" LEADSCORE_INPUT_TOPICS=bench-in \
    LEADSCORE_OUTPUT_TOPIC="$3" LEADSCORE_DLQ_TOPIC=bench-dlq LEADSCORE_HTTP_ADDR="$HTTP" \
    LEADSCORE_GUARANTEE="$1" LEADSCORE_STATE_DIR="$WORK/state-$2" LEADSCORE_RULES="$RULES" \
    RUST_LOG=info "$BIN" run 2>>"$WORK/service-$2.log" &
  SVC=$!
}
run_service() { # guarantee label output
  svc "$1" "bench-$1" "$3"
  until [ "$(metric leadscore_events_total)" -gt 0 ] 2>/dev/null; do sleep 0.02; done
  local t0 c0 t1 c1 perf=""
  t0=$(date +%s.%N); c0=$(cpu_of $SVC); broker_window start
  if [ -n "${PROFILE:-}" ] && [ "$1" = at_least_once ]; then
    perf record -F 499 -g -p $SVC -o "$WORK/perf.data" >/dev/null 2>&1 & perf=$!
  fi
  until [ "$(metric leadscore_events_total)" -ge "$N" ]; do sleep 0.05; done
  t1=$(date +%s.%N); c1=$(cpu_of $SVC); local b; b=$(broker_window stop)
  if [ -n "$perf" ]; then
    kill -INT $perf; wait $perf || true
    echo "-- perf: leadscore run (at_least_once), self time by symbol, >= 1.5 %"
    perf report -i "$WORK/perf.data" --no-children --sort dso,sym --percent-limit 1.5 --stdio 2>/dev/null |
      grep -E '^ +[0-9]' | sed 's/^/   /'
    echo "-- perf: by thread"
    perf report -i "$WORK/perf.data" --no-children --sort comm --stdio 2>/dev/null | grep -E '^ +[0-9]' | sed 's/^/   /'
  fi
  echo "$2: $N events in $(python3 -c "print(round($t1-$t0,2))")s, $(python3 -c "print(round($c1-$c0,2))") CPU-s"
  row "$2" "$N" "$(python3 -c "print($t1-$t0)")" "$(python3 -c "print($c1-$c0)")" "$(metric leadscore_sales_ready_total)" "$b"
  kill -TERM $SVC; wait $SVC || true; SVC=""
  check "$3"
}
echo "== leadscore run, at_least_once"
run_service at_least_once "leadscore run (at_least_once)" out-alo
echo "== leadscore run, exactly_once"
run_service exactly_once "leadscore run (exactly_once)" out-eos

peer_row() { # label json broker_cpu_seconds
  echo "$2"
  python3 -c "import json,sys; j=json.loads(sys.argv[1]); print(j['events'], j['seconds'], j['cpu_seconds'], j['sales_ready'])" "$2" |
    { read -r n s c a; row "$1" "$n" "$s" "$c" "$a" "$3"; }
}
for peer in $PEERS; do
  echo "== $peer"
  case "$peer" in
    kafka-streams)
      broker_window start
      OUT=$(java -Xmx1g -cp "$KS_CP" leadscore.peer.App "$B" bench-in out-kafka-streams "$WORK/rules.json" "$N" "$WORK/ks-state" | tail -1)
      peer_row "Kafka Streams 4.4.0 (1 stream thread, RocksDB store + changelog)" "$OUT" "$(broker_window stop)" ;;
    quix-streams)
      broker_window start
      OUT=$("$QUIX_PY" benches/peers/quix/app.py "$B" bench-in out-quix-streams "$RULES" "$N" "$WORK/quix-state" | tail -1)
      peer_row "Quix Streams 3.28.1 (RocksDB state + changelog)" "$OUT" "$(broker_window stop)" ;;
  esac
  check "out-$peer"
done

echo
echo "| reader | events/s | CPU-s per M events | events per CPU-s | sales_ready | broker CPU-s per M events |"
echo "|---|---|---|---|---|---|"
cat "$TABLE"

restore_rate() { # sums "partition restored" lines after a given log line number
  tail -n +"$1" "$2" | grep -o 'restored in [0-9.]*s ([0-9]* leads/s) partition=[0-9]* source="[a-z]*" leads=[0-9]*' |
    awk '{gsub("s","",$3); t+=$3; split($NF,a,"="); l+=a[2]; src=$(NF-1)} END {printf "%s: %d leads in %.2fs = %.0f leads/s\n", src, l, t, l/t}'
}
G=bench-at_least_once; LOG="$WORK/service-$G.log"
echo "== restore from the local store (restart, same state dir)"
FROM=$(( $(wc -l <"$LOG") + 1 ))
svc at_least_once "$G" out-alo; until curl -sf "http://$HTTP/readyz" >/dev/null; do sleep 0.05; done
restore_rate "$FROM" "$LOG"
kill -TERM $SVC; wait $SVC || true; SVC=""
echo "== restore from the changelog (state dir deleted)"
rm -rf "$WORK/state-$G"
FROM=$(( $(wc -l <"$LOG") + 1 ))
svc at_least_once "$G" out-alo; until curl -sf "http://$HTTP/readyz" >/dev/null; do sleep 0.05; done
restore_rate "$FROM" "$LOG"
kill -TERM $SVC; wait $SVC || true; SVC=""
