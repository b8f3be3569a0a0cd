#!/usr/bin/env bash
# Starts Apache Kafka in KRaft mode (broker + controller in one JVM per node) on loopback,
# installing it first if needed (scripts/install-kafka.sh).
#
#   scripts/start-kafka.sh PORT                 one node: client port PORT
#   scripts/start-kafka.sh --nodes 3 PORT       three nodes: PORT, PORT+1, PORT+2 (RF 3, min ISR 2)
#   scripts/start-kafka.sh --nodes 3 --only 2 PORT   (re)start node 2 of that cluster only
#
# Controllers listen on PORT+1000+i. Data lives in $LEADSCORE_RUN_DIR/kafka-PORT/node-I (kept
# across restarts: the storage format tool runs once per log dir), the log goes to
# $LEADSCORE_RUN_DIR/kafka-PORT-node-I.log and the pid to kafka-PORT-node-I.pid.
# KAFKA_EXTRA_PROPS (newline-separated key=value) is appended to every node's server.properties;
# KAFKA_HEAP (default 768m for one node, 384m each for three) sets -Xmx.
# Waits until every node answers on its client port and has logged that it started.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
NODES=1; ONLY=""
while [ $# -gt 1 ]; do
  case "$1" in
    --nodes) NODES="$2"; shift 2 ;;
    --only) ONLY="$2"; shift 2 ;;
    *) echo "usage: $0 [--nodes N] [--only I] PORT" >&2; exit 2 ;;
  esac
done
PORT="${1:-19092}"
RUN_DIR="${LEADSCORE_RUN_DIR:-/tmp/leadscore-run}"
mkdir -p "$RUN_DIR"
KDIR="$("$here/install-kafka.sh" | sed -n 's/^kafka: ready at //p')"
[ -d "$KDIR/libs" ] || { echo "kafka: install failed" >&2; exit 1; }
if [ "$NODES" = 1 ]; then RF=1; MINISR=1; HEAP="${KAFKA_HEAP:-768m}"; else RF=3; MINISR=2; HEAP="${KAFKA_HEAP:-384m}"; fi
CLUSTER="$RUN_DIR/kafka-$PORT"
mkdir -p "$CLUSTER"
# 16 random bytes, base64url; `+/` become letters, so the id never starts with `-` (which
# kafka-storage's argument parser would take for an option).
[ -f "$CLUSTER/cluster.id" ] || head -c 16 /dev/urandom | base64 | tr '+/' 'Kx' | cut -c1-22 >"$CLUSTER/cluster.id"
VOTERS=""
for i in $(seq 1 "$NODES"); do VOTERS="${VOTERS:+$VOTERS,}$i@127.0.0.1:$((PORT + 1000 + i - 1))"; done
JAVA_ARGS=(-Xms128m -Xmx"$HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError
  -Djava.awt.headless=true -Dlog4j2.configurationFile="$here/kafka/log4j2.properties" -cp "$KDIR/libs/*")
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start_node() {
  local i="$1" port=$((PORT + $1 - 1)) cport=$((PORT + 1000 + $1 - 1))
  local dir="$CLUSTER/node-$i" pidfile="$RUN_DIR/kafka-$PORT-node-$i.pid" log="$RUN_DIR/kafka-$PORT-node-$i.log"
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "kafka: node $i already running on 127.0.0.1:$port (pid $(cat "$pidfile"))"; return 0
  fi
  for p in "$port" "$cport"; do
    if port_open "$p"; then echo "kafka: port $p is taken by another process; choose another PORT" >&2; exit 1; fi
  done
  mkdir -p "$dir/data"
  cat >"$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=$i
controller.quorum.voters=$VOTERS
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL
log.dirs=$dir/data
num.network.threads=2
num.io.threads=4
background.threads=4
num.partitions=1
default.replication.factor=$RF
min.insync.replicas=$MINISR
offsets.topic.replication.factor=$RF
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=$RF
transaction.state.log.min.isr=$MINISR
transaction.state.log.num.partitions=8
share.coordinator.state.topic.replication.factor=$RF
share.coordinator.state.topic.min.isr=$MINISR
group.initial.rebalance.delay.ms=0
group.consumer.heartbeat.interval.ms=1000
group.consumer.min.heartbeat.interval.ms=500
auto.create.topics.enable=false
log.cleaner.backoff.ms=1000
PROPS
  [ -n "${KAFKA_EXTRA_PROPS:-}" ] && printf '%s\n' "$KAFKA_EXTRA_PROPS" >>"$dir/server.properties"
  if [ ! -f "$dir/data/meta.properties" ]; then
    # KAFKA_FORMAT_ARGS: e.g. --add-scram 'SCRAM-SHA-512=[name=u,password=p]' (SASL tests).
    # shellcheck disable=SC2086
    java "${JAVA_ARGS[@]}" kafka.tools.StorageTool format --config "$dir/server.properties" \
      --cluster-id "$(cat "$CLUSTER/cluster.id")" --ignore-formatted ${KAFKA_FORMAT_ARGS:-} >>"$log" 2>&1 ||
      { echo "kafka: formatting $dir/data failed; log: $log" >&2; tail -20 "$log" >&2; exit 1; }
  fi
  echo "=== start $(date -u +%FT%TZ)" >>"$log"
  nohup java "${JAVA_ARGS[@]}" kafka.Kafka "$dir/server.properties" >>"$log" 2>&1 &
  echo $! >"$pidfile"
}

wait_node() {
  local i="$1" port=$((PORT + $1 - 1)) pidfile="$RUN_DIR/kafka-$PORT-node-$i.pid" log="$RUN_DIR/kafka-$PORT-node-$i.log"
  local started=$SECONDS from
  from=$(grep -n '^=== start' "$log" | tail -1 | cut -d: -f1)
  while true; do
    if port_open "$port" && tail -n +"$from" "$log" | grep -q 'Kafka Server started'; then
      echo "kafka: node $i up on 127.0.0.1:$port (pid $(cat "$pidfile"), $((SECONDS - started))s, log $log)"; return 0
    fi
    if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      echo "kafka: node $i exited at start; log $log:" >&2; tail -30 "$log" >&2; exit 1
    fi
    [ $((SECONDS - started)) -lt 90 ] || { echo "kafka: node $i not up within 90s; log $log" >&2; exit 1; }
    sleep 0.2
  done
}

if [ -n "$ONLY" ]; then nodes="$ONLY"; else nodes="$(seq 1 "$NODES")"; fi
for i in $nodes; do start_node "$i"; done
for i in $nodes; do wait_node "$i"; done
