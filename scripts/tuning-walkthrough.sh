#!/usr/bin/env bash
# The tuning loop of docs/TUNING.md on two datasets, printing every number the doc quotes:
#   gen:         train on one generated sample (seed 1), backtest on a fresh one (seed 2);
#   X Education: its event-history form (scripts/xeducation_history.py), 70/30 split by lead.
# Steps per dataset: 1. backtest the current rules (threshold sweep); 2. learn rules with train;
# 3. backtest both side by side, at their own thresholds and at a weekly alert budget.
# Usage: scripts/tuning-walkthrough.sh [OUT_DIR]   (charts and reports are kept there)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-$(mktemp -d)}"; mkdir -p "$out"
cargo build --release --quiet
bin="${CARGO_TARGET_DIR:-target}/release/leadscore"

loop() { # NAME TRAIN_EVENTS TRAIN_OUTCOMES TEST_EVENTS TEST_OUTCOMES BASE_RULES SWEEP BUDGET
  local name=$1 te=$2 to=$3 ve=$4 vo=$5 base=$6 sweep=$7 budget=$8
  cp "$base" "$out/$name-current.toml"
  echo "== $name: 1. backtest the current rules"
  "$bin" backtest --events "$ve" --outcomes "$vo" --rules "$out/$name-current.toml" \
    --thresholds "$sweep" --target-alerts-per-week "$budget" --reps 5 -q \
    --plot "$out/$name-current.png" --report "$out/$name-current.json"
  echo "== $name: 2. learn new rules"
  "$bin" train --events "$te" --outcomes "$to" --base-rules "$out/$name-current.toml" \
    -o "$out/$name-learned.toml" 2>/dev/null | sed -n '2,4p;6,8p'
  echo "== $name: 3. both side by side (own thresholds, then the sweep at $budget alerts/week)"
  "$bin" backtest --events "$ve" --outcomes "$vo" --rules "$out/$name-current.toml" \
    --rules "$out/$name-learned.toml" -q
  "$bin" backtest --events "$ve" --outcomes "$vo" --rules "$out/$name-current.toml" \
    --rules "$out/$name-learned.toml" --thresholds "$sweep" --target-alerts-per-week "$budget" \
    -q --plot "$out/$name-both.png" --report "$out/$name-both.json" | grep -E '^variant|\*'
}

"$bin" gen --seed 1 --leads 20000 -o "$out/gen-train.ndjson" --outcomes "$out/gen-train.csv" 2>/dev/null
"$bin" gen --seed 2 --leads 20000 -o "$out/gen-test.ndjson" --outcomes "$out/gen-test.csv" 2>/dev/null
loop gen "$out/gen-train.ndjson" "$out/gen-train.csv" "$out/gen-test.ndjson" "$out/gen-test.csv" \
  examples/rules.toml 40:160:10 150

python3 scripts/xeducation_history.py examples/data/x-education-leads.csv "$out/xedu" --holdout 0.3
loop xedu "$out/xedu/train/events.ndjson" "$out/xedu/train/outcomes.csv" \
  "$out/xedu/test/events.ndjson" "$out/xedu/test/outcomes.csv" examples/xeducation/hand.toml 20:100:10 60
echo "charts and reports in $out"
