"""Video decoding, written once: decord (random access, only the frames needed) and PyAV.

Both read any container FFmpeg can (mp4, avi, mkv, webm, ...). Two ways to decode a file:

* random access, :data:`BACKEND_CLASSES` (``num_frames``, ``fps``, ``get(indices)``): what
  :class:`~src.data.readers.VideoFileReader` (clips for training, evaluation, inference) wraps,
  with the other backend as the fallback;
* one pass in order, :class:`FrameIterator`: every frame (or a selection), for frame extraction
  and the annotated preview video.

:func:`first_video_stream` and :func:`frame_rate` are the one way a PyAV container is set up; the
live-stream capture loop (``src/engine/stream.py``) uses them too. Errors here are the decoders'
own; the readers turn them into :class:`~src.data.errors.VideoDecodeError`.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, Optional, Type

import numpy as np

BACKENDS = ("decord", "pyav")
CHUNK = 64  # frames decoded at a time by a decord pass (bounded memory for long videos)

# which frames of a pass to keep: (frame numbers, the video's fps) -> boolean mask
Select = Callable[[np.ndarray, float], np.ndarray]


def one_line(e: BaseException) -> str:
    """``Type: first line of the message`` (at most 200 characters): a decoder error in one line."""
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}".strip()[:200]


def import_decord() -> Any:
    """decord, imported after MindSpore: importing decord first makes a later
    ``import mindspore`` abort the process ("random_device could not be read")."""
    try:
        import mindspore  # noqa: F401
    except ImportError:
        pass
    import decord

    return decord


def first_video_stream(container: Any) -> Any:
    """The first video stream of an open PyAV container, set to decode with threads; ValueError
    when it has none."""
    if not container.streams.video:
        raise ValueError("no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return stream


def frame_rate(stream: Any) -> float:
    """A PyAV stream's frame rate (average, else guessed; 0.0 when unknown)."""
    rate = stream.average_rate or stream.guessed_rate
    return float(rate) if rate else 0.0


class DecordBackend:
    """Random access through decord: only the frames asked for are converted."""

    def __init__(self, path: str) -> None:
        decord = import_decord()

        self._vr = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
        self.num_frames = len(self._vr)
        self.fps = float(self._vr.get_avg_fps() or 0.0)

    def get(self, indices: np.ndarray) -> np.ndarray:
        """Frames ``indices`` as (T, H, W, 3) uint8 RGB."""
        return self._vr.get_batch(list(int(i) for i in indices)).asnumpy()

    def close(self) -> None:
        self._vr = None


class PyAVBackend:
    """PyAV: the frame count from the container (counted by decoding when it has none); a read
    decodes from the start up to the last frame asked for."""

    def __init__(self, path: str) -> None:
        import av

        self._path = path
        with av.open(path) as container:
            stream = first_video_stream(container)
            self.fps = frame_rate(stream)
            n = int(stream.frames or 0)
            if n <= 0:  # container without a frame count: count by decoding
                n = sum(1 for _ in container.decode(stream))
        self.num_frames = n

    def get(self, indices: np.ndarray) -> np.ndarray:
        """Frames ``indices`` as (T, H, W, 3) uint8 RGB."""
        import av

        wanted = set(int(i) for i in indices)
        last = max(wanted)
        got = {}
        decoded = 0
        with av.open(self._path) as container:
            stream = first_video_stream(container)
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


BACKEND_CLASSES: Dict[str, Type[Any]] = {"decord": DecordBackend, "pyav": PyAVBackend}


class FrameIterator:
    """Every frame of a video in order, in one pass, as (H, W, 3) uint8 RGB: decord in chunks of
    :data:`CHUNK` random-access reads, PyAV streaming (no frame count needed). ``fps`` is known
    once it is open; ``select(frame numbers, fps)`` keeps only some frames (None: all). No
    fallback: a caller that wants one tries the other backend."""

    def __init__(self, path: str, backend: str = "pyav", select: Optional[Select] = None) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"decoder '{backend}': expected one of {', '.join(BACKENDS)}")
        self.backend, self.select = backend, select
        self._vr = self._container = self._stream = None
        if backend == "decord":
            decord = import_decord()
            self._vr = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
            self.fps = float(self._vr.get_avg_fps() or 0.0)
        else:
            import av

            self._container = av.open(path)
            try:
                self._stream = first_video_stream(self._container)
            except ValueError:
                self.close()
                raise
            self.fps = frame_rate(self._stream)

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._vr is not None:
            n = len(self._vr)
            keep = np.ones(n, bool) if self.select is None else self.select(np.arange(n), self.fps)
            idx = np.nonzero(keep)[0]
            for i in range(0, len(idx), CHUNK):
                yield from self._vr.get_batch([int(j) for j in idx[i:i + CHUNK]]).asnumpy()
            return
        for k, frame in enumerate(self._container.decode(self._stream)):
            if self.select is None or self.select(np.array(k), self.fps):
                yield frame.to_ndarray(format="rgb24")

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
        self._vr = self._container = self._stream = None

    def __enter__(self) -> "FrameIterator":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


__all__ = ["BACKENDS", "BACKEND_CLASSES", "DecordBackend", "PyAVBackend", "FrameIterator", "first_video_stream",
           "frame_rate", "import_decord", "one_line"]
