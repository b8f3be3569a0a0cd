#!/usr/bin/env bash
# Installs the tansu broker (Kafka-compatible, from crates.io) once into a cached tools dir.
# Re-running is instant when the binary is already there.
set -euo pipefail
TANSU_VERSION="0.6.0"
TOOLS_DIR="${LEADSCORE_TOOLS_DIR:-$HOME/.cache/leadscore-tools}"
BIN="$TOOLS_DIR/bin/tansu"
STAMP="$TOOLS_DIR/tansu-$TANSU_VERSION.installed"

if [ -x "$BIN" ] && [ -f "$STAMP" ]; then
  echo "broker: tansu $TANSU_VERSION already installed at $BIN"
  exit 0
fi
mkdir -p "$TOOLS_DIR"
echo "broker: installing tansu $TANSU_VERSION into $TOOLS_DIR"
echo "broker: the first build compiles ~600 crates and takes about 10 minutes on 2 cores; later runs reuse it"
start=$(date +%s)
# A private target dir keeps the broker build out of the project's own cache.
CARGO_TARGET_DIR="$TOOLS_DIR/build" cargo install "tansu@$TANSU_VERSION" --locked \
  --features dynostore,libsql --root "$TOOLS_DIR" 2>&1 |
  while IFS= read -r line; do
    case "$line" in
      *Compiling*|*Installing*|*Installed*|*error*|*warning:\ unused*) echo "broker: [$(( $(date +%s) - start ))s] $line" ;;
    esac
  done
if [ ! -x "$BIN" ]; then
  echo "broker: install failed: $BIN was not produced (see cargo output above)" >&2
  exit 1
fi
touch "$STAMP"
rm -rf "$TOOLS_DIR/build"
echo "broker: installed $BIN in $(( $(date +%s) - start ))s"
