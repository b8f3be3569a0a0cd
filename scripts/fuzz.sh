#!/usr/bin/env bash
# Fuzzes the decoders, loaders and engine with cargo-fuzz (libFuzzer), seeded from `gen`.
#
#   scripts/fuzz.sh [--seconds N | --runs N] [target ...]
#
# Default: every target for 30 s (the CI smoke). Targets: event_json event_protobuf rules
# state config engine_order (properties: src/fuzz_checks.rs). The corpus grows across runs
# under $CARGO_TARGET_DIR/fuzz-corpus; a crashing input is saved under fuzz/artifacts/<target>/
# and the script fails — copy it to fuzz/regressions/<target>/ so that `cargo test` keeps
# checking it (tests/fuzz_regressions.rs). Prints one line per target: executions, coverage,
# features, corpus size, crashes; the full libFuzzer log is under $CARGO_TARGET_DIR/fuzz-logs/.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=30 RUNS=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --seconds) SECONDS_EACH=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    *) break ;;
  esac
done
TARGETS=("$@")
[[ ${#TARGETS[@]} -gt 0 ]] || TARGETS=(event_json event_protobuf rules state config engine_order)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/leadscore-target}
CORPUS=$CARGO_TARGET_DIR/fuzz-corpus
# cargo-fuzz needs nightly flags (-Z...); RUSTC_BOOTSTRAP lets the stable toolchain take them.
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz 0.13.2 (crates.io)"
  cargo install cargo-fuzz --locked --version 0.13.2
fi
echo "fuzz: seeding $CORPUS from gen"
cargo run --quiet --example fuzz_seeds -- "$CORPUS"
# Release with debug assertions and overflow checks; no sanitizer: the checked code is safe
# Rust, and a panic or failed assertion is what a finding is.
FLAGS=(-O -a -s none --target-dir "$CARGO_TARGET_DIR/fuzz")
echo "fuzz: building the targets"
cargo fuzz build "${FLAGS[@]}" >/dev/null
limit=(-max_total_time="$SECONDS_EACH")
[[ -z $RUNS ]] || limit=(-runs="$RUNS")
failed=0
printf '%-15s %12s %7s %7s %7s %8s\n' target execs cov ft corpus crashes
for t in "${TARGETS[@]}"; do
  mkdir -p "$CARGO_TARGET_DIR/fuzz-logs"
  log=$CARGO_TARGET_DIR/fuzz-logs/$t-$$.log
  marker=$(mktemp)
  set +e
  cargo fuzz run "${FLAGS[@]}" "$t" "$CORPUS/$t" -- "${limit[@]}" -max_len=1100000 \
    -print_final_stats=1 -close_fd_mask=3 >"$log" 2>&1
  rc=$?
  set -e
  execs=$(grep -ao 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  last=$(grep -aE '^#[0-9]+' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' <<<"$last" | grep -o '[0-9]*' || echo '?')
  ft=$(grep -o 'ft: [0-9]*' <<<"$last" | grep -o '[0-9]*' || echo '?')
  corpus=$( (ls "$CORPUS/$t" 2>/dev/null || true) | wc -l)
  crashes=$( (find "fuzz/artifacts/$t" -type f -newer "$marker" 2>/dev/null || true) | wc -l)
  rm -f "$marker"
  printf '%-15s %12s %7s %7s %7s %8s\n' "$t" "$execs" "$cov" "$ft" "$corpus" "$crashes"
  if [[ $rc -ne 0 ]]; then
    failed=1
    echo "fuzz: $t FAILED (exit $rc); log $log:"
    grep -a -A20 -E 'panicked|ERROR: libFuzzer|deadly signal' "$log" | head -40
  fi
done
exit $failed
