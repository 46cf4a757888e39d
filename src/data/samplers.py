"""Repeated augmentation: every video ``k`` times per epoch, the copies spread over the ranks.

DeiT's / timm's / mindcv's ``RepeatAugSampler`` scheme: a per-epoch permutation of the videos,
each video's ``k`` copies put one after the other, padded by wrap-around to a multiple of the
rank count, and rank ``r`` takes positions ``r, r + R, r + 2R, ...``. Consecutive copies thus land
on different ranks (with one rank, side by side in one batch). A sample index ``j`` is copy
``j % k`` of video ``j // k``; the pipeline seeds each sample's clip and crop by (seed, epoch,
video, copy), so the copies draw independently. Unlike DeiT and mindcv the epoch is not cut back
to ``len(dataset)`` samples: every video appears ``k`` times in every epoch (mmaction2's
``RepeatAugDataset`` and SlowFast's ``NUM_SAMPLE`` lengthen the epoch the same way).
"""
from __future__ import annotations

import math
from typing import Iterator

import numpy as np


class RepeatAugSampler:
    """Sample indices in ``[0, num_videos * repeats)`` for shard ``shard_id`` of ``num_shards``,
    shuffled per epoch by (seed, epoch) (``set_epoch``); ``len`` = ``ceil(num_videos * repeats /
    num_shards)``, the same on every rank. A Python sampler for ``GeneratorDataset(sampler=...)``."""

    TAG = 0x524550  # keeps the permutation's seed apart from the clips' (seed, epoch, sample) seeds

    def __init__(self, num_videos: int, repeats: int, *, num_shards: int = 1, shard_id: int = 0,
                 seed: int = 0, shuffle: bool = True) -> None:
        if num_videos < 1 or repeats < 1 or num_shards < 1 or not 0 <= shard_id < num_shards:
            raise ValueError(f"RepeatAugSampler: need num_videos, repeats, num_shards >= 1 and 0 <= shard_id < "
                             f"num_shards, got {num_videos}, {repeats}, {num_shards}, {shard_id}")
        self.num_videos, self.repeats = int(num_videos), int(repeats)
        self.num_shards, self.shard_id = int(num_shards), int(shard_id)
        self.seed, self.shuffle = int(seed), bool(shuffle)
        self.num_samples = math.ceil(self.num_videos * self.repeats / self.num_shards)
        self.total_size = self.num_samples * self.num_shards
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def global_order(self) -> np.ndarray:
        """Every rank's samples of this epoch interleaved (rank r owns positions r::R), padded."""
        if self.shuffle:
            videos = np.random.default_rng([self.seed, self.epoch, self.TAG]).permutation(self.num_videos)
        else:
            videos = np.arange(self.num_videos)
        order = (videos[:, None] * self.repeats + np.arange(self.repeats)[None, :]).reshape(-1)
        return np.resize(order, self.total_size)  # wrap-around padding, as DeiT's sampler pads

    def indices(self) -> np.ndarray:
        """This shard's sample indices of the current epoch."""
        return self.global_order()[self.shard_id::self.num_shards]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return self.num_samples


__all__ = ["RepeatAugSampler"]
