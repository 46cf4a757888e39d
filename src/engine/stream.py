"""Live sources and long videos: open the source, decode it in a reader thread into a bounded
buffer, and drive the sliding windows (:mod:`src.engine.sliding`) and the timeline
(:mod:`src.engine.windows`) from it.

    source (file | camera | RTSP/HTTP URL | stdin '-'; opened as src/data/decode.py sets PyAV up)
      -> FrameReader thread: PyAV decode, frame k at k / fps seconds (one capture loop for every
         source, so a file and the same bytes from a pipe give the same frames)
      -> FrameBuffer (bounded; blocks for files/pipes, drops the oldest frame for live sources)
      -> SlidingWindows -> WindowScorer (src/engine/sliding.py) -> Timeline (src/engine/windows.py)
"""
from __future__ import annotations

import collections
import math
import os
import re
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

import numpy as np

from ..data.decode import first_video_stream, frame_rate
from ..errors import UserError
from .sliding import SlidingWindows, WindowScorer
from .windows import Window


# ----------------------------------------------------------------------------- sources
class StreamError(UserError):
    """A source that cannot be opened or read (one line naming it)."""


_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def describe_source(spec: str) -> Tuple[str, str]:
    """``(kind, target)``: kind is ``stdin``, ``device``, ``url`` or ``file``."""
    if spec == "-":
        return "stdin", "-"
    if spec.isdigit():
        return "device", f"/dev/video{int(spec)}"
    if spec.startswith("/dev/video"):
        return "device", spec
    if _URL.match(spec):
        return "url", spec
    return "file", spec


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:200]


@dataclass
class Source:
    """An opened PyAV input: container, video stream, frame rate; ``pace``: a file played at its own
    speed (by its timestamps); ``live``: frames arrive on their own clock, so a full buffer drops
    frames instead of making the source wait."""
    spec: str
    kind: str
    container: Any
    stream: Any
    fps: float
    pace: bool
    live: bool

    def close(self) -> None:
        try:
            self.container.close()
        except Exception:  # closing a broken network/pipe input may raise again; nothing to save
            pass


def open_source(spec: str, *, fmt: Optional[str] = None, timeout: float = 10.0,
                fps: Optional[float] = None, realtime: bool = True) -> Source:
    """Open a camera (``/dev/videoN`` or ``N``), an RTSP/HTTP URL, a file or ``-`` (stdin bytes:
    MPEG-TS, Matroska, ... probed, or ``fmt``). A file plays in real time unless ``realtime`` is
    False; stdin is read as fast as it comes (the writer is throttled by the pipe). ``fps``
    overrides the stream's frame rate (30 when the source has none)."""
    import av

    kind, target = describe_source(spec)
    options: Dict[str, str] = {}
    kwargs: Dict[str, Any] = {}
    if kind == "device":
        fmt = fmt or "v4l2"
    if kind == "url":
        kwargs["timeout"] = (timeout, timeout)
        if target.lower().startswith("rtsp"):
            options["rtsp_transport"] = "tcp"
    if kind == "file" and not os.path.isfile(target):
        raise StreamError(f"{spec}: no such file, camera or URL")
    if kind == "device" and not os.path.exists(target):
        raise StreamError(f"{spec}: no such camera device ({target})")
    try:
        handle = sys.stdin.buffer if kind == "stdin" else target
        container = av.open(handle, format=fmt, options=options, **kwargs)
    except Exception as e:  # PyAV/FFmpeg errors: OSError subclasses, ValueError, ...
        raise StreamError(f"{spec}: cannot open {kind} ({_first_line(e)})") from None
    try:
        stream = first_video_stream(container)
    except ValueError:
        container.close()
        raise StreamError(f"{spec}: no video stream") from None
    rate_f = float(fps) if fps else (frame_rate(stream) or float(stream.base_rate or 0.0))
    if not rate_f or not math.isfinite(rate_f) or rate_f > 1000:
        rate_f = 30.0
    pace = kind == "file" and bool(realtime)
    live = kind in ("device", "url") or pace
    return Source(spec, kind, container, stream, rate_f, pace, live)


# ----------------------------------------------------------------------------- reader thread
@dataclass
class FrameItem:
    index: int
    frame: Any
    arrived: float


class FrameBuffer:
    """Bounded hand-over between the reader thread and the inference loop.

    ``drop=True``: a full buffer discards its OLDEST frame (counted) so the newest is kept - a
    live source never waits. ``drop=False``: the reader waits (files, pipes)."""

    def __init__(self, capacity: int, drop: bool) -> None:
        self.capacity, self.drop = max(1, int(capacity)), bool(drop)
        self.items: Deque[FrameItem] = collections.deque()
        self.cond = threading.Condition()
        self.dropped = 0
        self.closed = False
        self.error: Optional[str] = None
        self.stopped = False

    def put(self, item: FrameItem) -> bool:
        with self.cond:
            while not self.drop and len(self.items) >= self.capacity and not self.stopped:
                self.cond.wait(0.1)
            if self.stopped:
                return False
            if len(self.items) >= self.capacity:
                self.items.popleft()
                self.dropped += 1
            self.items.append(item)
            self.cond.notify_all()
            return True

    def close(self, error: Optional[str] = None) -> None:
        with self.cond:
            self.closed, self.error = True, error
            self.cond.notify_all()

    def stop(self) -> None:
        with self.cond:
            self.stopped = True
            self.cond.notify_all()

    def get(self, timeout: float = 0.2) -> Optional[FrameItem]:
        """The next frame; None when closed and empty (or on timeout: check :attr:`closed`)."""
        with self.cond:
            if not self.items and not self.closed:
                self.cond.wait(timeout)
            if self.items:
                item = self.items.popleft()
                self.cond.notify_all()
                return item
            return None

    def empty(self) -> bool:
        with self.cond:
            return not self.items


class FrameReader(threading.Thread):
    """Decodes ``source`` into ``buffer``; with ``source.pace`` a file is paced by its timestamps
    (a camera/URL is paced by itself)."""

    def __init__(self, source: Source, buffer: FrameBuffer) -> None:
        super().__init__(name="frame-reader", daemon=True)
        self.source, self.buffer = source, buffer
        self.decoded = 0

    def run(self) -> None:
        src = self.source
        pace = src.pace
        t0 = None
        error = None
        try:
            for frame in src.container.decode(src.stream):
                if self.buffer.stopped:
                    break
                if pace:
                    t = float(frame.time) if frame.time is not None else self.decoded / src.fps
                    if t0 is None:
                        t0 = time.monotonic() - t
                    delay = t0 + t - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                if not self.buffer.put(FrameItem(self.decoded, frame, time.monotonic())):
                    break
                self.decoded += 1
        except Exception as e:  # a broken stream: reported by the consumer as one line
            error = f"{src.spec}: stream broke after {self.decoded} frames ({_first_line(e)})"
        self.buffer.close(error)


@dataclass
class RunStats:
    """What one run processed: windows, frames decoded / dropped, seconds of video and of wall
    clock (speed = video seconds per wall second: > 1 is faster than real time)."""
    windows: int = 0
    frames: int = 0
    dropped: int = 0
    video_s: float = 0.0
    wall_s: float = 0.0
    interrupted: bool = False
    error: Optional[str] = None

    @property
    def speed(self) -> float:
        return self.video_s / self.wall_s if self.wall_s > 0 else float("nan")

    def to_dict(self) -> Dict[str, Any]:
        return {"windows": self.windows, "frames": self.frames, "frames_dropped": self.dropped,
                "video_seconds": round(self.video_s, 3), "wall_seconds": round(self.wall_s, 3),
                "realtime_factor": round(self.speed, 3), "interrupted": self.interrupted,
                **({"error": self.error} if self.error else {})}


def _interrupt_on_sigint() -> Callable[[], None]:
    """Make Ctrl-C a KeyboardInterrupt in this (main) thread for the duration of a run (MindSpore
    installs its own SIGINT handler, which ends the process); returns the restorer."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.getsignal(signal.SIGINT)
    if previous == signal.SIG_IGN:  # started in the background: leave it ignored
        return lambda: None
    signal.signal(signal.SIGINT, signal.default_int_handler)
    return lambda: signal.signal(signal.SIGINT, previous)


def drive(source: Source, sliding: SlidingWindows, scorer: WindowScorer,
          emit: Callable[[Window, np.ndarray, float], None], *, capacity: int = 16,
          drop: Optional[bool] = None) -> RunStats:
    """Run ``source`` through the windows: a reader thread fills a bounded buffer (dropping the
    oldest frame when ``drop``, default ``source.live``), this thread scores windows and calls
    ``emit(window, probs, arrival_of_its_last_frame)`` in window order. A live source is scored as
    soon as a window completes; otherwise windows wait for a full batch while frames keep coming.
    Ctrl-C stops reading and ends like EOF (``stats.interrupted``)."""
    drop = source.live if drop is None else bool(drop)
    buffer = FrameBuffer(capacity, drop)
    reader = FrameReader(source, buffer)
    stats = RunStats()
    t0 = time.monotonic()

    def publish(done: List[Tuple[Window, np.ndarray]]) -> None:
        for w, p in done:
            emit(w, p, sliding.arrival.pop(w.index, time.monotonic()))
            stats.windows += 1

    restore = _interrupt_on_sigint()
    reader.start()
    try:
        while True:
            item = buffer.get()
            if item is None:
                if buffer.closed and buffer.empty():
                    break
                if scorer.waiting():
                    publish(scorer.run(flush=True))  # nothing to decode meanwhile: score now
                continue
            sliding.push(item.index, item.frame, item.arrived)
            if scorer.waiting():
                publish(scorer.run(flush=source.live or buffer.empty()))
    except KeyboardInterrupt:
        stats.interrupted = True
        buffer.stop()
    finally:
        restore()
    reader.join(timeout=5.0)
    sliding.finish()
    publish(scorer.run(flush=True))
    stats.frames = reader.decoded
    stats.dropped = buffer.dropped
    stats.video_s = (sliding.last_index + 1) / source.fps if sliding.last_index >= 0 else 0.0
    stats.wall_s = time.monotonic() - t0
    stats.error = buffer.error
    return stats


__all__ = ["StreamError", "describe_source", "open_source", "Source", "FrameBuffer", "FrameReader", "FrameItem",
           "RunStats", "drive"]
