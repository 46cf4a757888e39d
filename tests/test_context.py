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


def test_jit_level_reaches_mindspores_context_and_auto_is_per_device():
    """``context.jit_level`` is MindSpore's global ``jit_config``: the value read back from
    ``mindspore.get_context("jit_level")`` after ``init_context``. ``auto`` is O0 on CPU and GPU and
    MindSpore's own choice on Ascend (its 910A default is GE); O2 (GE) off Ascend is refused."""
    import mindspore as ms
    from src.context import init_context, resolve_jit_level
    from src.errors import UserError

    for level in ("O1", "O0"):  # O0 last: the level every other test of this process expects
        assert init_context({"device_target": "CPU", "jit_level": level}) == "CPU"
        assert ms.get_context("jit_level") == level
    assert [resolve_jit_level("auto", d) for d in ("CPU", "GPU", "Ascend")] == ["O0", "O0", None]
    assert resolve_jit_level("O2", "Ascend") == "O2" and resolve_jit_level("O1", "GPU") == "O1"
    with pytest.raises(UserError) as e:
        resolve_jit_level("O2", "CPU")
    assert str(e.value) == ("context.jit_level: O2 (the GraphEngine backend) runs on Ascend only, this run is on "
                            "CPU; use auto, O0 or O1")


def test_a_wrong_jit_level_is_a_one_line_config_error():
    from src.config import ConfigError, load_config

    demo = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src", "config", "demo.yaml")
    assert load_config(demo, ["context.jit_level=O1"], resolve=False).context.jit_level == "O1"
    with pytest.raises(ConfigError) as e:
        load_config(demo, ["context.jit_level=O3"], resolve=False)
    assert str(e.value) == ("context.jit_level: expected one of 'auto', 'O0', 'O1', 'O2', got 'O3' "
                            "(from override 'context.jit_level=O3')")


def test_a_process_pinned_by_msrun_bind_core_uses_all_its_cores(monkeypatch):
    """msrun --bind_core pins each worker with taskset and exports its cores as MSRUN_CPU_LIST:
    such a worker does not split its cores again between the local workers."""
    _no_thread_variables(monkeypatch)
    mine = sorted(os.sched_getaffinity(0))
    monkeypatch.setenv("VIDEO_ZOO_LOCAL_WORKERS", "2")
    monkeypatch.setenv("MSRUN_CPU_LIST", str(mine))  # msrun's spelling: str() of a list
    assert set_cpu_threads(0) == len(mine)
    monkeypatch.delenv("VIDEO_ZOO_KERNEL_THREADS")
    monkeypatch.setenv("MSRUN_CPU_LIST", str([max(mine) + 1]))  # another worker's cores: not this process
    assert set_cpu_threads(0) == max(1, len(mine) // 2)
