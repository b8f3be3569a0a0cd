#!/usr/bin/env bash
# Builds the benchmark peers of benches/peers/ (idempotent; cached tools dir):
#   - the Kafka Streams peer: `mvn package` + its runtime jars (Maven Central);
#   - the Quix Streams peer: a venv with quixstreams (PyPI).
# Prints two lines: `kafka-streams: CLASSPATH` and `quix-python: PYTHON`.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS_DIR="${LEADSCORE_TOOLS_DIR:-$HOME/.cache/leadscore-tools}"
QUIX_VERSION=3.28.1
KS=benches/peers/kafka-streams
if [ ! -f "$KS/target/kafka-streams-peer-1.jar" ] || [ -n "$(find "$KS/src" "$KS/pom.xml" -newer "$KS/target/kafka-streams-peer-1.jar")" ]; then
  echo "peers: building the Kafka Streams peer (mvn)" >&2
  mvn -B -q --no-transfer-progress -Dstyle.color=never -f "$KS/pom.xml" -Dmaven.repo.local="$TOOLS_DIR/m2" \
    package dependency:copy-dependencies -DincludeScope=runtime >&2
fi
VENV="$TOOLS_DIR/quix-venv-$QUIX_VERSION"
if [ ! -f "$VENV/installed" ]; then
  echo "peers: creating $VENV with quixstreams $QUIX_VERSION (PyPI)" >&2
  rm -rf "$VENV" && python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "quixstreams==$QUIX_VERSION" >&2
  touch "$VENV/installed"
fi
echo "kafka-streams: $PWD/$KS/target/kafka-streams-peer-1.jar:$PWD/$KS/target/dependency/*"
echo "quix-python: $VENV/bin/python"
