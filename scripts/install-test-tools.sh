#!/usr/bin/env bash
# Installs, once, the tools the tests and CI checks run beside Kafka: Debian's `prometheus`
# (prometheus + promtool), and from PyPI the CloudEvents SDK with confluent-kafka (its
# subscriber test), check-jsonschema and
# kubernetes-validate. Idempotent; prints what it installs.
set -euo pipefail
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  echo "tools: installing Debian's prometheus (prometheus, promtool)"
  $SUDO apt-get install -y -qq prometheus >/dev/null 2>&1 || {
    $SUDO apt-get update -qq >/dev/null
    $SUDO apt-get install -y -qq prometheus >/dev/null
  }
fi
missing=()
python3 -c "import confluent_kafka" 2>/dev/null || missing+=(confluent-kafka)
python3 -c "import cloudevents" 2>/dev/null || missing+=(cloudevents)
command -v check-jsonschema >/dev/null || missing+=(check-jsonschema)
command -v kubernetes-validate >/dev/null || missing+=(kubernetes-validate)
if [ ${#missing[@]} -gt 0 ]; then
  echo "tools: installing from PyPI: ${missing[*]}"
  python3 -m pip install -q "${missing[@]}"
fi
