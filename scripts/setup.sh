#!/usr/bin/env bash
# Installs what device-agent needs on a Debian/Ubuntu host, idempotently: Debian's Chromium,
# bubblewrap and slirp4netns (the script sandbox), Tesseract's English data (recognize_text;
# the library itself comes with the tesserocr wheel) and Python venv support, then a virtualenv
# in .venv with the project and its dev tools.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v bwrap >/dev/null || missing+=(bubblewrap)
command -v slirp4netns >/dev/null || missing+=(slirp4netns)
command -v tesseract >/dev/null || missing+=(tesseract-ocr)
ls /usr/share/tesseract-ocr/*/tessdata/eng.traineddata >/dev/null 2>&1 || missing+=(tesseract-ocr-eng)
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]} with apt-get"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
fi

python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "setup: Python 3.11 or newer is required (found $(python3 --version))" >&2; exit 1; }
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
# Editable in compat mode: a plain path entry (a .pth naming the project's folder) instead of
# setuptools' default import hook, which mypy and editors cannot follow, so that `agent.sdk`
# type-checks from any folder (docs/script-api.md).
.venv/bin/python -m pip install -q --disable-pip-version-check \
  --config-settings editable_mode=compat -e '.[dev]'
# Script hosts run sandboxed on a read-only view of the project and cannot write bytecode: an
# editable install would compile `agent` from source at every script host's start.
.venv/bin/python -m compileall -q agent drivers >/dev/null
echo "setup: ready (.venv)"
