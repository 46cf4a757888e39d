"""One command-line convention: KEY=VALUE anywhere, `error:` on one line and the same exit code for
the same bad input in every entry point."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from src.cli import split_overrides

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CFG = "src/config/x3d_xs.yaml"

# entry point -> the arguments it needs besides --config (files need not exist: config errors come first)
ENTRY_POINTS = {
    "train.py": [],
    "eval.py": ["--ckpt", "x.ckpt"],
    "infer.py": ["video.mp4", "--ckpt", "x.ckpt"],
    "-m src.tools.export": ["--ckpt", "x.ckpt", "--out", "x.mindir"],
    "-m src.tools.convert_checkpoint": ["--src", "x.pth", "--out", "x.ckpt"],
    "-m src.tools.model_info": [],
    "-m src.tools.pack_mindrecord": ["--split", "train", "--out", "x.mindrecord"],
}


def _run(entry: str, args):
    cmd = [sys.executable] + entry.split() + list(args)
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)


def test_overrides_are_found_anywhere_but_paths_and_options_are_not():
    rest, overrides = split_overrides(["--config", "c.yaml", "train.epochs=2", "--output", "o",
                                       "--set", "model.num_classes=3", "README.md", "--json=x"])
    assert overrides == ["train.epochs=2", "model.num_classes=3"]
    assert rest == ["--config", "c.yaml", "--output", "o", "README.md", "--json=x"]


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_unknown_override_key_is_one_error_line_exit_2_wherever_it_stands(entry):
    # the override stands BEFORE the options here (train.py used to reject that order)
    proc = _run(entry, ["train.epocs=2", "--config", CFG] + ENTRY_POINTS[entry])
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "unknown key 'train.epocs'" in lines[0], proc.stderr[-2000:]


@pytest.mark.parametrize("entry", ["train.py", "eval.py", "infer.py", "-m src.tools.export"])
def test_missing_config_file_is_the_same_error_everywhere(entry):
    proc = _run(entry, ["--config", "no/such.yaml"] + ENTRY_POINTS[entry])
    assert proc.returncode == 2
    assert [line for line in proc.stderr.splitlines() if line.startswith("error: ")] == \
        ["error: no/such.yaml: config file not found"]


def test_bad_option_is_a_usage_error_with_exit_2():
    proc = _run("eval.py", ["--config", CFG, "--ckpt", "x.ckpt", "--no-such-flag"])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "unrecognized arguments: --no-such-flag" in proc.stderr


@pytest.mark.parametrize("args,line", [
    (["train.epochs=1.5"], "error: train.epochs: expected int >= 1, got 1.5 (from override 'train.epochs=1.5')"),
    (["--device", "foo"], "error: --device: expected one of auto, CPU, GPU, Ascend (any case), got 'foo'"),
])
def test_a_bad_value_in_a_real_process_is_one_line_exit_2(args, line):
    proc = _run("train.py", ["--config", CFG] + args)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")] == [line]
