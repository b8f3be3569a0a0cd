#!/usr/bin/env bash
# Holdout ROC AUC of `leadscore train` beside scikit-learn logistic regression on the same split
# and the same information, for several split seeds:
#   1. the X Education lead table (../shared/datasets/x-education-leads.csv, leaking columns out);
#   2. a generated event history (`leadscore gen`, 12,000 leads);
#   3. a differently shaped history (scripts/alt_history.py, 20,000 leads, post-conversion activity).
# Needs python3 with scikit-learn and pandas (creates a venv under ~/.cache/leadscore-tools).
# Usage: scripts/compare-sklearn.sh [SEEDS...]   (default 1 2 3 4 5)
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=("${@:-1 2 3 4 5}"); read -r -a seeds <<<"${seeds[*]}"
venv="$HOME/.cache/leadscore-tools/sklearn-venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import sklearn, pandas" 2>/dev/null; then
  python3 -m venv "$venv" && "$venv/bin/pip" install -q scikit-learn pandas
fi
cargo build --release --quiet
bin="${CARGO_TARGET_DIR:-target}/release/leadscore"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
table="${XEDU_TABLE:-../shared/datasets/x-education-leads.csv}"
exclude="Lead Number,Tags,Lead Quality,Lead Profile,Asymmetrique*,Last Notable Activity"
echo "dataset        seed  leadscore  scikit-learn"
for s in "${seeds[@]}"; do
  "$bin" train --table "$table" --label Converted --id-column "Prospect ID" --exclude "$exclude" \
    --seed "$s" -o "$work/x.toml" --predictions "$work/x.csv" --bootstrap 10 >/dev/null 2>&1
  out="$("$venv/bin/python" -W ignore scripts/sklearn_baseline.py "$table" "$work/x.csv" \
    --label Converted --id-column "Prospect ID" --exclude "$exclude")"
  sk="$(sed -n 's/^scikit-learn.*: //p' <<<"$out")"; ls="$(sed -n 's/^leadscore.*: //p' <<<"$out")"
  printf "x-education  %5s  %9s  %12s\n" "$s" "$ls" "$sk"
done
"$bin" gen --seed 11 --leads 12000 -o "$work/e.ndjson" --outcomes "$work/o.csv" 2>/dev/null
for s in "${seeds[@]}"; do
  "$bin" train --events "$work/e.ndjson" --outcomes "$work/o.csv" --seed "$s" \
    -o "$work/g.toml" --predictions "$work/g.csv" --bootstrap 10 >/dev/null 2>&1
  out="$("$venv/bin/python" -W ignore scripts/sklearn_events_baseline.py "$work/e.ndjson" "$work/o.csv" "$work/g.csv")"
  sk="$(sed -n 's/^scikit-learn.*: //p' <<<"$out")"; ls="$(sed -n 's/^leadscore.*: //p' <<<"$out")"
  printf "gen-12k      %5s  %9s  %12s\n" "$s" "$ls" "$sk"
done
python3 scripts/alt_history.py "$work" 5 20000
for s in "${seeds[@]}"; do
  "$bin" train --events "$work/events.ndjson" --outcomes "$work/outcomes.csv" --seed "$s" \
    -o "$work/a.toml" --predictions "$work/a.csv" --bootstrap 10 >/dev/null 2>&1
  out="$("$venv/bin/python" -W ignore scripts/sklearn_events_baseline.py "$work/events.ndjson" "$work/outcomes.csv" "$work/a.csv")"
  sk="$(sed -n 's/^scikit-learn.*: //p' <<<"$out")"; ls="$(sed -n 's/^leadscore.*: //p' <<<"$out")"
  printf "alt-20k      %5s  %9s  %12s\n" "$s" "$ls" "$sk"
done
