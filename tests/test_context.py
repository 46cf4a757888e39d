"""``set_cpu_threads`` gives the C++ kernels' workers the process's share of the cores unless the
user chose a count (X3D_KERNEL_THREADS or OMP_NUM_THREADS)."""
import os

import mindspore  # noqa: F401  (before anything that imports decord)

from src.context import set_cpu_threads


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def test_kernel_threads_follow_the_share_of_local_workers(monkeypatch):
    monkeypatch.delenv("X3D_KERNEL_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("X3D_LOCAL_WORKERS", "2")
    threads = set_cpu_threads(0)
    assert threads == max(1, _cores() // 2)
    assert os.environ["X3D_KERNEL_THREADS"] == str(threads)


def test_an_explicit_count_and_the_users_variables_win(monkeypatch):
    monkeypatch.delenv("X3D_KERNEL_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert set_cpu_threads(3) == 3 and os.environ["X3D_KERNEL_THREADS"] == "3"
    monkeypatch.setenv("X3D_KERNEL_THREADS", "5")
    set_cpu_threads(1)
    assert os.environ["X3D_KERNEL_THREADS"] == "5"
    monkeypatch.delenv("X3D_KERNEL_THREADS")
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    set_cpu_threads(1)
    assert "X3D_KERNEL_THREADS" not in os.environ  # the kernels read OMP_NUM_THREADS themselves


def test_deterministic_keeps_the_kernel_threads_and_is_a_config_key(monkeypatch):
    """``context.deterministic`` serialises MindSpore's own CPU kernels only (its Dropout shares one
    generator between parallel tasks); the zoo's C++ kernels keep the process's share of the cores."""
    from src.config import load_config
    from src.context import set_deterministic

    monkeypatch.delenv("X3D_KERNEL_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert set_cpu_threads(2, deterministic=True) == 2 and os.environ["X3D_KERNEL_THREADS"] == "2"
    assert set_deterministic(False) is False  # the default leaves MindSpore's setting untouched
    cfg = load_config(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src", "config", "demo.yaml"))
    assert cfg.context.deterministic is True
