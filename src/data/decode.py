"""Video decoding, written once: PyAV (seek to the key frame, decode only what a clip needs, the
default) and decord (random access through its own index).

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

import time
from typing import Any, Callable, Dict, Iterator, Optional, Tuple, Type

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


def first_video_stream(container: Any, threads: int = 0) -> Any:
    """The first video stream of an open PyAV container, set to decode with threads (0: as
    many as FFmpeg picks; 1: none, for a loader whose workers are the parallelism); ValueError
    when it has none."""
    if not container.streams.video:
        raise ValueError("no video stream")
    stream = container.streams.video[0]
    if threads == 1:
        stream.codec_context.thread_type = "NONE"
        stream.codec_context.thread_count = 1
    else:
        stream.thread_type = "AUTO"
        if threads > 1:
            stream.codec_context.thread_count = int(threads)
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


# Codecs whose decoder skips a "non-reference" picture only when no other picture can refer to
# it, so skipping the ones a clip does not need leaves every other frame bit-exact. H.264: a
# picture with nal_ref_idc 0 is never used for prediction. (Not HEVC: FFmpeg's non-reference
# test there also matches sub-layer non-reference pictures, which higher layers may still use.)
SKIP_NONREF_CODECS = ("h264",)


class PyAVBackend:
    """PyAV with random access. Opening reads the container header (frame count, rate); the
    first :meth:`get` also reads the packet headers once (an index: each frame's presentation
    time and the key frames, in decode order). A read then seeks to the last key frame before
    the first frame asked for, decodes in decode order until every frame asked for is out, and
    converts only those to RGB. For H.264 the decoder skips the non-reference pictures it is
    not asked for (nothing depends on them), about half of a default x264 stream. The frames
    are the ones a decode of the whole file from its start gives (tests/data/test_seek_decode.py);
    a file without usable timestamps is read that way. ``threads``: decoder threads (1: the
    loader's workers are the parallelism). :attr:`stats` describes the last read (CPU seconds of
    this process, frame and packet counts)."""

    def __init__(self, path: str, threads: int = 1) -> None:
        import av

        self._path = path
        self._container = av.open(path)
        try:
            self._stream = first_video_stream(self._container, threads)
            self.fps = frame_rate(self._stream)
            n = int(self._stream.frames or 0)
        except Exception:
            self.close()
            raise
        self._index: Optional[Tuple[np.ndarray, np.ndarray, np.ndarray]] = None
        self._indexed = False
        if n <= 0:  # container without a frame count: the index counts the packets
            index = self._get_index()
            n = len(index[0]) if index is not None else sum(1 for _ in self._plain_frames())
        self.num_frames = n
        self.skip_nonref = self._stream.codec_context.name in SKIP_NONREF_CODECS
        self.stats: Dict[str, float] = {}

    def _get_index(self) -> Optional[Tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """``(pts, key, order)`` per packet in decode order (``order``: the rank of its pts, i.e.
        its frame number), or None when some packet has no timestamp or two share one."""
        if not self._indexed:
            self._indexed = True
            pts, key = [], []
            for packet in self._container.demux(self._stream):
                if packet.size == 0:
                    continue  # the demuxer's end-of-stream packet
                if packet.pts is None:
                    pts = None
                    break
                pts.append(int(packet.pts))
                key.append(bool(packet.is_keyframe))
            if pts and len(set(pts)) == len(pts) and key[0]:
                p = np.asarray(pts, np.int64)
                order = np.empty(len(p), np.int64)
                order[np.argsort(p, kind="stable")] = np.arange(len(p))
                self._index = (p, np.asarray(key, bool), order)
        return self._index

    def get(self, indices: np.ndarray) -> np.ndarray:
        """Frames ``indices`` as (T, H, W, 3) uint8 RGB."""
        t0 = time.process_time()
        index = self._get_index()
        t1 = time.process_time()
        self.stats = {"index_s": t1 - t0, "seek_s": 0.0, "decode_s": 0.0, "convert_s": 0.0,
                      "packets": 0, "decoded": 0}
        idx = np.asarray(indices, np.int64).reshape(-1)
        if index is None or len(index[0]) != self.num_frames:
            return self._get_plain(idx)
        pts, key, order = index
        pos = np.empty(len(pts), np.int64)  # frame number -> position in decode order
        pos[order] = np.arange(len(pts))
        first = int(pos[idx].min())
        starts = np.nonzero(key[:first + 1] & (pts[:first + 1] <= pts[pos[idx]].min()))[0]
        if starts.size == 0:
            return self._get_plain(idx)
        start = int(starts[-1])
        got = self._decode_from(start, {int(pts[pos[k]]): None for k in idx})
        if got is None:
            return self._get_plain(idx)
        return np.stack([got[int(pts[pos[k]])] for k in idx])

    def _decode_from(self, start: int, wanted: Dict[int, Optional[np.ndarray]]) -> Optional[Dict[int, np.ndarray]]:
        """Decode from packet ``start`` (a key frame) until every pts in ``wanted`` is converted;
        None if the stream did not give them all (the caller then decodes from the start)."""
        pts, _, _ = self._index
        stats, container, stream = self.stats, self._container, self._stream
        t = time.process_time()
        container.seek(int(pts[start]), backward=True, any_frame=False, stream=stream)
        cc = stream.codec_context
        cc.flush_buffers()
        stats["seek_s"] = time.process_time() - t
        missing, started, skip = len(wanted), False, "DEFAULT"
        convert = 0.0
        t = time.process_time()

        def take(frames: Any) -> int:
            nonlocal convert
            n = 0
            for frame in frames:
                stats["decoded"] += 1
                if frame.pts in wanted and wanted[frame.pts] is None:
                    c = time.process_time()
                    wanted[frame.pts] = frame.to_ndarray(format="rgb24")
                    convert += time.process_time() - c
                    n += 1
            return n

        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    break
                if not started:
                    if packet.pts is not None and packet.pts == pts[start] and packet.is_keyframe:
                        started = True
                    elif packet.pts is not None and packet.pts in wanted:
                        return None  # the seek went past the key frame
                    else:
                        continue
                want = "NONREF" if self.skip_nonref and packet.pts not in wanted else "DEFAULT"
                if want != skip:
                    cc.skip_frame = skip = want
                stats["packets"] += 1
                missing -= take(cc.decode(packet))
                if missing == 0:
                    break
            if missing and started:
                if skip != "DEFAULT":
                    cc.skip_frame = "DEFAULT"
                missing -= take(cc.decode(None))
        finally:
            if skip != "DEFAULT":
                cc.skip_frame = "DEFAULT"
        stats["convert_s"] = convert
        stats["decode_s"] = time.process_time() - t - convert
        return wanted if missing == 0 else None

    def _plain_frames(self) -> Iterator[Any]:
        """Every frame from the start of the file, in presentation order."""
        self._container.seek(0, backward=True, any_frame=False, stream=self._stream)
        self._stream.codec_context.flush_buffers()
        return self._container.decode(self._stream)

    def _get_plain(self, idx: np.ndarray) -> np.ndarray:
        """Decode from the start up to the last frame asked for (no index needed)."""
        wanted = set(int(i) for i in idx)
        last = max(wanted)
        got = {}
        decoded = 0
        t = time.process_time()
        for k, frame in enumerate(self._plain_frames()):
            decoded = k + 1
            if k in wanted:
                got[k] = frame.to_ndarray(format="rgb24")
            if k >= last:
                break
        self.stats["decode_s"] = time.process_time() - t
        self.stats["decoded"] = self.stats["packets"] = decoded
        if len(got) < len(wanted):
            raise ValueError(f"only {decoded} frames decodable, frame {last} requested")
        return np.stack([got[int(i)] for i in idx])

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None


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


__all__ = ["BACKENDS", "BACKEND_CLASSES", "SKIP_NONREF_CODECS", "DecordBackend", "PyAVBackend", "FrameIterator", "first_video_stream",
           "frame_rate", "import_decord", "one_line"]
