#!/usr/bin/env bash
# Runs tests against PostgreSQL: each coordinator they start gets a new database in a throwaway
# PostgreSQL cluster (tests/pg.py: initdb in a temp dir, as `nobody` when root). Arguments go to
# pytest. The default is what CI runs there: every coordinator test and the replica end-to-end
# tests, but not the two files about SQLite itself, test_sqlite_lock.py and test_db_version.py,
# nor the frame fuzz test, which exercises the websocket's parsing, not the database, and takes most of
# a CI minute: CI's whole run must stay under 20 minutes. The whole suite passes there too:
# `DEVICE_AGENT_TEST_DATABASE=postgresql .venv/bin/python -m pytest -n 2` (5 minutes on the machine of
# 2026-12-01, about 18 on an earlier, slower one).
# Runs on two pytest-xdist workers, as the SQLite suite does. Sets up with scripts/setup.sh only
# if .venv is missing (scripts/test.sh has already set up).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/setup.sh
if [ "$#" -eq 0 ]; then
  set -- tests/coordinator tests/e2e/test_replicas.py \
    --ignore=tests/coordinator/test_sqlite_lock.py --ignore=tests/coordinator/test_db_version.py \
    --ignore=tests/coordinator/test_fuzz_host_frames.py
fi
DEVICE_AGENT_TEST_DATABASE=postgresql exec .venv/bin/python -m pytest -q -p no:cacheprovider -n 2 "$@"
