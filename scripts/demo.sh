#!/usr/bin/env bash
# Set up the pinned environment if needed, then run seinject end to end on the bundled examples:
# the Python API on an in-repo ResNet-50, then the command line on examples/tiny_resnet.onnx.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python examples/demo.py
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
echo
echo "== seinject rules list"
.venv/bin/seinject rules list
echo
echo "== seinject onnx examples/tiny_resnet.onnx OUT --rule residual_branch --dry-run"
.venv/bin/seinject onnx examples/tiny_resnet.onnx "$OUT/tiny_se.onnx" --rule residual_branch --dry-run
echo
echo "== seinject onnx examples/tiny_resnet.onnx OUT --rule residual_branch (verified with onnxruntime)"
.venv/bin/seinject onnx examples/tiny_resnet.onnx "$OUT/tiny_se.onnx" --rule residual_branch
echo
echo "== the same again: nothing new to insert, nothing written (exit 3 with --strict)"
set +e
.venv/bin/seinject onnx "$OUT/tiny_se.onnx" "$OUT/twice.onnx" --rule residual_branch --strict -q
echo "exit code: $?"
