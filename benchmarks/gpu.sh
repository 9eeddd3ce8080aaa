#!/usr/bin/env bash
# Every benchmark and one short run of each paper model on one device, into one JSON file
# (benchmarks/gpu.py says what and why). On one H100: bash benchmarks/gpu.sh (about 10 minutes);
# a check of the script on any machine: bash benchmarks/gpu.sh --device cpu --tiny --json /tmp/gpu.json
set -euo pipefail
exec python "$(dirname "$0")/gpu.py" "$@"
