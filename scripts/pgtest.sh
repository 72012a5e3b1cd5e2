#!/usr/bin/env bash
# Runs the coordinator's tests against PostgreSQL: each coordinator they start gets a new database
# in a throwaway PostgreSQL 15 cluster (tests/pg.py: initdb in a temp dir, as `nobody` when root).
# Arguments go to pytest (default: the coordinator tests and the job API end-to-end tests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "$#" -eq 0 ]; then
  set -- tests/coordinator tests/e2e/test_job_api.py
fi
DEVICE_AGENT_TEST_DATABASE=postgresql exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
