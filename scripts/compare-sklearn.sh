#!/usr/bin/env bash
# Holdout ROC AUC of `leadscore train` beside scikit-learn logistic regression on the same split
# and the same information, for several split seeds:
#   1. the X Education lead table (examples/data/x-education-leads.csv, leaking columns out);
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
table="${XEDU_TABLE:-examples/data/x-education-leads.csv}"
exclude="Lead Number,Tags,Lead Quality,Lead Profile,Asymmetrique*,Last Notable Activity"
py() { "$venv/bin/python" -W ignore "$@"; }
# One row per split seed: `train` (its --predictions fix the split), then BASELINE on that split.
# Usage: compare LABEL BASELINE TRAIN-ARGS...   (BASELINE is called with the predictions file)
compare() {
  local label="$1" baseline="$2" s out; shift 2
  for s in "${seeds[@]}"; do
    "$bin" train "$@" --seed "$s" -o "$work/m.toml" --predictions "$work/p.csv" --bootstrap 10 \
      >/dev/null 2>&1
    out="$("$baseline" "$work/p.csv")"
    printf "%-12s %5s  %9s  %12s\n" "$label" "$s" "$(sed -n 's/^leadscore.*: //p' <<<"$out")" \
      "$(sed -n 's/^scikit-learn.*: //p' <<<"$out")"
  done
}
xedu_baseline() {
  py scripts/sklearn_baseline.py "$table" "$1" --label Converted --id-column "Prospect ID" \
    --exclude "$exclude"
}
gen_baseline() { py scripts/sklearn_events_baseline.py "$work/e.ndjson" "$work/o.csv" "$1"; }
alt_baseline() { py scripts/sklearn_events_baseline.py "$work/events.ndjson" "$work/outcomes.csv" "$1"; }

echo "dataset        seed  leadscore  scikit-learn"
compare x-education xedu_baseline \
  --table "$table" --label Converted --id-column "Prospect ID" --exclude "$exclude"
"$bin" gen --seed 11 --leads 12000 -o "$work/e.ndjson" --outcomes "$work/o.csv" 2>/dev/null
compare gen-12k gen_baseline --events "$work/e.ndjson" --outcomes "$work/o.csv"
python3 scripts/alt_history.py "$work" 5 20000
compare alt-20k alt_baseline --events "$work/events.ndjson" --outcomes "$work/outcomes.csv"
