"""The multigrid train loader: batches of the shapes a :class:`~src.engine.multigrid.MultigridPlan`
asks for, epoch by epoch (docs/training.md, "Multigrid training").

The ordinary train :class:`~src.data.pipeline.Loader` batches one shape with MindSpore's
``batch``. Here every item of the ``GeneratorDataset`` is a whole batch, so consecutive batches
may differ in clips, frames and crop: each (frames, crop) has its own copy of the train
:class:`~src.data.pipeline.ClipSource` whose data set samples ``frames`` frames at the sampling
rate times ``T0 // frames`` (the clip spans the same time) and whose transforms crop ``crop``
pixels, with the short-side jitter's minimum (and a fixed short side) scaled by ``crop / S0``
(the crop sees the same share of the frame), as SlowFast's multigrid does. The epoch's shuffle is
seeded by ``(seed, epoch)`` and each clip's random draws by ``(seed, epoch, sample)``, so a
resumed run reads the batches an uninterrupted one would.
"""
from __future__ import annotations

import copy
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..errors import UserError
from .pipeline import TRAIN_COLUMNS, ClipSource, Loader
from .transforms import (CenterCrop, MultiScaleCornerCrop, MultiScaleRandomCrop, RandomCrop, RandomShortSideScale,
                         ShortSideScale, SpatialCrops)

CROP_OPS = (RandomCrop, SpatialCrops, CenterCrop, MultiScaleCornerCrop, MultiScaleRandomCrop)


def shaped_source(source: ClipSource, frames: int, crop: int, default_frames: int, default_crop: int) -> ClipSource:
    """A copy of the train ``source`` that yields clips of ``frames`` frames and ``crop`` pixels."""
    if frames == default_frames and crop == default_crop:
        return source
    out = copy.copy(source)
    ds = copy.copy(source.dataset)
    ds.num_frames = int(frames)
    ds.sampling_rate = source.dataset.sampling_rate * max(1, default_frames // frames)
    out.dataset = ds
    out.transform = copy.deepcopy(source.transform)
    ratio = crop / float(default_crop)
    for op in out.transform.ops:
        if isinstance(op, CROP_OPS):
            op.size = int(crop)
        elif isinstance(op, RandomShortSideScale):
            op.min_size = min(op.max_size, max(int(crop), int(round(op.min_size * ratio))))
        elif isinstance(op, ShortSideScale):
            op.size = max(int(crop), int(round(op.size * ratio)))
    out._cache = OrderedDict()
    return out


class _Batches:
    """Random-access batches for ``GeneratorDataset``: item j = (clips, labels) of batch j. With
    MixUp/CutMix on (``mix``, the ordinary loader's :class:`~src.data.mixup.MixedBatch`) batch j
    is mixed, at its own shape, by a generator seeded by (seed, epoch, shard, j), as the ordinary
    loader seeds its batch number j: soft (N, K) float32 targets."""

    def __init__(self, batches: List[Tuple[np.ndarray, ClipSource]], mix: Any = None, epoch: int = 0) -> None:
        self.batches, self.mix, self.epoch = batches, mix, int(epoch)

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, j: int):
        ids, source = self.batches[int(j)]
        items = [source[int(i)] for i in ids]
        videos = np.ascontiguousarray(np.stack([v for v, _ in items]), dtype=np.float32)
        labels = np.stack([lab for _, lab in items]).astype(np.int32)
        if self.mix is None or not self.mix.enabled:
            return videos, labels
        rng = np.random.default_rng([self.mix.seed, self.epoch, self.mix.shard_id, int(j), self.mix.TAG])
        return self.mix.mix(videos, labels, rng)


class MultigridLoader:
    """What ``fit`` reads from a train loader (``dataset``, ``set_epoch``, ``steps_per_epoch``,
    ``summary``, ...), with the batches of ``plan``. ``base`` is the ordinary train loader of the
    same config (its clips, class list and bad-file log are shared)."""

    def __init__(self, base: Loader, plan: Any, *, seed: int = 0, num_shards: int = 1, shard_id: int = 0,
                 num_parallel_workers: int = 1) -> None:
        for key, value, plain in (("clips_per_video", base.source.clips_per_video, 1),
                                  ("aug_repeats", getattr(base.source, "repeats", 1), 1)):
            if value != plain:  # not combined with multigrid's own batching (yet)
                raise UserError(f"train.multigrid: data_loader.train.{key} must be {str(plain).lower()} with "
                                f"multigrid training, got {str(value).lower()}")
        self.base, self.plan = base, plan
        self.batch_mix = getattr(base, "batch_mix", None)  # MixUp/CutMix of each batch, at its shape
        self.augment_note = base.augment_note
        self.seed, self.num_shards, self.shard_id = int(seed), int(num_shards), int(shard_id)
        self.workers = max(1, int(num_parallel_workers))
        self.split = "train"
        self.class_names, self.num_classes = base.class_names, base.num_classes
        self.output_dir, self.source = base.output_dir, base.source
        self.batch_size = base.batch_size
        self.num_samples = plan.samples_per_shard
        self.column_names = TRAIN_COLUMNS
        self._sources: Dict[Tuple[int, int], ClipSource] = {}
        self.epoch = 0
        self.dataset = None
        self.set_epoch(0)

    @property
    def steps_per_epoch(self) -> int:
        return self.plan.steps_in_epoch(self.epoch)

    def steps_in_epoch(self, epoch: int) -> int:
        return self.plan.steps_in_epoch(epoch)

    def source_for(self, frames: int, crop: int) -> ClipSource:
        key = (int(frames), int(crop))
        if key not in self._sources:
            self._sources[key] = shaped_source(self.base.source, frames, crop, self.plan.default_frames,
                                               self.plan.default_crop)
        return self._sources[key]

    def epoch_batches(self, epoch: int) -> List[Tuple[np.ndarray, Tuple[int, int, int]]]:
        """(sample indices, (clips, frames, crop)) of each batch of ``epoch`` on this process."""
        n = len(self.base.source)
        order = np.random.default_rng([self.seed, int(epoch)]).permutation(n)
        per_shard = n // self.num_shards  # every process the same count: the same steps everywhere
        mine = order[self.shard_id::self.num_shards][:per_shard]
        out, at = [], 0
        for shape in self.plan.batches(epoch):
            out.append((mine[at:at + shape[0]], shape))
            at += shape[0]
        return out

    def set_epoch(self, epoch: int) -> None:
        """This epoch's batches (its stage's shapes) and random draws."""
        import mindspore.dataset as msds

        self.epoch = int(epoch)
        self.base.set_epoch(epoch)
        batches = []
        for ids, (_, frames, crop) in self.epoch_batches(self.epoch):
            src = self.source_for(frames, crop)
            src.epoch = self.epoch
            batches.append((ids, src))
        self.dataset = msds.GeneratorDataset(_Batches(batches, self.batch_mix, self.epoch), column_names=TRAIN_COLUMNS,
                                             shuffle=False,
                                             num_parallel_workers=self.workers, python_multiprocessing=False)

    def bad_count(self) -> int:
        return self.base.bad_count()

    def bad_files(self) -> List[str]:
        return self.base.bad_files()

    def stop_message(self) -> Optional[str]:
        return self.base.stop_message()

    def summary(self) -> str:
        st = self.plan.stage(self.epoch)
        return f"{self.base.summary()}; multigrid shape {st.frames}x{st.crop}x{st.crop}"

    def __len__(self) -> int:
        return self.steps_per_epoch
