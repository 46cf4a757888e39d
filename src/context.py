"""MindSpore context set-up shared by every entry point: device choice, mode, seed."""
from __future__ import annotations

import os
import random
from typing import Any, Mapping, Optional

import numpy as np
import mindspore as ms

DEVICES = ("CPU", "GPU", "Ascend")


def best_device() -> str:
    """GPU if MindSpore sees one, then Ascend, else CPU."""
    try:
        from mindspore import device_context
        if device_context.gpu.is_available():
            return "GPU"
        if device_context.ascend.is_available():
            return "Ascend"
    except Exception:  # availability probes differ between wheels; CPU always works
        pass
    return "CPU"


def select_device(requested: Optional[str]) -> str:
    """'auto'/None -> best_device(); otherwise a checked, canonically spelled device name."""
    if requested is None or str(requested).lower() == "auto":
        return best_device()
    for name in DEVICES:
        if str(requested).lower() == name.lower():
            return name
    raise ValueError(f"context.device_target: expected auto, CPU, GPU or Ascend, got '{requested}'")


def init_context(ctx: Mapping[str, Any], device: Optional[str] = None) -> str:
    """Apply a config's ``context`` section (``device`` from the CLI wins). Returns the device."""
    target = select_device(device or ctx.get("device_target", "auto"))
    mode = int(ctx.get("mode", 0))
    if mode not in (0, 1):
        raise ValueError(f"context.mode: expected 0 (graph) or 1 (PyNative), got {mode}")
    ms.set_context(mode=ms.GRAPH_MODE if mode == 0 else ms.PYNATIVE_MODE)
    ms.set_device(target, int(ctx.get("device_id", 0)) if target != "CPU" else None)
    if target == "CPU":
        set_cpu_threads(int(ctx.get("cpu_threads", 0)))
    seed_everything(int(ctx.get("seed", 0)))
    return target


def set_cpu_threads(threads: int = 0) -> int:
    """Intra-op threads of MindSpore's CPU kernels (its default, 25, oversubscribes small machines).
    0 = the cores this process may use; under msrun the cores are split between local workers."""
    if threads <= 0:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        # processes sharing this machine: set by scripts/train_distribute.sh (msrun exports none)
        local = int(os.environ.get("X3D_LOCAL_WORKERS", os.environ.get("MS_WORKER_NUM", "1")) or 1)
        threads = max(1, cores // max(1, local))
    try:
        ms.device_context.cpu.op_tuning.threads_num(threads)
    except RuntimeError:  # already set in this process (it may be set once)
        pass
    # the C++ kernels' workers, unless set: the same share of the cores (their pool reads this at
    # first use), so two ranks on a 2-core machine do not run four busy kernel threads
    if not os.environ.get("X3D_KERNEL_THREADS") and not os.environ.get("OMP_NUM_THREADS"):
        os.environ["X3D_KERNEL_THREADS"] = str(threads)
    return threads


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    ms.set_seed(seed)


def init_distributed() -> tuple:
    """Join the process group when launched by ``msrun`` (or another launcher that sets the
    MindSpore cluster variables) and switch to data parallel with gradient averaging.
    Returns ``(rank, group_size)``; ``(0, 1)`` for a single process."""
    workers = int(os.environ.get("MS_WORKER_NUM", os.environ.get("RANK_SIZE", "1")) or 1)
    if workers <= 1:
        return 0, 1
    from mindspore.communication import get_group_size, get_rank, init
    init()
    ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL, gradients_mean=True)
    return get_rank(), get_group_size()
