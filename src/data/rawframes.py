"""Frame-folder data sets ("rawframes"): clips stored as folders of decoded JPEG frames.

Registered: ``RawFrameList`` (mmaction2's ``frame_dir total_frames label`` list), ``Jester`` and
``SomethingSomethingV1`` (official ``id;label`` CSVs, or the Efficient 3D CNN reference's
annotation files); ``UCF101`` / ``HMDB51`` read frame folders through their ``frames`` option.
These classes only build the index; the folders are read by
:class:`~src.data.readers.FrameFolderReader` through the common
:meth:`~src.data.datasets.VideoDataset.load_clip`.

Data flow of one clip::

    list / CSV  --start-up, no image opened-->  samples [(frame_dir, label)], frame_counts (listed or None)
    load_clip(i): FrameFolderReader             listdir(frame_dir): folder exists? frames
                                                start..start+n-1 all there? (n = listed count, or
                                                the highest index found)
        -> frame indices (sampling.plan_clip: random / multi-clip / consecutive windows;
           pad_mode clamp = the video path, loop = the reference's LoopPadding)
        -> reader.read: PIL decode of each needed JPEG -> (T, H, W, 3) uint8 RGB

Every problem (missing folder, missing or corrupt JPEG, fewer frames than listed) raises
:class:`VideoDecodeError` ``(frame_dir, reason)``, which the loader's ``ClipSource`` records once
in ``bad_files.txt`` and replaces, under ``data_loader.max_bad_fraction`` as for videos.

The reference's ``downsample`` (a window of ``num_frames * downsample`` frames, every
``downsample``-th kept) selects the same frames as ``sampling_rate = downsample``; ``downsample``
is accepted as an alias. ``protocol: video`` turns an eval set into every consecutive window of
every video (see :func:`~src.data.sampling.plan_video_windows`, the same plan as for video
files: :meth:`~src.data.datasets.VideoDataset.use_video_windows`) for the reference's video-level accuracy;
:func:`windows_to_videos` averages the window scores per video.
"""
from __future__ import annotations

import csv
import json
import logging
import os
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..registry import DATASETS
from .datasets import PROTOCOLS, VideoDataset, _resolve, list_rows
from .decode import one_line
from .errors import DataError

logger = logging.getLogger("src.data")

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


def windows_to_videos(video_ids: np.ndarray, scores: np.ndarray, labels: np.ndarray,
                      window_video: Sequence[int]) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Video-level scores of the reference's test: the scores of sample ``video_ids[i]`` (a window)
    averaged over the windows of each video. Returns (video ids, mean scores, labels) sorted by id."""
    ids = np.asarray(window_video, np.int64)[np.asarray(video_ids, np.int64)]
    uniq, inv = np.unique(ids, return_inverse=True)
    scores = np.asarray(scores, np.float64)
    sums = np.zeros((len(uniq), scores.shape[1]), np.float64)
    np.add.at(sums, inv, scores)
    out_labels = np.zeros(len(uniq), np.int64)
    out_labels[inv] = np.asarray(labels, np.int64)
    return uniq, sums / np.bincount(inv)[:, None], out_labels


def with_video_protocol(dataset_cfg: Any) -> Dict[str, Any]:
    """A copy of a ``data_loader.eval.dataset`` config switched to the video-level protocol:
    ``frames.protocol: video`` for UCF101 / HMDB51 with frame folders, else ``protocol: video``
    (frame-folder and video-file data sets alike). A type without the protocol (e.g.
    MindRecordVideo) is an error."""
    import inspect

    from ..registry import _plain

    cfg = _plain(dataset_cfg)
    kind = cfg.get("type")
    builder = DATASETS.get(kind) if kind in DATASETS else None
    if isinstance(cfg.get("frames"), dict):
        cfg["frames"] = dict(cfg["frames"], protocol="video")
    elif builder is not None and "protocol" in inspect.signature(builder).parameters:
        cfg["protocol"] = "video"
    else:
        known = sorted(k for k in DATASETS if "protocol" in inspect.signature(DATASETS.get(k)).parameters)
        raise DataError(f"data_loader.eval.dataset: the video-level protocol is not available for type {kind!r} "
                        f"(types with it: {', '.join(known)})")
    return cfg


def _rate(name: str, sampling_rate: Optional[float], downsample: Optional[int]) -> float:
    if downsample is not None:
        if isinstance(downsample, bool) or not isinstance(downsample, int) or downsample <= 0:
            raise DataError(f"{name}: 'downsample' must be a positive integer, got {downsample!r}")
        if sampling_rate is not None and float(sampling_rate) != float(downsample):
            raise DataError(f"{name}: 'downsample' ({downsample}) is the reference's name for 'sampling_rate' "
                            f"({sampling_rate}); give one of them")
        return downsample
    if sampling_rate is None:
        raise DataError(f"{name}: 'sampling_rate' (or its alias 'downsample') is required")
    return sampling_rate


class FrameFolderDataset(VideoDataset):
    """Base of the frame-folder data sets: the clip settings, read with the
    :class:`~src.data.readers.FrameFolders` reader kind (``decoder`` is not used)."""

    def __init__(self, *, num_frames: int, sampling_rate: Optional[float], downsample: Optional[int],
                 num_clips: int, target_fps: Optional[float], fps: Optional[float],
                 output_dir: Optional[str], label_map: Optional[str], filename_tmpl: str,
                 start_index: int, pad_mode: str, protocol: str, offset_sampling: bool = False,
                 class_names: Optional[Sequence[str]] = None, unknown_labels: str = "error",
                 allow_outside_root: bool = False, config_key: Optional[str] = None) -> None:
        name = type(self).__name__
        super().__init__(num_frames=num_frames, sampling_rate=_rate(name, sampling_rate, downsample),
                         num_clips=num_clips, target_fps=target_fps, output_dir=output_dir,
                         label_map=label_map, offset_sampling=offset_sampling, class_names=class_names,
                         unknown_labels=unknown_labels, allow_outside_root=allow_outside_root,
                         config_key=config_key)
        if target_fps is not None and fps is None:
            raise DataError(f"{name}: 'target_fps' needs the frame rate of the folders ('fps')")
        self._use_frame_folders(filename_tmpl=filename_tmpl, start_index=start_index, pad_mode=pad_mode,
                                fps=fps, protocol=protocol, where=name)


@DATASETS.register()
class RawFrameList(FrameFolderDataset):
    """mmaction2's raw-frame list: ``frame_dir total_frames label`` lines, ``frame_dir`` relative
    to ``root`` (may contain spaces). Frames ``filename_tmpl.format(start_index + k)``, k <
    total_frames. Class names from ``label_map``, else ``{root}/label_map.json``, else "0", "1" ..."""

    def __init__(self, root: str, ann_file: str, num_frames: int, sampling_rate: Optional[float] = None,
                 downsample: Optional[int] = None, num_clips: int = 1,
                 filename_tmpl: str = "img_{:05d}.jpg", start_index: int = 1, pad_mode: str = "clamp",
                 protocol: str = "views", target_fps: Optional[float] = None, fps: Optional[float] = None,
                 label_map: Optional[str] = None, output_dir: Optional[str] = None,
                 offset_sampling: bool = False,
                 class_names: Optional[Sequence[str]] = None, unknown_labels: str = "error",
                 allow_outside_root: bool = False, config_key: Optional[str] = None) -> None:
        default_map = os.path.join(root, "label_map.json")
        if label_map is None and os.path.isfile(default_map):
            label_map = default_map
        super().__init__(num_frames=num_frames, sampling_rate=sampling_rate, downsample=downsample,
                         num_clips=num_clips, target_fps=target_fps, fps=fps, output_dir=output_dir,
                         label_map=label_map, filename_tmpl=filename_tmpl, start_index=start_index,
                         pad_mode=pad_mode, protocol=protocol, offset_sampling=offset_sampling,
                         class_names=class_names,
                         unknown_labels=unknown_labels, allow_outside_root=allow_outside_root,
                         config_key=config_key)
        self.root = root
        self.ann_file = _resolve(root, ann_file)
        if not os.path.isfile(self.ann_file):
            raise DataError(f"RawFrameList: annotation file '{self.ann_file}' not found (root={root!r}, "
                            f"ann_file={ann_file!r})")
        rows = []
        for where, line, parts in list_rows(self.ann_file, 3):
            if len(parts) != 3 or not parts[1].isdigit() or not re.fullmatch(r"\d+", parts[2]):
                raise DataError(f"{where}: expected 'frame_dir total_frames label' with "
                                f"integers total_frames >= 0 and label >= 0, got {line!r}")
            rows.append((where, int(parts[2]), (parts[0], int(parts[1]), where)))
        if not rows:
            raise DataError(f"{self.ann_file}: no clips listed")
        kept = self._int_labels(rows, label_map, self.ann_file)
        listed = [(self._row_path(root, rel, where), label) for (rel, _, where), label in kept]
        self._finish(listed, self.ann_file, [count for (_, count, _), _ in kept])


def _read_rows(path: str, sep: Optional[str]) -> List[Tuple[int, List[str]]]:
    """``(line number, fields)`` of the non-empty rows of ``path`` (``;`` CSV or whitespace-separated)."""
    if not os.path.isfile(path):
        raise DataError(f"annotation file '{path}' not found")
    with open(path, encoding="utf-8", newline="") as f:
        if sep == ";":
            reader = csv.reader(f, delimiter=";")
            return [(reader.line_num, [c.strip() for c in row]) for row in reader if row and row[0].strip()]
        return [(n, l.split()) for n, l in enumerate(f, 1) if l.strip()]


def _first(*paths: str) -> Optional[str]:
    return next((p for p in paths if os.path.isfile(p)), None)


class _TwentyBN(FrameFolderDataset):
    """Shared reader of the 20BN releases (Jester, Something-Something V1)."""

    PREFIX = ""        # CSV file prefix, e.g. 'jester-v1'
    FRAMES_DIR = ""    # folder of the frame folders in the official archive
    SPLITS = {"train": "train", "val": "validation", "validation": "validation"}

    def __init__(self, root: str, num_frames: int, split: str = "train", sampling_rate: Optional[float] = None,
                 downsample: Optional[int] = None, num_clips: int = 1, ann_dir: Optional[str] = None,
                 frames_dir: Optional[str] = None, annotations: str = "auto", filename_tmpl: str = "{:05d}.jpg",
                 start_index: int = 1, pad_mode: str = "loop", protocol: str = "views",
                 target_fps: Optional[float] = None, fps: Optional[float] = None,
                 output_dir: Optional[str] = None, offset_sampling: bool = False,
                 class_names: Optional[Sequence[str]] = None, unknown_labels: str = "error",
                 allow_outside_root: bool = False, config_key: Optional[str] = None) -> None:
        super().__init__(num_frames=num_frames, sampling_rate=sampling_rate, downsample=downsample,
                         num_clips=num_clips, target_fps=target_fps, fps=fps, output_dir=output_dir,
                         label_map=None, filename_tmpl=filename_tmpl, start_index=start_index,
                         pad_mode=pad_mode, protocol=protocol, offset_sampling=offset_sampling,
                         class_names=class_names,
                         unknown_labels=unknown_labels, allow_outside_root=allow_outside_root,
                         config_key=config_key)
        name = type(self).__name__
        if split not in self.SPLITS:
            raise DataError(f"{name}: split must be train or val (the test set has no labels), got {split!r}")
        self.root, self.split = root, split
        ann_dir = ann_dir or root
        if frames_dir is None:
            cand = os.path.join(root, self.FRAMES_DIR)
            frames_dir = cand if os.path.isdir(cand) else root
        if annotations not in ("auto", "official", "reference", "json"):
            raise DataError(f"{name}.annotations: expected auto | official | reference | json, got {annotations!r}")
        official = os.path.join(ann_dir, f"{self.PREFIX}-labels.csv")
        class_ind = _first(os.path.join(ann_dir, "classInd.txt"), os.path.join(ann_dir, "categories.txt"))
        json_file = os.path.join(ann_dir, f"{name.lower()}.json")
        if annotations == "auto":
            annotations = ("official" if os.path.isfile(official) else "reference" if class_ind
                           else "json" if os.path.isfile(json_file) else "")
            if not annotations:
                raise DataError(f"{name}: no annotations in '{ann_dir}' (looked for {self.PREFIX}-labels.csv, "
                                f"classInd.txt / categories.txt, {name.lower()}.json)")
        if annotations == "official":
            rows = self._official(ann_dir, official)
        elif annotations == "reference":
            rows = self._reference(ann_dir, class_ind or os.path.join(ann_dir, "classInd.txt"))
        else:
            rows = self._json(json_file)
        self.annotations = annotations
        listed = []
        for where, clip, label_name in rows:  # each label looked up by name in the class list
            label = self._label_of(label_name, where)
            if label is not None:
                listed.append((self._row_path(frames_dir, clip, where), label))
        self._finish(listed, f"{name} {split} ({annotations} annotations in {ann_dir})")

    # each reader fixes the class list and returns rows (where, clip id, label name)
    def _official(self, ann_dir: str, labels_csv: str) -> List[Tuple[str, str, str]]:
        self._use_classes([r[0] for _, r in _read_rows(labels_csv, ";")], labels_csv)
        path = os.path.join(ann_dir, f"{self.PREFIX}-{self.SPLITS[self.split]}.csv")
        rows = []
        for lineno, row in _read_rows(path, ";"):
            if len(row) != 2:
                raise DataError(f"{path}:{lineno}: expected 'id;label', got {';'.join(row)!r}")
            rows.append((f"{path}:{lineno}", row[0], row[1]))
        return rows

    def _reference(self, ann_dir: str, class_ind: str) -> List[Tuple[str, str, str]]:
        pairs = []
        for _, row in _read_rows(class_ind, None):
            if len(row) != 2 or not row[0].isdigit():
                raise DataError(f"{class_ind}: expected 'index ClassName' lines, got {' '.join(row)!r}")
            pairs.append((int(row[0]), row[1]))
        pairs.sort()
        if [i for i, _ in pairs] != list(range(1, len(pairs) + 1)):
            raise DataError(f"{class_ind}: class indices must be 1..{len(pairs)}")
        self._use_classes([n for _, n in pairs], class_ind)
        stem = "trainlist" if self.SPLITS[self.split] == "train" else "vallist"
        path = _first(*(os.path.join(ann_dir, f"{stem}{s}.txt") for s in ("", "01")))
        if path is None:
            raise DataError(f"{type(self).__name__}: '{stem}.txt' / '{stem}01.txt' not found in '{ann_dir}'")
        rows = []
        for lineno, row in _read_rows(path, None):
            if len(row) != 2 or not row[1].isdigit() or not 1 <= int(row[1]) <= len(pairs):
                raise DataError(f"{path}:{lineno}: expected 'id class_index' with an index 1..{len(pairs)}, "
                                f"got {' '.join(row)!r}")
            rows.append((f"{path}:{lineno}", row[0], pairs[int(row[1]) - 1][1]))
        return rows

    def _json(self, path: str) -> List[Tuple[str, str, str]]:
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
            names = [str(n) for n in data["labels"]]
            database = data["database"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
            raise DataError(f"{path}: expected {{'labels': [...], 'database': {{id: {{'subset', 'annotations'}}}}}} "
                            f"({one_line(e)})") from None
        self._use_classes(names, f"{path} 'labels'")
        subset = "training" if self.SPLITS[self.split] == "train" else "validation"
        rows = []
        for key, value in database.items():
            if value.get("subset") != subset:
                continue
            label = (value.get("annotations") or {}).get("label")
            rows.append((f"{path}: clip {key!r}", str(key), str(label)))
        return rows


@DATASETS.register()
class Jester(_TwentyBN):
    """20BN-Jester V1 frame folders ``{frames_dir}/{id}/00001.jpg ...`` (``frames_dir`` default
    ``{root}/20bn-jester-v1`` if present, else ``root``). Annotations in ``ann_dir`` (default
    ``root``): the official ``jester-v1-labels.csv`` + ``jester-v1-{train,validation}.csv``
    (``id;label``; classes in labels.csv order), or the Efficient 3D CNN reference's
    ``classInd.txt`` (or ``categories.txt``) + ``trainlist.txt`` / ``vallist01.txt`` (``id
    1-based-index``; its alphabetical, underscored class names), or its ``jester.json``.
    ``annotations: auto`` picks the first found in that order. Defaults follow the reference:
    loop padding; set ``sampling_rate`` (or ``downsample``) 2 for its 16 x 2 clips."""

    PREFIX = "jester-v1"
    FRAMES_DIR = "20bn-jester-v1"


@DATASETS.register()
class SomethingSomethingV1(_TwentyBN):
    """20BN-Something-Something V1 frame folders ``{frames_dir}/{id}/00001.jpg ...``
    (``frames_dir`` default ``{root}/20bn-something-something-v1`` if present, else ``root``) with
    ``something-something-v1-labels.csv`` and ``-{train,validation}.csv`` (``id;label``) in
    ``ann_dir`` (default ``root``); reference-style ``classInd.txt`` + lists also work."""

    PREFIX = "something-something-v1"
    FRAMES_DIR = "20bn-something-something-v1"


__all__ = ["FrameFolderDataset", "RawFrameList", "Jester", "SomethingSomethingV1", "windows_to_videos",
           "with_video_protocol", "IMAGE_EXTENSIONS", "PROTOCOLS"]
