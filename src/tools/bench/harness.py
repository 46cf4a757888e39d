"""What every benchmark shares: one timing function and one subprocess-worker protocol.

* :func:`time_calls` times a callable: warm-up calls (the first one timed on its own: graph
  compile, worker start-up), then repeats; median, min and process CPU time of the repeats.
* :func:`run_worker` runs ``module:function(**kwargs)`` of this package in a fresh Python, so a
  measurement has its own runtime, thread pools and peak RSS: the request goes to the worker as
  JSON on stdin, the function's dict comes back as one ``BENCH_RESULT {json}`` line on stdout
  (``python -m src.tools.bench.harness`` is the worker). Threads are pinned through the
  environment (``OMP_NUM_THREADS``, ``VIDEO_ZOO_KERNEL_THREADS``: MindSpore's and our C++ kernels'
  pools; torch and onnxruntime take the thread count as an argument too).

Nothing here imports MindSpore or torch: the workers import what they measure.
"""
from __future__ import annotations

import importlib
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional

from ...cli import run_cli
from ...errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
RESULT = "BENCH_RESULT "
PACKAGE = __package__ or "src.tools.bench"  # the only modules a worker runs (also under python -m)


# ----------------------------------------------------------------------------------- timing
def time_calls(fn: Callable[[], Any], *, reps: int = 5, budget_s: float = 0.0, warmup: int = 2) -> Dict[str, float]:
    """Time ``fn()`` (which must block until its result is ready, e.g. end in ``.asnumpy()``).

    ``warmup`` untimed calls (the first is timed alone as ``first_s``; ``compile_s`` = first minus
    the median), then at least ``reps`` timed calls, more (up to ``3 * reps``) while the timing has
    lasted less than ``budget_s`` seconds; past the budget, 3 calls are enough (a slow
    configuration costs the budget plus three calls, not ``reps`` of them). A ``StopIteration``
    from ``fn`` (an exhausted data iterator) ends the timed calls early.

    Returns ``median_s``, ``min_s``, ``total_s`` (sum of the timed calls), ``cpu_median_s`` (process
    CPU time, all threads: less sensitive than wall time to other jobs on a shared machine),
    ``first_s``, ``compile_s`` and ``reps`` (timed calls made)."""
    first = float("nan")
    times: List[float] = []
    cpu: List[float] = []
    try:
        for i in range(max(0, warmup)):
            t0 = time.perf_counter()
            fn()
            if i == 0:
                first = time.perf_counter() - t0
        start = time.perf_counter()
        while True:
            n, over = len(times), time.perf_counter() - start >= budget_s
            if n >= 3 * reps or (n >= reps and over) or (budget_s > 0 and over and n >= 3):
                break
            c, t = time.process_time(), time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
    except StopIteration:
        pass
    nan = float("nan")
    med = statistics.median(times) if times else nan
    return {"median_s": med, "min_s": min(times) if times else nan, "total_s": sum(times),
            "cpu_median_s": statistics.median(cpu) if cpu else nan, "first_s": first,
            "compile_s": max(0.0, first - med) if times and not math.isnan(first) else nan, "reps": len(times)}


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def graph_mode_cpu(threads: int) -> None:
    """MindSpore graph mode on CPU with ``threads`` kernel threads (once per worker process)."""
    import mindspore as ms

    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_device("CPU")
    ms.device_context.cpu.op_tuning.threads_num(threads)


def machine() -> Dict[str, Any]:
    """CPU model, core count and library versions, for a benchmark's JSON."""
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    info: Dict[str, Any] = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version()}
    for lib in ("mindspore", "torch"):
        try:
            info[lib] = importlib.import_module(lib).__version__
        except ImportError:
            pass
    return info


def check_threads(threads: int) -> int:
    """``--threads`` must be >= 1 (a user error otherwise)."""
    if threads < 1:
        raise UserError(f"--threads {threads}: expected >= 1")
    return threads


# ----------------------------------------------------------------------------------- workers
def worker_env(threads: int) -> Dict[str, str]:
    """This environment with every thread pool pinned to ``threads``, MindSpore's log quiet and
    this source tree importable (the worker runs in a scratch folder)."""
    path = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH", "")) if p)
    return dict(os.environ, OMP_NUM_THREADS=str(threads), VIDEO_ZOO_KERNEL_THREADS=str(threads), GLOG_v="3",
                PYTHONPATH=path)


def run_worker(target: str, kwargs: Dict[str, Any], *, threads: int, timeout: Optional[float] = None,
               label: str = "") -> Optional[Dict[str, Any]]:
    """``target`` (``"src.tools.bench.<module>:<function>"``) called with ``kwargs`` in a fresh
    Python with ``threads`` pinned; its result dict plus ``peak_rss_mb``. ``None`` if the worker
    failed (the last lines of its output printed to stderr under ``label``); ``{"timeout_s": ...}``
    if it ran longer than ``timeout`` seconds. The worker's working folder is a scratch folder,
    removed afterwards (MindSpore's kernel_meta/, logs and profiler output land there, not in the
    caller's folder): paths in ``kwargs`` must be absolute."""
    _check_target(target)  # refuse anything outside this package before starting a process
    request = json.dumps({"target": target, "kwargs": kwargs})
    with tempfile.TemporaryDirectory(prefix="bench_worker_", ignore_cleanup_errors=True) as scratch:
        try:
            proc = subprocess.run([sys.executable, "-m", f"{PACKAGE}.harness"], input=request, cwd=scratch,
                                  env=worker_env(threads), capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"timeout_s": timeout}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT):
            return json.loads(line[len(RESULT):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
    print(f"  {label or target} failed (exit {proc.returncode}):\n    " + "\n    ".join(tail), file=sys.stderr, flush=True)
    return None


def _check_target(target: str) -> None:
    module, _, func = target.partition(":")
    if not (module.startswith(PACKAGE + ".") and func.isidentifier()):
        raise UserError(f"worker target {target!r}: expected '{PACKAGE}.<module>:<function>'")


def _resolve(target: str) -> Callable[..., Dict[str, Any]]:
    _check_target(target)
    module, _, func = target.partition(":")
    fn = getattr(importlib.import_module(module), func, None)
    if not callable(fn):
        raise UserError(f"worker target {target!r}: no such function")
    return fn


def probe(**kwargs: Any) -> Dict[str, Any]:
    """What a worker sees (its arguments and thread settings): a check of the protocol."""
    return {"kwargs": kwargs, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
            "VIDEO_ZOO_KERNEL_THREADS": os.environ.get("VIDEO_ZOO_KERNEL_THREADS"), "pid": os.getpid()}


def serve(argv: Optional[List[str]] = None) -> int:
    """The worker: read ``{"target": ..., "kwargs": {...}}`` from stdin, print the result line."""
    request = json.loads(sys.stdin.read())
    result = dict(_resolve(request["target"])(**request.get("kwargs", {})))
    result.setdefault("peak_rss_mb", peak_rss_mb())
    print(RESULT + json.dumps(result), flush=True)
    return 0


__all__ = ["ROOT", "RESULT", "time_calls", "peak_rss_mb", "graph_mode_cpu", "machine", "check_threads",
           "worker_env", "run_worker", "probe", "serve"]

if __name__ == "__main__":
    sys.exit(run_cli(serve))
