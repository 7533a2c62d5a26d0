#!/usr/bin/env bash
# Create .venv with the pinned development environment (idempotent; quick when nothing changed).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
STAMP=.venv/.seinject-setup
WANT="$(cat constraints.txt pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && .venv/bin/python -c "import seinject" 2>/dev/null; then
    exit 0
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=".venv/bin/python -m pip --quiet --disable-pip-version-check"
# this machine's pip config lists index folders that may be absent: hide only that warning
exec 2> >(grep -v "^WARNING: Location '.*' is ignored" >&2)
# torch first, alone: the pinned CPU build (a range would pull CUDA wheels).
$PIP install -c constraints.txt "torch==2.13.0"
$PIP install -c constraints.txt hatchling editables
$PIP install -c constraints.txt --no-build-isolation -e ".[onnx,dev,study]"
echo "$WANT" > "$STAMP"
