"""Registered video data sets: Kinetics400/600, UCF101, HMDB51, VideoFolder, VideoList.

Each is an index of ``(path, label)`` samples plus ``class_names``, its clip settings
(``num_frames``, ``sampling_rate``, ``num_clips``, ``target_fps``, ``pad_mode``) and one reader
kind (``readers.py``: video files, frame folders or MindRecord records).
:meth:`~VideoDataset.load_clip`, the same for every kind, opens the sample's reader, plans the
clip (``sampling.plan_clip``) and reads it. Listed files that do not exist are counted when the
data set is built: none found is an error, some missing gives one warning with the count and the
list in ``{output_dir}/missing_files.txt``. The MindSpore pipeline (``pipeline.py``) wraps these.

Every data set takes ``offset_sampling`` (SlowFast's ``DATA.USE_OFFSET_SAMPLING``, default
false: test clip ``i`` of ``N`` starts at ``delta * i / N``, see ``sampling.py``) and
``protocol``: ``views`` (the loader's random / multi-clip sampling) or ``video``, the
Efficient-3DCNNs video-level test: the samples become every consecutive window of every video
(:func:`~src.data.sampling.plan_video_windows`; a video file's frame count and rate are read once
at start-up), described by :attr:`VideoDataset.video_level`, whose scores eval.py averages per
video (:func:`~src.data.rawframes.windows_to_videos`). Frame folders use the same plan.

One class list per run: the train split's (its ``label_map``, its annotation file's class list or
its data) is passed to the eval split as the runtime argument ``class_names``, and every split maps
its labels into it by name (integer labels: through the split's own label map, else as indices).
A label outside it is a :class:`DataError` naming the file and line, or with ``unknown_labels:
skip`` the row is dropped and counted (:attr:`VideoDataset.unknown_skipped`, one warning line). A
class folder without videos keeps its class index and is reported in one warning line. Paths read
from a list stay inside the data root (``..`` and absolute paths are refused, file and line named)
unless ``allow_outside_root: true``; the check normalises the path without resolving symlinks, so
a symlink inside the root may point anywhere.
"""
from __future__ import annotations

import csv
import logging
import os
import re
import sys
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from ..outputs import atomic_write
from ..registry import DATASETS
from .errors import DataError, VideoDecodeError
from .labels import load_label_map
from .readers import ClipReader, FrameFolders, FrameTemplate, ReaderKind, VideoFiles, reader_problem
from .sampling import PAD_MODES, plan_clip, plan_video_windows

logger = logging.getLogger("src.data")

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".ogv")
MISSING_FILES = "missing_files.txt"
PROTOCOLS = ("views", "video")
UNKNOWN_LABELS = ("error", "skip")
TRAIN_SPLIT = "the train split"  # where a class list passed in as ``class_names`` comes from


def _is_video(name: str, extensions: Sequence[str]) -> bool:
    return name.lower().endswith(tuple(e.lower() for e in extensions))


def _warn(message: str) -> None:
    """One visible ``warning:`` line on every entry point (train, eval, the tools), not a log record."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


def inside_root(root: str, path: str) -> bool:
    """True when ``path`` is relative and ``root/path``, normalised, stays under ``root``. Symlinks
    are not resolved: a link inside the root counts as inside wherever it points."""
    if os.path.isabs(path):
        return False
    base = os.path.abspath(root)
    return os.path.commonpath([base, os.path.abspath(os.path.join(base, path))]) == base


def _subdirs(path: str) -> List[str]:
    return sorted(d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d))
                  and not d.startswith("."))


def _videos_under(path: str, extensions: Sequence[str]) -> List[str]:
    out = []
    for dirpath, dirnames, files in os.walk(path):
        dirnames.sort()
        out.extend(os.path.join(dirpath, f) for f in sorted(files) if _is_video(f, extensions))
    return out


class VideoLevel:
    """The video-level protocol's samples: sample ``i`` is window ``window_index[i]`` (of
    :func:`~src.data.sampling.consecutive_clip_indices`) of video ``window_video[i]`` of
    ``videos`` [(path, label)], in :func:`~src.data.sampling.plan_video_windows`' order."""

    def __init__(self, videos: Sequence[Tuple[str, int]], window_video: np.ndarray,
                 window_index: np.ndarray) -> None:
        self.videos = list(videos)
        self.window_video = np.asarray(window_video, np.int64)
        self.window_index = np.asarray(window_index, np.int64)

    @property
    def video_paths(self) -> List[str]:
        return [p for p, _ in self.videos]


class VideoDataset:
    """Base class: ``samples`` [(path, label)], ``class_names``, the clip settings and ``reader``,
    the kind of storage its samples are in (:class:`~src.data.readers.VideoFiles` unless a
    subclass or the ``frames`` option says otherwise); ``frame_counts`` holds the frame count the
    index lists for each sample (None: read from the data).

    Common options: ``class_names`` (runtime, from the pipeline: the train split's class list,
    which then replaces the split's own), ``unknown_labels`` (``error`` | ``skip``: a row whose
    label is outside the class list), ``allow_outside_root`` (list paths may be absolute or leave
    the data root), ``config_key`` (runtime: the config path named in error messages)."""

    video_level: Optional[VideoLevel] = None  # protocol "video": which window of which video

    def __init__(self, *, num_frames: int, sampling_rate: float, num_clips: int = 1,
                 target_fps: Optional[float] = None, output_dir: Optional[str] = None,
                 label_map: Optional[str] = None, protocol: str = "views",
                 offset_sampling: bool = False, class_names: Optional[Sequence[str]] = None,
                 unknown_labels: str = "error", allow_outside_root: bool = False,
                 config_key: Optional[str] = None) -> None:
        name = type(self).__name__
        if protocol not in PROTOCOLS:
            raise DataError(f"{name}.protocol: expected one of {', '.join(PROTOCOLS)}, got {protocol!r}")
        if not isinstance(offset_sampling, bool):
            raise DataError(f"{name}.offset_sampling: expected true or false, got {offset_sampling!r}")
        if unknown_labels not in UNKNOWN_LABELS:
            raise DataError(f"{name}.unknown_labels: expected one of {', '.join(UNKNOWN_LABELS)}, "
                            f"got {unknown_labels!r}")
        if not isinstance(allow_outside_root, bool):
            raise DataError(f"{name}.allow_outside_root: expected true or false, got {allow_outside_root!r}")
        if class_names is not None and (isinstance(class_names, str) or not class_names
                                        or not all(isinstance(c, str) for c in class_names)):
            raise DataError(f"{name}: class_names must be a non-empty list of class names, got {class_names!r}")
        for key, value in (("num_frames", num_frames), ("num_clips", num_clips)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise DataError(f"{name}: '{key}' must be a positive integer, got {value!r}")
        if not isinstance(sampling_rate, (int, float)) or sampling_rate <= 0:
            raise DataError(f"{name}: 'sampling_rate' must be > 0, got {sampling_rate!r}")
        if target_fps is not None and (not isinstance(target_fps, (int, float)) or target_fps <= 0):
            raise DataError(f"{name}: 'target_fps' must be null or > 0, got {target_fps!r}")
        self.num_frames = int(num_frames)
        self.sampling_rate = sampling_rate
        self.num_clips = int(num_clips)
        self.target_fps = target_fps
        self.output_dir = output_dir
        self.label_map = label_map
        self.protocol = protocol
        self.offset_sampling = offset_sampling
        self.samples: List[Tuple[str, int]] = []
        self.frame_counts: List[Optional[int]] = []  # per sample: the count the index lists, or None
        self.reader: ReaderKind = VideoFiles()
        self.pad_mode = "clamp"  # clips longer than the video: clamp | loop (frame folders)
        self.class_names: List[str] = []
        self.missing: List[str] = []
        self.given_classes = None if class_names is None else list(class_names)
        self.unknown_labels = unknown_labels
        self.allow_outside_root = allow_outside_root
        self.config_key = config_key
        self.unknown_skipped = 0  # rows dropped by unknown_labels: skip
        self.empty_classes: List[str] = []  # class folders without a video
        self._class_source = ""
        self._class_index: Dict[str, int] = {}
        self._first_skipped: Optional[Tuple[str, str]] = None

    # -- building ---------------------------------------------------------------------------
    def _option(self, key: str) -> str:
        """How the user sets option ``key`` of this data set (its config path when known)."""
        return f"{self.config_key or type(self).__name__}.{key}"

    def _use_classes(self, own: Sequence[str], source: str) -> None:
        """Fix the class list: the train split's (``class_names`` given) or else ``own``, the
        split's own list (a label map, an annotation file's classes, the data's names) from ``source``."""
        if self.given_classes is not None:
            names, source = self.given_classes, TRAIN_SPLIT
        else:
            names = [str(c) for c in own]
        self.class_names = list(names)
        self._class_source = source
        self._class_index = {c: i for i, c in enumerate(self.class_names)}

    def _unknown(self, shown: str, where: str, source: Optional[str] = None, count: Optional[int] = None) -> None:
        """A row at ``where`` (``FILE:LINE``) with a label outside the class list (of ``source``, the
        run's by default): a DataError, or counted with ``unknown_labels: skip``."""
        if self.unknown_labels == "error":
            n = self.num_classes if count is None else count
            raise DataError(f"{where}: {shown} is not one of the {n} classes of {source or self._class_source} "
                            f"(set {self._option('unknown_labels')}=skip to skip such rows)")
        self.unknown_skipped += 1
        if self._first_skipped is None:
            self._first_skipped = (where, shown)

    def _label_of(self, name: str, where: str) -> Optional[int]:
        """Index of class ``name`` in the class list; None if it is not there (and skipped)."""
        index = self._class_index.get(name)
        if index is None:
            self._unknown(f"label {name!r}", where)
        return index

    def _int_labels(self, rows: Sequence[Tuple[str, int, Any]], label_map: Optional[str],
                    source: str) -> List[Tuple[Any, int]]:
        """Integer-labelled rows ``(where, label, item)`` -> ``[(item, class index)]``. A label is a
        name of the split's own ``label_map`` when it has one (looked up by name in the class list),
        else an index into the class list; without either list the classes are "0" .. max label."""
        own = load_label_map(label_map) if label_map is not None else None
        if own is None and self.given_classes is None:
            self._use_classes([str(i) for i in range(max((v for _, v, _ in rows), default=-1) + 1)], source)
            return [(item, value) for _, value, item in rows]
        self._use_classes(own if own is not None else [], label_map or "")
        out = []
        for where, value, item in rows:
            if own is not None and self.given_classes is not None:  # a name of this split's map
                if value >= len(own):
                    self._unknown(f"label {value}", where, label_map, len(own))
                    continue
                index = self._label_of(own[value], where)
            elif value < self.num_classes:
                index = value
            else:
                self._unknown(f"label {value}", where)
                continue
            if index is not None:
                out.append((item, index))
        return out

    def _row_path(self, root: str, path: str, where: str) -> str:
        """``root/path`` for a path read at ``where`` (``FILE:LINE``); one that is absolute or leaves
        ``root`` is an error unless ``allow_outside_root``."""
        if not self.allow_outside_root and not inside_root(root, path):
            what = "is absolute, not inside" if os.path.isabs(path) else "escapes"
            raise DataError(f"{where}: path {path!r} {what} the data root {root} "
                            f"(set {self._option('allow_outside_root')}=true to allow)")
        return os.path.join(root, path)

    def _class_folders(self, folder: str, found: Sequence[str], extensions: Sequence[str]) -> List[Tuple[str, int]]:
        """Samples of the class sub-folders ``found`` of ``folder``: a folder whose name is not in
        the class list is an unknown label (each of its videos counted when skipped); folders
        without videos are reported in one warning line and keep their class index."""
        listed, empty = [], []
        for c in found:
            videos = _videos_under(os.path.join(folder, c), extensions)
            if not videos:
                empty.append(c)
                continue
            index = self._class_index.get(c)
            if index is None:
                for _ in videos:
                    self._unknown(f"class folder {c!r}", os.path.join(folder, c))
                continue
            listed.extend((p, index) for p in videos)
        if empty:
            self.empty_classes = empty
            shown = ", ".join(f"{c!r} (class {self._class_index[c]})" if c in self._class_index
                              else f"{c!r} (not a class)" for c in empty)
            _warn(f"{folder}: {len(empty)} class folder(s) without video files: {shown}; a class keeps its "
                  f"index (the place of its name in the class list), so the other indices do not shift")
        return listed

    def _report_skipped(self) -> None:
        """One warning line when ``unknown_labels: skip`` dropped rows."""
        if self.unknown_skipped:
            where, shown = self._first_skipped
            _warn(f"{self.unknown_skipped} row(s) with a label outside the {self.num_classes} classes of "
                  f"{self._class_source} skipped ({self._option('unknown_labels')}=skip; first: {where}: {shown})")

    def _finish(self, listed: Sequence[Tuple[str, int]], source: str,
                frame_counts: Optional[Sequence[Optional[int]]] = None) -> None:
        """Keep the listed samples that exist (as the reader kind tells: every video file is looked
        for, frame folders only probed); error if none, warn once if some are missing. With the
        video protocol, plan the windows. ``frame_counts``: the count the index lists per sample."""
        self._report_skipped()
        if not listed:
            skipped = f" ({self.unknown_skipped} skipped for unknown labels)" if self.unknown_skipped else ""
            raise DataError(f"{source}: no {self.reader.noun} listed{skipped}")
        counts = list(frame_counts) if frame_counts is not None else [None] * len(listed)
        found = self.reader.present([p for p, _ in listed], source)
        self.samples = [s for s, ok in zip(listed, found) if ok]
        self.frame_counts = [c for c, ok in zip(counts, found) if ok]
        self.missing = [p for (p, _), ok in zip(listed, found) if not ok]
        kept = len(self.samples)
        if self.protocol == "video":
            self._probe_windows(source)
        if self.missing:
            where = ""
            if self.output_dir:
                path = atomic_write(os.path.join(self.output_dir, MISSING_FILES),
                                    "".join(p + "\n" for p in self.missing))
                where = f"; missing ones listed in {path}"
            # one visible line on every entry point (train, eval, check_dataset), not a log record
            print(f"warning: {source}: {len(listed)} videos listed, {kept} found, "
                  f"{len(self.missing)} missing (e.g. {self.missing[0]}){where}", file=sys.stderr, flush=True)

    def _probe_windows(self, source: str) -> None:
        """Protocol ``video``: each sample's frame count and rate from its reader kind (a listed
        count is used as it is; an unreadable sample gets one window and is reported when read),
        then :meth:`use_video_windows`."""
        listed = self.frame_counts
        probed = [self.reader.probe(path, count) for (path, _), count in zip(self.samples, listed)]
        videos = self.use_video_windows(self.samples, [n for n, _ in probed], [fps for _, fps in probed], source)
        self.frame_counts = [listed[v] for v in videos]

    def use_video_windows(self, videos: Sequence[Tuple[str, int]], counts: Sequence[int],
                          fps: Any, source: str) -> List[int]:
        """Make the samples every consecutive window of every video of ``videos`` (frame counts
        ``counts``, rates ``fps``: one or one per video) and set :attr:`video_level`. Returns the
        video of each new sample."""
        window_video, window_index = plan_video_windows(counts, self.num_frames, self.sampling_rate, fps,
                                                        self.target_fps)
        self.video_level = VideoLevel(videos, window_video, window_index)
        self.samples = [videos[v] for v in window_video]
        self.frame_counts = [None] * len(self.samples)
        self.num_clips = 1
        self.protocol = "video"
        logger.info("%s: video-level protocol, %d windows of %d videos", source, len(self.samples), len(videos))
        return [int(v) for v in window_video]

    # -- access -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.samples)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def video_paths(self) -> List[str]:
        return [p for p, _ in self.samples]

    @property
    def labels(self) -> List[int]:
        return [l for _, l in self.samples]

    def clip_indices(self, video_frames: int, fps: Optional[float], clip_idx: Optional[int],
                     rng: Optional[np.random.Generator], index: Optional[int] = None) -> np.ndarray:
        """Train clip (``clip_idx`` None: random start from ``rng``) or eval clip ``clip_idx`` of a
        video of ``video_frames`` frames; with the video-level protocol, sample ``index``'s window
        (:func:`~src.data.sampling.plan_clip` with this data set's settings)."""
        window = None
        if self.video_level is not None and index is not None:
            window = int(self.video_level.window_index[index])
        return plan_clip(video_frames, self.num_frames, self.sampling_rate, clip_idx=clip_idx,
                         num_clips=self.num_clips, window=window, rng=rng, fps=fps, target_fps=self.target_fps,
                         pad_mode=self.pad_mode, offset_sampling=self.offset_sampling)

    def open_reader(self, index: int, decoder: str = "decord") -> ClipReader:
        """The reader of sample ``index``, of the kind the data set's storage says (``decoder``:
        the first backend tried for video files). Raises :class:`VideoDecodeError`."""
        count = self.frame_counts[index] if index < len(self.frame_counts) else None
        return self.reader.open(self.samples[index][0], count, decoder)

    def load_clip(self, index: int, clip_idx: Optional[int] = None,
                  rng: Optional[np.random.Generator] = None, decoder: str = "decord",
                  min_frames: int = 1) -> np.ndarray:
        """Decode the clip of sample ``index`` -> (T, H, W, 3) uint8, whatever the storage. Raises
        :class:`VideoDecodeError` for unreadable samples and, with ``pad_mode: clamp``, videos
        shorter than ``min_frames`` (the video-level protocol and loop padding take any length)."""
        with self.open_reader(index, decoder) as reader:
            n = self._usable_frames(reader, min_frames)
            return reader.read(self.clip_indices(n, reader.fps or None, clip_idx, rng, index))

    def _usable_frames(self, reader: ClipReader, min_frames: int) -> int:
        """``reader``'s frame count; a VideoDecodeError when ``pad_mode: clamp`` needs more."""
        n = reader.num_frames
        if self.pad_mode == "clamp" and self.video_level is None and n < min_frames:
            raise VideoDecodeError(reader.name, f"too short: {n} frames, need {min_frames}")
        return n

    def load_clips(self, index: int, count: int, rng: np.random.Generator, decoder: str = "decord",
                   min_frames: int = 1) -> List[np.ndarray]:
        """``count`` random training clips of sample ``index``, planned one after the other from
        ``rng`` and read together: one open and one read of the union of their frames
        (repeated augmentation, the loader's ``clips_per_video``). ``count`` 1 draws what
        :meth:`load_clip` draws."""
        with self.open_reader(index, decoder) as reader:
            n = self._usable_frames(reader, min_frames)
            plans = [self.clip_indices(n, reader.fps or None, None, rng, index) for _ in range(count)]
            union, where = np.unique(np.concatenate(plans), return_inverse=True)
            frames = reader.read(union)
            t = len(plans[0])
            return [frames[where[i * t:(i + 1) * t]] for i in range(count)]

    def check(self, index: int, min_frames: int = 1, decoder: str = "decord") -> Optional[str]:
        """None if sample ``index`` opens, is long enough (``min_frames``, with ``pad_mode: clamp``)
        and its first and last frames decode, else the reason (``src.tools.check_dataset``)."""
        try:
            with self.open_reader(index, decoder) as reader:
                return reader_problem(reader, min_frames if self.pad_mode == "clamp" else 1)
        except VideoDecodeError as e:
            return e.reason

    # -- frame folders instead of video files ---------------------------------------------------
    def _use_frame_folders(self, *, filename_tmpl: str, start_index: int, pad_mode: str, fps: Optional[float],
                           protocol: str, where: str) -> None:
        """Read the samples as frame folders (:class:`~src.data.readers.FrameFolders`) with these
        options; ``where`` names them in errors."""
        template = FrameTemplate(filename_tmpl, start_index, where)
        if pad_mode not in PAD_MODES:
            raise DataError(f"{where}.pad_mode: expected one of {', '.join(PAD_MODES)}, got {pad_mode!r}")
        if protocol not in PROTOCOLS:
            raise DataError(f"{where}.protocol: expected one of {', '.join(PROTOCOLS)}, got {protocol!r}")
        self.reader = FrameFolders(template, fps, where)
        self.pad_mode, self.protocol = pad_mode, protocol

    def _finish_frames(self, listed: Sequence[Tuple[str, int]], video_dir: str, frames: Any, source: str) -> None:
        """UCF101 / HMDB51 ``frames`` option: read ``{frames['dir']}/<video path without
        extension>/`` instead of ``{video_dir}/<video path>``. Keys: ``dir`` (required),
        ``filename_tmpl`` (default ``img_{:05d}.jpg``; the reference's UCF-101 folders use
        ``image_{:05d}.jpg``), ``start_index`` (1), ``pad_mode`` (clamp), ``fps`` and ``protocol``
        (default: the data set's ``protocol``)."""
        name = type(self).__name__
        if not isinstance(frames, dict) and hasattr(frames, "to_dict"):
            frames = frames.to_dict()
        if not isinstance(frames, dict) or "dir" not in frames:
            raise DataError(f"{name}.frames: expected a mapping with 'dir' (the frame-folder tree), got {frames!r}")
        unknown = sorted(set(frames) - set(FRAME_KEYS))
        if unknown:
            raise DataError(f"{name}.frames: unknown key(s) {unknown}; known: {', '.join(FRAME_KEYS)}")
        opts = {"filename_tmpl": "img_{:05d}.jpg", "start_index": 1, "pad_mode": "clamp", "fps": None,
                "protocol": self.protocol, **{k: v for k, v in frames.items() if k != "dir"}}
        if self.target_fps is not None and opts["fps"] is None:
            raise DataError(f"{name}: 'target_fps' needs frames.fps (the frame rate of the folders)")
        self._use_frame_folders(where=f"{name}.frames", **opts)
        root = str(frames["dir"])
        folders = [(os.path.join(root, os.path.splitext(os.path.relpath(p, video_dir))[0]), l) for p, l in listed]
        self._finish(folders, f"{source} (frames in {root})")


FRAME_KEYS = ("dir", "filename_tmpl", "start_index", "pad_mode", "fps", "protocol")


def _resolve(root: str, path: str) -> str:
    """``path`` if absolute or existing relative to the cwd, else ``root/path``. For paths a config
    gives (``ann_file``); paths read from a list go through :meth:`VideoDataset._row_path`."""
    if os.path.isabs(path):
        return path
    joined = os.path.join(root, path)
    return joined if os.path.exists(joined) or not os.path.exists(path) else path


@DATASETS.register()
class VideoList(VideoDataset):
    """A text file of ``relative/path label`` lines (mmaction2 / TF X3D style); paths are relative
    to ``root``. Class names come from ``label_map`` if given, else ``{root}/label_map.json`` if
    present, else ``"0"``, ``"1"``, ... (with ``class_names`` given, a label is a name of that
    map, or without one an index, in the given list)."""

    def __init__(self, root: str, ann_file: str, num_frames: int, sampling_rate: float,
                 num_clips: int = 1, target_fps: Optional[float] = None,
                 label_map: Optional[str] = None, output_dir: Optional[str] = None,
                 protocol: str = "views", offset_sampling: bool = False,
                 class_names: Optional[Sequence[str]] = None, unknown_labels: str = "error",
                 allow_outside_root: bool = False, config_key: Optional[str] = None) -> None:
        default_map = os.path.join(root, "label_map.json")
        if label_map is None and os.path.isfile(default_map):
            label_map = default_map
        super().__init__(num_frames=num_frames, sampling_rate=sampling_rate, num_clips=num_clips,
                         target_fps=target_fps, output_dir=output_dir, label_map=label_map,
                         protocol=protocol, offset_sampling=offset_sampling, class_names=class_names,
                         unknown_labels=unknown_labels, allow_outside_root=allow_outside_root,
                         config_key=config_key)
        self.root = root
        self.ann_file = _resolve(root, ann_file)
        if not os.path.isfile(self.ann_file):
            raise DataError(f"VideoList: annotation file '{self.ann_file}' not found (root={root!r}, ann_file={ann_file!r})")
        rows = []
        for where, line, parts in list_rows(self.ann_file, 2):
            if len(parts) != 2 or not re.fullmatch(r"-?\d+", parts[1]) or int(parts[1]) < 0:
                raise DataError(f"{where}: expected 'relative/path label' with an integer label >= 0, got {line!r}")
            rows.append((where, int(parts[1]), (parts[0], where)))
        listed = [(self._row_path(root, rel, where), label)
                  for (rel, where), label in self._int_labels(rows, label_map, self.ann_file)]
        self._finish(listed, self.ann_file)


@DATASETS.register()
class VideoFolder(VideoDataset):
    """One sub-folder per class (sorted names = indices, or the order of ``label_map`` /
    ``class_names``) under ``root`` (or ``root/split``); an empty one is reported and keeps its index."""

    def __init__(self, root: str, num_frames: int, sampling_rate: float, split: Optional[str] = None,
                 num_clips: int = 1, target_fps: Optional[float] = None,
                 label_map: Optional[str] = None, output_dir: Optional[str] = None,
                 extensions: Sequence[str] = VIDEO_EXTENSIONS, protocol: str = "views",
                 offset_sampling: bool = False, class_names: Optional[Sequence[str]] = None,
                 unknown_labels: str = "error", config_key: Optional[str] = None) -> None:
        super().__init__(num_frames=num_frames, sampling_rate=sampling_rate, num_clips=num_clips,
                         target_fps=target_fps, output_dir=output_dir, label_map=label_map,
                         protocol=protocol, offset_sampling=offset_sampling, class_names=class_names,
                         unknown_labels=unknown_labels, config_key=config_key)
        folder = os.path.join(root, split) if split else root
        if not os.path.isdir(folder):
            raise DataError(f"VideoFolder: folder '{folder}' not found")
        found = _subdirs(folder)
        if not found:
            raise DataError(f"VideoFolder: '{folder}' has no class sub-folders")
        self._use_classes(load_label_map(label_map) if label_map else found, label_map or folder)
        listed = self._class_folders(folder, found, extensions)
        if not listed and not self.unknown_skipped:
            raise DataError(f"VideoFolder: no video files ({', '.join(extensions[:4])}, ...) under '{folder}'")
        self._finish(listed, folder)


_KINETICS_SPLIT_FILES = {"val": ("val", "validate"), "validate": ("validate", "val")}


@DATASETS.register()
class Kinetics400(VideoDataset):
    """Kinetics videos under ``{root}/{split}/``, either named
    ``{youtube_id}_{time_start:06d}_{time_end:06d}.<ext>`` (flat or in class folders) and listed
    in the official CSV (``label,youtube_id,time_start,time_end,split``; ``ann_file`` or found at
    ``{root}/annotations/{split}.csv`` / ``{root}/{split}.csv``, ``val`` also as ``validate``),
    or, without a CSV, in class folders ``{root}/{split}/{class}/{file}``."""

    def __init__(self, root: str, split: str, num_frames: int, sampling_rate: float,
                 num_clips: int = 1, ann_file: Optional[str] = None,
                 target_fps: Optional[float] = None, label_map: Optional[str] = None,
                 output_dir: Optional[str] = None,
                 extensions: Sequence[str] = VIDEO_EXTENSIONS, protocol: str = "views",
                 offset_sampling: bool = False,
                 class_names: Optional[Sequence[str]] = None, unknown_labels: str = "error",
                 allow_outside_root: bool = False, config_key: Optional[str] = None) -> None:
        super().__init__(num_frames=num_frames, sampling_rate=sampling_rate, num_clips=num_clips,
                         target_fps=target_fps, output_dir=output_dir, label_map=label_map,
                         protocol=protocol, offset_sampling=offset_sampling, class_names=class_names,
                         unknown_labels=unknown_labels, allow_outside_root=allow_outside_root,
                         config_key=config_key)
        name = type(self).__name__
        self.root, self.split = root, split
        video_dir = os.path.join(root, split)
        csv_path = self._find_csv(root, split, ann_file)
        if csv_path is None:
            if not os.path.isdir(video_dir):
                raise DataError(f"{name}: neither an annotation CSV ({root}/annotations/{split}.csv) "
                                f"nor the class-folder tree '{video_dir}' exists")
            found = _subdirs(video_dir)
            if not found:
                raise DataError(f"{name}: no CSV and no class folders in '{video_dir}'")
            self._use_classes(load_label_map(label_map) if label_map else found, label_map or video_dir)
            listed = self._class_folders(video_dir, found, extensions)
            if not listed and not self.unknown_skipped:
                raise DataError(f"{name}: no video files under '{video_dir}'")
            self._finish(listed, video_dir)
            return
        rows = self._read_csv(csv_path)
        self._use_classes(load_label_map(label_map) if label_map else sorted({r[1] for r in rows}),
                          label_map or csv_path)
        on_disk: Dict[str, str] = {}
        if os.path.isdir(video_dir):
            for p in _videos_under(video_dir, extensions):
                on_disk.setdefault(os.path.splitext(os.path.basename(p))[0], p)
        listed = []
        for lineno, label, stem in rows:
            where = f"{csv_path}:{lineno}"
            index = self._label_of(label, where)
            if index is None:
                continue
            expected = self._row_path(video_dir, os.path.join(label, stem + ".mp4"), where)
            listed.append((on_disk.get(stem, expected), index))
        self._finish(listed, csv_path)

    @staticmethod
    def _find_csv(root: str, split: str, ann_file: Optional[str]) -> Optional[str]:
        if ann_file is not None:
            path = _resolve(root, ann_file)
            if not os.path.isfile(path):
                raise DataError(f"Kinetics: ann_file '{path}' not found")
            return path
        for s in _KINETICS_SPLIT_FILES.get(split, (split,)):
            for cand in (os.path.join(root, "annotations", f"{s}.csv"), os.path.join(root, f"{s}.csv")):
                if os.path.isfile(cand):
                    return cand
        return None

    @staticmethod
    def _read_csv(path: str) -> List[Tuple[int, str, str]]:
        """``(line number, label, file stem)`` of each row of a Kinetics CSV."""
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            need = {"label", "youtube_id", "time_start", "time_end"}
            if reader.fieldnames is None or not need <= set(reader.fieldnames):
                raise DataError(f"{path}: expected CSV columns label,youtube_id,time_start,time_end[,split], "
                                f"got {reader.fieldnames}")
            rows = []
            for r in reader:
                lineno = reader.line_num
                try:
                    stem = f"{r['youtube_id']}_{int(float(r['time_start'])):06d}_{int(float(r['time_end'])):06d}"
                except (TypeError, ValueError):
                    raise DataError(f"{path}:{lineno}: time_start/time_end must be numbers") from None
                label = (r["label"] or "").strip().strip('"')
                if not label:
                    raise DataError(f"{path}:{lineno}: empty label")
                rows.append((lineno, label, stem))
        return rows


@DATASETS.register()
class Kinetics600(Kinetics400):
    """Kinetics-600: same layouts as :class:`Kinetics400`."""


def list_rows(path: str, fields: int) -> Iterator[Tuple[str, str, List[str]]]:
    """``(where, line, parts)`` of each row of a list file (``path label``, ``dir frames label``):
    blank lines and ``#`` comments skipped, the line split from the right into at most ``fields``
    parts (a path may hold spaces); ``where`` is ``FILE:LINE`` for error messages."""
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if line and not line.startswith("#"):
                yield f"{path}:{lineno}", line, line.rsplit(None, fields - 1)


def _read_lines(path: str) -> List[Tuple[int, str]]:
    """``(line number, stripped line)`` of the non-empty lines of ``path``."""
    if not os.path.isfile(path):
        raise DataError(f"annotation file '{path}' not found")
    with open(path, encoding="utf-8") as f:
        return [(n, l.strip()) for n, l in enumerate(f, 1) if l.strip()]


@DATASETS.register()
class UCF101(VideoDataset):
    """UCF101: ``classInd.txt`` and ``trainlist0N.txt`` / ``testlist0N.txt`` (N = ``fold``) in
    ``ann_dir`` (default ``{root}/ucfTrainTestlist``); videos ``{video_dir}/{Class}/v_*.avi``
    (default ``{root}/UCF-101`` if it exists, else ``root``). ``frames: {dir: ...}`` reads frame
    folders ``{dir}/{Class}/v_*/`` instead (keys: :meth:`VideoDataset._finish_frames`)."""

    def __init__(self, root: str, num_frames: int, sampling_rate: float, split: str = "train",
                 fold: int = 1, num_clips: int = 1, ann_dir: Optional[str] = None,
                 video_dir: Optional[str] = None, target_fps: Optional[float] = None,
                 output_dir: Optional[str] = None, frames: Optional[Dict] = None,
                 protocol: str = "views", offset_sampling: bool = False,
                 class_names: Optional[Sequence[str]] = None, unknown_labels: str = "error",
                 allow_outside_root: bool = False, config_key: Optional[str] = None) -> None:
        super().__init__(num_frames=num_frames, sampling_rate=sampling_rate, num_clips=num_clips,
                         target_fps=target_fps, output_dir=output_dir, protocol=protocol,
                         offset_sampling=offset_sampling, class_names=class_names,
                         unknown_labels=unknown_labels, allow_outside_root=allow_outside_root,
                         config_key=config_key)
        if split not in ("train", "test") or fold not in (1, 2, 3):
            raise DataError(f"UCF101: split must be train|test and fold 1|2|3, got {split!r}, {fold!r}")
        ann_dir = ann_dir or os.path.join(root, "ucfTrainTestlist")
        if video_dir is None:
            video_dir = os.path.join(root, "UCF-101") if os.path.isdir(os.path.join(root, "UCF-101")) else root
        class_ind = os.path.join(ann_dir, "classInd.txt")
        pairs = []
        for _, line in _read_lines(class_ind):
            parts = line.split()
            if len(parts) != 2 or not parts[0].isdigit():
                raise DataError(f"{class_ind}: expected 'index ClassName' lines, got {line!r}")
            pairs.append((int(parts[0]), parts[1]))
        pairs.sort()
        if [i for i, _ in pairs] != list(range(1, len(pairs) + 1)):
            raise DataError(f"{class_ind}: class indices must be 1..{len(pairs)}")
        self._use_classes([n for _, n in pairs], class_ind)
        list_file = os.path.join(ann_dir, f"{split}list{fold:02d}.txt")
        listed = []
        for lineno, line in _read_lines(list_file):
            rel = line.split()[0]
            where = f"{list_file}:{lineno}"
            index = self._label_of(rel.replace("\\", "/").split("/")[0], where)
            if index is not None:
                listed.append((self._row_path(video_dir, rel, where), index))
        if frames is not None:  # frame folders instead of videos
            self._finish_frames(listed, video_dir, frames, list_file)
            return
        self._finish(listed, list_file)


@DATASETS.register()
class HMDB51(VideoDataset):
    """HMDB51: ``{Class}_test_split{fold}.txt`` files in ``ann_dir`` (lines ``name.avi id``,
    id 1 = train, 2 = test, 0 = unused); videos ``{video_dir}/{Class}/{name}``. Classes are the
    sorted names of the split files. ``frames: {dir: ...}`` reads frame folders
    ``{dir}/{Class}/{name without extension}/`` instead (keys: :meth:`VideoDataset._finish_frames`)."""

    def __init__(self, root: str, num_frames: int, sampling_rate: float, split: str = "train",
                 fold: int = 1, num_clips: int = 1, ann_dir: Optional[str] = None,
                 video_dir: Optional[str] = None, target_fps: Optional[float] = None,
                 output_dir: Optional[str] = None, frames: Optional[Dict] = None,
                 protocol: str = "views", offset_sampling: bool = False,
                 class_names: Optional[Sequence[str]] = None, unknown_labels: str = "error",
                 allow_outside_root: bool = False, config_key: Optional[str] = None) -> None:
        super().__init__(num_frames=num_frames, sampling_rate=sampling_rate, num_clips=num_clips,
                         target_fps=target_fps, output_dir=output_dir, protocol=protocol,
                         offset_sampling=offset_sampling, class_names=class_names,
                         unknown_labels=unknown_labels, allow_outside_root=allow_outside_root,
                         config_key=config_key)
        if split not in ("train", "test") or fold not in (1, 2, 3):
            raise DataError(f"HMDB51: split must be train|test and fold 1|2|3, got {split!r}, {fold!r}")
        if ann_dir is None:
            cand = os.path.join(root, "testTrainMulti_7030_splits")
            ann_dir = cand if os.path.isdir(cand) else root
        video_dir = video_dir or root
        suffix = f"_test_split{fold}.txt"
        if not os.path.isdir(ann_dir):
            raise DataError(f"HMDB51: split folder '{ann_dir}' not found")
        files = sorted(f for f in os.listdir(ann_dir) if f.endswith(suffix))
        if not files:
            raise DataError(f"HMDB51: no '*{suffix}' files in '{ann_dir}'")
        own = [f[: -len(suffix)] for f in files]
        self._use_classes(own, f"{ann_dir}/*{suffix}")
        want = "1" if split == "train" else "2"
        listed = []
        for cls, fname in zip(own, files):
            path = os.path.join(ann_dir, fname)
            for lineno, line in _read_lines(path):
                parts = line.split()
                if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                    raise DataError(f"{path}:{lineno}: expected 'video.avi 0|1|2' lines, got {line!r}")
                if parts[1] == want:
                    where = f"{path}:{lineno}"
                    index = self._label_of(cls, where)
                    if index is not None:
                        listed.append((self._row_path(video_dir, os.path.join(cls, parts[0]), where), index))
        if frames is not None:  # frame folders instead of videos
            self._finish_frames(listed, video_dir, frames, f"{ann_dir}/*{suffix} ({split})")
            return
        self._finish(listed, f"{ann_dir}/*{suffix} ({split})")
