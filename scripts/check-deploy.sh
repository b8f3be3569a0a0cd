#!/usr/bin/env bash
# Validates what ships beside the binary with the tools their users run:
# - deploy/prometheus/alerts.yml and recording.yml: promtool check rules, and their unit tests
#   (promtool test rules);
# - deploy/k8s: kubernetes-validate --strict against a current Kubernetes;
# - deploy/docker-compose.yml: the compose-spec schema (check-jsonschema);
# - docs/asyncapi.yaml: the AsyncAPI CLI (npm @asyncapi/cli, cached under ~/.cache/leadscore-tools);
# - docs/schemas/*.json: every example event and a `gen` sample (check-jsonschema).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-tools.sh
echo "== prometheus rules =="
promtool check rules deploy/prometheus/alerts.yml deploy/prometheus/recording.yml
(cd deploy/prometheus && promtool test rules alerts_test.yml recording_test.yml)
echo "== kubernetes manifests =="
kubernetes-validate --strict deploy/k8s/*.yaml
echo "== compose file =="
check-jsonschema --builtin-schema vendor.compose-spec deploy/docker-compose.yml
if [ -f docs/asyncapi.yaml ]; then
  scripts/check-asyncapi.sh
fi
