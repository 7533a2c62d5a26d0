#!/usr/bin/env bash
# Set up the pinned environment if needed, then run seinject end to end on the bundled examples.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python examples/demo.py
