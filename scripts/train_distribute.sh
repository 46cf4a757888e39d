#!/usr/bin/env bash
# Data-parallel training with msrun (one process per device; CPU uses MindSpore's mccl backend,
# GPU nccl, Ascend hccl - chosen by the device).
#   bash scripts/train_distribute.sh CONFIG DATA_PATH [NUM_WORKERS] [KEY=VALUE ...] [--device GPU]
# NUM_WORKERS: processes on this node (default 2). Several nodes: run the same command on every
# node with NUM_NODES, NODE_RANK (0..NUM_NODES-1) and MASTER_ADDR (node 0's address) set (msrun
# starts a scheduler wherever MASTER_ADDR is a local address: see docs/training.md, "Several nodes").
# MASTER_PORT (default 8118) and LOG_DIR (default ./output/msrun_logs; one worker_N.log per rank)
# can be set too. Only rank 0 writes checkpoints, metrics and validation results.
# BIND_CORE=1 (default): msrun --bind_core=True, each local worker pinned to its share of the cores
# (taskset; looked up in msrun's own argument list first, 2.10 has it); BIND_CORE=0: no pinning.
# DRY_RUN=1: print the msrun command and exit.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 2 ]; then
  echo "usage: bash scripts/train_distribute.sh CONFIG DATA_PATH [NUM_WORKERS] [KEY=VALUE ...]" >&2
  exit 2
fi
CONFIG=$1; DATA=$2; shift 2
WORKERS=2
if [ $# -gt 0 ] && [[ "$1" =~ ^[0-9]+$ ]]; then WORKERS=$1; shift; fi
NUM_NODES=${NUM_NODES:-1}
NODE_RANK=${NODE_RANK:-0}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
MASTER_PORT=${MASTER_PORT:-8118}
LOG_DIR=${LOG_DIR:-./output/msrun_logs}
BIND_CORE=${BIND_CORE:-1}
BIND=()
if [ "$BIND_CORE" = 1 ]; then
  # msrun's own argument list (read, not imported: importing MindSpore here would take seconds)
  MSRUN_PY=$(python -c 'import importlib.util as u, os; s = u.find_spec("mindspore")
print(os.path.join(os.path.dirname(s.origin), "parallel", "cluster", "run.py") if s else "")' 2>/dev/null || true)
  if [ -n "$MSRUN_PY" ] && grep -q -- '"--bind_core"' "$MSRUN_PY"; then
    BIND=(--bind_core=True)
  else
    echo "note: this MindSpore's msrun has no --bind_core; worker cores are not bound" >&2
  fi
fi
export VIDEO_ZOO_LOCAL_WORKERS=$WORKERS   # CPU threads are split between the local processes (bound: each its own)
CMD=(msrun --worker_num=$((WORKERS * NUM_NODES)) --local_worker_num="$WORKERS"
     --master_addr="$MASTER_ADDR" --master_port="$MASTER_PORT" --node_rank="$NODE_RANK"
     --log_dir="$LOG_DIR" --join=True "${BIND[@]}"
     train.py --config "$CONFIG" data_loader.train.dataset.root="$DATA"
     data_loader.eval.dataset.root="$DATA" "$@")
if [ "${DRY_RUN:-0}" = 1 ]; then
  printf '%q ' "${CMD[@]}"; echo
  exit 0
fi
mkdir -p "$LOG_DIR"
echo "msrun: $NUM_NODES node(s) x $WORKERS worker(s), this node $NODE_RANK, master $MASTER_ADDR:$MASTER_PORT," \
     "cores $([ ${#BIND[@]} -gt 0 ] && echo bound || echo 'not bound'), logs in $LOG_DIR"
exec "${CMD[@]}"
