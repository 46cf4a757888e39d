#!/usr/bin/env bash
# Data-parallel training with msrun (one process per device; CPU uses MindSpore's mccl backend,
# GPU nccl, Ascend hccl - chosen by the device).
#   bash scripts/train_distribute.sh CONFIG DATA_PATH [NUM_WORKERS] [KEY=VALUE ...] [--device GPU]
# NUM_WORKERS: processes on this node (default 2). Several nodes: run the same command on every
# node with NUM_NODES, NODE_RANK (0..NUM_NODES-1) and MASTER_ADDR (node 0's address) set.
# MASTER_PORT (default 8118) and LOG_DIR (default ./output/msrun_logs; one worker_N.log per rank)
# can be set too. Only rank 0 writes checkpoints, metrics and validation results.
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
mkdir -p "$LOG_DIR"
export VIDEO_ZOO_LOCAL_WORKERS=$WORKERS   # CPU threads are split between the local processes
echo "msrun: $NUM_NODES node(s) x $WORKERS worker(s), this node $NODE_RANK, master $MASTER_ADDR:$MASTER_PORT, logs in $LOG_DIR"
exec msrun --worker_num=$((WORKERS * NUM_NODES)) --local_worker_num="$WORKERS" \
    --master_addr="$MASTER_ADDR" --master_port="$MASTER_PORT" --node_rank="$NODE_RANK" \
    --log_dir="$LOG_DIR" --join=True \
    train.py --config "$CONFIG" data_loader.train.dataset.root="$DATA" \
    data_loader.eval.dataset.root="$DATA" "$@"
