#!/usr/bin/env bash
# Bench of `leadscore train`: generates LEADS leads (default 105,000 → about 1M events), trains
# with the default grids, and prints the wall time, events/s and peak memory.
# Usage: scripts/bench-train.sh [LEADS]
set -euo pipefail
cd "$(dirname "$0")/.."
leads="${1:-105000}"
cargo build --release --quiet
bin="${CARGO_TARGET_DIR:-target}/release/leadscore"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
"$bin" gen --seed 5 --leads "$leads" -o "$work/events.ndjson" --outcomes "$work/outcomes.csv"
events=$(wc -l <"$work/events.ndjson")
/usr/bin/time -f "%e %M" -o "$work/time" "$bin" train --events "$work/events.ndjson" \
  --outcomes "$work/outcomes.csv" --base-rules examples/rules.toml -o "$work/learned.toml" \
  >"$work/report.txt" 2>"$work/progress.txt"
cat "$work/progress.txt"
grep -E "ROC AUC|leads" "$work/report.txt" | head -3
read -r secs kb <"$work/time"
awk -v s="$secs" -v e="$events" -v l="$leads" -v kb="$kb" 'BEGIN {
  printf "train: %d leads, %d events in %.1f s (%.0f events/s), peak RSS %.0f MiB\n", l, e, s, e / s, kb / 1024 }'
