"""MindSpore context set-up shared by every entry point: device choice, mode, seed."""
from __future__ import annotations

import contextlib
import logging
import os
import random
from typing import Any, Iterator, Mapping, Optional

import numpy as np
import mindspore as ms

from . import envvars
from .errors import UserError

DEVICES = ("CPU", "GPU", "Ascend")


@contextlib.contextmanager
def mindspore_warnings_off() -> Iterator[None]:
    """Hide MindSpore's Python-side warnings inside the block, for calls whose outcome we check
    ourselves (device probes: a missing GPU/Ascend plugin is expected on a CPU machine; a resume
    that deliberately skips the learning-rate parameter). Errors still show; everything outside
    the block is untouched."""
    try:
        from mindspore import log as ms_log
        logger: Optional[logging.Logger] = ms_log._get_logger()
    except Exception:  # another MindSpore layout: leave its logging alone
        logger = None
    old = logger.level if logger is not None else None
    if logger is not None:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        if logger is not None:
            logger.setLevel(old)


def best_device() -> str:
    """GPU if MindSpore sees one, then Ascend, else CPU (the probes' plugin warnings hidden: on a
    machine without the device they are the expected outcome, not news)."""
    try:
        from mindspore import device_context
        with mindspore_warnings_off():
            if device_context.gpu.is_available():
                return "GPU"
            if device_context.ascend.is_available():
                return "Ascend"
    except Exception:  # availability probes differ between wheels; CPU always works
        pass
    return "CPU"


def select_device(requested: Optional[str], where: str = "context.device_target") -> str:
    """'auto'/None -> best_device(); otherwise a checked, canonically spelled device name.
    An unknown name is a one-line user error naming ``where`` (the key or ``--device``)."""
    if requested is None or str(requested).lower() == "auto":
        return best_device()
    for name in DEVICES:
        if str(requested).lower() == name.lower():
            return name
    raise UserError(f"{where}: expected one of auto, CPU, GPU, Ascend (any case), got {str(requested)!r}")


def init_context(ctx: Mapping[str, Any], device: Optional[str] = None) -> str:
    """Apply a config's ``context`` section (``device`` from the CLI wins). Returns the device."""
    target = select_device(device, "--device") if device else select_device(ctx.get("device_target", "auto"))
    mode = int(ctx.get("mode", 0))
    if mode not in (0, 1):
        raise ValueError(f"context.mode: expected 0 (graph) or 1 (PyNative), got {mode}")
    ms.set_context(mode=ms.GRAPH_MODE if mode == 0 else ms.PYNATIVE_MODE)
    try:
        ms.set_device(target, int(ctx.get("device_id", 0)) if target != "CPU" else None)
    except RuntimeError:  # the runtime already runs in this process (a second init): fine if on target
        current = ms.get_context("device_target")
        if current != target:
            raise UserError(f"device {target} requested, but this process already runs on {current}") from None
    set_jit_level(str(ctx.get("jit_level", "auto")), target)
    deterministic = set_deterministic(bool(ctx.get("deterministic", False)))
    if target == "CPU":
        set_cpu_threads(int(ctx.get("cpu_threads", 0)), deterministic=deterministic)
    seed_everything(int(ctx.get("seed", 0)))
    return target


# context.jit_level: MindSpore 2.10's compilation levels (ms.set_context(jit_config={"jit_level": L}),
# readable back as ms.get_context("jit_level")):
#   O0  kernel-by-kernel execution, only the optimisations the graph needs to run (2.10's choice when
#       the level is unset, on every device but the older Ascend 910A);
#   O1  O0 plus MindSpore's common graph optimisations and automatic operator fusion (GPU: AKG
#       graph-kernel fusion, Ascend: DVM; "experimental and being improved" in 2.10's mindspore.jit);
#   O2  the whole graph sunk through Ascend's GraphEngine (GE): Ascend only, deprecated since 2.9
#       (2.10 still picks it for an unset level on the 910A).
# auto = the level per device below; None leaves MindSpore's own choice (the 910A's GE, O0 elsewhere).
JIT_LEVELS = ("auto", "O0", "O1", "O2")
AUTO_JIT_LEVEL: Mapping[str, Optional[str]] = {"CPU": "O0", "GPU": "O0", "Ascend": None}


def resolve_jit_level(level: str, device: str) -> Optional[str]:
    """The level ``context.jit_level`` asks for on ``device`` (``auto``: :data:`AUTO_JIT_LEVEL`,
    None = MindSpore's own choice). A wrong name, or O2 off Ascend, is a one-line error."""
    if level not in JIT_LEVELS:
        raise UserError(f"context.jit_level: expected one of {', '.join(JIT_LEVELS)}, got {level!r}")
    if level == "auto":
        return AUTO_JIT_LEVEL.get(device)
    if level == "O2" and device != "Ascend":
        raise UserError(f"context.jit_level: O2 (the GraphEngine backend) runs on Ascend only, this run is on "
                        f"{device}; use auto, O0 or O1")
    return level


def set_jit_level(level: str, device: str) -> Optional[str]:
    """Apply ``context.jit_level`` to MindSpore's global jit config (the graphs of every cell the
    process compiles afterwards). Returns the level applied (None: left to MindSpore)."""
    chosen = resolve_jit_level(level, device)
    if chosen is not None:
        ms.set_context(jit_config={"jit_level": chosen})
    return chosen


def set_cpu_threads(threads: int = 0, deterministic: bool = False) -> int:
    """Intra-op threads of MindSpore's CPU kernels (its default, 25, oversubscribes small machines).
    0 = the cores this process may use; under msrun the cores are split between local workers.
    ``deterministic``: MindSpore's own kernels get one thread (see :func:`set_deterministic`); the
    zoo's C++ kernels (convolutions, most of the work) keep ``threads``, split the same way every run."""
    if threads <= 0:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        # processes sharing this machine: set by scripts/train_distribute.sh (msrun exports none);
        # a process msrun --bind_core pinned to its own cores shares them with nobody
        local = int(envvars.getenv(envvars.LOCAL_WORKERS) or os.environ.get("MS_WORKER_NUM", "1") or 1)
        if bound_by_msrun():
            local = 1
        threads = max(1, cores // max(1, local))
    try:
        ms.device_context.cpu.op_tuning.threads_num(1 if deterministic else threads)
    except RuntimeError:  # already set in this process (it may be set once)
        pass
    # the C++ kernels' workers, unless set: the same share of the cores (their pool reads this at
    # first use), so two ranks on a 2-core machine do not run four busy kernel threads
    if not envvars.getenv(envvars.KERNEL_THREADS) and not os.environ.get("OMP_NUM_THREADS"):
        os.environ[envvars.KERNEL_THREADS] = str(threads)
    return threads


def bound_by_msrun() -> bool:
    """True when ``msrun --bind_core`` pinned this process: msrun exports the cores it gave the
    worker as ``MSRUN_CPU_LIST`` (e.g. ``[0, 1]``) and the process's affinity is exactly them."""
    listed = os.environ.get("MSRUN_CPU_LIST", "").strip()
    if not listed or not hasattr(os, "sched_getaffinity"):
        return False
    try:
        cpus = {int(c) for c in listed.strip("[]").split(",") if c.strip()}
    except ValueError:
        return False
    return bool(cpus) and cpus == set(os.sched_getaffinity(0))


def set_deterministic(on: bool) -> bool:
    """``context.deterministic``: ``mindspore.set_deterministic(on)`` (once per process) and, on CPU,
    one thread for MindSpore's own kernels (:func:`set_cpu_threads`).

    Why the thread: MindSpore's CPU Dropout kernel fills its mask from one ``std::default_random_engine``
    shared by the tasks of ``ParallelLaunchAutoSearch``. That helper times the kernel's first launches
    (5 launches each at 1, 2, 4 ... tasks) and keeps the fastest split, so from the 6th training step
    on two threads draw from one generator at once: which thread gets which numbers, and which split
    wins, depend on wall-clock time (a progress bar, ``log_interval``, other processes). The mask, and
    so the weights, changed from run to run. ``mindspore.set_deterministic`` alone does not change
    that on CPU (measured: masks still differed); with one MindSpore thread every launch is one task
    drawing in order. Returns the setting in force (MindSpore allows one setting per process)."""
    global _DETERMINISTIC
    on = bool(on)
    if _DETERMINISTIC is None:
        if not on:
            return False  # MindSpore's default; left unconfigured so a later call can still turn it on
        try:
            ms.set_deterministic(on)
        except RuntimeError:  # set by other code in this process: its value is not readable back
            return on
        _DETERMINISTIC = on
    elif _DETERMINISTIC != on:
        import warnings
        warnings.warn(f"context.deterministic={on} ignored: this process already runs with "
                      f"deterministic={_DETERMINISTIC} (MindSpore allows one setting per process)")
    return _DETERMINISTIC


_DETERMINISTIC: Optional[bool] = None  # what set_deterministic applied in this process


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    ms.set_seed(seed)


def launcher_workers() -> int:
    """How many processes the launcher started: ``msrun``'s ``MS_WORKER_NUM`` (or ``RANK_SIZE``),
    1 without a launcher. Known before joining the process group."""
    return int(os.environ.get("MS_WORKER_NUM", os.environ.get("RANK_SIZE", "1")) or 1)


def init_distributed() -> tuple:
    """Join the process group when launched by ``msrun`` (or another launcher that sets the
    MindSpore cluster variables) and switch to data parallel with gradient averaging.
    Returns ``(rank, group_size)``; ``(0, 1)`` for a single process."""
    if launcher_workers() <= 1:
        return 0, 1
    from mindspore.communication import get_group_size, get_rank, init
    init()
    ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL, gradients_mean=True)
    return get_rank(), get_group_size()
