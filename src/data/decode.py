"""Video decoding: decord first (random access, only the frames needed), PyAV as the fallback.

Both read any container FFmpeg can (mp4, avi, mkv, webm, ...). Every failure surfaces as
:class:`VideoDecodeError` with a one-line reason, so callers can skip the file.
"""
from __future__ import annotations

import os
from typing import Optional, Sequence, Tuple

import numpy as np

from .errors import VideoDecodeError

BACKENDS = ("decord", "pyav")


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}".strip()[:200]


def _import_decord():
    """decord, imported after MindSpore: importing decord first makes a later
    ``import mindspore`` abort the process ("random_device could not be read")."""
    try:
        import mindspore  # noqa: F401
    except ImportError:
        pass
    import decord

    return decord


class _DecordBackend:
    def __init__(self, path: str) -> None:
        decord = _import_decord()

        self._vr = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
        self.num_frames = len(self._vr)
        self.fps = float(self._vr.get_avg_fps() or 0.0)

    def get(self, indices: np.ndarray) -> np.ndarray:
        return self._vr.get_batch(list(int(i) for i in indices)).asnumpy()

    def close(self) -> None:
        self._vr = None


class _PyAVBackend:
    def __init__(self, path: str) -> None:
        import av

        self._path = path
        with av.open(path) as container:
            if not container.streams.video:
                raise ValueError("no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            self.fps = float(rate) if rate else 0.0
            n = int(stream.frames or 0)
            if n <= 0:  # container without a frame count: count by decoding
                n = sum(1 for _ in container.decode(stream))
        self.num_frames = n

    def get(self, indices: np.ndarray) -> np.ndarray:
        import av

        wanted = set(int(i) for i in indices)
        last = max(wanted)
        got = {}
        decoded = 0
        with av.open(self._path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for k, frame in enumerate(container.decode(stream)):
                decoded = k + 1
                if k in wanted:
                    got[k] = frame.to_ndarray(format="rgb24")
                if k >= last:
                    break
        if len(got) < len(wanted):
            raise ValueError(f"only {decoded} frames decodable, frame {last} requested")
        return np.stack([got[int(i)] for i in indices])

    def close(self) -> None:
        pass


_CLASSES = {"decord": _DecordBackend, "pyav": _PyAVBackend}


class VideoReader:
    """An open video: ``num_frames``, ``fps``, ``backend`` and ``get_frames(indices)``.

    ``backend`` is tried first and the other one is the fallback, both when opening and when a
    read fails (decord can report frames a truncated file does not have).
    """

    def __init__(self, path: str, backend: str = "decord") -> None:
        if backend not in BACKENDS:
            raise ValueError(f"decoder '{backend}': expected one of {', '.join(BACKENDS)}")
        self.path = str(path)
        if not os.path.isfile(self.path):
            raise VideoDecodeError(self.path, "file not found")
        if os.path.getsize(self.path) == 0:
            raise VideoDecodeError(self.path, "empty file (0 bytes)")
        self._order = [backend] + [b for b in BACKENDS if b != backend]
        self._impl = None
        self._errors = []
        for name in self._order:
            if self._open(name):
                break
        if self._impl is None:
            raise VideoDecodeError(self.path, "cannot open: " + "; ".join(self._errors))

    def _open(self, name: str) -> bool:
        try:
            impl = _CLASSES[name](self.path)
            if impl.num_frames <= 0:
                raise ValueError("no frames")
        except Exception as e:  # decoders raise many unrelated types
            self._errors.append(f"{name}: {_one_line(e)}")
            return False
        self._impl, self.backend = impl, name
        self.num_frames: int = int(impl.num_frames)
        self.fps: float = float(impl.fps)
        return True

    def get_frames(self, indices: Sequence[int]) -> np.ndarray:
        """Frames at ``indices`` (any order, repeats allowed) as (T, H, W, 3) uint8 RGB."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size == 0:
            raise ValueError("get_frames: no indices")
        if idx.min() < 0 or idx.max() >= self.num_frames:
            raise VideoDecodeError(self.path, f"frame index out of range 0..{self.num_frames - 1}")
        errors = []
        tried = [self.backend] + [b for b in self._order if b != self.backend]
        for name in tried:
            try:
                impl = self._impl if name == self.backend else _CLASSES[name](self.path)
                frames = impl.get(idx)
                if frames.ndim != 4 or frames.shape[0] != idx.size or frames.shape[-1] != 3:
                    raise ValueError(f"unexpected frame array shape {frames.shape}")
                return np.ascontiguousarray(frames, dtype=np.uint8)
            except Exception as e:
                errors.append(f"{name}: {_one_line(e)}")
        raise VideoDecodeError(self.path, "cannot decode: " + "; ".join(errors))

    def close(self) -> None:
        if self._impl is not None:
            self._impl.close()
            self._impl = None

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def probe_video(path: str, backend: str = "decord") -> Tuple[int, float]:
    """``(num_frames, fps)`` of a video; raises :class:`VideoDecodeError`."""
    with VideoReader(path, backend) as vr:
        return vr.num_frames, vr.fps


def read_frames(path: str, indices: Sequence[int], backend: str = "decord") -> np.ndarray:
    """Decode only ``indices`` of ``path`` -> (T, H, W, 3) uint8; raises :class:`VideoDecodeError`."""
    with VideoReader(path, backend) as vr:
        return vr.get_frames(indices)


def check_video(path: str, min_frames: int = 1, backend: str = "decord") -> Optional[str]:
    """None if ``path`` opens, has >= ``min_frames`` frames and its first/last frames decode,
    else a one-line reason."""
    try:
        with VideoReader(path, backend) as vr:
            if vr.num_frames < min_frames:
                return f"too short: {vr.num_frames} frames, need {min_frames}"
            vr.get_frames([0, vr.num_frames - 1])
    except VideoDecodeError as e:
        return e.reason
    return None
