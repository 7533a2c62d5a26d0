#!/usr/bin/env bash
# Set up the pinned environment if needed, then run the MNIST-1D fine-tuning study (examples/mnist1d_study):
# pretrain a 1-D ResNet, fine-tune P/I/R/S arms over 5 seeds, excitation analysis and folding.
# Writes docs/study/{results.md,results.json,curves.png,excitations.png} (all or nothing); about 5-10 minutes
# on 2 CPU cores. Options go to the study, e.g. a quick run:
#   bash scripts/study.sh --seeds 2 --steps 100 --pretrain-steps 300 --out /tmp/study
# (`bash scripts/study.sh --help` lists them all.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m examples.mnist1d_study "$@"
