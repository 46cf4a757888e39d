"""The ``data_loader.max_bad_fraction`` stop, raised inside a MindSpore dataset worker, reaches the
user as one ``error:`` line with exit 2 (train.py and eval.py, thread and process workers); any
other error of the pipeline keeps its traceback."""
from __future__ import annotations

import os
import re

import pytest

import mindspore  # noqa: F401  (before the data modules: decord loads after MindSpore)

from src.data import DataError, DataStopError, stop_guard
from src.outputs import NoSpaceError
from tests.helpers.training import make_tiny_dataset, run_py, tiny_config

BAD_TRAIN = {f"train/c{k}_{i}.mp4" for k in range(2) for i in (1, 2, 3)}  # 6 of the 8 train videos
BAD_VAL = {"val/c0_4.mp4", "val/c1_4.mp4"}                                  # 2 of the 4 val videos


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = make_tiny_dataset(str(tmp_path_factory.mktemp("stop")), num_classes=2, per_class=4, num_val=2)
    for rel in BAD_TRAIN | BAD_VAL:
        with open(os.path.join(root, rel), "wb") as f:
            f.write(b"not a video " * 20)
    return root


def _one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr and "Exception thrown from user defined Python function" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr[-3000:]
    return errors[0]


def _check_stop_line(line: str, out: str, total: int, bad: set, data: str) -> None:
    """``error: N of TOTAL videos failed to decode (P%), more than ...=0.2; see OUT/bad_files.txt``,
    N above 0.2 * TOTAL and at most the corrupt count, P = 100 N / TOTAL; the list names only
    corrupt files."""
    m = re.fullmatch(r"error: (\d+) of (\d+) videos failed to decode \((\d+\.\d)%\), more than "
                     r"data_loader\.max_bad_fraction=0\.2; see (.+)", line)
    assert m, line
    n = int(m.group(1))
    assert int(m.group(2)) == total and 0.2 * total < n <= len(bad)
    assert m.group(3) == f"{100 * n / total:.1f}"
    assert m.group(4) == os.path.join(out, "bad_files.txt")
    listed = {l.split("\t")[0] for l in open(m.group(4)).read().splitlines()}
    assert listed and listed <= {os.path.join(data, rel) for rel in bad}


@pytest.mark.parametrize("workers,processes", [(1, False), (2, False), (2, True)])
def test_train_stops_in_one_line_when_too_many_videos_are_bad(data, tmp_path, workers, processes):
    out = str(tmp_path / "out")
    cfg = tiny_config(str(tmp_path / "cfg.yaml"), data, num_classes=2, epochs=1, extra={
        "data_loader.max_bad_fraction": 0.2, "train.eval_interval": 0,
        "data_loader.train.num_parallel_workers": workers, "data_loader.train.python_multiprocessing": processes})
    r = run_py(["train.py", "--config", cfg, "--output", out])
    assert r.returncode == 2, r.stderr[-3000:]
    _check_stop_line(_one_error_line(r.stderr), out, 8, BAD_TRAIN, data)
    assert not os.path.exists(os.path.join(out, "last.ckpt"))


def test_eval_stops_in_one_line_when_too_many_videos_are_bad(data, tmp_path):
    from src.config import load_config
    from src.context import init_context
    from src.engine.checkpoint import save_checkpoint
    from src.models import build_model

    out = str(tmp_path / "eval")
    cfg_path = tiny_config(str(tmp_path / "cfg.yaml"), data, num_classes=2, extra={
        "data_loader.max_bad_fraction": 0.2, "infer": {"num_clips": 1, "num_crops": 1, "batch_size": 2}})
    cfg = load_config(cfg_path)
    init_context(cfg.context, "CPU")
    ckpt = save_checkpoint(build_model(cfg.model), str(tmp_path / "m.ckpt"), epoch=1, global_step=1)
    r = run_py(["eval.py", "--config", cfg_path, "--ckpt", ckpt, "--output", out, "--no-progress"])
    assert r.returncode == 2, r.stderr[-3000:]
    _check_stop_line(_one_error_line(r.stderr), out, 4, BAD_VAL, data)
    assert not os.path.exists(os.path.join(out, "eval_results.json"))


class _Loader:
    """What stop_guard asks of a loader: the recorded stop, if any, and the output folder."""

    def __init__(self, message=None):
        self.message, self.output_dir = message, "/runs/a"

    def stop_message(self):
        return self.message


def _failing(exc):
    yield 1
    raise exc


def test_stop_guard_turns_only_a_recorded_stop_into_one_line():
    got = list(stop_guard(iter([1, 2]), _Loader("2 of 8 videos failed")))
    assert got == [1, 2]
    # a stop recorded by the source: its own message, as a DataError that is still a RuntimeError
    it = stop_guard(_failing(RuntimeError("Exception thrown from user defined Python function ...")),
                    _Loader("2 of 8 videos failed to decode"))
    assert next(it) == 1
    with pytest.raises(DataStopError) as info:
        next(it)
    assert str(info.value) == "2 of 8 videos failed to decode"
    assert isinstance(info.value, DataError) and isinstance(info.value, RuntimeError)
    # any other RuntimeError, with no stop recorded: unchanged, traceback and all
    boom = RuntimeError("Reshape: accumulate of x_shape must be equal")
    with pytest.raises(RuntimeError) as info:
        list(stop_guard(_failing(boom), _Loader(None)))
    assert info.value is boom
    # other exception types are never touched
    with pytest.raises(KeyError):
        list(stop_guard(_failing(KeyError("k")), _Loader("a stop")))
    # a worker that could not write for lack of space: the one-line no-space error
    full = RuntimeError("... OSError: [Errno 28] No space left on device ...")
    with pytest.raises(NoSpaceError) as info:
        list(stop_guard(_failing(full), _Loader(None)))
    assert str(info.value) == "/runs/a: no space left while saving bad_files.txt; free some space and run again"
