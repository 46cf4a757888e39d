#!/usr/bin/env bash
# Multi-view evaluation of a checkpoint (eval.num_clips x eval.num_crops views per video).
#   bash scripts/eval_standalone.sh CONFIG DATA_PATH CKPT [KEY=VALUE ...] [--output DIR] [--device GPU]
# DATA_PATH becomes data_loader.eval.dataset.root. Example, the references' 30-view test:
#   bash scripts/eval_standalone.sh src/config/x3d_xs.yaml ./data/kinetics400 x3d_xs.ckpt eval.num_clips=10 eval.num_crops=3
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 3 ]; then
  echo "usage: bash scripts/eval_standalone.sh CONFIG DATA_PATH CKPT [KEY=VALUE ...]" >&2
  exit 2
fi
CONFIG=$1; DATA=$2; CKPT=$3; shift 3
exec ${PYTHON:-python} eval.py --config "$CONFIG" --ckpt "$CKPT" data_loader.eval.dataset.root="$DATA" "$@"
