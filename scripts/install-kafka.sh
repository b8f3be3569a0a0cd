#!/usr/bin/env bash
# Installs Apache Kafka (KRaft broker + tools, log4j2 backend) from Maven Central into the cached
# tools dir, resolved by `mvn` from scripts/kafka/pom.xml. Idempotent: a second run only checks.
# Prints the classpath dir on the last line:  kafka: ready at DIR
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
POM="$here/kafka/pom.xml"
VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM")"
TOOLS_DIR="${LEADSCORE_TOOLS_DIR:-$HOME/.cache/leadscore-tools}"
DIR="$TOOLS_DIR/kafka-$VERSION"
STAMP="$DIR/installed-$(sha256sum "$POM" | cut -c1-16)"
if [ -f "$STAMP" ]; then
  echo "kafka: Apache Kafka $VERSION already installed ($(ls "$DIR/libs" | wc -l) jars)"
  echo "kafka: ready at $DIR"
  exit 0
fi
command -v java >/dev/null || { echo "kafka: java not found; install a JDK 17+ (Debian: openjdk-17-jre-headless)" >&2; exit 1; }
command -v mvn >/dev/null || { echo "kafka: mvn not found; install Maven (Debian: maven)" >&2; exit 1; }
echo "kafka: resolving Apache Kafka $VERSION from Maven Central into $DIR (once; ~100 MB)"
start=$(date +%s)
rm -rf "$DIR.tmp" && mkdir -p "$DIR.tmp/libs"
mvn -B -q --no-transfer-progress -Dstyle.color=never -f "$POM" -Dmaven.repo.local="$TOOLS_DIR/m2" \
  dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$DIR.tmp/libs" 2>&1 |
  sed -e 's/\x1b\[[0-9;]*m//g' | { grep -v '^$' || true; } | sed 's/^/kafka: mvn: /'
[ -f "$DIR.tmp/libs/kafka_2.13-$VERSION.jar" ] || { echo "kafka: mvn did not produce kafka_2.13-$VERSION.jar" >&2; exit 1; }
rm -rf "$DIR" && mv "$DIR.tmp" "$DIR"
touch "$STAMP"
echo "kafka: installed $(ls "$DIR/libs" | wc -l) jars in $(( $(date +%s) - start ))s"
echo "kafka: ready at $DIR"
