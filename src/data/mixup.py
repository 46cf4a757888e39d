"""MixUp / CutMix of a train batch of clips, with soft targets (registry ``BATCH_TRANSFORMS``).

The batch-level rule of SlowFast's ``datasets/mixup.py`` and timm's ``Mixup`` (``mode="batch"``):
one draw per batch decides whether it is mixed at all (``prob``), which of MixUp or CutMix
(``switch_prob`` when both alphas are > 0) and lambda ~ Beta(alpha, alpha). Clip ``i`` is mixed
with clip ``N - 1 - i`` (the batch reversed). MixUp blends whole clips; CutMix pastes one box of
the partner into every frame of the clip (the same box for all frames and all clips of the batch),
the box is clipped at the frame borders and lambda becomes ``1 - box area / frame area``. The
targets are ``lam * onehot_s(y) + (1 - lam) * onehot_s(y reversed)`` with label smoothing ``s``
folded in (``on = 1 - s + s / K``, ``off = s / K``), so a batch that is not mixed still carries
smoothed one-hot targets, as in SlowFast and timm. The loss is then the soft-target cross-entropy
(``src/engine/losses.py``).

Runs on numpy batches inside the data pipeline's batch op (``src/data/pipeline.py``), seeded by
(seed, epoch, shard, batch number), so the graph-mode train step only sees float32 (N, K) labels.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from ..errors import UserError
from ..registry import BATCH_TRANSFORMS

Box = Tuple[int, int, int, int]  # (y0, y1, x0, x1), rows y0..y1-1 and columns x0..x1-1


def smoothed_one_hot(labels: np.ndarray, num_classes: int, smoothing: float = 0.0) -> np.ndarray:
    """(N,) int labels -> (N, K) float32 targets ``1 - s + s/K`` at the label, ``s/K`` elsewhere."""
    labels = np.asarray(labels, np.int64).reshape(-1)
    off = smoothing / num_classes
    out = np.full((labels.size, num_classes), off, np.float32)
    out[np.arange(labels.size), labels] = 1.0 - smoothing + off
    return out


def mix_targets(labels: np.ndarray, num_classes: int, lam: float, smoothing: float = 0.0) -> np.ndarray:
    """``lam * onehot_s(labels) + (1 - lam) * onehot_s(labels reversed)``, float32 (N, K)."""
    one_hot = smoothed_one_hot(labels, num_classes, smoothing)
    return (lam * one_hot + (1.0 - lam) * one_hot[::-1]).astype(np.float32)


def cutmix_box(height: int, width: int, lam: float, rng: np.random.Generator) -> Tuple[Box, float]:
    """A CutMix box for a lambda drawn from the Beta law, and the lambda its clipped area gives.

    SlowFast's and timm's ``rand_bbox``: sides ``int(H sqrt(1 - lam))`` and ``int(W sqrt(1 - lam))``
    around a uniform centre, each edge clipped to the frame; the returned lambda is
    ``1 - (clipped area) / (H W)``."""
    ratio = np.sqrt(1.0 - lam)
    cut_h, cut_w = int(height * ratio), int(width * ratio)
    cy, cx = int(rng.integers(0, height)), int(rng.integers(0, width))
    y0, y1 = int(np.clip(cy - cut_h // 2, 0, height)), int(np.clip(cy + cut_h // 2, 0, height))
    x0, x1 = int(np.clip(cx - cut_w // 2, 0, width)), int(np.clip(cx + cut_w // 2, 0, width))
    return (y0, y1, x0, x1), 1.0 - (y1 - y0) * (x1 - x0) / float(height * width)


def mixup_clips(videos: np.ndarray, lam: float) -> np.ndarray:
    """``lam * x + (1 - lam) * x reversed along the batch`` for (N, C, T, H, W) clips (float32)."""
    videos = np.asarray(videos, np.float32)
    out = np.subtract(videos, videos[::-1])  # as x_rev + lam (x - x_rev): one temporary array, not three
    out *= np.float32(lam)
    out += videos[::-1]
    return out


def cutmix_clips(videos: np.ndarray, box: Box) -> np.ndarray:
    """Clip ``i`` with the ``box`` of every frame taken from clip ``N - 1 - i`` (a copy)."""
    y0, y1, x0, x1 = box
    out = np.array(videos, np.float32, copy=True)
    out[..., y0:y1, x0:x1] = np.asarray(videos, np.float32)[::-1, ..., y0:y1, x0:x1]
    return out


@BATCH_TRANSFORMS.register("MixUpCutMix")
class MixUpCutMix:
    """MixUp or CutMix, chosen per batch, with soft (N, ``num_classes``) float32 targets.

    ``mixup_alpha`` / ``cutmix_alpha``: Beta parameters (0 turns that one off); ``prob``: chance a
    batch is mixed; ``switch_prob``: chance of CutMix when both are on; ``label_smoothing``: folded
    into the targets. SlowFast's ``MIXUP.ALPHA``, ``CUTMIX_ALPHA``, ``PROB``, ``SWITCH_PROB``,
    ``LABEL_SMOOTH_VALUE``; timm's ``mixup_alpha``, ``cutmix_alpha``, ``prob``, ``switch_prob``,
    ``label_smoothing``."""

    def __init__(self, num_classes: int, mixup_alpha: float = 0.8, cutmix_alpha: float = 1.0,
                 prob: float = 1.0, switch_prob: float = 0.5, label_smoothing: float = 0.0) -> None:
        where = "data_loader.train.mixup"
        if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
            raise UserError(f"{where}: num_classes must be a positive int, got {num_classes!r}")
        for key, value, hi in (("mixup_alpha", mixup_alpha, None), ("cutmix_alpha", cutmix_alpha, None),
                               ("prob", prob, 1.0), ("switch_prob", switch_prob, 1.0)):
            if not (value >= 0.0 and (hi is None or value <= hi)) or not np.isfinite(value):
                rng = "[0, 1]" if hi else ">= 0"
                raise UserError(f"{where}.{key}: expected a float {rng}, got {value!r}")
        if not 0.0 <= label_smoothing < 1.0:
            raise UserError(f"{where}.label_smoothing: expected a float in [0, 1), got {label_smoothing!r}")
        if mixup_alpha <= 0.0 and cutmix_alpha <= 0.0:
            raise UserError(f"{where}: mixup_alpha and cutmix_alpha are both 0; set one > 0 or turn "
                            f"{where}.enable off")
        self.num_classes = int(num_classes)
        self.mixup_alpha, self.cutmix_alpha = float(mixup_alpha), float(cutmix_alpha)
        self.prob, self.switch_prob = float(prob), float(switch_prob)
        self.label_smoothing = float(label_smoothing)

    def draw(self, rng: np.random.Generator) -> Tuple[float, bool]:
        """(lambda, use_cutmix) of one batch; lambda 1.0 = not mixed (SlowFast's order of draws)."""
        if rng.random() >= self.prob:
            return 1.0, False
        use_cutmix = self.mixup_alpha <= 0.0 or (self.cutmix_alpha > 0.0 and rng.random() < self.switch_prob)
        alpha = self.cutmix_alpha if use_cutmix else self.mixup_alpha
        return float(rng.beta(alpha, alpha)), use_cutmix

    def apply(self, videos: np.ndarray, labels: np.ndarray, lam: float, use_cutmix: bool,
              rng: Optional[np.random.Generator] = None) -> Tuple[np.ndarray, np.ndarray, float]:
        """Mix a (N, C, T, H, W) batch with a given lambda -> (clips, targets, the lambda used:
        CutMix's corrected by the clipped box)."""
        videos = np.asarray(videos, np.float32)
        if lam < 1.0:
            if use_cutmix:
                box, lam = cutmix_box(videos.shape[-2], videos.shape[-1], lam,
                                      rng if rng is not None else np.random.default_rng())
                videos = cutmix_clips(videos, box)
            else:
                videos = mixup_clips(videos, lam)
        return videos, mix_targets(labels, self.num_classes, lam, self.label_smoothing), lam

    def __call__(self, videos: np.ndarray, labels: np.ndarray,
                 rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
        """One draw, then :meth:`apply`: (clips, float32 (N, K) targets)."""
        if len(videos) < 2:
            raise UserError(f"data_loader.train.mixup: needs at least 2 clips per batch, got {len(videos)}")
        lam, use_cutmix = self.draw(rng)
        videos, targets, _ = self.apply(videos, labels, lam, use_cutmix, rng)
        return videos, targets


class MixedBatch:
    """The train pipeline's ``per_batch_map``: stack the items (or concatenate them, with
    ``clips_per_video`` > 1), then mix with a generator seeded by (seed, epoch, shard, batch
    number), so a resumed run redraws the same mixes. ``enabled = False`` (precise BN) batches
    the clips unmixed with hard int labels."""

    TAG = 0x6D6978  # keeps these seeds apart from the clips' (seed, epoch, sample) seeds

    def __init__(self, mix: MixUpCutMix, source, *, seed: int, shard_id: int, concat: bool) -> None:
        self.mix, self.source = mix, source
        self.seed, self.shard_id, self.concat = int(seed), int(shard_id), bool(concat)
        self.enabled = True

    def __call__(self, videos, labels, info) -> tuple:
        join = np.concatenate if self.concat else np.stack
        videos = join([np.asarray(v, np.float32) for v in videos])
        labels = join([np.asarray(l, np.int32) for l in labels])
        if not self.enabled:
            return videos, labels
        rng = np.random.default_rng([self.seed, int(self.source.epoch), self.shard_id,
                                     int(info.get_batch_num()), self.TAG])
        return self.mix(videos, labels, rng)


__all__ = ["MixUpCutMix", "MixedBatch", "smoothed_one_hot", "mix_targets", "cutmix_box", "mixup_clips",
           "cutmix_clips"]
