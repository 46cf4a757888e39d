"""The MindSpore input pipeline: :func:`create_loader` -> :class:`Loader`.

A random-access :class:`ClipSource` (decode + transforms, bad-file replacement) feeds a
``GeneratorDataset`` with process or thread workers, then ``batch``. Train: shuffled every epoch,
sharded by MindSpore's distributed sampler (``aug_repeats`` > 1: :class:`RepeatAugSampler`),
remainder dropped, optionally MixUp/CutMix per batch (``mixup.py``: soft float32 labels). Eval: every (video, clip, crop)
view in a fixed order, videos sharded ``shard_id::num_shards`` (disjoint, covering), remainder
kept, with ``video_idx``/``view_idx`` columns for multi-view aggregation.
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import tempfile
import threading
from collections import OrderedDict
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, TypeVar

import numpy as np

from ..errors import UserError
from ..outputs import is_no_space, no_space_error
from ..registry import BATCH_TRANSFORMS, DATASETS, build_from_cfg
from .datasets import VideoDataset
from .errors import DataError, DataStopError, VideoDecodeError
from .labels import save_label_map
from .mixup import MixedBatch
from .samplers import RepeatAugSampler
from .transforms import Compose, build_transforms, eval_operations

logger = logging.getLogger("src.data")

BAD_FILES = "bad_files.txt"
LABEL_MAP = "label_map.json"
MAX_TRIES = 10
TRAIN_COLUMNS = ["video", "label"]
EVAL_COLUMNS = ["video", "label", "video_idx", "view_idx"]


class BadFileLog:
    """Bad videos shared by all workers through files in ``directory``: ``bad_files.txt``
    (``path<TAB>reason``, one line per file and process) and a per-loader event log, whose line
    count is the number of bad samples seen."""

    def __init__(self, directory: str, tag: str) -> None:
        self.directory = directory
        self.list_path = os.path.join(directory, BAD_FILES)
        self.events_path = os.path.join(directory, f".bad_samples_{tag}.log")
        self.stop_path = os.path.join(directory, f".data_stop_{tag}.txt")
        self._reported: set = set()
        self._lock = threading.Lock()

    def reset(self) -> None:
        os.makedirs(self.directory, exist_ok=True)
        open(self.events_path, "w").close()
        if os.path.exists(self.stop_path):
            os.remove(self.stop_path)

    def record_stop(self, message: str) -> None:
        """Leave the one-line message of a stop raised in a dataset worker for the main process,
        which gets it from MindSpore only inside a long RuntimeError (see :func:`stop_guard`).
        Written whole (temp file, rename) by whichever worker stops; a write that fails (a full
        disk) leaves nothing."""
        tmp = f"{self.stop_path}.{os.getpid()}.{threading.get_ident()}"
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(message)
            os.replace(tmp, self.stop_path)
        except OSError:
            with contextlib.suppress(OSError):
                os.remove(tmp)

    def stop_message(self) -> Optional[str]:
        """The message recorded by :meth:`record_stop` since the last :meth:`reset`, if any."""
        try:
            with open(self.stop_path, encoding="utf-8") as f:
                return f.read().strip() or None
        except FileNotFoundError:
            return None

    def record(self, path: str, reason: str) -> None:
        with self._lock:
            with open(self.events_path, "a", encoding="utf-8") as f:
                f.write(path + "\n")
            if path in self._reported:
                return
            self._reported.add(path)
            with open(self.list_path, "a", encoding="utf-8") as f:
                f.write(f"{path}\t{reason}\n")
        logger.warning("bad video skipped: %s: %s (listed in %s)", path, reason, self.list_path)

    def _events(self) -> List[str]:
        try:
            with open(self.events_path, encoding="utf-8") as f:
                return [l.rstrip("\n") for l in f if l.strip()]
        except FileNotFoundError:
            return []

    def count(self) -> int:
        return len(self._events())

    def unique(self) -> List[str]:
        return sorted(set(self._events()))

    def __getstate__(self) -> Dict[str, Any]:
        state = dict(self.__dict__)
        state["_lock"] = None
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()


class ClipSource:
    """Random-access source for ``GeneratorDataset``.

    Train item ``i`` = a random clip of video ``i`` -> ``(video, label)``; with ``clips_per_video``
    K > 1, K clips read in one pass -> ``(video (K, C, T, H, W), label (K,))``, which the batch op
    concatenates (a batch of ``batch_size / K`` items). Eval item ``i`` = view
    ``i % views`` of video ``i // views`` (view = clip * num_crops + crop) -> ``(video, label,
    video_idx, view_idx)``; ``sample_ids`` restricts it to a shard. A video that fails to decode
    or has fewer than ``min_frames`` frames is logged (``bad_files.txt``) and remembered, so this
    process never opens it again. Train: a random sample replaces it (up to ``MAX_TRIES`` draws).
    Eval: no substitute; its views come out as zero clips with ``video_idx = -1``, which the
    aggregation skips, so the video is not scored and no other video is scored twice.
    """

    def __init__(self, dataset: VideoDataset, transform: Compose, *, train: bool,
                 bad_log: BadFileLog, decoder: str = "decord", min_frames: int = 1,
                 max_bad_fraction: float = 0.05, sample_ids: Optional[Sequence[int]] = None,
                 seed: int = 0, clips_per_video: int = 1, repeats: int = 1) -> None:
        self.dataset = dataset
        self.transform = transform
        self.train = train
        self.bad_log = bad_log
        self.decoder = decoder
        self.min_frames = int(min_frames)
        self.max_bad_fraction = float(max_bad_fraction)
        self.num_crops = 1 if train else transform.num_crops
        self.views = 1 if train else dataset.num_clips * self.num_crops
        self.repeats = int(repeats) if train else 1  # aug_repeats: sample j = copy j % k of video j // k
        self.total = len(dataset) * self.views * self.repeats
        self.sample_ids = None if sample_ids is None else np.asarray(sample_ids, np.int64)
        self.seed = int(seed)
        self.clips_per_video = int(clips_per_video) if train else 1  # > 1: item = (K, C, T, H, W) clips
        self.epoch = 0
        self._cache: "OrderedDict[tuple, np.ndarray]" = OrderedDict()
        self._known_bad: Dict[int, tuple] = {}  # video index -> (path, reason), per process
        self._placeholder: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return self.total if self.sample_ids is None else len(self.sample_ids)

    def _frames(self, vid: int, clip_idx: Optional[int], rng: np.random.Generator) -> Any:
        if clip_idx is None and self.clips_per_video > 1:  # several clips from one read
            return self.dataset.load_clips(vid, self.clips_per_video, rng, self.decoder, self.min_frames)
        if clip_idx is None:
            return self.dataset.load_clip(vid, None, rng, self.decoder, self.min_frames)
        key = (vid, clip_idx)  # eval: the crops of one clip share one decode
        if key not in self._cache:
            self._cache[key] = self.dataset.load_clip(vid, clip_idx, None, self.decoder, self.min_frames)
            while len(self._cache) > 4:
                self._cache.popitem(last=False)
        return self._cache[key]

    def _on_bad(self, path: str, reason: str) -> None:
        self.bad_log.record(path, reason)
        n_bad, n = len(self.bad_log.unique()), len(self.dataset)
        if n_bad > self.max_bad_fraction * n:
            raise DataError(f"{n_bad} of {n} videos failed to decode ({100.0 * n_bad / n:.1f}%), more than "
                            f"data_loader.max_bad_fraction={self.max_bad_fraction}; see {self.bad_log.list_path}")

    def _load(self, vid: int, clip_idx: Optional[int], crop_idx: int, rng: np.random.Generator) -> np.ndarray:
        """One transformed clip; a known-bad video raises without being opened again."""
        if vid in self._known_bad:
            raise VideoDecodeError(*self._known_bad[vid])
        try:
            frames = self._frames(vid, clip_idx, rng)
        except VideoDecodeError as e:
            self._known_bad[vid] = (e.path, e.reason)
            raise
        if isinstance(frames, list):  # clips_per_video > 1: one transform draw per clip
            return np.stack([np.asarray(self.transform(f, crop_index=crop_idx, rng=rng), np.float32) for f in frames])
        return self.transform(frames, crop_index=crop_idx, rng=rng)

    def _empty_view(self) -> np.ndarray:
        """A zero clip of the transform's output shape (the placeholder of a failed eval video)."""
        if self._placeholder is None:
            size = 2 * max(256, *(int(getattr(op, "size", 0) or 0) for op in self.transform.ops))
            dummy = np.zeros((self.dataset.num_frames, size, size, 3), np.uint8)
            self._placeholder = np.zeros_like(np.asarray(self.transform(dummy, crop_index=0), np.float32))
        return self._placeholder

    def __getitem__(self, i: int):
        try:
            return self._item(i)
        except DataError as e:  # a stop (too many bad videos): recorded for the main process
            self.bad_log.record_stop(str(e))
            raise

    def _item(self, i: int):
        i = int(i)
        gid = int(self.sample_ids[i]) if self.sample_ids is not None else i
        # random choices depend only on (seed, epoch, sample): a resumed run redraws them exactly
        if self.repeats > 1:  # aug_repeats: each copy of a video draws its own clip and crop
            gid, copy = divmod(gid, self.repeats)
            rng = np.random.default_rng([self.seed, self.epoch, gid, copy])
        else:
            rng = np.random.default_rng([self.seed, self.epoch, gid])
        vid, view = divmod(gid, self.views)
        clip_idx, crop_idx = divmod(view, self.num_crops)
        if not self.train:
            try:
                video = self._load(vid, clip_idx, crop_idx, rng)
            except VideoDecodeError as e:
                self._on_bad(e.path, e.reason)
                return (self._empty_view(), np.array(self.dataset.samples[vid][1], np.int32),
                        np.array(-1, np.int32), np.array(view, np.int32))
            return (np.ascontiguousarray(video, dtype=np.float32), np.array(self.dataset.samples[vid][1], np.int32),
                    np.array(vid, np.int32), np.array(view, np.int32))
        for _ in range(MAX_TRIES):
            try:
                video = self._load(vid, None, crop_idx, rng)
                break
            except VideoDecodeError as e:
                self._on_bad(e.path, e.reason)
                vid = int(rng.integers(len(self.dataset)))
        else:
            raise DataError(f"{MAX_TRIES} videos in a row failed to decode (last: "
                            f"{self.dataset.samples[vid][0]}); see {self.bad_log.list_path}")
        label = self.dataset.samples[vid][1]
        if self.clips_per_video > 1:
            return np.ascontiguousarray(video, dtype=np.float32), np.full(self.clips_per_video, label, np.int32)
        return np.ascontiguousarray(video, dtype=np.float32), np.array(label, np.int32)


class Loader:
    """A batched ``mindspore.dataset`` plus what the training/eval code needs to know about it."""

    def __init__(self, **kw: Any) -> None:
        self.dataset = kw["dataset"]
        self.split: str = kw["split"]
        self.source: ClipSource = kw["source"]
        self.video_dataset: VideoDataset = kw["video_dataset"]
        self.batch_size: int = kw["batch_size"]
        self.num_samples: int = kw["num_samples"]
        self.steps_per_epoch: int = kw["steps_per_epoch"]
        self.output_dir: str = kw["output_dir"]
        self.num_shards: int = kw["num_shards"]
        self.shard_id: int = kw["shard_id"]
        self.label_map_path: str = kw["label_map_path"]
        self.class_names: List[str] = list(self.video_dataset.class_names)
        self.num_classes = len(self.class_names)
        self.video_paths: List[str] = self.video_dataset.video_paths
        self.labels: List[int] = self.video_dataset.labels
        self.num_videos = len(self.video_paths)
        self.num_clips = 1 if self.split == "train" else self.video_dataset.num_clips
        self.num_crops = self.source.num_crops
        self.views_per_video = self.source.views
        self.column_names = TRAIN_COLUMNS if self.split == "train" else EVAL_COLUMNS
        self.bad_files_path = self.source.bad_log.list_path
        self.missing_files: List[str] = list(self.video_dataset.missing)
        self.unknown_skipped: int = self.video_dataset.unknown_skipped  # rows of unknown labels skipped
        self.sampler = kw.get("sampler")  # RepeatAugSampler with aug_repeats > 1, else MindSpore's own
        self.batch_mix = kw.get("batch_mix")  # MixedBatch with mixup on (train)

    def set_epoch(self, epoch: int) -> None:
        """Seed this epoch's random clips and crops (call before creating the epoch's iterator)."""
        self.source.epoch = int(epoch)
        if self.sampler is not None:
            self.sampler.set_epoch(epoch)

    def augment_note(self) -> Optional[str]:
        """One line naming the batch-level switches on (MixUp/CutMix, aug_repeats), or None."""
        parts = []
        if self.batch_mix is not None:
            m = self.batch_mix.mix
            parts.append(f"MixUp/CutMix on (mixup_alpha {m.mixup_alpha:g}, cutmix_alpha {m.cutmix_alpha:g}, prob "
                         f"{m.prob:g}, switch_prob {m.switch_prob:g}), label smoothing {m.label_smoothing:g} in "
                         f"the soft targets")
        if self.source.repeats > 1:
            parts.append(f"aug_repeats {self.source.repeats}: every video {self.source.repeats} times per epoch")
        return "; ".join(parts) or None

    def bad_count(self) -> int:
        """Bad samples seen so far by this loader (all workers)."""
        return self.source.bad_log.count()

    def bad_files(self) -> List[str]:
        """Distinct bad video paths seen so far by this loader."""
        return self.source.bad_log.unique()

    def summary(self) -> str:
        """One line for an epoch log, e.g. ``'train: 1200 samples, 3 bad (2 files, see .../bad_files.txt)'``;
        the list file is named only when there is one to read."""
        bad = self.bad_count()
        if not bad:
            return f"{self.split}: {self.num_samples} samples, 0 bad"
        where = f", see {self.bad_files_path}" if os.path.isfile(self.bad_files_path) else ""
        return f"{self.split}: {self.num_samples} samples, {bad} bad ({len(self.bad_files())} files{where})"

    def iter_numpy(self, num_epochs: int = 1) -> Iterator[Dict[str, np.ndarray]]:
        """Batches as dicts of numpy arrays (a stop of the pipeline as one line: :func:`stop_guard`)."""
        return stop_guard(self.dataset.create_dict_iterator(num_epochs=num_epochs, output_numpy=True), self)

    def stop_message(self) -> Optional[str]:
        """The message of a stop raised in this loader's dataset workers, if one was."""
        return self.source.bad_log.stop_message()

    def __len__(self) -> int:
        return self.steps_per_epoch


T = TypeVar("T")


def stop_guard(batches: Iterable[T], loader: Any) -> Iterator[T]:
    """``batches`` (an iterator over ``loader.dataset``) with the pipeline's stops as one line.

    MindSpore re-raises an exception of a dataset worker (thread or process) as a RuntimeError
    holding three tracebacks. When ``loader``'s source recorded a stop (:meth:`ClipSource.__getitem__`:
    too many bad videos), that RuntimeError becomes :class:`DataStopError` with the source's own
    message; a worker's write that failed for lack of space (``bad_files.txt``) becomes
    :class:`~src.outputs.NoSpaceError`. Any other error, raised while fetching a batch or not,
    is left as it is."""
    it = iter(batches)
    while True:
        try:
            item = next(it)
        except StopIteration:
            return
        except RuntimeError as e:
            if isinstance(e, UserError):
                raise
            recorded = getattr(loader, "stop_message", None)
            message = recorded() if callable(recorded) else None
            if message:
                raise DataStopError(message) from None
            if is_no_space(e) and getattr(loader, "output_dir", None):
                raise no_space_error(os.path.join(loader.output_dir, BAD_FILES)) from None
            raise
        yield item


def _concat_clips(videos: List[np.ndarray], labels: List[np.ndarray], _info: Any) -> tuple:
    """Batch of items of (K, ...) clips each -> one batch of clips (``clips_per_video``)."""
    return np.concatenate(videos), np.concatenate(labels)


def _mixed_batch(cfg: Any, scfg: Any, num_classes: int, source: ClipSource, batch_size: int, *,
                 seed: int, shard_id: int, concat: bool) -> Optional[MixedBatch]:
    """The batch op of ``data_loader.train.mixup`` (None when ``enable`` is false); its
    ``label_smoothing`` null takes ``loss.label_smoothing`` (folded into the soft targets)."""
    section = _get(scfg, "mixup")
    if section is None or not bool(_get(section, "enable", False)):
        return None
    if batch_size < 2:
        raise DataError(f"data_loader.train.mixup: needs data_loader.train.batch_size >= 2, got {batch_size}")
    smoothing = _get(section, "label_smoothing")
    if smoothing is None:
        smoothing = _get(_get(cfg, "loss"), "label_smoothing", 0.0)
    spec = {"type": "MixUpCutMix", "label_smoothing": float(smoothing)}
    for key in ("mixup_alpha", "cutmix_alpha", "prob", "switch_prob"):
        if _get(section, key) is not None:
            spec[key] = float(_get(section, key))
    mix = build_from_cfg(spec, BATCH_TRANSFORMS, where="data_loader.train.mixup", num_classes=int(num_classes))
    return MixedBatch(mix, source, seed=seed, shard_id=shard_id, concat=concat)


def _get(node: Any, key: str, default: Any = None) -> Any:
    try:
        value = node[key]
    except (KeyError, AttributeError, TypeError):
        return default
    return default if value is None else value


def build_dataset(cfg: Any, split: str, *, output_dir: Optional[str] = None,
                  num_clips: Optional[int] = None,
                  class_names: Optional[Sequence[str]] = None) -> VideoDataset:
    """The registered data set of ``cfg.data_loader[split].dataset``. ``class_names`` (the train
    split's, for the eval split) replaces the split's own class list, so both splits share one."""
    where = f"data_loader.{split}.dataset"
    extra: Dict[str, Any] = {"output_dir": output_dir, "config_key": where}
    if num_clips is not None:
        extra["num_clips"] = int(num_clips)
    if class_names is not None:
        extra["class_names"] = list(class_names)
    return build_from_cfg(cfg.data_loader[split].dataset, DATASETS, where=where, **extra)


def create_loader(cfg: Any, split: str, *, num_shards: int = 1, shard_id: int = 0,
                  output_dir: Optional[str] = None, num_clips: Optional[int] = None,
                  num_crops: Optional[int] = None, batch_size: Optional[int] = None,
                  shuffle: Optional[bool] = None, seed: int = 0,
                  short_side: Optional[int] = None, crop_size: Optional[int] = None,
                  class_names: Optional[Sequence[str]] = None) -> Loader:
    """Build the ``split`` ("train" | "eval") pipeline of ``cfg`` for shard ``shard_id`` of
    ``num_shards``. ``num_clips``/``num_crops``/``short_side``/``crop_size`` override the eval
    views; ``output_dir`` receives ``label_map.json``, ``bad_files.txt`` and
    ``missing_files.txt`` (default: a new temporary folder). ``class_names``: the run's class
    list (the train loader's, for the eval split); its labels are then indices into it."""
    import mindspore.dataset as msds

    if split not in ("train", "eval"):
        raise ValueError(f"create_loader: split must be 'train' or 'eval', got {split!r}")
    if not (isinstance(num_shards, int) and num_shards >= 1 and 0 <= shard_id < num_shards):
        raise ValueError(f"create_loader: need num_shards >= 1 and 0 <= shard_id < num_shards, "
                         f"got {num_shards}, {shard_id}")
    train = split == "train"
    dl = cfg.data_loader
    scfg = dl[split]
    output_dir = output_dir or tempfile.mkdtemp(prefix="x3d_data_")
    os.makedirs(output_dir, exist_ok=True)

    vds = build_dataset(cfg, split, output_dir=output_dir, num_clips=None if train else num_clips,
                        class_names=class_names)
    ops = scfg.map.operations
    if not train and any(v is not None for v in (num_crops, short_side, crop_size)):
        ops = eval_operations(ops, num_crops=num_crops, short_side=short_side, crop_size=crop_size)
    transform = build_transforms(ops, where=f"data_loader.{split}.map.operations")

    label_map_path = os.path.join(output_dir, LABEL_MAP)
    if train or not os.path.isfile(label_map_path):
        save_label_map(vds.class_names, label_map_path)

    bad_log = BadFileLog(output_dir, f"{split}_{shard_id}")
    bad_log.reset()
    decoder = str(_get(dl, "decoder", "decord"))
    min_frames = int(_get(dl, "min_frames", 0)) or vds.num_frames
    bs = int(batch_size or scfg.batch_size)
    workers = max(1, int(_get(scfg, "num_parallel_workers", 1)))
    multiproc = bool(_get(scfg, "python_multiprocessing", False))
    common = dict(train=train, bad_log=bad_log, decoder=decoder, min_frames=min_frames,
                  max_bad_fraction=float(_get(dl, "max_bad_fraction", 0.05)), seed=seed)

    if train:
        per_video = int(_get(scfg, "clips_per_video", 1))
        if per_video < 1 or bs % per_video:
            raise DataError(f"data_loader.train.clips_per_video: expected an integer >= 1 that divides "
                            f"data_loader.train.batch_size ({bs}), got {per_video}")
        repeats = int(_get(scfg, "aug_repeats", 1))
        if repeats < 1:
            raise DataError(f"data_loader.train.aug_repeats: expected an integer >= 1, got {repeats}")
        source = ClipSource(vds, transform, clips_per_video=per_video, repeats=repeats, **common)
        n = len(source)
        shuffled = True if shuffle is None else bool(shuffle)
        if repeats > 1:  # each video k times per epoch, the copies spread over the ranks (samplers.py)
            sampler = RepeatAugSampler(len(vds), repeats, num_shards=num_shards, shard_id=shard_id,
                                       seed=seed, shuffle=shuffled)
            sample_kw: Dict[str, Any] = {"sampler": sampler}
        else:
            sampler = None
            sample_kw = {"shuffle": shuffled}
            if num_shards > 1:
                sample_kw.update(num_shards=num_shards, shard_id=shard_id)
        ds = msds.GeneratorDataset(source, column_names=TRAIN_COLUMNS, num_parallel_workers=workers,
                                   python_multiprocessing=multiproc, **sample_kw)
        videos = math.ceil(n / num_shards)  # the distributed sampler pads shards equally
        per_batch = bs // per_video  # videos per batch: each gives clips_per_video clips
        if videos < per_batch:
            of = f" clips ({per_batch} videos x clips_per_video {per_video})" if per_video > 1 else ""
            raise DataError(f"data_loader.train: {videos} samples per shard is less than one "
                            f"batch of {bs}{of} (drop_remainder)")
        batch_mix = _mixed_batch(cfg, scfg, len(vds.class_names), source, bs, seed=seed, shard_id=shard_id,
                                 concat=per_video > 1)
        if batch_mix is not None:  # MixUp / CutMix: stacks (or concatenates) the items, then mixes
            ds = ds.batch(per_batch, drop_remainder=True, per_batch_map=batch_mix, input_columns=TRAIN_COLUMNS)
        elif per_video == 1:
            ds = ds.batch(bs, drop_remainder=True)
        else:
            ds = ds.batch(per_batch, drop_remainder=True, per_batch_map=_concat_clips,
                          input_columns=TRAIN_COLUMNS)
        steps = videos // per_batch
        num_samples = videos * per_video  # clips per epoch and shard
    else:
        sampler = batch_mix = None
        probe = ClipSource(vds, transform, **common)
        videos = range(shard_id, len(vds), num_shards)
        ids = [v * probe.views + k for v in videos for k in range(probe.views)]
        if not ids:
            raise DataError(f"data_loader.eval: shard {shard_id} of {num_shards} has no videos "
                            f"({len(vds)} in total)")
        source = ClipSource(vds, transform, sample_ids=ids, **common)
        ds = msds.GeneratorDataset(source, column_names=EVAL_COLUMNS,
                                   shuffle=bool(shuffle) if shuffle is not None else False,
                                   num_parallel_workers=workers, python_multiprocessing=multiproc)
        num_samples = len(ids)
        ds = ds.batch(bs, drop_remainder=False)
        steps = math.ceil(num_samples / bs)
    return Loader(dataset=ds, split=split, source=source, video_dataset=vds, batch_size=bs,
                  num_samples=num_samples, steps_per_epoch=steps, output_dir=output_dir,
                  num_shards=num_shards, shard_id=shard_id, label_map_path=label_map_path,
                  sampler=sampler, batch_mix=batch_mix)
