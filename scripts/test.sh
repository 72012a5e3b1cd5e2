#!/usr/bin/env bash
# Sets up (scripts/setup.sh, and PostgreSQL for the tests against it), then runs the checks CI
# runs: ruff, mypy, the whole test suite on SQLite and then, on PostgreSQL, every coordinator
# test and the replica end-to-end tests (scripts/pgtest.sh, which alone runs the replica tests:
# they need PostgreSQL).
# Arguments go to the SQLite run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# PostgreSQL for tests/pg.py's throwaway clusters; systemd for `systemd-analyze`, which scores
# and verifies the units offline (tests/test_units.py): a fresh container may have neither.
test_packages=()
if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null && ! command -v initdb >/dev/null; then
  test_packages+=(postgresql)
fi
command -v systemd-analyze >/dev/null || test_packages+=(systemd)
if [ ${#test_packages[@]} -gt 0 ]; then
  echo "test: installing ${test_packages[*]} with apt-get"
  as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${test_packages[@]}" >/dev/null
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
# Both runs take two pytest-xdist workers (most tests wait on processes, not the CPU;
# tests/conftest.py says how the files are grouped), one run after the other: a PostgreSQL run
# beside the SQLite one was starved on CI's two cores (its coordinators not healthy in 30 s).
# The PostgreSQL run goes even when the SQLite one failed, so that one CI run shows both.
sqlite_status=0
.venv/bin/python -m pytest -q -p no:cacheprovider -n 2 --durations=20 \
  --ignore=tests/coordinator/test_replicas.py --ignore=tests/e2e/test_replicas.py \
  --ignore=tests/coordinator/test_pg_connection.py "$@" ||
  sqlite_status=$?
echo "== the coordinator's tests on PostgreSQL (scripts/pgtest.sh) =="
pg_status=0
bash scripts/pgtest.sh || pg_status=$?
if [ "$sqlite_status" != 0 ] || [ "$pg_status" != 0 ]; then
  echo "test: failed (SQLite run: exit $sqlite_status, PostgreSQL run: exit $pg_status)" >&2
  exit 1
fi
