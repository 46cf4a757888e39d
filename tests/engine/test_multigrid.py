"""Multigrid training (train.multigrid): the schedule against tables worked by hand from the
definitions (docs/training.md "Multigrid training"), the shapes the loader yields, the X3D head
at smaller shapes, and a graph-mode run that compiles once per shape and resumes mid-schedule."""
from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from mindspore import Tensor

from src.config import load_config
from src.engine.multigrid import LR_GRID, build_plan, long_cycle_schedule
from tests.helpers.training import make_tiny_dataset, run_py, tiny_config

R = 0.5 ** 0.5  # SlowFast's sqrt(1/2) factors


def _cfg(tmp_path, data, **extra):
    return load_config(tiny_config(str(tmp_path / "cfg.yaml"), data, extra=extra))


# ------------------------------------------------------------------------------ the schedule
def test_long_and_short_cycle_table_worked_by_hand():
    """T0 = 8, S0 = 64, LR steps at plain epochs [0, 4, 8], 10 plain epochs, epoch factor 1.5.

    Batch factors round(T0 S0^2 / (T s^2)), size0 = 8 * 64^2 = 32768, short crops 0.5*64 = 32 and
    64/sqrt(2) = 45.25:
      (T2, S45): 16 (s=32), 8 (s=45.25), round(32768/4050) = 8  -> avg 32/3
      (T4, S45): 8, 4, round(32768/8100) = 4                    -> avg 16/3
      (T4, S64): 8, 4, 2                                        -> avg 14/3
      (T8, S64): 4, 2, 1                                        -> avg 7/3,   sum 69/3 = 23
    Per LR step of 4 epochs, stage k gets 4 avg_k / 23 clip epochs: 128/69, 64/69, 56/69, 28/69.
    Saving = 23 / 4; fine-tuning: 2 / (23/4) * 7/3 = 56/69. Raw total 8 + 56/69 = 608/69; stretch
    to 15 epochs: x 1035/608, i.e. stage epochs 1920/608, 960/608, 840/608, 420/608 (twice) and
    840/608. Cumulative: 3.158, 4.737, 6.118, 6.809, 9.967, 11.546, 12.928, 13.618, 15 -> rounded
    3, 5, 6, 7, 10, 12, 13, 14, 15."""
    stages = long_cycle_schedule(steps=[0, 4, 8], epochs=10, frames=8, crop=64,
                                 long_factors=[(0.25, R), (0.5, R), (0.5, 1), (1, 1)], short_factors=[0.5, R],
                                 short_cycle=True, epoch_factor=1.5)
    assert [s.end_epoch for s in stages] == [3, 5, 6, 7, 10, 12, 13, 14, 15]
    assert [(s.frames, s.crop, s.batch_factor) for s in stages] == \
        [(2, 45, 8), (4, 45, 4), (4, 64, 2), (8, 64, 1)] * 2 + [(8, 64, 1)]
    assert [s.lr_step for s in stages] == [0] * 4 + [1] * 4 + [2]
    assert [s.fine_tune for s in stages] == [False] * 8 + [True]
    # short cycles: crops 32, round(45.25) = 45, the stage's; batch x round((S / s)^2)
    assert stages[0].cycle == ((16, 32), (8, 45), (8, 45))   # (45/32)^2 = 1.98 -> 2, (45/45.25)^2 -> 1
    assert stages[1].cycle == ((8, 32), (4, 45), (4, 45))
    assert stages[2].cycle == ((8, 32), (4, 45), (2, 64))    # (64/32)^2 = 4, (64/45.25)^2 = 2
    assert stages[3].cycle == stages[8].cycle == ((4, 32), (2, 45), (1, 64))
    # plain spans: each stage a quarter of its LR step, fine-tuning [8, 10]
    assert [(s.plain_start, s.plain_end) for s in stages] == \
        [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (6, 7), (7, 8), (8, 10)]


def test_long_cycle_alone_table_worked_by_hand():
    """No short cycle: avg = the batch factors 8, 4, 2, 1 (sum 15); LR steps [0, 6], 8 epochs,
    factor 1: stage epochs 6 * [8, 4, 2, 1] / 15 = 3.2, 1.6, 0.8, 0.4; saving 15/4; fine-tuning
    2 / (15/4) * 1 = 8/15. Raw total 6.533 -> stretch 8 / 6.533 = 1.2245; cumulative 3.918,
    5.878, 6.857, 7.347, 8 -> 4, 6, 7, 7, 8."""
    stages = long_cycle_schedule(steps=[0, 6], epochs=8, frames=8, crop=64,
                                 long_factors=[(0.25, R), (0.5, R), (0.5, 1), (1, 1)], short_factors=[0.5, R],
                                 short_cycle=False, epoch_factor=1.0)
    assert [s.end_epoch for s in stages] == [4, 6, 7, 7, 8]
    assert [s.cycle for s in stages] == [((8, 45),), ((4, 45),), ((2, 64),), ((1, 64),), ((1, 64),)]


def test_plan_steps_and_lr_per_stage_by_hand(tmp_path):
    """The first table's plan with a multistep LR (base 0.1, gamma 0.1, milestones 4 and 8 = the
    LR steps), 2 clips per default batch and 48 clips per epoch. Whole batches per epoch:
    stage 1 (32, 16, 16 clips): 32+16 = 48 -> 2; stage 2 (16, 8, 8): 16+8+8+16 = 48 -> 4;
    stage 3 (16, 8, 4): 16+8+4+16 = 44, +8 > 48 -> 4; stages 4 and fine-tuning (8, 4, 2): 3 cycles
    = 42, +8 > 48 -> 9. LR = base x gamma^step x batch factor; fine-tuning gamma^2."""
    cfg = load_config(tiny_config(str(tmp_path / "c.yaml"), str(tmp_path), epochs=10, extra={
        "model.num_frames": 8, "model.crop_size": 64,
        "learning_rate": {"type": "multistep", "base_lr": 0.1, "gamma": 0.1, "milestones": [4, 8]},
        "train.multigrid": {"long_cycle": True, "short_cycle": True}}), resolve=False)
    plan = build_plan(cfg, default_batch=2, samples_per_shard=48)
    assert plan.epochs == 15
    assert [plan.steps_in_epoch(e) for e in range(15)] == [2, 2, 2, 4, 4, 4, 9, 2, 2, 2, 4, 4, 4, 9, 9]
    assert plan.batches(0) == [(32, 2, 32), (16, 2, 45)]
    assert plan.batches(6) == [(8, 8, 32), (4, 8, 45), (2, 8, 64)] * 3
    assert plan.steps_before(7) == 2 * 3 + 4 * 2 + 4 + 9
    per_stage = [(0.8, 6), (0.4, 8), (0.2, 4), (0.1, 9), (0.08, 6), (0.04, 8), (0.02, 4), (0.01, 9), (0.001, 9)]
    expected = np.concatenate([np.full(n, lr) for lr, n in per_stage])
    lr = plan.learning_rates(lambda e, n: _multistep(e, n), 10)
    np.testing.assert_allclose(lr, expected, rtol=1e-6)
    # one graph per distinct batch, in order of first use (stage 3 adds only its 64 px batch)
    assert plan.shapes() == [(32, 2, 32), (16, 2, 45), (16, 4, 32), (8, 4, 45), (4, 4, 64),
                             (8, 8, 32), (4, 8, 45), (2, 8, 64)]


def _multistep(epochs, n):
    from src.engine.lr_schedule import multistep
    return multistep(base_lr=0.1, epochs=epochs, steps_per_epoch=n, milestones=[4, 8], gamma=0.1)


def test_short_cycle_alone_stretches_a_cosine_schedule(tmp_path):
    """Short cycle only: epochs x 1.5 (4 -> 6), one stage over the plain span [0, 4]; step j of the
    N steps has the plain cosine's rate at 4 j / N: 0.05 (1 + cos(pi t / 4))."""
    cfg = load_config(tiny_config(str(tmp_path / "c.yaml"), str(tmp_path), epochs=4, extra={
        "learning_rate": {"type": "cosine_warmup", "base_lr": 0.1, "warmup_epochs": 0.0, "eta_min": 0.0},
        "train.multigrid": {"short_cycle": True}}), resolve=False)
    plan = build_plan(cfg, default_batch=2, samples_per_shard=24)
    # crops 16, 23 (32/sqrt 2 = 22.6), 32; batches 2 x (4, 2, 1) clips: 8+4+2 = 14, +8 > 24 -> 4 steps
    assert plan.epochs == 6 and plan.batches(0) == [(8, 4, 16), (4, 4, 23), (2, 4, 32), (8, 4, 16)]
    from src.engine.lr_schedule import cosine_warmup
    lr = plan.learning_rates(lambda e, n: cosine_warmup(base_lr=0.1, epochs=e, steps_per_epoch=n), 4)
    t = 4.0 * np.arange(24) / 24
    np.testing.assert_allclose(lr, 0.05 * (1 + np.cos(np.pi * t / 4)), atol=0.1 * math.pi / 8 / LR_GRID)


# ------------------------------------------------------------------------------ the loader
def test_loader_yields_the_planned_shapes(tmp_path):
    """24 clips of 4 frames at 32 px, long cycle (0.5, sqrt 1/2) then (1, 1), short cycle on,
    LR step at plain epoch 1 of 2 (factor 1.5 -> 3 epochs). Hand: (T2, S23): factors 8, 4,
    round(4096/1058) = 4 -> avg 16/3; (T4, S32): 4, 2, 1 -> avg 7/3; stage epochs 16/23, 7/23 and
    fine-tuning 14/23, stretched by 69/37: ends 1.30, 1.86, 3 -> 1, 2, 3. Default batch 2:
    epoch 1 batches 16 clips 2x16x16, 8 clips 2x23x23 (24 clips); epochs 2-3 8x16, 4x23, 2x32, 8x16."""
    data = make_tiny_dataset(str(tmp_path / "data"), per_class=8, frames=8, size=32)
    cfg = _cfg(tmp_path, data, **{"train.epochs": 2, "train.multigrid": {
        "long_cycle": True, "short_cycle": True, "long_cycle_factors": [[0.5, R], [1.0, 1.0]], "steps": [1]}})
    from src.data import create_loader
    from src.data.multigrid import MultigridLoader
    base = create_loader(cfg, "train", output_dir=str(tmp_path / "out"))
    plan = build_plan(cfg, default_batch=base.batch_size, samples_per_shard=len(base.source))
    loader = MultigridLoader(base, plan, seed=0)
    expected = {0: [(16, 2, 16), (8, 2, 23)], 1: [(8, 4, 16), (4, 4, 23), (2, 4, 32), (8, 4, 16)]}
    expected[2] = expected[1]
    labels = {i: lab for i, (_, lab) in enumerate(base.video_dataset.samples)}
    for epoch, shapes in expected.items():
        loader.set_epoch(epoch)
        got = [(v.shape, lab) for v, lab in loader.dataset.create_tuple_iterator(num_epochs=1, output_numpy=True)]
        assert [s[0] for s in got] == [(b, 3, t, c, c) for b, t, c in shapes]
        ids = [ids for ids, _ in loader.epoch_batches(epoch)]
        for (_, lab), idx in zip(got, ids):
            assert lab.tolist() == [labels[int(i)] for i in idx]
        used = np.concatenate(ids)
        assert len(set(used.tolist())) == len(used)  # no clip twice in an epoch
    # the (2 frames, 23 px) source: twice the sampling rate (same time span), short side 32 -> 23
    src = loader.source_for(2, 23)
    assert src.dataset.sampling_rate == 2 * base.source.dataset.sampling_rate and src.dataset.num_frames == 2
    assert [getattr(op, "size", None) for op in src.transform.ops][:2] == [23, 23]
    assert base.source.dataset.num_frames == 4  # the default source is unchanged


def test_loader_mixes_every_batch_at_its_own_shape(tmp_path):
    """MixUp (CutMix off, prob 1) with multigrid, SlowFast's combination: every batch, whatever its
    shape, is ``lam x + (1 - lam) x reversed`` of the same batch unmixed (precise BN's switch),
    with targets ``lam onehot(y) + (1 - lam) onehot(y reversed)``; lambda is recovered from the
    clips and is drawn anew per batch."""
    data = make_tiny_dataset(str(tmp_path / "data"), per_class=8, frames=8, size=32)
    cfg = _cfg(tmp_path, data, **{"train.epochs": 2, "train.multigrid": {
        "long_cycle": True, "short_cycle": True, "long_cycle_factors": [[0.5, R], [1.0, 1.0]], "steps": [1]},
        "data_loader.train.mixup": {"enable": True, "mixup_alpha": 0.8, "cutmix_alpha": 0.0, "prob": 1.0}})
    from src.data import create_loader
    from src.data.multigrid import MultigridLoader
    base = create_loader(cfg, "train", output_dir=str(tmp_path / "out"))
    plan = build_plan(cfg, default_batch=base.batch_size, samples_per_shard=len(base.source))
    loader = MultigridLoader(base, plan, seed=0)
    assert "MixUp/CutMix on" in loader.augment_note()
    loader.set_epoch(1)
    mixed = list(loader.dataset.create_tuple_iterator(num_epochs=1, output_numpy=True))
    loader.batch_mix.enabled = False
    loader.set_epoch(1)
    plain = list(loader.dataset.create_tuple_iterator(num_epochs=1, output_numpy=True))
    loader.batch_mix.enabled = True
    assert [v.shape for v, _ in plain] == [(8, 3, 4, 16, 16), (4, 3, 4, 23, 23), (2, 3, 4, 32, 32), (8, 3, 4, 16, 16)]
    lams = []
    for (mv, mt), (pv, pl) in zip(mixed, plain):
        assert mv.shape == pv.shape and mt.shape == (len(pl), 3) and mt.dtype == np.float32
        x, xr = pv.astype(np.float64), pv[::-1].astype(np.float64)
        lam = float(np.sum((mv - xr) * (x - xr)) / np.sum((x - xr) ** 2))  # least squares for lam
        one = np.eye(3)[pl]
        np.testing.assert_allclose(mv, lam * x + (1 - lam) * xr, atol=1e-4)
        np.testing.assert_allclose(mt, lam * one + (1 - lam) * one[::-1], atol=1e-5)
        lams.append(lam)
    assert all(0.0 <= lam <= 1.0 for lam in lams) and len({round(lam, 6) for lam in lams}) == len(lams)


def test_train_py_runs_multigrid_with_mixup(tmp_path):
    """train.py end to end with multigrid (long cycle: 8 clips of 2 x 45 x 45, then 2 of
    4 x 64 x 64) and MixUp/CutMix, PyNative mode: the planned steps run on soft targets, the loss
    is finite and the run validates."""
    data = make_tiny_dataset(str(tmp_path / "data"), per_class=8, frames=8, size=64)
    ops = [{"type": "ShortSideScale", "size": 64}, {"type": "SpatialCrops", "size": 64, "num_crops": 1},
           {"type": "Rescale"}, {"type": "Normalize", "mean": [0.45] * 3, "std": [0.225] * 3}, {"type": "ToCTHW"}]
    cfg = tiny_config(str(tmp_path / "cfg.yaml"), data, epochs=2, extra={
        "model.crop_size": 64, "data_loader.train.map.operations": ops, "data_loader.eval.map.operations": ops,
        "context.mode": 1, "train.max_steps_per_epoch": 2, "train.eval_interval": 3,
        "train.multigrid": {"long_cycle": True, "long_cycle_factors": [[0.5, R], [1.0, 1.0]], "steps": [1],
                            "precise_bn_batches": 1},
        "data_loader.train.mixup": {"enable": True}})
    out = tmp_path / "run"
    r = run_py(["train.py", "--config", cfg, "--output", str(out)])
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert "MixUp/CutMix on (mixup_alpha 0.8, cutmix_alpha 1, prob 1, switch_prob 0.5)" in r.stdout
    assert "multigrid training:" in r.stdout
    recs = [json.loads(line) for line in open(out / "metrics.jsonl") if line.strip()]
    steps = [e for e in recs if e["kind"] == "step"]
    assert len(steps) == 6 and all(0.3 < e["loss"] < 3.0 for e in steps)  # soft-target CE, 3 classes
    epochs = [e for e in recs if e["kind"] == "epoch"]
    assert epochs[-1]["val_num_videos"] == 3 and 0.0 <= epochs[-1]["val_top1"] <= 1.0


# ------------------------------------------------------------------------------ the head
@pytest.mark.usefixtures("pynative")
@pytest.mark.parametrize("shape", [(4, 64), (2, 45), (4, 32), (2, 32)])
def test_x3d_head_pools_globally_at_multigrid_shapes(shape):
    """The head's window (T0, ceil(S0/32), ceil(S0/32)) = (4, 2, 2) is clipped to the res5 map, so
    at every multigrid shape (all at most the default) it is the mean over (T, H, W), as
    SlowFast's adaptive pool under multigrid; (4, 64) is the default clip, whose window is the
    whole map as before. Reference: the head's cells around a numpy mean."""
    from src.models.x3d import create_x3d
    net = create_x3d(num_classes=3, num_frames=4, crop_size=64, width_factor=0.5, depth_factor=0.5, head_dim=32,
                     dropout_rate=0.0, head_activation="none")
    net.set_train(False)
    t, s = shape
    x = Tensor(np.random.default_rng(0).standard_normal((2, 3, t, s, s)).astype(np.float32))
    out = net(x).asnumpy()
    h = net.head
    feat = net.forward_features(x)
    z = h.relu(h.conv_5_bn(h.conv_5(feat))).asnumpy()
    pooled = Tensor(z.mean(axis=(2, 3, 4), keepdims=True))
    ref = h.projection(h.relu(h.lin_5(pooled)).reshape(2, -1)).asnumpy()
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------ compile retry
class _FlakyCell:
    """Compiles (adds its shape to ``compile_cache``) on the first good call at each shape; the
    first ``fail_compiles`` compile attempts raise before adding, as MindSpore's parser glitch."""

    def __init__(self, fail_compiles=1, fail_run_at=None):
        self.compile_cache, self.calls = set(), []
        self.fail_compiles, self.fail_run_at = fail_compiles, fail_run_at
        self.accumulate_steps = 1

    def __call__(self, x):
        self.calls.append(x.shape)
        if x.shape not in self.compile_cache:
            if self.fail_compiles:
                self.fail_compiles -= 1
                raise RuntimeError("Unsupported exception type: UserError.\nmore")
            self.compile_cache.add(x.shape)
        if x.shape == self.fail_run_at:
            raise RuntimeError("a run-time failure")
        return len(self.calls)


def test_a_failed_first_compile_is_retried_and_nothing_else():
    from src.engine.multigrid import RetryFirstCompile
    lines = []
    cell = _FlakyCell(fail_compiles=1)
    step = RetryFirstCompile(cell, log=lines.append)
    a, b = np.zeros((2, 3)), np.zeros((4, 3))
    assert step(a) == 2 and cell.calls == [(2, 3), (2, 3)]  # failed compile, then compiled and ran
    assert len(lines) == 1 and "failed (Unsupported exception type: UserError.)" in lines[0] and "(2/4)" in lines[0]
    assert step(a) == 3 and step(b) == 4 and len(lines) == 1  # no failure: one call each
    assert step.accumulate_steps == 1  # everything else is the cell's
    cell.fail_run_at = (2, 3)  # a failure at a compiled shape is the step's own: raised at once
    with pytest.raises(RuntimeError, match="run-time"):
        step(a)
    assert cell.calls[-2:] == [(4, 3), (2, 3)]
    stubborn = RetryFirstCompile(_FlakyCell(fail_compiles=5), log=lines.append, tries=3)
    with pytest.raises(RuntimeError, match="Unsupported"):
        stubborn(a)
    assert len(stubborn.calls) == 3
    grown = _FlakyCell(fail_compiles=0, fail_run_at=(2, 3))  # compiled, then failed running: not retried
    with pytest.raises(RuntimeError, match="run-time"):
        RetryFirstCompile(grown, log=lines.append)(a)
    assert len(grown.calls) == 1


# ------------------------------------------------------------------------------ training
def _compiles(log):
    return re.findall(r"multigrid: graph \d+ compiled for batches of (\d+x\d+x\d+x\d+)", log)


@pytest.mark.slow
def test_graph_mode_run_compiles_once_per_shape_and_resumes_mid_schedule(tmp_path):
    """64 px clips of 4 frames. Long cycle (0.5, sqrt 1/2), (1, 1) without short cycle, plain epochs
    2 with an LR step at 1, factor 1.5. Hand: batch factors round(16384/(2*45^2)) = 4 and 1 (avg 4, 1, sum 5); step 0:
    4/5 and 1/5 clip epochs; fine-tuning 1 / (5/2) * 1 = 0.4; stretch 3 / 1.4: ends 1.71, 2.14, 3
    -> 2, 2, 3. So epochs 1-2 train 8 clips of 2x45x45 (24 clips: 3 batches, capped at 2 by
    max_steps_per_epoch), epoch 3 2 clips of 4x64x64: two graphs, each compiled once although
    the first shape runs in two epochs. Resuming from epoch 1 continues at step 2 with the small
    shape, and gives the uninterrupted run's weights bit for bit."""
    data = make_tiny_dataset(str(tmp_path / "data"), per_class=8, frames=8, size=64)
    ops = [{"type": "ShortSideScale", "size": 64}, {"type": "SpatialCrops", "size": 64, "num_crops": 1},
           {"type": "Rescale"}, {"type": "Normalize", "mean": [0.45] * 3, "std": [0.225] * 3}, {"type": "ToCTHW"}]
    cfg = tiny_config(str(tmp_path / "cfg.yaml"), data, epochs=2, extra={
        "model.crop_size": 64, "data_loader.train.map.operations": ops, "data_loader.eval.map.operations": ops,
        "context.deterministic": True, "train.max_steps_per_epoch": 2, "train.eval_interval": 0,
        "train.keep_checkpoint_max": 5,
        "train.multigrid": {"long_cycle": True, "long_cycle_factors": [[0.5, R], [1.0, 1.0]], "steps": [1],
                            "precise_bn_batches": 2}})
    ref, res = tmp_path / "ref", tmp_path / "res"
    r = run_py(["train.py", "--config", cfg, "--output", str(ref)])
    assert r.returncode == 0, r.stderr[-3000:]
    assert _compiles(r.stdout) == ["8x2x45x45", "2x4x64x64"], r.stdout[-3000:]
    assert "multigrid: 2 graph(s) compiled, one per batch shape" in r.stdout
    assert "precise BN: statistics recomputed over 2 batches" in r.stdout
    recs = [json.loads(line) for line in open(ref / "metrics.jsonl") if line.strip()]
    assert [(e["epoch"], e["global_step"]) for e in recs if e["kind"] == "epoch"] == [(1, 2), (2, 4), (3, 6)]
    # LR: cosine over the plain 2 epochs (warmup 1 epoch from 0.01 to the cosine's 0.025 at 1), x4 in
    # stage 1 (plain [0, 0.5] in 4 steps: 0, 0.125, 0.25, 0.375), x1 in fine-tuning ([1, 2] in 2 steps)
    warm = lambda t: 0.01 + (0.025 - 0.01) * t  # noqa: E731
    cos = lambda t: 0.025 * (1 + math.cos(math.pi * t / 2))  # noqa: E731
    expect = [4 * warm(t) for t in (0, 0.125, 0.25, 0.375)] + [cos(1.0), cos(1.5)]
    lrs = [e["lr"] for e in recs if e["kind"] == "step"]
    np.testing.assert_allclose(lrs, expect, rtol=1e-3)

    r = run_py(["train.py", "--config", cfg, "--output", str(res), "--resume", str(ref / "epoch0001.ckpt")])
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resumed from" in r.stdout and "epoch 1, step 2" in r.stdout
    assert _compiles(r.stdout) == ["8x2x45x45", "2x4x64x64"]
    assert "multigrid: epoch 2 starts stage 1/3" in r.stdout
    from src.engine.checkpoint import read_checkpoint
    a, meta_a = read_checkpoint(str(ref / "last.ckpt"))
    b, meta_b = read_checkpoint(str(res / "last.ckpt"))
    assert (meta_a["epoch"], meta_a["global_step"]) == (meta_b["epoch"], meta_b["global_step"]) == (3, 6)
    differ = [k for k in a if a[k].asnumpy().tobytes() != b[k].asnumpy().tobytes()]
    assert not differ, differ[:8]


def test_models_say_whether_they_train_on_smaller_clips():
    """train.py refuses multigrid for a network that answers smaller_clip_problem(); the answer
    must match what the network does on a clip half its build size."""
    import mindspore as ms
    from src.models import build_model

    ms.set_device("CPU")
    x3d = build_model({"type": "x3d_xs", "num_classes": 3, "num_frames": 4, "crop_size": 64, "width_factor": 0.5,
                       "depth_factor": 0.5, "head_dim": 16})
    resnet = build_model({"type": "e3d_resnet", "depth": 10, "shortcut": "A", "num_classes": 3, "num_frames": 16,
                          "crop_size": 64})
    assert x3d.smaller_clip_problem() is None
    assert "fixed for one clip size" in resnet.smaller_clip_problem()
    small = ms.Tensor(np.zeros((1, 3, 4, 32, 32), np.float32))
    x3d.set_train(False)
    assert x3d(small).shape == (1, 3)
    resnet.set_train(False)
    with pytest.raises(Exception):
        resnet(ms.Tensor(np.zeros((1, 3, 8, 32, 32), np.float32)))
