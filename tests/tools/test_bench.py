"""The benchmark package (src/tools/bench): one timing harness, one worker protocol, the old command
names as aliases, and src/cli.py's convention in every tool under src/tools (one ``error:`` line,
exit 2, ``KEY=VALUE`` overrides where a config is read). Nothing here runs a real benchmark."""
from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time

import pytest

from src.cli import run_cli
from src.tools import bench
from src.tools.bench import harness, models
from src.tools.bench.torch_ref import TORCH_HINT, TorchMissing, require_torch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS = sorted(n[:-3] for n in os.listdir(os.path.join(REPO, "src", "tools")) if n.endswith(".py") and n != "__init__.py")
CFG = "src/config/x3d_xs.yaml"


# ----------------------------------------------------------------------------------- harness
def test_time_calls_warms_up_then_repeats():
    calls = []
    res = harness.time_calls(lambda: calls.append(1), reps=4, warmup=2)
    assert len(calls) == 6 and res["reps"] == 4  # budget 0: exactly reps timed calls
    assert res["min_s"] <= res["median_s"] <= res["total_s"]
    assert set(res) >= {"median_s", "min_s", "total_s", "cpu_median_s", "first_s", "compile_s", "reps"}


def test_time_calls_budget_and_exhausted_iterators():
    res = harness.time_calls(lambda: time.sleep(0.02), reps=10, budget_s=0.05, warmup=1)
    assert res["reps"] == 3  # past the budget three calls are enough
    res = harness.time_calls(lambda: None, reps=2, budget_s=5.0, warmup=0)
    assert res["reps"] == 6  # within the budget: up to 3 x reps
    it = iter(range(4))
    res = harness.time_calls(lambda: next(it), reps=10, warmup=1)
    assert res["reps"] == 3  # StopIteration ends the timed calls
    empty = harness.time_calls(lambda: next(iter(())), reps=3)
    assert empty["reps"] == 0 and empty["median_s"] != empty["median_s"]  # nan, no exception


def test_worker_protocol_round_trip_and_thread_pinning():
    res = harness.run_worker("src.tools.bench.harness:probe", {"x": [1, "a"]}, threads=3)
    assert res["kwargs"] == {"x": [1, "a"]} and res["pid"] != os.getpid()
    assert res["OMP_NUM_THREADS"] == "3" and res["VIDEO_ZOO_KERNEL_THREADS"] == "3" and res["peak_rss_mb"] > 0


def test_worker_failures(capsys):
    assert harness.run_worker("src.tools.bench.harness:no_such_function", {}, threads=1, label="probe") is None
    err = capsys.readouterr().err
    assert "probe failed (exit 2)" in err and "error: worker target" in err and "Traceback" not in err
    with pytest.raises(Exception, match="expected 'src.tools.bench.<module>:<function>'"):
        harness.run_worker("os:system", {}, threads=1)


def test_the_package_imports_no_runtime_until_a_benchmark_runs():
    code = ("import sys, src.tools.bench, src.tools.bench.harness, src.tools.bench.models, src.tools.bench.layers, "
            "src.tools.bench.infer, src.tools.bench.loader; print(sorted(m for m in ('mindspore', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stderr[-2000:]


def test_torch_is_optional_with_a_one_line_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch -> ImportError
    with pytest.raises(TorchMissing) as e:
        require_torch()
    assert str(e.value) == TORCH_HINT and "pip install torch==2.13.0" in TORCH_HINT and "\n" not in TORCH_HINT


def test_model_ratios():
    res = {"mindspore": {"forward_b1": {"per_clip_ms": 10.0}, "forward_b8": {"per_clip_ms": 5.0},
                         "train_b4": {"per_clip_ms": 100.0}, "forward_bn_b1": {"per_clip_ms": 20.0},
                         "forward_bn_b8": {"per_clip_ms": 10.0}},
           "torch": {"forward_b1": {"per_clip_ms": 20.0}, "forward_b8": {"per_clip_ms": 25.0},
                     "train_b4": {"per_clip_ms": 150.0}}}
    models.summarise("x3d_xs", res)
    assert res["ratio_forward_b1"] == 2.0 and res["ratio_forward_b8"] == 5.0
    assert res["forward_ratio"] == 45.0 / 15.0 and res["forward_ratio_bn_unfolded"] == 45.0 / 30.0
    assert res["train_ratio"] == 1.5


def test_train_step_interleaved_ratios_are_medians_of_cpu_time(monkeypatch, tmp_path, capsys):
    """--interleave: one worker for all configurations; ratios are each configuration's median CPU
    (and wall) time per call over the first one's (here from a stand-in worker result)."""
    import json

    from src.tools.bench import train_step
    seen = {}

    def fake_worker(target, kwargs, **_):
        seen.update(target=target, kwargs=kwargs)
        return {"plain": {"cpu_median_s": 0.080, "median_s": 0.100, "reps": 20},
                "clip_accum": {"cpu_median_s": 0.084, "median_s": 0.110, "reps": 20}}
    monkeypatch.setattr(train_step, "run_worker", fake_worker)
    out = str(tmp_path / "r.json")
    assert train_step.main(["--interleave", "--configs", "plain", "clip_accum", "--threads", "1", "--json", out]) == 0
    assert seen["target"].endswith(":run_interleaved") and seen["kwargs"]["configs"] == ["plain", "clip_accum"]
    res = json.load(open(out))
    assert res["clip_accum"]["ratio_cpu"] == pytest.approx(1.05) and res["clip_accum"]["ratio_wall"] == pytest.approx(1.1)
    assert "clip_accum: per call CPU 84.0 ms (x1.050), wall 110.0 ms (x1.100)" in capsys.readouterr().out


def test_stream_rounds_alternate_the_sides_and_summarise_by_the_median_ratio(monkeypatch, tmp_path, capsys):
    """--rounds 3: ours, torch, ours, torch, ours, torch (fresh workers); the summary is the median
    of the per-round torch / ours ratios (stand-in worker results: 40/30, 20/40, 33/30 ms)."""
    import json

    from src.tools.bench import stream
    order, medians = [], iter([30.0, 40.0, 40.0, 20.0, 30.0, 33.0])

    def fake_worker(target, kwargs, **_):
        order.append(target.rsplit(":", 1)[1])
        m = next(medians)
        return {"median_ms": m, "mean_ms": m, "p90_ms": m, "min_ms": m, "cpu_median_ms": m, "peak_rss_mb": 1.0}
    monkeypatch.setattr(stream, "run_worker", fake_worker)
    monkeypatch.setattr(stream, "torch_available", lambda: True)
    out = str(tmp_path / "s.json")
    assert stream.main(["--rounds", "3", "--threads", "1", "--frames", "2", "--json", out]) == 0
    assert order == ["ours", "torch_side"] * 3
    text = capsys.readouterr().out
    # per-round ratios 1.33, 0.50, 1.10: median 1.10, range 0.50-1.33
    assert "median of the per-round ratios: 1.10x wall (range 0.50-1.33)" in text
    assert len(json.load(open(out))["rounds"]) == 3


# ----------------------------------------------------------------------------------- commands
@pytest.mark.parametrize("argv,command", [
    (["model", "--models", "x3d_xs", "--threads", "2"], "model"),
    (["infer", "--batches", "1", "--sides", "mindir"], "infer"),
    (["layers", "--ops"], "layers"),
    (["loader", "--variants", "xs", "data_loader.decoder=pyav"], "loader"),
])
def test_one_command_four_benchmarks(argv, command):
    args = bench.parse_args(argv)
    assert args.command == command


@pytest.mark.parametrize("alias,argv,command,check", [
    ("benchmark", ["--models", "x3d_xs"], "model", lambda a: a.models == ["x3d_xs"]),
    ("benchmark", ["--infer", "--batches", "1"], "infer", lambda a: a.batches == [1]),
    ("benchmark", ["--layers", "--baseline"], "layers", lambda a: a.mode == "layers" and a.baseline),
    ("benchmark", ["--ops", "--batch", "1"], "layers", lambda a: a.mode == "ops" and a.batch == 1),
    ("bench_infer", ["--crop", "64"], "infer", lambda a: a.crop == 64),
    ("layer_profile", ["--conv", "--families", "stems"], "layers", lambda a: a.mode == "conv" and a.batch == 8),
    ("bench_loader", ["--rawframes"], "loader", lambda a: a.rawframes),
])
def test_old_names_are_aliases(alias, argv, command, check):
    args = importlib.import_module(f"src.tools.{alias}").parse_args(argv)
    assert args.command == command and check(args)


@pytest.mark.parametrize("tool", TOOLS)
def test_every_tool_follows_the_cli_convention(tool, capsys):
    module = importlib.import_module(f"src.tools.{tool}")
    with open(os.path.join(REPO, "src", "tools", f"{tool}.py"), encoding="utf-8") as f:
        assert "sys.exit(run_cli(main))" in f.read(), f"{tool}: run main through src.cli.run_cli"
    assert run_cli(module.main, ["--no-such-flag"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "(see --help)" in err[0], err


@pytest.mark.parametrize("entry,argv", [
    ("src.tools.check_dataset", ["--config", CFG, "train.epocs=2"]),
    ("src.tools.bench.loader", ["train.epocs=2", "--variants", "xs"]),
    ("src.tools.bench.infer", ["--sides", "mindir", "train.epocs=2"]),
])
def test_config_readers_take_overrides(entry, argv, capsys):
    assert run_cli(importlib.import_module(entry).main, argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown key 'train.epocs'" in err[0], err


@pytest.mark.parametrize("argv,message", [
    ([], "expected a benchmark, one of model, infer, layers, loader"),
    (["model", "--threads", "0"], "--threads 0: expected >= 1"),
    (["model", "model.type=x3d_s"], "unrecognized arguments: model.type=x3d_s"),  # reads no config
    (["layers", "--ops", "--conv"], "not allowed with argument"),
    (["loader", "--size", "big"], "--size 'big': expected WxH"),
])
def test_bench_usage_errors_are_one_line(argv, message, capsys):
    assert run_cli(bench.main, argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_commands_in_a_real_process():
    for argv in (["-m", "src.tools.bench"], ["-m", "src.tools.benchmark", "--threads", "0"]):
        proc = subprocess.run([sys.executable, *argv], cwd=REPO, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        assert len([ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]) == 1
    proc = subprocess.run([sys.executable, "-m", "src.tools.bench", "--help"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and all(c in proc.stdout for c in bench.COMMANDS)
