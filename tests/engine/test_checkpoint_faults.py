"""A full disk while a run writes its outputs, and the partial files a failed or killed run leaves.

The disk is emulated (tests/helpers/disk_full.py: once full, a write stores what fits and raises
ENOSPC, leaving a partial file as a real disk does); one test uses a real 64 KiB tmpfs when the
machine lets an unprivileged mount namespace mount one.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import yaml

import mindspore as ms  # noqa: F401  (before the data modules: decord loads after MindSpore)
from mindspore import Tensor, nn

from src.engine.checkpoint import read_checkpoint, save_checkpoint
from src.outputs import NoSpaceError, append_text, remove_partials, trim_partial_line
from tests.helpers.disk_full import FullDisk
from tests.helpers.training import REPO, make_tiny_dataset, run_py, tiny_config

RESUME_HINT = "free some space and rerun with --resume auto"


def _net(seed: int) -> nn.Dense:
    net = nn.Dense(32, 16)
    rng = np.random.default_rng(seed)
    for p in net.get_parameters():
        p.set_data(Tensor(rng.standard_normal(p.shape).astype(np.float32)))
    return net


def _dead_pid() -> int:
    """The id of a process that has ended."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ----------------------------------------------------------------------------- checkpoints
def test_full_disk_at_a_checkpoint_leaves_no_partial_and_names_the_intact_one(tmp_path):
    d = str(tmp_path)
    first = _net(1)
    save_checkpoint(first, os.path.join(d, "last.ckpt"), epoch=1, global_step=4)
    weights = first.weight.asnumpy().copy()
    with FullDisk(d, room=1000) as disk:
        with pytest.raises(NoSpaceError) as info:
            save_checkpoint(_net(2), os.path.join(d, "epoch0002.ckpt"), epoch=2, global_step=8)
    # MindSpore wrote (and the disk cut short) its own temporary name, derived from ours
    assert [os.path.basename(p) for p in disk.cut] == [f".epoch0002.ckpt.{os.getpid()}.tmp.tmp"]
    assert str(info.value) == (f"{d}: no space left while saving epoch0002.ckpt; the previous checkpoint "
                               f"last.ckpt (epoch 1) is intact; {RESUME_HINT}")
    assert os.listdir(d) == ["last.ckpt"]  # no partial of ours or MindSpore's
    params, meta = read_checkpoint(os.path.join(d, "last.ckpt"))
    assert (meta["epoch"], meta["global_step"]) == (1, 4)
    np.testing.assert_array_equal(params["weight"].asnumpy(), weights)


def test_full_disk_at_the_first_checkpoint_says_there_is_none(tmp_path):
    d = str(tmp_path)
    with FullDisk(d, room=0):
        with pytest.raises(NoSpaceError) as info:
            save_checkpoint(_net(1), os.path.join(d, "last.ckpt"), epoch=1, global_step=4)
    assert str(info.value) == (f"{d}: no space left while saving last.ckpt; no complete checkpoint was "
                               f"saved before; free some space and run again")
    assert os.listdir(d) == []


def test_other_errors_of_a_save_keep_their_type_and_leave_no_partial(tmp_path, monkeypatch):
    d = str(tmp_path)

    def broken(cell, path, **kwargs):
        with open(path[: -len(".ckpt")] + ".tmp", "wb") as f:  # MindSpore's partial name, then a crash
            f.write(b"\0" * 100)
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(ms, "save_checkpoint", broken)
    with pytest.raises(PermissionError):
        save_checkpoint(_net(1), os.path.join(d, "last.ckpt"), epoch=1, global_step=4)
    assert os.listdir(d) == []


# ----------------------------------------------------------------------------- other outputs
def test_full_disk_while_saving_the_config_or_label_map_is_one_line_and_keeps_the_old_file(tmp_path):
    from src.config import dump_config
    from src.data import save_label_map

    d = str(tmp_path)
    dump_config({"train": {"epochs": 1}}, os.path.join(d, "config.yaml"))
    with FullDisk(d, room=3) as disk:
        with pytest.raises(NoSpaceError) as info:
            dump_config({"train": {"epochs": 2}}, os.path.join(d, "config.yaml"))
        assert str(info.value) == f"{d}: no space left while saving config.yaml; free some space and run again"
        with pytest.raises(NoSpaceError) as info:
            save_label_map(["a", "b"], os.path.join(d, "label_map.json"))
        assert str(info.value) == f"{d}: no space left while saving label_map.json; free some space and run again"
    assert len(disk.cut) == 2
    assert os.listdir(d) == ["config.yaml"]
    assert yaml.safe_load(open(os.path.join(d, "config.yaml"))) == {"train": {"epochs": 1}}  # the old one


def test_full_disk_while_appending_leaves_no_half_line(tmp_path):
    path = str(tmp_path / "metrics.jsonl")
    append_text(path, '{"step": 1}\n')
    with FullDisk(str(tmp_path), room=4):
        with pytest.raises(NoSpaceError, match="no space left while saving metrics.jsonl"):
            append_text(path, '{"step": 2}\n')
    assert open(path).read() == '{"step": 1}\n'
    # a run killed in mid-append leaves half a line: the next start cuts it
    with open(path, "a") as f:
        f.write('{"st')
    assert trim_partial_line(path) and open(path).read() == '{"step": 1}\n'
    assert not trim_partial_line(path)


def test_remove_partials_removes_every_kind_of_dead_runs_only(tmp_path):
    dead, alive = _dead_pid(), os.getppid()
    stale = [f".last.ckpt.{dead}.tmp.ckpt", f".last.ckpt.{dead}.tmp.tmp", f".epoch0003.ckpt.{dead}.tmp.tmp",
             f".config.yaml.{dead}.tmp.yaml", f".curves.png.{dead}.tmp.png", f".eval_results.json.{dead}.tmp.json",
             f"config.yaml.tmp{dead}", f"label_map.json.tmp{dead}", f"missing_files.txt.tmp{dead}",
             "eval_results.json.tmp", "curves.png.tmp.png", "confusion_matrix.png.tmp.png",
             f".best.ckpt.{os.getpid()}.tmp.ckpt"]  # this process writes nothing meanwhile: stale too
    kept = ["last.ckpt", "epoch0002.ckpt", "config.yaml", "metrics.jsonl", "curves.png", ".bad_samples_train_0.log",
            f".label_map.json.{alive}.tmp.json", f"label_map.json.tmp{alive}",  # another rank, still writing
            "notes.tmp.txt", "my.tmp"]
    for name in stale + kept:
        (tmp_path / name).write_bytes(b"x")
    removed = remove_partials(str(tmp_path))
    assert sorted(os.path.basename(p) for p in removed) == sorted(stale)
    assert sorted(os.listdir(tmp_path)) == sorted(kept)


# ----------------------------------------------------------------------------- a real small disk
REAL_DISK = r"""
import json, os, sys
import mindspore
from mindspore import nn
from src.config import dump_config
from src.engine.checkpoint import save_checkpoint
from src.outputs import NoSpaceError
d, res = sys.argv[1], {}
save_checkpoint(nn.Dense(16, 16), os.path.join(d, "last.ckpt"), epoch=1, global_step=4)
try:
    save_checkpoint(nn.Dense(200, 200), os.path.join(d, "epoch0002.ckpt"), epoch=2, global_step=8)  # 160 KB
except NoSpaceError as e:
    res["ckpt"] = str(e)
res["after_ckpt"] = sorted(os.listdir(d))
with open(os.path.join(d, "filler"), "wb", buffering=0) as f:  # the disk full to the last byte
    try:
        while True:
            f.write(b"x" * 512)
    except OSError:
        pass
try:
    dump_config({"model": {"type": "x3d_xs"}}, os.path.join(d, "config.yaml"))
except NoSpaceError as e:
    res["config"] = str(e)
res["after_config"] = sorted(os.listdir(d))
os.remove(os.path.join(d, "filler"))
save_checkpoint(nn.Dense(16, 16), os.path.join(d, "epoch0002.ckpt"), epoch=2, global_step=8)
res["after_room"] = sorted(os.listdir(d))
print("RESULT " + json.dumps(res))
"""


def test_a_real_full_tmpfs(tmp_path):
    if shutil.which("unshare") is None:
        pytest.skip("no unshare")
    disk = tmp_path / "disk"
    disk.mkdir()
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {disk}"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs in a user namespace here: {probe.stderr.strip()}")
    script = tmp_path / "real_disk.py"
    script.write_text(REAL_DISK)
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {disk} && "
                           f"exec {sys.executable} {script} {disk}"], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, PYTHONPATH=REPO))
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout.split("RESULT ", 1)[1])
    assert res["ckpt"] == (f"{disk}: no space left while saving epoch0002.ckpt; the previous checkpoint "
                           f"last.ckpt (epoch 1) is intact; {RESUME_HINT}")
    assert res["after_ckpt"] == ["last.ckpt"]
    assert res["config"] == f"{disk}: no space left while saving config.yaml; free some space and run again"
    assert res["after_config"] == ["filler", "last.ckpt"]
    assert res["after_room"] == ["epoch0002.ckpt", "last.ckpt"]
    assert "CRITICAL" not in proc.stderr  # MindSpore's own line about the failed save is not shown


# ----------------------------------------------------------------------------- train.py end to end
def test_train_stops_in_one_line_on_a_full_disk_and_resume_auto_continues_once_there_is_room(tmp_path):
    data = make_tiny_dataset(str(tmp_path / "data"), num_classes=2, per_class=4, num_val=0)
    out = str(tmp_path / "out")
    cfg = tiny_config(str(tmp_path / "cfg.yaml"), data, num_classes=2, epochs=2,
                      extra={"train.eval_interval": 0})  # 8 clips, batch 2: 4 steps per epoch
    # epoch 1 writes epoch0001.ckpt and last.ckpt; the disk is full from the third checkpoint on
    r = run_py(["-m", "tests.helpers.disk_full", out, "--checkpoints-ok", "2", "--room", "2000", "--",
                "train.py", "--config", cfg, "--output", out])
    assert r.returncode == 2, r.stderr[-3000:]
    assert "Traceback" not in r.stderr and "CRITICAL" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {out}: no space left while saving epoch0002.ckpt; the previous checkpoint "
                      f"last.ckpt (epoch 1) is intact; {RESUME_HINT}"]
    assert sorted(os.listdir(out)) == [".bad_samples_train_0.log", "config.yaml", "curves.png", "epoch0001.ckpt",
                                       "label_map.json", "last.ckpt", "metrics.jsonl", "train.log"]

    # a killed run's partial file, as large as what filled the disk; resume once there is room
    stale = os.path.join(out, f".last.ckpt.{_dead_pid()}.tmp.tmp")
    with open(stale, "wb") as f:
        f.write(b"\0" * 200_000)
    r = run_py(["train.py", "--config", cfg, "--output", out, "--resume", "auto"])
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"removed the partial file {stale} of an earlier run" in r.stdout
    assert f"resumed from {os.path.join(out, 'last.ckpt')}: epoch 1, step 4" in r.stdout
    _, meta = read_checkpoint(os.path.join(out, "last.ckpt"))
    assert (meta["epoch"], meta["global_step"]) == (2, 8)
    assert sorted(os.listdir(out)) == [".bad_samples_train_0.log", "config.yaml", "curves.png", "epoch0001.ckpt",
                                       "epoch0002.ckpt", "label_map.json", "last.ckpt", "metrics.jsonl", "train.log"]
    epochs = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl")) if '"kind": "epoch"' in l]
    assert [e["epoch"] for e in epochs] == [1, 2]
