"""Clip readers: one interface over every way a video is stored.

    ClipReader               num_frames, fps (0.0: unknown), read(indices) -> (T, H, W, 3) uint8 RGB,
      |                      close(); a context manager. Every failure: VideoDecodeError(name, reason)
      +- VideoFileReader     a video file: PyAV or decord, the other the fallback (decode.py)
      +- FrameFolderReader   a folder of JPEG frames named by a FrameTemplate ('img_{:05d}.jpg' from 1)
      +- MindRecordReader    one record of a pack_mindrecord file (concatenated JPEGs + offsets)

A data set holds its index (samples, labels, class names) and one *reader kind*, a small
picklable object that knows how its samples are stored: :class:`VideoFiles`,
:class:`FrameFolders` or :class:`MindRecordFile`. The kind opens a sample
(``kind.open(path, frames, decoder)``, ``frames``: the count an index lists, if any), probes it
(frame count and rate, for the video-level plan) and tells which listed samples exist. This is
pytorchvideo's ``Video`` / ``EncodedVideo`` / ``FrameVideo`` split; the data set's
:meth:`~src.data.datasets.VideoDataset.load_clip` is then one function for all of them: open,
plan the clip (``sampling.py``), read.
"""
from __future__ import annotations

import abc
import io
import os
import string
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from .decode import BACKEND_CLASSES, BACKENDS, one_line
from .errors import DataError, VideoDecodeError

_PROBES = 32  # frame folders checked for existence at start-up (a wrong root fails early)


# ----------------------------------------------------------------------------- the interface
class ClipReader(abc.ABC):
    """An open video of any kind: ``num_frames``, ``fps`` (0.0 when unknown), :meth:`read`.
    ``name`` is what errors name (the file, the folder, the record)."""

    name: str = ""
    num_frames: int = 0
    fps: float = 0.0

    def read(self, indices: Sequence[int]) -> np.ndarray:
        """Frames at ``indices`` (any order, repeats allowed) as (T, H, W, 3) uint8 RGB."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size == 0:
            raise ValueError("read: no indices")
        if idx.min() < 0 or idx.max() >= self.num_frames:
            raise VideoDecodeError(self.name, f"frame index out of range 0..{self.num_frames - 1}")
        return self._read(idx)

    @abc.abstractmethod
    def _read(self, idx: np.ndarray) -> np.ndarray:
        """Frames ``idx`` (checked: non-empty, in range) as (T, H, W, 3) uint8 RGB."""

    def get_frames(self, indices: Sequence[int]) -> np.ndarray:
        """Alias of :meth:`read` (the name of the earlier ``VideoReader``)."""
        return self.read(indices)

    def close(self) -> None:
        """Release what the reader holds (a decoder, a file)."""

    def __enter__(self) -> "ClipReader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def reader_problem(reader: ClipReader, min_frames: int = 1) -> Optional[str]:
    """None if ``reader`` has at least ``min_frames`` frames and its first and last frames decode,
    else the reason (one line)."""
    try:
        if reader.num_frames < min_frames:
            return f"too short: {reader.num_frames} frames, need {min_frames}"
        reader.read([0, reader.num_frames - 1])
    except VideoDecodeError as e:
        return e.reason
    return None


# ----------------------------------------------------------------------------- video files
class VideoFileReader(ClipReader):
    """A video file. ``backend`` is tried first and the other one is the fallback, both when
    opening and when a read fails (decord can report frames a truncated file does not have)."""

    def __init__(self, path: str, backend: str = "decord") -> None:
        if backend not in BACKENDS:
            raise ValueError(f"decoder '{backend}': expected one of {', '.join(BACKENDS)}")
        self.path = self.name = str(path)
        if not os.path.isfile(self.path):
            raise VideoDecodeError(self.path, "file not found")
        if os.path.getsize(self.path) == 0:
            raise VideoDecodeError(self.path, "empty file (0 bytes)")
        self._order = [backend] + [b for b in BACKENDS if b != backend]
        self._impl = None
        errors: List[str] = []
        for name in self._order:
            try:
                impl = BACKEND_CLASSES[name](self.path)
                if impl.num_frames <= 0:
                    raise ValueError("no frames")
            except Exception as e:  # decoders raise many unrelated types
                errors.append(f"{name}: {one_line(e)}")
                continue
            self._impl, self.backend = impl, name
            self.num_frames = int(impl.num_frames)
            self.fps = float(impl.fps)
            break
        if self._impl is None:
            raise VideoDecodeError(self.path, "cannot open: " + "; ".join(errors))

    def _read(self, idx: np.ndarray) -> np.ndarray:
        errors = []
        for name in [self.backend] + [b for b in self._order if b != self.backend]:
            try:
                impl = self._impl if name == self.backend else BACKEND_CLASSES[name](self.path)
                frames = impl.get(idx)
                if frames.ndim != 4 or frames.shape[0] != idx.size or frames.shape[-1] != 3:
                    raise ValueError(f"unexpected frame array shape {frames.shape}")
                return np.ascontiguousarray(frames, dtype=np.uint8)
            except Exception as e:
                errors.append(f"{name}: {one_line(e)}")
        raise VideoDecodeError(self.path, "cannot decode: " + "; ".join(errors))

    def close(self) -> None:
        if self._impl is not None:
            self._impl.close()
            self._impl = None


VideoReader = VideoFileReader  # the earlier name, still exported by src.data


def probe_video(path: str, backend: str = "decord") -> Tuple[int, float]:
    """``(num_frames, fps)`` of a video; raises :class:`VideoDecodeError`."""
    with VideoFileReader(path, backend) as vr:
        return vr.num_frames, vr.fps


def read_frames(path: str, indices: Sequence[int], backend: str = "decord") -> np.ndarray:
    """Decode only ``indices`` of ``path`` -> (T, H, W, 3) uint8; raises :class:`VideoDecodeError`."""
    with VideoFileReader(path, backend) as vr:
        return vr.read(indices)


def check_video(path: str, min_frames: int = 1, backend: str = "decord") -> Optional[str]:
    """None if ``path`` opens, has >= ``min_frames`` frames and its first/last frames decode,
    else a one-line reason."""
    try:
        with VideoFileReader(path, backend) as vr:
            return reader_problem(vr, min_frames)
    except VideoDecodeError as e:
        return e.reason


# ----------------------------------------------------------------------------- frame folders
class FrameTemplate:
    """How frame ``k`` (0-based) of a folder is named: ``filename_tmpl`` (one integer field, e.g.
    ``img_{:05d}.jpg``) numbered from ``start_index``. ``where`` names the option in errors."""

    def __init__(self, filename_tmpl: str = "img_{:05d}.jpg", start_index: int = 1, where: str = "dataset") -> None:
        bad = DataError(f"{where}.filename_tmpl: expected one integer field such as 'img_{{:05d}}.jpg', "
                        f"got {filename_tmpl!r}")
        try:
            fields = list(string.Formatter().parse(str(filename_tmpl)))
            ok = str(filename_tmpl).format(123) != str(filename_tmpl).format(45)
        except (ValueError, IndexError, KeyError, TypeError):
            raise bad from None
        named = [i for i, f in enumerate(fields) if f[1] is not None]
        if len(named) != 1 or fields[named[0]][1] not in ("", "0") or not ok:
            raise bad
        if isinstance(start_index, bool) or not isinstance(start_index, int) or start_index < 0:
            raise DataError(f"{where}.start_index: expected an integer >= 0 (0 or 1), got {start_index!r}")
        i = named[0]
        self.prefix = "".join(f[0] for f in fields[: i + 1])
        self.suffix = "".join(f[0] for f in fields[i + 1:])
        self.filename_tmpl = filename_tmpl
        self.start_index = int(start_index)

    def file_name(self, k: int) -> str:
        """File name of frame ``k`` (0-based)."""
        return self.filename_tmpl.format(self.start_index + int(k))

    def matches(self, name: str) -> bool:
        """Whether ``name`` has the template's prefix and suffix (its number is not checked)."""
        return name.startswith(self.prefix) and name.endswith(self.suffix)

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
        have = sum(1 for k in found if first <= k <= last)
        if listed is not None and max(found) < last:
            raise VideoDecodeError(folder, f"fewer frames than listed: {have} found, the list says {listed}")
        if have < n:
            gap = next(k for k in range(first, last + 1) if k not in found)
            raise VideoDecodeError(folder, f"missing frame {self.filename_tmpl.format(gap)} "
                                           f"({n - have} of {n} frames missing)")
        return n


def _read_image(path: str) -> np.ndarray:
    with open(path, "rb") as f:
        with Image.open(f) as img:
            return np.asarray(img.convert("RGB"))


class FrameFolderReader(ClipReader):
    """A folder of decoded frames: its frame count comes from one directory listing (``listed``:
    the count an index gives, checked against the folder), each frame read is one JPEG decoded
    with PIL. ``fps`` is the rate of the folders (a setting: frames carry no time)."""

    def __init__(self, folder: str, template: FrameTemplate, listed: Optional[int] = None,
                 fps: Optional[float] = None) -> None:
        self.name = folder
        self.template = template
        self.num_frames = template.scan(folder, listed)
        self.fps = float(fps or 0.0)

    def _read(self, idx: np.ndarray) -> np.ndarray:
        decoded: Dict[int, np.ndarray] = {}
        for k in dict.fromkeys(int(i) for i in idx):  # each file once
            name = self.template.file_name(k)
            try:
                decoded[k] = _read_image(os.path.join(self.name, name))
            except FileNotFoundError:
                raise VideoDecodeError(self.name, f"missing frame {name}") from None
            except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
                raise VideoDecodeError(self.name, f"corrupt JPEG {name}: {one_line(e)}") from None
        shapes = {a.shape for a in decoded.values()}
        if len(shapes) > 1:
            (h0, w0, _), (h1, w1, _) = sorted(shapes)[:2]
            raise VideoDecodeError(self.name, f"frame sizes differ ({w0}x{h0} and {w1}x{h1})")
        return np.stack([decoded[int(i)] for i in idx])


# ----------------------------------------------------------------------------- MindRecord
class MindRecordReader(ClipReader):
    """Record ``video_idx`` of a :class:`MindRecordFile`: its frame count and rate come from the
    file's JSON index, so opening reads nothing; :meth:`read` fetches the record and decodes only
    the frames asked for."""

    def __init__(self, file: "MindRecordFile", video_idx: int, num_frames: int, fps: float, name: str) -> None:
        self.file, self.video_idx, self.name = file, int(video_idx), name
        self.num_frames, self.fps = int(num_frames), float(fps or 0.0)

    def _read(self, idx: np.ndarray) -> np.ndarray:
        rec = self.file.record(self.video_idx, self.name)
        blob, off = rec["frames"], rec["offsets"]
        try:
            return np.stack([np.asarray(Image.open(io.BytesIO(blob[off[i]:off[i + 1]])).convert("RGB"))
                             for i in idx])
        except Exception as e:  # a damaged record
            raise VideoDecodeError(self.name, f"cannot decode JPEG: {e}") from None


# ----------------------------------------------------------------------------- reader kinds
class ReaderKind(abc.ABC):
    """How a data set's samples are stored; see the module doc. ``noun`` names the samples in
    messages."""

    noun = "videos"

    @abc.abstractmethod
    def open(self, path: str, frames: Optional[int] = None, decoder: str = "decord") -> ClipReader:
        """The reader of sample ``path`` (``frames``: the count its index lists, if any)."""

    def probe(self, path: str, frames: Optional[int] = None) -> Tuple[int, Optional[float]]:
        """``(frame count, fps or None)`` of a sample; ``(0, None)`` when it cannot be read (it
        is reported when a clip of it is read)."""
        try:
            with self.open(path, frames) as reader:
                return reader.num_frames, reader.fps or None
        except VideoDecodeError:
            return 0, None

    @abc.abstractmethod
    def present(self, paths: Sequence[str], source: str) -> List[bool]:
        """Which of the listed ``paths`` exist; a DataError naming ``source`` when none does."""


class VideoFiles(ReaderKind):
    """Samples are video files (:class:`VideoFileReader`); every listed file is looked for."""

    def open(self, path: str, frames: Optional[int] = None, decoder: str = "decord") -> ClipReader:
        return VideoFileReader(path, decoder)

    def present(self, paths: Sequence[str], source: str) -> List[bool]:
        found = [os.path.isfile(p) for p in paths]
        if not any(found):
            raise DataError(f"{source}: none of the {len(paths)} listed videos exist "
                            f"(first expected at {paths[found.index(False)]})")
        return found


class FrameFolders(ReaderKind):
    """Samples are frame folders (:class:`FrameFolderReader`) named by ``template``; ``fps`` is
    their frame rate (needed only with a data set's ``target_fps``). Start-up opens no image:
    only up to 32 evenly spaced folders are checked to exist (a wrong root fails early), and a
    count the index lists is trusted until a clip is read."""

    noun = "clips"

    def __init__(self, template: FrameTemplate, fps: Optional[float] = None, where: str = "dataset") -> None:
        if fps is not None and (not isinstance(fps, (int, float)) or fps <= 0):
            raise DataError(f"{where}.fps: expected null or a frame rate > 0, got {fps!r}")
        self.template, self.fps = template, fps

    def open(self, path: str, frames: Optional[int] = None, decoder: str = "decord") -> ClipReader:
        return FrameFolderReader(path, self.template, frames, self.fps)

    def probe(self, path: str, frames: Optional[int] = None) -> Tuple[int, Optional[float]]:
        if frames is not None:
            return int(frames), self.fps
        try:
            return self.template.scan(path, None), self.fps
        except VideoDecodeError:
            return 0, self.fps

    def present(self, paths: Sequence[str], source: str) -> List[bool]:
        probes = sorted({int(i) for i in np.linspace(0, len(paths) - 1, min(_PROBES, len(paths)))})
        if not any(os.path.isdir(paths[i]) for i in probes):
            raise DataError(f"{source}: none of {len(probes)} checked frame folders exist (first expected at "
                            f"{paths[0]}); check the data set's root / frames_dir")
        return [True] * len(paths)  # a missing folder is a bad sample, reported when it is read


class MindRecordFile(ReaderKind):
    """Samples are records of a file written by :func:`~src.data.mindrecord.pack_mindrecord`.
    ``videos`` is its JSON index (``[source path, label, num_frames, fps]`` per record); a sample
    is found by its source path (records of one path hold the same frames). The MindPage is
    opened on first use in each process."""

    def __init__(self, file: str, videos: Sequence[Sequence[Any]]) -> None:
        self.file = file
        self.records: Dict[str, Tuple[int, int, float]] = {}
        for vid, (path, _, n, fps) in enumerate(videos):
            self.records.setdefault(str(path), (vid, int(n), float(fps)))
        self._page = None

    def __getstate__(self) -> Dict[str, Any]:
        state = dict(self.__dict__)
        state["_page"] = None  # reopened in each worker process
        return state

    def open(self, path: str, frames: Optional[int] = None, decoder: str = "decord") -> ClipReader:
        vid, n, fps = self.records[path]
        return MindRecordReader(self, vid, n, fps, f"{self.file}#{vid} ({path})")

    def present(self, paths: Sequence[str], source: str) -> List[bool]:
        return [p in self.records for p in paths]

    def record(self, video_idx: int, name: str) -> Dict[str, Any]:
        """The stored record ``video_idx`` (``frames``, ``offsets``, ...)."""
        if self._page is None:
            from mindspore.mindrecord import MindPage

            self._page = MindPage(self.file)
            self._page.category_field = "video_idx"
        rows = self._page.read_at_page_by_name(str(int(video_idx)), 0, 1)
        if not rows:
            raise VideoDecodeError(name, "record not found")
        return rows[0]


__all__ = ["ClipReader", "VideoFileReader", "FrameFolderReader", "MindRecordReader", "FrameTemplate",
           "ReaderKind", "VideoFiles", "FrameFolders", "MindRecordFile", "VideoReader", "probe_video",
           "read_frames", "check_video", "reader_problem"]
