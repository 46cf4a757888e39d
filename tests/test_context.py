"""``set_cpu_threads`` gives the C++ kernels' workers the process's share of the cores unless the
user chose a count (VIDEO_ZOO_KERNEL_THREADS, its deprecated spelling X3D_KERNEL_THREADS, or
OMP_NUM_THREADS)."""
import os
import subprocess
import sys

import pytest
import mindspore  # noqa: F401  (before anything that imports decord)

from src.context import set_cpu_threads


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _no_thread_variables(monkeypatch):
    for name in ("VIDEO_ZOO_KERNEL_THREADS", "X3D_KERNEL_THREADS", "OMP_NUM_THREADS",
                 "VIDEO_ZOO_LOCAL_WORKERS", "X3D_LOCAL_WORKERS"):
        monkeypatch.delenv(name, raising=False)


def test_kernel_threads_follow_the_share_of_local_workers(monkeypatch):
    _no_thread_variables(monkeypatch)
    monkeypatch.setenv("VIDEO_ZOO_LOCAL_WORKERS", "2")
    threads = set_cpu_threads(0)
    assert threads == max(1, _cores() // 2)
    assert os.environ["VIDEO_ZOO_KERNEL_THREADS"] == str(threads)
    monkeypatch.delenv("VIDEO_ZOO_KERNEL_THREADS")
    monkeypatch.delenv("VIDEO_ZOO_LOCAL_WORKERS")
    monkeypatch.setenv("X3D_LOCAL_WORKERS", "2")  # the deprecated spelling still counts
    assert set_cpu_threads(0) == threads


def test_an_explicit_count_and_the_users_variables_win(monkeypatch):
    _no_thread_variables(monkeypatch)
    assert set_cpu_threads(3) == 3 and os.environ["VIDEO_ZOO_KERNEL_THREADS"] == "3"
    monkeypatch.setenv("VIDEO_ZOO_KERNEL_THREADS", "5")
    set_cpu_threads(1)
    assert os.environ["VIDEO_ZOO_KERNEL_THREADS"] == "5"
    monkeypatch.delenv("VIDEO_ZOO_KERNEL_THREADS")
    monkeypatch.setenv("X3D_KERNEL_THREADS", "6")  # the deprecated spelling: the kernels read it too
    set_cpu_threads(1)
    assert "VIDEO_ZOO_KERNEL_THREADS" not in os.environ
    monkeypatch.delenv("X3D_KERNEL_THREADS")
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    set_cpu_threads(1)
    assert "VIDEO_ZOO_KERNEL_THREADS" not in os.environ  # the kernels read OMP_NUM_THREADS themselves


def test_deterministic_keeps_the_kernel_threads_and_is_a_config_key(monkeypatch):
    """``context.deterministic`` serialises MindSpore's own CPU kernels only (its Dropout shares one
    generator between parallel tasks); the zoo's C++ kernels keep the process's share of the cores."""
    from src.config import load_config
    from src.context import set_deterministic

    _no_thread_variables(monkeypatch)
    assert set_cpu_threads(2, deterministic=True) == 2 and os.environ["VIDEO_ZOO_KERNEL_THREADS"] == "2"
    assert set_deterministic(False) is False  # the default leaves MindSpore's setting untouched
    cfg = load_config(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src", "config", "demo.yaml"))
    assert cfg.context.deterministic is True


def test_device_probe_is_silent_on_a_machine_without_the_device():
    """On this CPU machine MindSpore's GPU/Ascend probes log 'plugin' warnings; ``best_device``
    hides them (it reports the outcome itself) and leaves MindSpore's logging as it was."""
    control = ("import mindspore; from mindspore import device_context; "
               "device_context.gpu.is_available(); device_context.ascend.is_available()")
    r = subprocess.run([sys.executable, "-c", control], capture_output=True, text=True, timeout=300)
    if "[WARNING]" not in r.stderr:
        pytest.skip("this MindSpore build's probes are silent anyway: nothing to hide")
    code = ("import mindspore, logging; from mindspore import log; from src.context import best_device; "
            "lvl = log._get_logger().level; print(best_device()); "
            "assert log._get_logger().level == lvl")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "CPU" and "[WARNING]" not in r.stderr, r.stderr
