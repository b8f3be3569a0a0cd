#!/usr/bin/env bash
# Validates docs/asyncapi.yaml with the AsyncAPI CLI (npm @asyncapi/cli 4.1.1, the newest that
# runs on Node.js 20, cached under ~/.cache/leadscore-tools/asyncapi), then every example event
# (examples/events/) and a `gen` sample, with the `sales_ready` events `replay` gives for it,
# against docs/schemas/ with check-jsonschema.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS="${LEADSCORE_TOOLS_DIR:-$HOME/.cache/leadscore-tools}/asyncapi"
CLI="$TOOLS/node_modules/.bin/asyncapi"
if [ ! -x "$CLI" ]; then
  echo "asyncapi: installing @asyncapi/cli 4.1.1 into $TOOLS"
  mkdir -p "$TOOLS"
  (cd "$TOOLS" && npm install --no-audit --no-fund --silent @asyncapi/cli@4.1.1 >/dev/null)
fi
export ASYNCAPI_TELEMETRY=false
"$CLI" config analytics --disable >/dev/null 2>&1 || true
"$CLI" validate docs/asyncapi.yaml --fail-severity=error
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cargo run --quiet --bin leadscore -- gen --leads 30 --seed 7 -o "$work/sample.ndjson" \
  --outcome-events "$work/verdicts.ndjson"
cargo run --quiet --bin leadscore -- replay --rules examples/rules.toml --input "$work/sample.ndjson" \
  >"$work/sales.ndjson"
split -l 1 -a 4 --additional-suffix=.json "$work/sample.ndjson" "$work/event-"
split -l 1 -a 4 --additional-suffix=.json "$work/sales.ndjson" "$work/sales-"
split -l 1 -a 4 --additional-suffix=.json "$work/verdicts.ndjson" "$work/verdict-"
echo "schemas: $(ls "$work"/event-* | wc -l) generated events, $(ls "$work"/sales-* 2>/dev/null | wc -l) sales_ready"
check-jsonschema --schemafile docs/schemas/lead-event.schema.json \
  examples/events/page_view.json examples/events/email_open.json examples/events/click.json \
  examples/events/form_conversion.json "$work"/event-*.json
check-jsonschema --schemafile docs/schemas/sales-ready.schema.json \
  examples/events/sales_ready.json "$work"/sales-*.json
check-jsonschema --schemafile docs/schemas/lead-outcome.schema.json \
  examples/events/lead_outcome.json "$work"/verdict-*.json
