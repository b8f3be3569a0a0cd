#!/usr/bin/env bash
# Bench of `leadscore backtest` against `replay`: generates LEADS leads (default 105,000 →
# about 1M events), times two separate replays and one backtest with 10 thresholds (one pass),
# and prints the wall times, their ratio and peak memory.
# Usage: scripts/bench-backtest.sh [LEADS]
set -euo pipefail
cd "$(dirname "$0")/.."
leads="${1:-105000}"
cargo build --release --quiet
bin="${CARGO_TARGET_DIR:-target}/release/leadscore"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
"$bin" gen --seed 42 --leads "$leads" -o "$work/events.ndjson" --outcomes "$work/outcomes.csv" 2>/dev/null
events=$(wc -l <"$work/events.ndjson")
timed() { /usr/bin/time -f "%e %M" -o "$work/time" "$@" >/dev/null 2>&1; cat "$work/time"; }
read -r r1 _ < <(timed "$bin" replay --rules examples/rules.toml --input "$work/events.ndjson" -q)
read -r r2 _ < <(timed "$bin" replay --rules examples/rules.toml --input "$work/events.ndjson" -q)
read -r b kb < <(timed "$bin" backtest --events "$work/events.ndjson" --outcomes "$work/outcomes.csv" \
  --rules examples/rules.toml --thresholds 40:130:10 -q)
awk -v e="$events" -v r1="$r1" -v r2="$r2" -v b="$b" -v kb="$kb" 'BEGIN {
  printf "%d events: replay %.2f s + replay %.2f s = %.2f s; backtest, 10 thresholds, one pass: %.2f s (%.2f x one replay, %.2f x two), peak RSS %.0f MiB\n",
    e, r1, r2, r1 + r2, b, b / r1, b / (r1 + r2), kb / 1024 }'
