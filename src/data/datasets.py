"""Registered video data sets: Kinetics400/600, UCF101, HMDB51, VideoFolder, VideoList.

Each is an index of ``(path, label)`` samples plus ``class_names``; it knows its clip settings
(``num_frames``, ``sampling_rate``, ``num_clips``, ``target_fps``) and :meth:`load_clip` decodes
one clip. Listed files that do not exist are counted when the data set is built: none found is
an error, some missing gives one warning with the count and the list in
``{output_dir}/missing_files.txt``. The MindSpore pipeline (``pipeline.py``) wraps these.

Every data set takes ``offset_sampling`` (SlowFast's ``DATA.USE_OFFSET_SAMPLING``, default
false: test clip ``i`` of ``N`` starts at ``delta * i / N``, see ``sampling.py``) and
``protocol``: ``views`` (the loader's random / multi-clip sampling) or ``video``, the
Efficient-3DCNNs video-level test: the samples become every consecutive window of every video
(:func:`~src.data.sampling.plan_video_windows`; a video file's frame count and rate are read once
at start-up), described by :attr:`VideoDataset.video_level`, whose scores eval.py averages per
video (:func:`~src.data.rawframes.windows_to_videos`). Frame folders use the same plan.
"""
from __future__ import annotations

import csv
import logging
import os
import re
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..registry import DATASETS
from .decode import VideoReader, probe_video
from .errors import DataError, VideoDecodeError
from .labels import load_label_map
from .sampling import eval_clip_indices, plan_video_windows, train_clip_indices, window_clip_indices

logger = logging.getLogger("src.data")

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".ogv")
MISSING_FILES = "missing_files.txt"
PROTOCOLS = ("views", "video")


def _is_video(name: str, extensions: Sequence[str]) -> bool:
    return name.lower().endswith(tuple(e.lower() for e in extensions))


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
    """Base class: ``samples`` [(path, label)], ``class_names`` and the clip settings."""

    frame_folders = None  # a rawframes.FrameFolders reader when the samples are frame folders
    video_level: Optional[VideoLevel] = None  # protocol "video": which window of which video

    def __init__(self, *, num_frames: int, sampling_rate: float, num_clips: int = 1,
                 target_fps: Optional[float] = None, output_dir: Optional[str] = None,
                 label_map: Optional[str] = None, protocol: str = "views",
                 offset_sampling: bool = False) -> None:
        name = type(self).__name__
        if protocol not in PROTOCOLS:
            raise DataError(f"{name}.protocol: expected one of {', '.join(PROTOCOLS)}, got {protocol!r}")
        if not isinstance(offset_sampling, bool):
            raise DataError(f"{name}.offset_sampling: expected true or false, got {offset_sampling!r}")
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
        self.class_names: List[str] = []
        self.missing: List[str] = []

    # -- building ---------------------------------------------------------------------------
    def _classes_from(self, found: Sequence[str]) -> List[str]:
        """``found`` class names, or the ``label_map`` file's (which must contain them all)."""
        if self.label_map is None:
            return sorted(set(found))
        names = load_label_map(self.label_map)
        unknown = sorted(set(found) - set(names))
        if unknown:
            raise DataError(f"{self.label_map}: label map lacks classes {unknown[:5]} of {type(self).__name__}")
        return names

    def _finish(self, listed: Sequence[Tuple[str, int]], source: str) -> None:
        """Keep the listed samples whose files exist; error if none, warn once if some are missing."""
        if not listed:
            raise DataError(f"{source}: no videos listed")
        ok, missing = [], []
        for path, label in listed:
            (ok if os.path.isfile(path) else missing).append((path, label))
        if not ok:
            raise DataError(f"{source}: none of the {len(listed)} listed videos exist "
                            f"(first expected at {missing[0][0]})")
        self.samples = ok
        self.missing = [p for p, _ in missing]
        if self.protocol == "video":
            self._probe_windows(source)
        if missing:
            where = ""
            if self.output_dir:
                os.makedirs(self.output_dir, exist_ok=True)
                path = os.path.join(self.output_dir, MISSING_FILES)
                tmp = f"{path}.tmp{os.getpid()}"
                with open(tmp, "w", encoding="utf-8") as f:
                    f.writelines(p + "\n" for p in self.missing)
                os.replace(tmp, path)
                where = f"; missing ones listed in {path}"
            # one visible line on every entry point (train, eval, check_dataset), not a log record
            print(f"warning: {source}: {len(listed)} videos listed, {len(ok)} found, {len(missing)} missing "
                  f"(e.g. {missing[0][0]}){where}", file=sys.stderr, flush=True)

    def _probe_windows(self, source: str) -> None:
        """Video files, protocol ``video``: read each video's frame count and rate (an unreadable
        one gets one window and is reported when read), then :meth:`use_video_windows`."""
        counts, rates = [], []
        for path, _ in self.samples:
            try:
                n, fps = probe_video(path)
            except VideoDecodeError:
                n, fps = 0, None
            counts.append(n)
            rates.append(fps or None)
        self.use_video_windows(self.samples, counts, rates, source)

    def use_video_windows(self, videos: Sequence[Tuple[str, int]], counts: Sequence[int],
                          fps: Any, source: str) -> List[int]:
        """Make the samples every consecutive window of every video of ``videos`` (frame counts
        ``counts``, rates ``fps``: one or one per video) and set :attr:`video_level`. Returns the
        video of each new sample."""
        window_video, window_index = plan_video_windows(counts, self.num_frames, self.sampling_rate, fps,
                                                        self.target_fps)
        self.video_level = VideoLevel(videos, window_video, window_index)
        self.samples = [videos[v] for v in window_video]
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

    def clip_indices(self, video_frames: int, fps: float, clip_idx: Optional[int],
                     rng: Optional[np.random.Generator], index: Optional[int] = None) -> np.ndarray:
        """Train clip (``clip_idx`` None: random start from ``rng``) or eval clip ``clip_idx``;
        with the video-level protocol, sample ``index``'s window."""
        if self.video_level is not None and index is not None:
            return window_clip_indices(video_frames, int(self.video_level.window_index[index]), self.num_frames,
                                       self.sampling_rate, fps, self.target_fps)
        if clip_idx is None:
            return train_clip_indices(video_frames, self.num_frames, self.sampling_rate,
                                      rng if rng is not None else np.random.default_rng(),
                                      fps, self.target_fps)
        return eval_clip_indices(video_frames, self.num_frames, self.sampling_rate,
                                 self.num_clips, clip_idx, fps, self.target_fps,
                                 offset_sampling=self.offset_sampling)

    def load_clip(self, index: int, clip_idx: Optional[int] = None,
                  rng: Optional[np.random.Generator] = None, decoder: str = "decord",
                  min_frames: int = 1) -> np.ndarray:
        """Decode the clip of sample ``index`` -> (T, H, W, 3) uint8. Raises
        :class:`VideoDecodeError` for unreadable files and videos shorter than ``min_frames``
        (the video-level protocol takes any length: its windows loop)."""
        if self.frame_folders is not None:
            return self.frame_folders.load_clip(self, index, clip_idx, rng, min_frames)
        path = self.samples[index][0]
        with VideoReader(path, decoder) as vr:
            if vr.num_frames < min_frames and self.video_level is None:
                raise VideoDecodeError(path, f"too short: {vr.num_frames} frames, need {min_frames}")
            return vr.get_frames(self.clip_indices(vr.num_frames, vr.fps or None, clip_idx, rng, index))


def _resolve(root: str, path: str) -> str:
    """``path`` if absolute or existing relative to the cwd, else ``root/path``."""
    if os.path.isabs(path):
        return path
    joined = os.path.join(root, path)
    return joined if os.path.exists(joined) or not os.path.exists(path) else path


@DATASETS.register()
class VideoList(VideoDataset):
    """A text file of ``relative/path label`` lines (mmaction2 / TF X3D style); paths are relative
    to ``root``. Class names come from ``label_map`` if given, else ``{root}/label_map.json`` if
    present, else ``"0"``, ``"1"``, ..."""

    def __init__(self, root: str, ann_file: str, num_frames: int, sampling_rate: float,
                 num_clips: int = 1, target_fps: Optional[float] = None,
                 label_map: Optional[str] = None, output_dir: Optional[str] = None,
                 protocol: str = "views", offset_sampling: bool = False) -> None:
        default_map = os.path.join(root, "label_map.json")
        if label_map is None and os.path.isfile(default_map):
            label_map = default_map
        super().__init__(num_frames=num_frames, sampling_rate=sampling_rate, num_clips=num_clips,
                         target_fps=target_fps, output_dir=output_dir, label_map=label_map,
                         protocol=protocol, offset_sampling=offset_sampling)
        self.root = root
        self.ann_file = _resolve(root, ann_file)
        if not os.path.isfile(self.ann_file):
            raise DataError(f"VideoList: annotation file '{self.ann_file}' not found (root={root!r}, ann_file={ann_file!r})")
        listed = []
        with open(self.ann_file, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                parts = line.rsplit(None, 1)
                if len(parts) != 2 or not re.fullmatch(r"-?\d+", parts[1]) or int(parts[1]) < 0:
                    raise DataError(f"{self.ann_file}:{lineno}: expected 'relative/path label' "
                                    f"with an integer label >= 0, got {line!r}")
                listed.append((os.path.join(root, parts[0]), int(parts[1])))
        num = max((l for _, l in listed), default=-1) + 1
        if label_map is not None:
            self.class_names = load_label_map(label_map)
            if num > len(self.class_names):
                raise DataError(f"{self.ann_file}: label {num - 1} but {label_map} has "
                                f"{len(self.class_names)} classes")
        else:
            self.class_names = [str(i) for i in range(num)]
        self._finish(listed, self.ann_file)


@DATASETS.register()
class VideoFolder(VideoDataset):
    """One sub-folder per class (sorted names = indices) under ``root`` (or ``root/split``)."""

    def __init__(self, root: str, num_frames: int, sampling_rate: float, split: Optional[str] = None,
                 num_clips: int = 1, target_fps: Optional[float] = None,
                 label_map: Optional[str] = None, output_dir: Optional[str] = None,
                 extensions: Sequence[str] = VIDEO_EXTENSIONS, protocol: str = "views",
                 offset_sampling: bool = False) -> None:
        super().__init__(num_frames=num_frames, sampling_rate=sampling_rate, num_clips=num_clips,
                         target_fps=target_fps, output_dir=output_dir, label_map=label_map,
                         protocol=protocol, offset_sampling=offset_sampling)
        folder = os.path.join(root, split) if split else root
        if not os.path.isdir(folder):
            raise DataError(f"VideoFolder: folder '{folder}' not found")
        found = _subdirs(folder)
        if not found:
            raise DataError(f"VideoFolder: '{folder}' has no class sub-folders")
        self.class_names = self._classes_from(found)
        index = {c: i for i, c in enumerate(self.class_names)}
        listed = [(p, index[c]) for c in found for p in _videos_under(os.path.join(folder, c), extensions)]
        if not listed:
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
                 offset_sampling: bool = False) -> None:
        super().__init__(num_frames=num_frames, sampling_rate=sampling_rate, num_clips=num_clips,
                         target_fps=target_fps, output_dir=output_dir, label_map=label_map,
                         protocol=protocol, offset_sampling=offset_sampling)
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
            self.class_names = self._classes_from(found)
            index = {c: i for i, c in enumerate(self.class_names)}
            listed = [(p, index[c]) for c in found
                      for p in _videos_under(os.path.join(video_dir, c), extensions)]
            if not listed:
                raise DataError(f"{name}: no video files under '{video_dir}'")
            self._finish(listed, video_dir)
            return
        rows = self._read_csv(csv_path)
        self.class_names = self._classes_from([r[0] for r in rows])
        index = {c: i for i, c in enumerate(self.class_names)}
        on_disk: Dict[str, str] = {}
        if os.path.isdir(video_dir):
            for p in _videos_under(video_dir, extensions):
                on_disk.setdefault(os.path.splitext(os.path.basename(p))[0], p)
        listed = []
        for label, stem in rows:
            path = on_disk.get(stem, os.path.join(video_dir, label, stem + ".mp4"))
            listed.append((path, index[label]))
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
    def _read_csv(path: str) -> List[Tuple[str, str]]:
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            need = {"label", "youtube_id", "time_start", "time_end"}
            if reader.fieldnames is None or not need <= set(reader.fieldnames):
                raise DataError(f"{path}: expected CSV columns label,youtube_id,time_start,time_end[,split], "
                                f"got {reader.fieldnames}")
            rows = []
            for lineno, r in enumerate(reader, 2):
                try:
                    stem = f"{r['youtube_id']}_{int(float(r['time_start'])):06d}_{int(float(r['time_end'])):06d}"
                except (TypeError, ValueError):
                    raise DataError(f"{path}:{lineno}: time_start/time_end must be numbers") from None
                label = (r["label"] or "").strip().strip('"')
                if not label:
                    raise DataError(f"{path}:{lineno}: empty label")
                rows.append((label, stem))
        return rows


@DATASETS.register()
class Kinetics600(Kinetics400):
    """Kinetics-600: same layouts as :class:`Kinetics400`."""


def _read_lines(path: str) -> List[str]:
    if not os.path.isfile(path):
        raise DataError(f"annotation file '{path}' not found")
    with open(path, encoding="utf-8") as f:
        return [l.strip() for l in f if l.strip()]


@DATASETS.register()
class UCF101(VideoDataset):
    """UCF101: ``classInd.txt`` and ``trainlist0N.txt`` / ``testlist0N.txt`` (N = ``fold``) in
    ``ann_dir`` (default ``{root}/ucfTrainTestlist``); videos ``{video_dir}/{Class}/v_*.avi``
    (default ``{root}/UCF-101`` if it exists, else ``root``). ``frames: {dir: ...}`` reads frame
    folders ``{dir}/{Class}/v_*/`` instead (keys: ``rawframes.attach_frames``)."""

    def __init__(self, root: str, num_frames: int, sampling_rate: float, split: str = "train",
                 fold: int = 1, num_clips: int = 1, ann_dir: Optional[str] = None,
                 video_dir: Optional[str] = None, target_fps: Optional[float] = None,
                 output_dir: Optional[str] = None, frames: Optional[Dict] = None,
                 protocol: str = "views", offset_sampling: bool = False) -> None:
        super().__init__(num_frames=num_frames, sampling_rate=sampling_rate, num_clips=num_clips,
                         target_fps=target_fps, output_dir=output_dir, protocol=protocol,
                         offset_sampling=offset_sampling)
        if split not in ("train", "test") or fold not in (1, 2, 3):
            raise DataError(f"UCF101: split must be train|test and fold 1|2|3, got {split!r}, {fold!r}")
        ann_dir = ann_dir or os.path.join(root, "ucfTrainTestlist")
        if video_dir is None:
            video_dir = os.path.join(root, "UCF-101") if os.path.isdir(os.path.join(root, "UCF-101")) else root
        class_ind = os.path.join(ann_dir, "classInd.txt")
        pairs = []
        for line in _read_lines(class_ind):
            parts = line.split()
            if len(parts) != 2 or not parts[0].isdigit():
                raise DataError(f"{class_ind}: expected 'index ClassName' lines, got {line!r}")
            pairs.append((int(parts[0]), parts[1]))
        pairs.sort()
        if [i for i, _ in pairs] != list(range(1, len(pairs) + 1)):
            raise DataError(f"{class_ind}: class indices must be 1..{len(pairs)}")
        self.class_names = [n for _, n in pairs]
        index = {c: i for i, c in enumerate(self.class_names)}
        list_file = os.path.join(ann_dir, f"{split}list{fold:02d}.txt")
        listed = []
        for line in _read_lines(list_file):
            rel = line.split()[0]
            cls = rel.replace("\\", "/").split("/")[0]
            if cls not in index:
                raise DataError(f"{list_file}: class folder '{cls}' of {rel!r} not in {class_ind}")
            listed.append((os.path.join(video_dir, rel), index[cls]))
        if frames is not None:  # frame folders instead of videos (rawframes.py)
            from .rawframes import attach_frames
            attach_frames(self, listed, video_dir, frames, list_file)
            return
        self._finish(listed, list_file)


@DATASETS.register()
class HMDB51(VideoDataset):
    """HMDB51: ``{Class}_test_split{fold}.txt`` files in ``ann_dir`` (lines ``name.avi id``,
    id 1 = train, 2 = test, 0 = unused); videos ``{video_dir}/{Class}/{name}``. Classes are the
    sorted names of the split files. ``frames: {dir: ...}`` reads frame folders
    ``{dir}/{Class}/{name without extension}/`` instead (keys: ``rawframes.attach_frames``)."""

    def __init__(self, root: str, num_frames: int, sampling_rate: float, split: str = "train",
                 fold: int = 1, num_clips: int = 1, ann_dir: Optional[str] = None,
                 video_dir: Optional[str] = None, target_fps: Optional[float] = None,
                 output_dir: Optional[str] = None, frames: Optional[Dict] = None,
                 protocol: str = "views", offset_sampling: bool = False) -> None:
        super().__init__(num_frames=num_frames, sampling_rate=sampling_rate, num_clips=num_clips,
                         target_fps=target_fps, output_dir=output_dir, protocol=protocol,
                         offset_sampling=offset_sampling)
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
        self.class_names = [f[: -len(suffix)] for f in files]
        want = "1" if split == "train" else "2"
        listed = []
        for label, (cls, fname) in enumerate(zip(self.class_names, files)):
            path = os.path.join(ann_dir, fname)
            for line in _read_lines(path):
                parts = line.split()
                if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                    raise DataError(f"{path}: expected 'video.avi 0|1|2' lines, got {line!r}")
                if parts[1] == want:
                    listed.append((os.path.join(video_dir, cls, parts[0]), label))
        if frames is not None:  # frame folders instead of videos (rawframes.py)
            from .rawframes import attach_frames
            attach_frames(self, listed, video_dir, frames, f"{ann_dir}/*{suffix} ({split})")
            return
        self._finish(listed, f"{ann_dir}/*{suffix} ({split})")
