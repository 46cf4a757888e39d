"""LR schedules against hand-computed values (built through the registry, as train.py does)."""
import math

import numpy as np
import pytest

import src.engine  # noqa: F401
from src.registry import LR_SCHEDULES, build_from_cfg


def cosine_cfg(**kw):
    cfg = {"type": "cosine_warmup", "base_lr": 0.1, "warmup_epochs": 2.0, "warmup_start_lr": 0.01, "eta_min": 0.0}
    cfg.update(kw)
    return cfg


def test_cosine_warmup_matches_slowfast_by_hand():
    lr = build_from_cfg(cosine_cfg(), LR_SCHEDULES, epochs=10, steps_per_epoch=4)
    assert lr.shape == (40,) and lr.dtype == np.float32
    end_of_warmup = 0.1 * (math.cos(math.pi * 2 / 10) + 1) / 2       # cosine value at epoch 2
    assert lr[0] == pytest.approx(0.01)                               # warmup starts at warmup_start_lr
    # step 5 = epoch 1.25: linear from 0.01 towards the cosine value at epoch 2
    assert lr[5] == pytest.approx(0.01 + (end_of_warmup - 0.01) * 1.25 / 2, rel=1e-6)
    assert lr[8] == pytest.approx(end_of_warmup, rel=1e-6)            # warmup ends on the cosine curve
    assert lr[20] == pytest.approx(0.05, rel=1e-6)                    # mid-cosine: epoch 5 of 10 -> base/2
    assert lr[39] == pytest.approx(0.1 * (math.cos(math.pi * 9.75 / 10) + 1) / 2, rel=1e-5)  # last step
    assert np.all(np.diff(lr[8:]) < 0)


def test_linear_scaling_with_global_batch():
    lr = build_from_cfg(cosine_cfg(warmup_epochs=0.0, reference_batch_size=128), LR_SCHEDULES,
                        epochs=4, steps_per_epoch=2, global_batch_size=32)
    assert lr[0] == pytest.approx(0.1 * 32 / 128)


def test_constant_and_multistep():
    lr = build_from_cfg({"type": "constant", "base_lr": 0.3}, LR_SCHEDULES, epochs=2, steps_per_epoch=3)
    assert np.allclose(lr, 0.3)
    lr = build_from_cfg({"type": "multistep", "base_lr": 1.0, "milestones": [1, 3], "gamma": 0.1},
                        LR_SCHEDULES, epochs=4, steps_per_epoch=2)
    assert np.allclose(lr, [1, 1, 0.1, 0.1, 0.1, 0.1, 0.01, 0.01])


def test_multistep_counts_epochs_from_one_like_the_efficient_3dcnns_reference():
    # okankop main.py: for epoch i = 1..n_epochs, lr = 0.1 * 0.1 ** #(lr_steps <= i), steps
    # [40, 55, 65, 70, 200, 250]. By hand, per 1-based epoch: 1..39 -> 0.1, 40..54 -> 0.01,
    # 55..64 -> 1e-3, 65..69 -> 1e-4, 70..199 -> 1e-5, 200..249 -> 1e-6, 250 -> 1e-7.
    cfg = {"type": "multistep", "base_lr": 0.1, "milestones": [40, 55, 65, 70, 200, 250], "first_epoch": 1}
    lr = build_from_cfg(cfg, LR_SCHEDULES, epochs=250, steps_per_epoch=3)
    by_epoch = {e: lr[3 * (e - 1): 3 * e] for e in range(1, 251)}  # the 3 steps of 1-based epoch e
    expected = {1: 0.1, 39: 0.1, 40: 0.01, 54: 0.01, 55: 1e-3, 64: 1e-3, 65: 1e-4, 69: 1e-4, 70: 1e-5,
                199: 1e-5, 200: 1e-6, 249: 1e-6, 250: 1e-7}
    for epoch, value in expected.items():
        assert by_epoch[epoch] == pytest.approx([value] * 3, rel=1e-5), epoch
    # PyTorch / mindcv numbering (the default): the drop comes one epoch later, after m epochs
    lr0 = build_from_cfg(dict(cfg, first_epoch=0), LR_SCHEDULES, epochs=250, steps_per_epoch=3)
    assert lr0[3 * 39] == pytest.approx(0.1) and lr0[3 * 40] == pytest.approx(0.01, rel=1e-5)
    with pytest.raises(ValueError, match="first_epoch"):
        build_from_cfg(dict(cfg, first_epoch=2), LR_SCHEDULES, epochs=250, steps_per_epoch=3)


def test_bad_schedule_arguments_fail_clearly():
    with pytest.raises(ValueError, match="need train.epochs >= 1"):
        build_from_cfg(cosine_cfg(), LR_SCHEDULES, epochs=0, steps_per_epoch=4)
    with pytest.raises(KeyError, match="unknown key 'learning_rate.eta_max'"):
        build_from_cfg(cosine_cfg(eta_max=1.0), LR_SCHEDULES, where="learning_rate", epochs=1, steps_per_epoch=1)


@pytest.mark.parametrize("global_batch", [16, 128, 256])
def test_all_rates_scale_together_with_the_global_batch(global_batch):
    # X3D-XS recipe: base 0.1, warmup from 0.01 over 35 of 300 epochs, end 0, for a batch of 128
    # (SlowFast scales BASE_LR, WARMUP_START_LR and COSINE_END_LR by the same factor)
    cfg = cosine_cfg(warmup_epochs=35.0, eta_min=0.001, reference_batch_size=128)
    lr = build_from_cfg(cfg, LR_SCHEDULES, epochs=300, steps_per_epoch=1, global_batch_size=global_batch)
    k = {16: 0.125, 128: 1.0, 256: 2.0}[global_batch]
    assert lr[0] == pytest.approx(0.01 * k, rel=1e-6)            # warmup start, scaled
    cos35 = 0.001 * k + (0.1 * k - 0.001 * k) * (math.cos(math.pi * 35 / 300) + 1) / 2
    assert lr[35] == pytest.approx(cos35, rel=1e-5)              # warmup ends on the scaled cosine
    assert lr[150] == pytest.approx((0.1 * k + 0.001 * k) / 2, rel=1e-5)  # mid-cosine
    assert lr[299] == pytest.approx(0.001 * k + 0.099 * k * (math.cos(math.pi * 299 / 300) + 1) / 2, rel=1e-4)
    # the warmup rises (it no longer runs flat or downwards at small batches)
    assert lr[34] > lr[0]
