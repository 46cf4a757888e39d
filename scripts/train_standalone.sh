#!/usr/bin/env bash
# One-process training.
#   bash scripts/train_standalone.sh                      # the demo: make data, train, evaluate
#     (DEMO_SEED=N: data seed, default 0; DEMO_DATA / DEMO_OUTPUT: folders)
#   bash scripts/train_standalone.sh CONFIG DATA_PATH [KEY=VALUE ...] [--device GPU] [--resume auto]
# DATA_PATH becomes data_loader.{train,eval}.dataset.root; further words go to train.py.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}

if [ $# -eq 0 ]; then
  # DEMO_SEED picks the data set (same seed: the same videos on any machine run); the default
  # folder is per seed, so another seed never silently reuses data made with an earlier one
  SEED=${DEMO_SEED:-0}
  if [ "$SEED" = 0 ]; then DATA=${DEMO_DATA:-./demo_data}; else DATA=${DEMO_DATA:-./demo_data_seed$SEED}; fi
  OUT=${DEMO_OUTPUT:-./output/demo}
  start=$(date +%s)
  if [ ! -f "$DATA/train.txt" ]; then
    echo "== generating the demo data set in $DATA (seed $SEED)"
    $PY -m src.tools.make_demo_data "$DATA" --seed "$SEED" --num-train "${DEMO_TRAIN_PER_CLASS:-100}"
  else
    echo "== using the demo data set in $DATA (delete it to regenerate)"
  fi
  echo "== training the demo X3D (src/config/demo.yaml) on CPU"
  $PY train.py --config src/config/demo.yaml --output "$OUT" \
      data_loader.train.dataset.root="$DATA" data_loader.eval.dataset.root="$DATA"
  echo "== multi-view evaluation of $OUT/last.ckpt"
  $PY eval.py --config "$OUT/config.yaml" --ckpt "$OUT/last.ckpt" --output "$OUT/eval"
  echo "== demo finished in $(( $(date +%s) - start )) s (data generation included)"
  exit 0
fi

if [ $# -lt 2 ]; then
  echo "usage: bash scripts/train_standalone.sh [CONFIG DATA_PATH [KEY=VALUE ...]]" >&2
  exit 2
fi
CONFIG=$1; DATA=$2; shift 2
exec $PY train.py --config "$CONFIG" data_loader.train.dataset.root="$DATA" \
    data_loader.eval.dataset.root="$DATA" "$@"
