"""Fault injection through the real entry points: one row per bad input, its exit code and the one
``error:`` line it must print (no traceback, nothing trained). The next bad input is one more row.

Rows run in-process (``run_cli(main, argv)``, stderr captured); every case stops before training.
``{tmp}`` in a row is the test's temporary folder; ``{cfg}`` the X3D-XS config.
"""
from __future__ import annotations

import importlib
import os
import pickle

import pytest

import mindspore  # noqa: F401  (before the data modules: decord loads after MindSpore)
from src.cli import run_cli

CFG = "src/config/x3d_xs.yaml"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENTRY = {"train.py": "train", "infer.py": "infer", "convert": "src.tools.convert_checkpoint"}


def _mindir_for(path, dims):
    """A MINDIR file that declares one input of shape ``dims`` (no graph: the check comes first)."""
    from mindspore.train import mind_ir_pb2
    model = mind_ir_pb2.ModelProto()
    model.graph.input.add().tensor.add().dims.extend(dims)
    path.write_bytes(model.SerializeToString())


def _setup(tmp):
    """The bad files some rows refer to."""
    _mindir_for(tmp / "x3d_s.mindir", [-1, 3, 13, 160, 160])  # X3D-S clips, dynamic batch
    (tmp / "latin1.yaml").write_bytes("train:\n  output_dir: caf\xe9\n".encode("latin-1"))  # 0xe9 at offset 7 + 14 + 3 = 24
    (tmp / "a_folder.yaml").mkdir()
    (tmp / "float_epochs.yaml").write_text("_base_: %s\ntrain:\n  epochs: 1.5\n" % os.path.join(REPO, CFG))
    (tmp / "bad_device.yaml").write_text("_base_: %s\ncontext:\n  device_target: TPU\n" % os.path.join(REPO, CFG))
    (tmp / "data").mkdir()
    (tmp / "data" / "escape.txt").write_text("../../../../../../etc/passwd 0\n")
    # Kinetics CSVs whose val split has a label the train split lacks; the train files need only exist
    head = "label,youtube_id,time_start,time_end\n"
    (tmp / "k" / "annotations").mkdir(parents=True)
    (tmp / "k" / "annotations" / "train.csv").write_text(head + "abseiling,a,0,10\narchery,b,0,10\n")
    (tmp / "k" / "annotations" / "val.csv").write_text(head + "archery,c,0,10\nzumba,d,0,10\n")
    for rel in ("abseiling/a_000000_000010.mp4", "archery/b_000000_000010.mp4"):
        (tmp / "k" / "train" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp / "k" / "train" / rel).write_bytes(b"")


ROWS = [
    # (entry, argv, exit code, the one error line)
    ("train.py", ["--config", "{cfg}", "train.epochs=abc"], 2,
     "error: train.epochs: expected int >= 1, got 'abc' (from override 'train.epochs=abc')"),
    ("train.py", ["--config", "{cfg}", "train.epochs=-1"], 2,
     "error: train.epochs: expected int >= 1, got -1 (from override 'train.epochs=-1')"),
    ("train.py", ["--config", "{cfg}", "train.epochs=1.5"], 2,
     "error: train.epochs: expected int >= 1, got 1.5 (from override 'train.epochs=1.5')"),
    ("train.py", ["--config", "{cfg}", "train.epochs=true"], 2,
     "error: train.epochs: expected int >= 1, got true (from override 'train.epochs=true')"),
    ("train.py", ["--config", "{tmp}/float_epochs.yaml"], 2,
     "error: train.epochs: expected int >= 1, got 1.5 (from {tmp}/float_epochs.yaml)"),
    ("train.py", ["--config", "{cfg}", "learning_rate.base_lr=abc"], 2,
     "error: learning_rate.base_lr: expected float >= 0, got 'abc' (from override 'learning_rate.base_lr=abc')"),
    ("train.py", ["--config", "{cfg}", "data_loader.train.batch_size=-4"], 2,
     "error: data_loader.train.batch_size: expected int >= 1, got -4 "
     "(from override 'data_loader.train.batch_size=-4')"),
    ("train.py", ["--config", "{cfg}", "data_loader.train.batch_size=0"], 2,
     "error: data_loader.train.batch_size: expected int >= 1, got 0 "
     "(from override 'data_loader.train.batch_size=0')"),
    ("train.py", ["--config", "{cfg}", "data_loader.train.batch_size=eight"], 2,
     "error: data_loader.train.batch_size: expected int >= 1, got 'eight' "
     "(from override 'data_loader.train.batch_size=eight')"),
    ("train.py", ["--config", "{cfg}", "train.progress_bar=1"], 2,
     "error: train.progress_bar: expected bool (true or false), got 1 (from override 'train.progress_bar=1')"),
    ("train.py", ["--config", "{cfg}", "model.num_classes=0"], 2,
     "error: model.num_classes: expected int >= 1, got 0 (from override 'model.num_classes=0')"),
    ("train.py", ["--config", "{cfg}", "data_loader.train.map.operations=[{type: RandomCrop, size: 1.5}]"], 2,
     "error: data_loader.train.map.operations[0].size: expected int >= 1, got 1.5 "
     "(from override 'data_loader.train.map.operations=[{type: RandomCrop, size: 1.5}]')"),
    ("train.py", ["--config", "{tmp}/latin1.yaml"], 2,
     "error: {tmp}/latin1.yaml: not a UTF-8 text file (byte 0xe9 at offset 24); save the config as UTF-8"),
    ("train.py", ["--config", "{tmp}/a_folder.yaml"], 2,
     "error: {tmp}/a_folder.yaml: is a directory, not a config file"),
    ("train.py", ["--config", "{tmp}/missing.yaml"], 2,
     "error: {tmp}/missing.yaml: config file not found"),
    ("train.py", ["--config", "{cfg}", "--device", "foo"], 2,
     "error: --device: expected one of auto, CPU, GPU, Ascend (any case), got 'foo'"),
    ("infer.py", ["{tmp}/v.mp4", "--ckpt", "{tmp}/x.ckpt", "--config", "{cfg}", "--device", "tpu"], 2,
     "error: --device: expected one of auto, CPU, GPU, Ascend (any case), got 'tpu'"),
    # X3D-XS takes 4 frames, tested at 182 x 182
    ("infer.py", ["{tmp}/v.mp4", "--mindir", "{tmp}/x3d_s.mindir", "--config", "{cfg}"], 2,
     "error: {tmp}/x3d_s.mindir: exported for input (3, 13, 160, 160) (C, T, H, W) but the config gives "
     "(3, 4, 182, 182); export again or pass the config it was exported with"),
    ("train.py", ["--config", "{cfg}", "context.device_target=foo"], 2,
     "error: context.device_target: expected one of 'auto', 'CPU', 'GPU', 'Ascend', got 'foo' "
     "(from override 'context.device_target=foo')"),
    ("train.py", ["--config", "{tmp}/bad_device.yaml"], 2,
     "error: context.device_target: expected one of 'auto', 'CPU', 'GPU', 'Ascend', got 'TPU' "
     "(from {tmp}/bad_device.yaml)"),
    # data rows, refused while the data sets are built (before the model)
    ("train.py", ["--config", "{cfg}", "--output", "{tmp}/out",
                  "data_loader.train.dataset={type: VideoList, root: {tmp}/data, ann_file: escape.txt}"], 2,
     "error: {tmp}/data/escape.txt:1: path '../../../../../../etc/passwd' escapes the data root {tmp}/data "
     "(set data_loader.train.dataset.allow_outside_root=true to allow)"),
    ("train.py", ["--config", "{cfg}", "--output", "{tmp}/out", "data_loader.train.batch_size=1",
                  "data_loader.train.dataset={type: Kinetics400, root: {tmp}/k, split: train}",
                  "data_loader.eval.dataset={type: Kinetics400, root: {tmp}/k, split: val}"], 2,
     "error: {tmp}/k/annotations/val.csv:3: label 'zumba' is not one of the 2 classes of the train split "
     "(set data_loader.eval.dataset.unknown_labels=skip to skip such rows)"),
    ("convert", ["--src", "{tmp}/evil.pyth", "--out", "{tmp}/o.ckpt", "--config", "{cfg}"], 2,
     "error: {tmp}/evil.pyth: holds Python objects other than tensors (%s.system); refusing to unpickle it "
     "(a checkpoint to convert holds only tensors, numbers, strings and containers)" % os.system.__module__),
]


class _Payload:
    """Unpickles to ``os.system(...)`` writing a marker file."""

    def __init__(self, marker):
        self.command = f"echo ran > {marker}"

    def __reduce__(self):
        return (os.system, (self.command,))


@pytest.mark.parametrize("entry,argv,code,line", ROWS, ids=[" ".join(r[1][2:]) or r[1][1] for r in ROWS])
def test_bad_input_is_one_error_line_and_its_exit_code(entry, argv, code, line, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    _setup(tmp_path)
    marker = tmp_path / "payload_ran"
    (tmp_path / "evil.pyth").write_bytes(pickle.dumps({"model_state": {"x": _Payload(marker)}}))
    def fill(text):
        return text.replace("{tmp}", str(tmp_path)).replace("{cfg}", CFG)
    main = importlib.import_module(ENTRY[entry]).main
    got = run_cli(main, [fill(a) for a in argv])
    out, err = capsys.readouterr()
    assert (got, err) == (code, fill(line) + "\n"), out[-2000:]
    assert not marker.exists()
    assert "epoch" not in out.lower()  # stopped before training


def test_the_table_reaches_the_reported_cases():
    text = " ".join(" ".join(r[1]) for r in ROWS)
    for case in ("train.epochs=abc", "train.epochs=-1", "train.epochs=1.5", "learning_rate.base_lr=abc",
                 "batch_size=-4", "batch_size=0", "batch_size=eight", "latin1.yaml", "--device foo"):
        assert case in text, case
