#!/usr/bin/env bash
# Sets up (scripts/setup.sh, plus PostgreSQL for the tests against it), then runs the checks CI
# runs: ruff, mypy, the whole test suite on SQLite, and the coordinator's tests again on
# PostgreSQL (scripts/pgtest.sh). Arguments go to the first pytest run only.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null && ! command -v initdb >/dev/null; then
  echo "test: installing postgresql with apt-get (tests/pg.py makes throwaway clusters)"
  as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq postgresql >/dev/null
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
exec bash scripts/pgtest.sh
