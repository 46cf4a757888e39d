"""Frame-folder data sets ("rawframes"): clips stored as folders of decoded JPEG frames.

Registered: ``RawFrameList`` (mmaction2's ``frame_dir total_frames label`` list), ``Jester`` and
``SomethingSomethingV1`` (official ``id;label`` CSVs, or the Efficient 3D CNN reference's
annotation files); ``UCF101`` / ``HMDB51`` use the same reader through their ``frames`` option.

Data flow of one clip::

    list / CSV  --start-up, no image opened-->  samples [(frame_dir, label)], listed counts or None
    load_clip(i): listdir(frame_dir)            folder exists? frames start..start+n-1 all there?
                                                (n = listed count, or the highest index found)
        -> frame indices (sampling.py: random / multi-clip / consecutive windows;
           pad_mode clamp = the video path, loop = the reference's LoopPadding)
        -> PIL decode of each needed JPEG        -> (T, H, W, 3) uint8 RGB

Every problem (missing folder, missing or corrupt JPEG, fewer frames than listed) raises
:class:`VideoDecodeError` ``(frame_dir, reason)``, which the loader's ``ClipSource`` records once
in ``bad_files.txt`` and replaces, under ``data_loader.max_bad_fraction`` as for videos.

The reference's ``downsample`` (a window of ``num_frames * downsample`` frames, every
``downsample``-th kept) selects the same frames as ``sampling_rate = downsample``; ``downsample``
is accepted as an alias. ``protocol: video`` turns an eval set into every consecutive window of
every video (see :func:`~src.data.sampling.plan_video_windows`, the same plan as for video
files: :meth:`VideoDataset.use_video_windows`) for the reference's video-level accuracy;
:func:`windows_to_videos` averages the window scores per video.
"""
from __future__ import annotations

import csv
import json
import logging
import os
import re
import string
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from ..registry import DATASETS
from .datasets import PROTOCOLS, VideoDataset, _resolve
from .decode import _one_line
from .errors import DataError, VideoDecodeError
from .labels import load_label_map
from .sampling import PAD_MODES, eval_clip_indices, train_clip_indices, window_clip_indices

logger = logging.getLogger("src.data")

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
_PROBES = 32  # frame folders checked for existence at start-up (a wrong root fails early)


def _template_parts(tmpl: str, where: str) -> Tuple[str, str]:
    """``'img_{:05d}.jpg'`` -> ``('img_', '.jpg')``; exactly one positional integer field."""
    bad = DataError(f"{where}.filename_tmpl: expected one integer field such as 'img_{{:05d}}.jpg', got {tmpl!r}")
    try:
        fields = list(string.Formatter().parse(str(tmpl)))
        ok = str(tmpl).format(123) != str(tmpl).format(45)
    except (ValueError, IndexError, KeyError, TypeError):
        raise bad from None
    named = [i for i, f in enumerate(fields) if f[1] is not None]
    if len(named) != 1 or fields[named[0]][1] not in ("", "0") or not ok:
        raise bad
    i = named[0]
    return "".join(f[0] for f in fields[: i + 1]), "".join(f[0] for f in fields[i + 1:])


def _read_image(path: str) -> np.ndarray:
    with open(path, "rb") as f:
        with Image.open(f) as img:
            return np.asarray(img.convert("RGB"))


class FrameFolders:
    """How a data set's samples map to frame files, and the reader that checks and decodes them.

    ``filename_tmpl`` names frame ``k`` (``start_index`` = the first file's number, 0 or 1),
    ``pad_mode`` pads clips longer than the video (``clamp`` | ``loop``), ``fps`` is the frame
    rate of the folders (only needed with the data set's ``target_fps``), ``protocol`` is
    ``views`` (the loader's random / multi-clip sampling) or ``video`` (consecutive windows)."""

    def __init__(self, *, filename_tmpl: str = "img_{:05d}.jpg", start_index: int = 1,
                 pad_mode: str = "clamp", fps: Optional[float] = None, protocol: str = "views",
                 where: str = "dataset") -> None:
        self.prefix, self.suffix = _template_parts(filename_tmpl, where)
        if isinstance(start_index, bool) or not isinstance(start_index, int) or start_index < 0:
            raise DataError(f"{where}.start_index: expected an integer >= 0 (0 or 1), got {start_index!r}")
        if pad_mode not in PAD_MODES:
            raise DataError(f"{where}.pad_mode: expected one of {', '.join(PAD_MODES)}, got {pad_mode!r}")
        if protocol not in PROTOCOLS:
            raise DataError(f"{where}.protocol: expected one of {', '.join(PROTOCOLS)}, got {protocol!r}")
        if fps is not None and (not isinstance(fps, (int, float)) or fps <= 0):
            raise DataError(f"{where}.fps: expected null or a frame rate > 0, got {fps!r}")
        self.filename_tmpl = filename_tmpl
        self.start_index = int(start_index)
        self.pad_mode = pad_mode
        self.fps = fps
        self.protocol = protocol
        self.counts: List[Optional[int]] = []

    def file_name(self, k: int) -> str:
        """File name of frame ``k`` (0-based)."""
        return self.filename_tmpl.format(self.start_index + int(k))

    # -- start-up ---------------------------------------------------------------------------
    def attach(self, ds: VideoDataset, listed: Sequence[Tuple[str, int]],
               counts: Optional[Sequence[Optional[int]]], source: str) -> None:
        """Make ``ds`` read ``listed`` frame folders. Only a few folders are looked at (a wrong
        root fails here); problems with single folders surface when they are read."""
        if not listed:
            raise DataError(f"{source}: no clips listed")
        counts = list(counts) if counts is not None else [None] * len(listed)
        probes = sorted({int(i) for i in np.linspace(0, len(listed) - 1, min(_PROBES, len(listed)))})
        if not any(os.path.isdir(listed[i][0]) for i in probes):
            raise DataError(f"{source}: none of {len(probes)} checked frame folders exist (first expected at "
                            f"{listed[0][0]}); check the data set's root / frames_dir")
        ds.frame_folders = self
        ds.missing = []
        if self.protocol == "views":
            ds.samples, self.counts = list(listed), counts
            return
        # every consecutive window of every video (the plan video files use too)
        known = [c if c is not None else self._count_or_zero(p) for (p, _), c in zip(listed, counts)]
        videos = ds.use_video_windows(listed, known, self.fps, source)
        self.counts = [known[v] if known[v] > 0 else None for v in videos]

    def _count_or_zero(self, folder: str) -> int:
        try:
            return self.scan(folder, None)
        except VideoDecodeError:
            return 0  # reported when the sample is read

    # -- reading ----------------------------------------------------------------------------
    def scan(self, folder: str, listed: Optional[int]) -> int:
        """Usable frame count of ``folder`` (``listed``, or the highest frame number found) after
        checking, from one directory listing, that every frame up to it exists."""
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            raise VideoDecodeError(folder, "frame folder not found") from None
        except NotADirectoryError:
            raise VideoDecodeError(folder, "not a folder (frame folder expected)") from None
        except OSError as e:
            raise VideoDecodeError(folder, f"cannot list frame folder: {e.strerror}") from None
        pre, suf = self.prefix, self.suffix
        found = set()
        for name in names:
            if name.startswith(pre) and name.endswith(suf) and len(name) > len(pre) + len(suf):
                mid = name[len(pre):len(name) - len(suf)]
                if mid.isdigit():
                    found.add(int(mid))
        first = self.start_index
        if not found or max(found) < first:
            raise VideoDecodeError(folder, f"no frames named like {self.file_name(0)} in the folder")
        n = listed if listed is not None else max(found) - first + 1
        if n <= 0:
            raise VideoDecodeError(folder, f"listed with {n} frames")
        last = first + n - 1
        if listed is not None and max(found) < last:
            have = sum(1 for k in found if first <= k <= last)
            raise VideoDecodeError(folder, f"fewer frames than listed: {have} found, the list says {listed}")
        have = sum(1 for k in found if first <= k <= last)
        if have < n:
            gap = next(k for k in range(first, last + 1) if k not in found)
            raise VideoDecodeError(folder, f"missing frame {self.filename_tmpl.format(gap)} "
                                           f"({n - have} of {n} frames missing)")
        return n

    def indices(self, ds: VideoDataset, index: int, n: int, clip_idx: Optional[int],
                rng: Optional[np.random.Generator]) -> np.ndarray:
        """Frame indices (0-based) of sample ``index``'s clip in a folder of ``n`` frames."""
        if ds.video_level is not None:
            return window_clip_indices(n, int(ds.video_level.window_index[index]), ds.num_frames,
                                       ds.sampling_rate, self.fps, ds.target_fps)
        if clip_idx is None:
            return train_clip_indices(n, ds.num_frames, ds.sampling_rate,
                                      rng if rng is not None else np.random.default_rng(),
                                      self.fps, ds.target_fps, pad_mode=self.pad_mode)
        return eval_clip_indices(n, ds.num_frames, ds.sampling_rate, ds.num_clips, clip_idx,
                                 self.fps, ds.target_fps, pad_mode=self.pad_mode,
                                 offset_sampling=ds.offset_sampling)

    def read(self, folder: str, indices: Sequence[int]) -> np.ndarray:
        """Decode frames ``indices`` of ``folder`` -> (T, H, W, 3) uint8 (each file once)."""
        decoded: Dict[int, np.ndarray] = {}
        for k in dict.fromkeys(int(i) for i in indices):
            name = self.file_name(k)
            try:
                decoded[k] = _read_image(os.path.join(folder, name))
            except FileNotFoundError:
                raise VideoDecodeError(folder, f"missing frame {name}") from None
            except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
                raise VideoDecodeError(folder, f"corrupt JPEG {name}: {_one_line(e)}") from None
        shapes = {a.shape for a in decoded.values()}
        if len(shapes) > 1:
            (h0, w0, _), (h1, w1, _) = sorted(shapes)[:2]
            raise VideoDecodeError(folder, f"frame sizes differ ({w0}x{h0} and {w1}x{h1})")
        return np.stack([decoded[int(i)] for i in indices])

    def load_clip(self, ds: VideoDataset, index: int, clip_idx: Optional[int] = None,
                  rng: Optional[np.random.Generator] = None, min_frames: int = 1) -> np.ndarray:
        """The clip of sample ``index`` (see :meth:`VideoDataset.load_clip`). With
        ``pad_mode: loop`` (or the video protocol) clips of any length are used, looped."""
        folder = ds.samples[index][0]
        n = self.scan(folder, self.counts[index] if self.counts else None)
        if self.pad_mode == "clamp" and ds.video_level is None and n < min_frames:
            raise VideoDecodeError(folder, f"too short: {n} frames, need {min_frames}")
        return self.read(folder, self.indices(ds, index, n, clip_idx, rng))

    def check(self, ds: VideoDataset, index: int, min_frames: int = 1) -> Optional[str]:
        """None if sample ``index`` is complete and its first and last frames decode, else the reason."""
        folder = ds.samples[index][0]
        try:
            n = self.scan(folder, self.counts[index] if self.counts else None)
            if self.pad_mode == "clamp" and n < min_frames:
                return f"too short: {n} frames, need {min_frames}"
            self.read(folder, [0, n - 1])
        except VideoDecodeError as e:
            return e.reason
        return None


def frame_folders_of(ds: Any) -> Optional[FrameFolders]:
    """The :class:`FrameFolders` reader of a data set, or None for video data sets."""
    return getattr(ds, "frame_folders", None)


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
    """Base of the frame-folder data sets: the clip settings plus a :class:`FrameFolders` reader."""

    def __init__(self, *, num_frames: int, sampling_rate: Optional[float], downsample: Optional[int],
                 num_clips: int, target_fps: Optional[float], fps: Optional[float],
                 output_dir: Optional[str], label_map: Optional[str], filename_tmpl: str,
                 start_index: int, pad_mode: str, protocol: str, offset_sampling: bool = False) -> None:
        name = type(self).__name__
        super().__init__(num_frames=num_frames, sampling_rate=_rate(name, sampling_rate, downsample),
                         num_clips=num_clips, target_fps=target_fps, output_dir=output_dir,
                         label_map=label_map, offset_sampling=offset_sampling)
        if target_fps is not None and fps is None:
            raise DataError(f"{name}: 'target_fps' needs the frame rate of the folders ('fps')")
        self.frame_folders = FrameFolders(filename_tmpl=filename_tmpl, start_index=start_index,
                                          pad_mode=pad_mode, fps=fps, protocol=protocol, where=name)

    def load_clip(self, index: int, clip_idx: Optional[int] = None,
                  rng: Optional[np.random.Generator] = None, decoder: str = "decord",
                  min_frames: int = 1) -> np.ndarray:
        """Decode the clip of sample ``index`` from its JPEGs -> (T, H, W, 3) uint8 (``decoder``
        is not used). Raises :class:`VideoDecodeError` for the problems listed in the module doc."""
        return self.frame_folders.load_clip(self, index, clip_idx, rng, min_frames)


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
                 offset_sampling: bool = False) -> None:
        default_map = os.path.join(root, "label_map.json")
        if label_map is None and os.path.isfile(default_map):
            label_map = default_map
        super().__init__(num_frames=num_frames, sampling_rate=sampling_rate, downsample=downsample,
                         num_clips=num_clips, target_fps=target_fps, fps=fps, output_dir=output_dir,
                         label_map=label_map, filename_tmpl=filename_tmpl, start_index=start_index,
                         pad_mode=pad_mode, protocol=protocol, offset_sampling=offset_sampling)
        self.root = root
        self.ann_file = _resolve(root, ann_file)
        if not os.path.isfile(self.ann_file):
            raise DataError(f"RawFrameList: annotation file '{self.ann_file}' not found (root={root!r}, "
                            f"ann_file={ann_file!r})")
        listed, counts = [], []
        with open(self.ann_file, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                parts = line.rsplit(None, 2)
                if len(parts) != 3 or not parts[1].isdigit() or not re.fullmatch(r"\d+", parts[2]):
                    raise DataError(f"{self.ann_file}:{lineno}: expected 'frame_dir total_frames label' with "
                                    f"integers total_frames >= 0 and label >= 0, got {line!r}")
                listed.append((os.path.join(root, parts[0]), int(parts[2])))
                counts.append(int(parts[1]))
        if not listed:
            raise DataError(f"{self.ann_file}: no clips listed")
        num = max(l for _, l in listed) + 1
        if label_map is not None:
            self.class_names = load_label_map(label_map)
            if num > len(self.class_names):
                raise DataError(f"{self.ann_file}: label {num - 1} but {label_map} has {len(self.class_names)} classes")
        else:
            self.class_names = [str(i) for i in range(num)]
        self.frame_folders.attach(self, listed, counts, self.ann_file)


def _read_rows(path: str, sep: Optional[str]) -> List[List[str]]:
    if not os.path.isfile(path):
        raise DataError(f"annotation file '{path}' not found")
    with open(path, encoding="utf-8", newline="") as f:
        if sep == ";":
            return [[c.strip() for c in row] for row in csv.reader(f, delimiter=";") if row and row[0].strip()]
        return [l.split() for l in f if l.strip()]


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
                 output_dir: Optional[str] = None, offset_sampling: bool = False) -> None:
        super().__init__(num_frames=num_frames, sampling_rate=sampling_rate, downsample=downsample,
                         num_clips=num_clips, target_fps=target_fps, fps=fps, output_dir=output_dir,
                         label_map=None, filename_tmpl=filename_tmpl, start_index=start_index,
                         pad_mode=pad_mode, protocol=protocol, offset_sampling=offset_sampling)
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
            ids, labels = self._official(ann_dir, official)
        elif annotations == "reference":
            ids, labels = self._reference(ann_dir, class_ind or os.path.join(ann_dir, "classInd.txt"))
        else:
            ids, labels = self._json(json_file)
        self.annotations = annotations
        listed = [(os.path.join(frames_dir, i), l) for i, l in zip(ids, labels)]
        self.frame_folders.attach(self, listed, None, f"{name} {split} ({annotations} annotations in {ann_dir})")

    def _official(self, ann_dir: str, labels_csv: str) -> Tuple[List[str], List[int]]:
        self.class_names = [r[0] for r in _read_rows(labels_csv, ";")]
        index = {c: i for i, c in enumerate(self.class_names)}
        path = os.path.join(ann_dir, f"{self.PREFIX}-{self.SPLITS[self.split]}.csv")
        ids, labels = [], []
        for lineno, row in enumerate(_read_rows(path, ";"), 1):
            if len(row) != 2 or row[1] not in index:
                raise DataError(f"{path}:{lineno}: expected 'id;label' with a label of {labels_csv}, got {';'.join(row)!r}")
            ids.append(row[0])
            labels.append(index[row[1]])
        return ids, labels

    def _reference(self, ann_dir: str, class_ind: str) -> Tuple[List[str], List[int]]:
        pairs = []
        for row in _read_rows(class_ind, None):
            if len(row) != 2 or not row[0].isdigit():
                raise DataError(f"{class_ind}: expected 'index ClassName' lines, got {' '.join(row)!r}")
            pairs.append((int(row[0]), row[1]))
        pairs.sort()
        if [i for i, _ in pairs] != list(range(1, len(pairs) + 1)):
            raise DataError(f"{class_ind}: class indices must be 1..{len(pairs)}")
        self.class_names = [n for _, n in pairs]
        stem = "trainlist" if self.SPLITS[self.split] == "train" else "vallist"
        path = _first(*(os.path.join(ann_dir, f"{stem}{s}.txt") for s in ("", "01")))
        if path is None:
            raise DataError(f"{type(self).__name__}: '{stem}.txt' / '{stem}01.txt' not found in '{ann_dir}'")
        ids, labels = [], []
        for lineno, row in enumerate(_read_rows(path, None), 1):
            if len(row) != 2 or not row[1].isdigit() or not 1 <= int(row[1]) <= len(pairs):
                raise DataError(f"{path}:{lineno}: expected 'id class_index' with an index 1..{len(pairs)}, "
                                f"got {' '.join(row)!r}")
            ids.append(row[0])
            labels.append(int(row[1]) - 1)
        return ids, labels

    def _json(self, path: str) -> Tuple[List[str], List[int]]:
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
            self.class_names = [str(n) for n in data["labels"]]
            database = data["database"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
            raise DataError(f"{path}: expected {{'labels': [...], 'database': {{id: {{'subset', 'annotations'}}}}}} "
                            f"({_one_line(e)})") from None
        index = {c: i for i, c in enumerate(self.class_names)}
        subset = "training" if self.SPLITS[self.split] == "train" else "validation"
        ids, labels = [], []
        for key, value in database.items():
            if value.get("subset") != subset:
                continue
            label = (value.get("annotations") or {}).get("label")
            if label not in index:
                raise DataError(f"{path}: clip {key!r} has label {label!r}, not in 'labels'")
            ids.append(str(key))
            labels.append(index[label])
        return ids, labels


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


_FRAME_KEYS = ("dir", "filename_tmpl", "start_index", "pad_mode", "fps", "protocol")


def attach_frames(ds: VideoDataset, listed: Sequence[Tuple[str, int]], video_dir: str,
                  frames: Dict[str, Any], source: str) -> None:
    """UCF101 / HMDB51 ``frames`` option: read ``{frames['dir']}/<video path without extension>/``
    instead of ``{video_dir}/<video path>``. Keys: ``dir`` (required), ``filename_tmpl`` (default
    ``img_{:05d}.jpg``; the reference's UCF-101 folders use ``image_{:05d}.jpg``),
    ``start_index`` (1), ``pad_mode`` (clamp), ``fps`` and ``protocol`` (default: the data set's
``protocol``, views)."""
    name = type(ds).__name__
    if not isinstance(frames, dict) and hasattr(frames, "to_dict"):
        frames = frames.to_dict()
    if not isinstance(frames, dict) or "dir" not in frames:
        raise DataError(f"{name}.frames: expected a mapping with 'dir' (the frame-folder tree), got {frames!r}")
    unknown = sorted(set(frames) - set(_FRAME_KEYS))
    if unknown:
        raise DataError(f"{name}.frames: unknown key(s) {unknown}; known: {', '.join(_FRAME_KEYS)}")
    opts = {k: v for k, v in frames.items() if k != "dir"}
    opts.setdefault("protocol", ds.protocol)
    if ds.target_fps is not None and opts.get("fps") is None:
        raise DataError(f"{name}: 'target_fps' needs frames.fps (the frame rate of the folders)")
    reader = FrameFolders(where=f"{name}.frames", **opts)
    root = str(frames["dir"])
    folders = [(os.path.join(root, os.path.splitext(os.path.relpath(p, video_dir))[0]), l) for p, l in listed]
    reader.attach(ds, folders, None, f"{source} (frames in {root})")


__all__ = ["FrameFolders", "FrameFolderDataset", "RawFrameList", "Jester", "SomethingSomethingV1",
           "attach_frames", "frame_folders_of", "windows_to_videos", "with_video_protocol", "IMAGE_EXTENSIONS", "PROTOCOLS"]
