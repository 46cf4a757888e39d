"""Per-step learning-rate schedules (registry ``LR_SCHEDULES``).

Each builder returns a float32 array with one value per training step (``epochs x
steps_per_epoch``); the optimizer indexes it with its global step, so resuming at step ``s``
continues with exactly ``lr[s]``. When ``reference_batch_size`` is set, every rate of the schedule
(``base_lr``, ``warmup_start_lr``, ``eta_min``) is scaled by ``global_batch / reference_batch_size``
together, as SlowFast scales BASE_LR, WARMUP_START_LR and COSINE_END_LR (the linear scaling rule).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

from ..registry import LR_SCHEDULES


def scaled_lr(base_lr: float, global_batch_size: int, reference_batch_size: Optional[int]) -> float:
    """Linear scaling: ``base_lr`` is the rate for ``reference_batch_size`` clips per step."""
    if not reference_batch_size:
        return float(base_lr)
    return float(base_lr) * global_batch_size / float(reference_batch_size)


def _steps(epochs: int, steps_per_epoch: int) -> np.ndarray:
    if epochs < 1 or steps_per_epoch < 1:
        raise ValueError(f"learning_rate: need train.epochs >= 1 and >= 1 step per epoch, "
                         f"got {epochs} epochs x {steps_per_epoch} steps")
    return np.arange(epochs * steps_per_epoch, dtype=np.float64)


@LR_SCHEDULES.register("cosine_warmup")
def cosine_warmup(*, base_lr: float, epochs: int, steps_per_epoch: int, warmup_epochs: float = 0.0,
                  warmup_start_lr: float = 0.0, eta_min: float = 0.0, global_batch_size: int = 1,
                  reference_batch_size: Optional[int] = None) -> np.ndarray:
    """SlowFast's schedule, per step: cosine from the (scaled) base LR to ``eta_min`` over all
    epochs; during the first ``warmup_epochs`` a line from ``warmup_start_lr`` to the cosine value
    at the end of warmup."""
    lr0 = scaled_lr(base_lr, global_batch_size, reference_batch_size)
    warmup_start_lr = scaled_lr(warmup_start_lr, global_batch_size, reference_batch_size)
    eta_min = scaled_lr(eta_min, global_batch_size, reference_batch_size)
    t = _steps(epochs, steps_per_epoch) / steps_per_epoch  # epoch as a float, like SlowFast's cur_epoch
    cosine = eta_min + (lr0 - eta_min) * (np.cos(np.pi * t / epochs) + 1.0) * 0.5
    if warmup_epochs > 0:
        end = eta_min + (lr0 - eta_min) * (math.cos(math.pi * warmup_epochs / epochs) + 1.0) * 0.5
        warm = warmup_start_lr + (end - warmup_start_lr) * t / warmup_epochs
        cosine = np.where(t < warmup_epochs, warm, cosine)
    return cosine.astype(np.float32)


@LR_SCHEDULES.register("constant")
def constant(*, base_lr: float, epochs: int, steps_per_epoch: int, global_batch_size: int = 1,
             reference_batch_size: Optional[int] = None, warmup_epochs: float = 0.0,
             warmup_start_lr: float = 0.0) -> np.ndarray:
    """A constant rate, optionally after a linear warmup from ``warmup_start_lr``."""
    lr0 = scaled_lr(base_lr, global_batch_size, reference_batch_size)
    warmup_start_lr = scaled_lr(warmup_start_lr, global_batch_size, reference_batch_size)
    t = _steps(epochs, steps_per_epoch) / steps_per_epoch
    lr = np.full_like(t, lr0)
    if warmup_epochs > 0:
        lr = np.where(t < warmup_epochs, warmup_start_lr + (lr0 - warmup_start_lr) * t / warmup_epochs, lr)
    return lr.astype(np.float32)


@LR_SCHEDULES.register("multistep")
def multistep(*, base_lr: float, epochs: int, steps_per_epoch: int, milestones: Sequence[float] = (),
              gamma: float = 0.1, first_epoch: int = 0, global_batch_size: int = 1,
              reference_batch_size: Optional[int] = None, warmup_epochs: float = 0.0,
              warmup_start_lr: float = 0.0) -> np.ndarray:
    """``base_lr * gamma ** k`` in epochs at or past the k-th milestone, optionally after a linear
    warmup. ``first_epoch`` is the number the milestones give the first epoch: 0 as PyTorch's
    ``MultiStepLR`` and mindcv (milestone m: the rate drops after m epochs), 1 as the
    Efficient-3DCNNs reference's ``adjust_learning_rate`` (epoch m, counted from 1, is the first
    at the lower rate: the drop comes after m - 1 epochs)."""
    if first_epoch not in (0, 1):
        raise ValueError(f"learning_rate.first_epoch: expected 0 or 1, got {first_epoch!r}")
    lr0 = scaled_lr(base_lr, global_batch_size, reference_batch_size)
    warmup_start_lr = scaled_lr(warmup_start_lr, global_batch_size, reference_batch_size)
    t = _steps(epochs, steps_per_epoch) / steps_per_epoch
    epoch_number = np.floor(t + 1e-9) + first_epoch  # the number of the epoch each step is in
    k = np.searchsorted(np.asarray(sorted(milestones), np.float64), epoch_number, side="right")
    lr = lr0 * np.power(gamma, k)
    if warmup_epochs > 0:
        lr = np.where(t < warmup_epochs, warmup_start_lr + (lr[0] - warmup_start_lr) * t / warmup_epochs, lr)
    return lr.astype(np.float32)
