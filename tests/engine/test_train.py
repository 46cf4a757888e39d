"""train.py end to end on a tiny data set: outputs, resume after SIGKILL, fine-tuning, NaN stop."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.helpers.training import REPO, make_tiny_dataset, run_py, tiny_config

EPOCHS, STEPS = 3, 6  # 12 train clips, batch 2


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_tiny_dataset(str(tmp_path_factory.mktemp("tiny3")), num_classes=3, per_class=4)


@pytest.fixture(scope="module")
def reference_run(data, tmp_path_factory):
    """One uninterrupted run that the other tests compare against or start from."""
    out = str(tmp_path_factory.mktemp("ref"))
    # progress_bar on: with output redirected (as here) there must be no bar in the log
    cfg = tiny_config(os.path.join(out, "cfg.yaml"), data, epochs=EPOCHS, extra={"train.progress_bar": True})
    r = run_py(["train.py", "--config", cfg, "--output", out])
    assert r.returncode == 0, r.stderr[-3000:]
    return out, cfg, r


def steps_of(out):
    """Last logged record of every global step (a resumed run logs some steps twice)."""
    recs = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl")) if l.strip()]
    return {r["global_step"]: r for r in recs if r["kind"] == "step"}, [r for r in recs if r["kind"] == "epoch"]


def test_training_writes_everything_and_follows_the_schedule(reference_run):
    from src.engine.checkpoint import read_checkpoint
    from src.registry import LR_SCHEDULES, build_from_cfg
    import src.engine  # noqa: F401

    out, _, r = reference_run
    for name in ("last.ckpt", "best.ckpt", "epoch0001.ckpt", "epoch0003.ckpt", "config.yaml",
                 "metrics.jsonl", "curves.png", "label_map.json", "train.log"):
        assert os.path.isfile(os.path.join(out, name)), name
    assert not [f for f in os.listdir(out) if f.endswith(".tmp.ckpt")]
    assert "final validation top-1" in r.stdout and "clips/s" in r.stdout and "eta" in r.stdout
    steps, epochs = steps_of(out)
    assert sorted(steps) == list(range(1, EPOCHS * STEPS + 1))
    lr = build_from_cfg({"type": "cosine_warmup", "base_lr": 0.05, "warmup_epochs": 1.0, "warmup_start_lr": 0.01,
                         "eta_min": 0.0}, LR_SCHEDULES, epochs=EPOCHS, steps_per_epoch=STEPS)
    np.testing.assert_allclose([steps[s]["lr"] for s in sorted(steps)], lr, rtol=1e-6)
    assert [e["epoch"] for e in epochs] == [1, 2, 3] and all("val_top1" in e for e in epochs)
    # every epoch summary shows that epoch's validation (eval_interval 1), with metrics.jsonl's value
    summaries = [l for l in r.stdout.splitlines() if " done in " in l]
    assert [l.split("/")[0] for l in summaries] == ["epoch 1", "epoch 2", "epoch 3"]
    for line, e in zip(summaries, epochs):
        assert f"val top-1 {100 * e['val_top1']:.2f}%" in line, line
        assert line.endswith("train: 12 samples, 0 bad"), line  # no bad files: no file named
    assert "\r" not in r.stderr and "\r" not in r.stdout and "step/s" not in r.stderr  # no tqdm bar
    params, meta = read_checkpoint(os.path.join(out, "last.ckpt"))
    assert meta["epoch"] == EPOCHS and meta["global_step"] == EPOCHS * STEPS
    assert meta["class_names"] == ["0", "1", "2"] or len(meta["class_names"]) == 3
    assert "model:" in meta["config_yaml"]
    assert "accum.head.projection.weight" in params  # optimizer momentum is saved too


def test_resume_after_sigkill_continues_at_the_saved_step(data, reference_run, tmp_path):
    from src.engine.checkpoint import read_checkpoint

    ref_out, cfg, _ = reference_run
    out = str(tmp_path / "killed")
    os.makedirs(out)
    env = dict(os.environ)
    proc = subprocess.Popen([sys.executable, "train.py", "--config", cfg, "--output", out], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = os.path.join(out, "metrics.jsonl")
    deadline = time.time() + 300
    try:
        while time.time() < deadline and proc.poll() is None:  # kill once epoch 2 has started
            if os.path.isfile(metrics) and any('"epoch": 2' in l and '"kind": "step"' in l for l in open(metrics)):
                break
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    _, saved = read_checkpoint(os.path.join(out, "last.ckpt"))
    assert saved["epoch"] >= 1 and saved["global_step"] == saved["epoch"] * STEPS

    # device 'auto' probes for GPU/Ascend; neither the probe nor the resume (which leaves the
    # learning rate to the schedule) may print MindSpore warnings: we check those outcomes ourselves
    r = run_py(["train.py", "--config", cfg, "--output", out, "--resume", "auto", "context.device_target=auto"])
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"epoch {saved['epoch']}, step {saved['global_step']}" in r.stdout
    assert "[WARNING] ME(" not in r.stderr, r.stderr[-3000:]
    ref_steps, _ = steps_of(ref_out)
    steps, _ = steps_of(out)
    resumed = [s for s in sorted(steps) if s > saved["global_step"]]
    assert resumed == list(range(saved["global_step"] + 1, EPOCHS * STEPS + 1))
    np.testing.assert_allclose([steps[s]["lr"] for s in resumed], [ref_steps[s]["lr"] for s in resumed], rtol=1e-7)
    # same batches and restored state (weights, BN statistics, momentum): the same losses
    np.testing.assert_allclose([steps[s]["loss"] for s in resumed], [ref_steps[s]["loss"] for s in resumed],
                               rtol=1e-5, atol=1e-6)


def test_finetune_on_a_new_class_count(reference_run, tmp_path):
    from src.engine.checkpoint import read_checkpoint

    ref_out, _, _ = reference_run
    data2 = make_tiny_dataset(str(tmp_path / "tiny2"), num_classes=2, per_class=4, seed=1)
    pretrained = os.path.join(ref_out, "last.ckpt")
    out = str(tmp_path / "ft")
    cfg = tiny_config(str(tmp_path / "ft.yaml"), data2, num_classes=2, epochs=1,
                      extra={"train.finetune": "last_layer"})
    r = run_py(["train.py", "--config", cfg, "--output", out, "--pretrained", pretrained])
    assert r.returncode == 0, r.stderr[-3000:]
    assert "re-initialised for 2 classes: head.projection.weight, head.projection.bias" in r.stdout
    assert "[WARNING] ME(" not in r.stderr, r.stderr[-2000:]  # said once, by us, not again by MindSpore
    before, _ = read_checkpoint(pretrained)
    after, _ = read_checkpoint(os.path.join(out, "last.ckpt"))
    assert after["head.projection.weight"].shape == (2, 32)
    backbone = [k for k in after if k.startswith(("stem.", "res", "head.conv_5", "head.lin_5"))]
    assert backbone and all(np.array_equal(before[k].asnumpy(), after[k].asnumpy()) for k in backbone)

    # complete fine-tuning changes the backbone
    r = run_py(["train.py", "--config", cfg, "--output", str(tmp_path / "ft2"), "--pretrained", pretrained,
                "train.finetune=complete"])
    assert r.returncode == 0, r.stderr[-3000:]
    after2, _ = read_checkpoint(str(tmp_path / "ft2" / "last.ckpt"))
    assert not np.array_equal(before["res3.0.branch2.a.weight"].asnumpy(), after2["res3.0.branch2.a.weight"].asnumpy())


def test_pretrained_of_another_architecture_fails_listing_keys(reference_run, data, tmp_path):
    ref_out, _, _ = reference_run
    cfg = tiny_config(str(tmp_path / "wide.yaml"), data, epochs=1, extra={"model.width_factor": 1.0})
    r = run_py(["train.py", "--config", cfg, "--output", str(tmp_path / "o"),
                "--pretrained", os.path.join(ref_out, "last.ckpt")])
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "does not fit this model" in lines[0]
    assert "stem.conv_xy.weight (8, 3, 1, 3, 3) vs model (16, 3, 1, 3, 3)" in lines[0]


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(data, tmp_path):
    from src.engine.checkpoint import read_checkpoint

    out = str(tmp_path / "nan")
    cfg = tiny_config(str(tmp_path / "nan.yaml"), data, epochs=3, extra={
        "learning_rate": {"type": "multistep", "base_lr": 0.01, "milestones": [1], "gamma": 1.0e+12}})
    r = run_py(["train.py", "--config", cfg, "--output", out])
    assert r.returncode == 3, r.stderr[-2000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: loss is ") and "at epoch 2" in last and "last.ckpt" in last
    _, meta = read_checkpoint(os.path.join(out, "last.ckpt"))
    assert meta["epoch"] == 1
    assert not os.path.exists(os.path.join(out, "epoch0002.ckpt"))


def test_progress_bar_only_on_a_terminal():
    """train.progress_bar draws a tqdm bar when stderr is a terminal and nothing otherwise (the
    periodic log lines carry the same numbers)."""
    import io
    from types import SimpleNamespace
    from src.engine.trainer import ProgressLogger

    class Tty(io.StringIO):
        def isatty(self):
            return True

    state = SimpleNamespace(epoch=0, epochs=1, steps_per_epoch=3)
    for stream, drawn in ((io.StringIO(), False), (Tty(), True)):
        old, sys.stderr = sys.stderr, stream
        try:
            cb = ProgressLogger(log_interval=1, progress_bar=True, loader=None, log_file=None)
            cb.on_epoch_begin(state)
            assert (cb.bar is not None) == drawn
            if cb.bar is not None:
                cb.bar.update(1)
                cb.bar.close()
        finally:
            sys.stderr = old
        assert ("0/3 [" in stream.getvalue()) == drawn
