#!/usr/bin/env bash
# Sets up (scripts/setup.sh), then runs the demo: a local coordinator and daemon with a headless
# Chromium device run the example job, and the result and the screenshot's path are printed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m scripts.demo "$@"
