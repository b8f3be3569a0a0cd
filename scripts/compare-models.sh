#!/usr/bin/env bash
# Holdout ROC AUC of `leadscore train` — its learned rules scored through `replay` — beside
# scikit-learn logistic regression, HistGradientBoosting and InterpretML's EBM (main effects)
# on per-lead aggregates of the same histories and splits (scripts/compare_models.py), over
# several split seeds, on three event histories:
#   gen    `leadscore gen`, 12,000 leads (seed 11);
#   alt    scripts/alt_history.py, 20,000 leads (seed 5);
#   xedu   X Education as an event history (scripts/xeducation_history.py), 9,240 leads.
# Needs python3; creates a venv with scikit-learn, pandas and interpret-core under
# ~/.cache/leadscore-tools. Prints one line per dataset and seed, then mean and 95 % interval.
# Usage: scripts/compare-models.sh [SEEDS...]   (default 1 2 3 4 5)
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=("${@:-1 2 3 4 5}"); read -r -a seeds <<<"${seeds[*]}"
venv="$HOME/.cache/leadscore-tools/sklearn-venv"
if ! "$venv/bin/python" -c "import sklearn, pandas, interpret" 2>/dev/null; then
  python3 -m venv "$venv" && "$venv/bin/pip" install -q scikit-learn pandas interpret-core
fi
py() { "$venv/bin/python" -W ignore "$@"; }
cargo build --release --quiet
bin="${CARGO_TARGET_DIR:-target}/release/leadscore"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT

mkdir -p "$work/gen" "$work/alt" "$work/xedu"
"$bin" gen --seed 11 --leads 12000 -o "$work/gen/events.ndjson" --outcomes "$work/gen/outcomes.csv" 2>/dev/null
python3 scripts/alt_history.py "$work/alt" 5 20000 >/dev/null
python3 scripts/xeducation_history.py examples/data/x-education-leads.csv "$work/xedu" >/dev/null

printf "%-6s %4s %6s %10s %8s %8s %8s %s\n" dataset seed rules leadscore lr hgb ebm "train s"
for d in gen alt xedu; do
  dir="$work/$d"
  py scripts/compare_models.py --cut "$dir/events.ndjson" "$dir/outcomes.csv" "$dir/cut.ndjson"
  for s in "${seeds[@]}"; do
    start=$(date +%s%N)
    "$bin" train --events "$dir/events.ndjson" --outcomes "$dir/outcomes.csv" --seed "$s" \
      -o "$dir/m.toml" --predictions "$dir/p.csv" --bootstrap 10 >/dev/null 2>&1
    ms=$(( ($(date +%s%N) - start) / 1000000 ))
    rules=$(grep -c '^\[\[' "$dir/m.toml")
    "$bin" replay -q --rules "$dir/m.toml" --input "$dir/cut.ndjson" --scores "$dir/scores.ndjson" >/dev/null
    line=$(py scripts/compare_models.py "$dir/events.ndjson" "$dir/outcomes.csv" "$dir/p.csv" \
      "$dir/scores.ndjson" --seed "$s")
    read -r _ l lr hgb ebm <<<"$(sed 's/[a-z]*=//g' <<<"$line")"
    printf "%-6s %4s %6s %10s %8s %8s %8s %d.%01d\n" "$d" "$s" "$rules" "$l" "$lr" "$hgb" "$ebm" \
      $((ms / 1000)) $((ms % 1000 / 100)) | tee -a "$work/rows"
  done
done
echo
py - "$work/rows" <<'PY'
import sys, statistics as st, math
rows = [l.split() for l in open(sys.argv[1])]
T = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}
n = len({r[1] for r in rows})
t = T.get(n - 1, 1.96)
print(f"{'dataset':6} {'model':9} {'mean AUC':>9}   {'95% CI':>16}   leadscore minus model (95% CI)")
for d in dict.fromkeys(r[0] for r in rows):
    rs = [r for r in rows if r[0] == d]
    cols = {"leadscore": 3, "lr": 4, "hgb": 5, "ebm": 6}
    ls = [float(r[3]) for r in rs]
    for name, i in cols.items():
        v = [float(r[i]) for r in rs]
        m = st.mean(v)
        h = t * st.stdev(v) / math.sqrt(len(v)) if len(v) > 1 else float("nan")
        diff = [a - b for a, b in zip(ls, v)]
        dm = st.mean(diff)
        dh = t * st.stdev(diff) / math.sqrt(len(diff)) if len(diff) > 1 else float("nan")
        rel = "" if name == "leadscore" else f"{dm:+.4f} ± {dh:.4f}"
        print(f"{d:6} {name:9} {m:9.4f}   [{m - h:.4f}, {m + h:.4f}]   {rel}")
PY
