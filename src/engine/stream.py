"""Sliding-window inference over long videos and live sources, with memory bounded by one window.

    source (file | camera | RTSP/HTTP URL | stdin '-')
      -> FrameReader thread: PyAV decode, frame k at k / fps seconds
      -> FrameBuffer (bounded; blocks for files/pipes, drops the oldest frame for live sources)
      -> SlidingWindows.push(k, frame): a ring of the last ``keep`` decoded frames (av.VideoFrame,
         unconverted); when frame ``end - 1`` of a window has arrived, the frames its clips use
         are converted to RGB and scaled to the test short side ONCE (cached by index: overlapping
         windows share them), cut into views (num_clips x num_crops, (3, T, S, S) each) and queued
      -> WindowScorer: views of several windows batched through ``InferenceModel.predict``
         ((batch, 3, T, S, S) -> (batch, classes)); a window's probabilities = mean of its views
      -> Timeline: smoothing over the last K windows, "uncertain" below a threshold, top-k per
         window, per-label segments (consecutive windows with the same label merged)

Windows (:class:`WindowPlan`): window ``k`` covers ``[k * stride, k * stride + window)`` seconds,
source frames ``[round(k * stride * fps), round((k * stride + window) * fps))``; windows are
emitted while they fit in the video, plus one last window cut at the end of the video when frames
remain uncovered
(a video shorter than one window gives one window). Each window holds ``num_clips`` clips of the
model (sampling from :mod:`src.data.sampling`: ``clip_size`` source frames, ``clip_at``); clip
``i`` starts at ``window_clip_start`` within the window (one clip: centred; several: spread as
the test views), and a window shorter than one clip takes
the clip that ENDS at the window's last frame (earlier frames, never later ones: a live source
has no future). So the clips of a window depend only on frames before its end, and a file and
the same bytes from a pipe give the same windows.

Memory: the ring holds ``keep = max(window frames, clip_size) + 1`` decoded frames and at most as
many scaled RGB ones, the whole-video clips (``pin``) num_clips x T scaled frames, the scorer at
most one batch plus one window of views: all independent of the video's length.
"""
from __future__ import annotations

import collections
import math
import os
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..data.errors import VideoDecodeError
from ..data.sampling import clip_at, clip_size, eval_clip_start
from ..data.transforms import ShortSideScale, scale_short_side
from ..errors import UserError

UNCERTAIN = "uncertain"


# ----------------------------------------------------------------------------- window planning
@dataclass
class Window:
    """One window: ``[first, end)`` source frames, ``start``/``stop`` seconds, clip indices."""
    index: int
    first: int
    end: int
    start: float
    stop: float
    clips: np.ndarray  # (num_clips, T) source frame indices, all < end


def window_clip_start(length: int, size: float, num_clips: int, clip_idx: int) -> float:
    """Start of clip ``clip_idx`` within a window of ``length >= size`` frames: one clip is
    centred (a timeline labels the window by its middle), several are spread as the test views
    (``delta * i / N``, :func:`~src.data.sampling.eval_clip_start`)."""
    if num_clips == 1:
        return max(length - size, 0.0) / 2.0
    return eval_clip_start(length, size, num_clips, clip_idx)


class WindowPlan:
    """Windows of ``window_s`` seconds every ``stride_s`` seconds at ``fps``; see the module doc."""

    def __init__(self, *, fps: float, window_s: float, stride_s: float, num_frames: int,
                 sampling_rate: float, num_clips: int = 1, target_fps: Optional[float] = None) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        if window_s <= 0:
            raise ValueError(f"window must be > 0 s, got {window_s}")
        if not 0 < stride_s <= window_s + 1e-9:
            raise ValueError(f"stride must be in (0, window={window_s:g}] s, got {stride_s:g}")
        self.fps, self.window_s, self.stride_s = float(fps), float(window_s), float(stride_s)
        self.num_frames, self.num_clips = int(num_frames), max(1, int(num_clips))
        self.size = clip_size(num_frames, sampling_rate, fps, target_fps)  # source frames per clip
        self.window_frames = max(1, int(round(window_s * fps)))
        # frames a window can look back: its own span or one clip, whichever is longer
        self.keep = max(self.window_frames, int(math.ceil(self.size))) + 1

    def frame_at(self, seconds: float) -> int:
        """The source frame at ``seconds`` (rounded half up)."""
        return int(math.floor(seconds * self.fps + 0.5 + 1e-9))

    def bounds(self, k: int) -> Tuple[int, int]:
        """Nominal ``[first, end)`` source frames of window ``k`` (not cut at the video's end)."""
        first = self.frame_at(k * self.stride_s)
        return first, max(first + 1, self.frame_at(k * self.stride_s + self.window_s))

    def clips(self, first: int, end: int) -> np.ndarray:
        """(num_clips, T) indices of the clips of a window ``[first, end)``."""
        length = end - first
        out = []
        for i in range(self.num_clips):
            if length >= self.size:
                start = first + window_clip_start(length, self.size, self.num_clips, i)
            else:  # shorter than a clip: the clip that ends at the window's last frame
                start = max(end - self.size, 0.0)
            out.append(clip_at(start, self.size, self.num_frames, end))
        return np.stack(out).astype(np.int64)

    def window(self, k: int, end: Optional[int] = None) -> Window:
        """Window ``k``; ``end``: the video's frame count, when the window is cut there. Its times
        are the nominal ones (``k * stride``, ``+ window``; a cut window ends with the video)."""
        first, nominal = self.bounds(k)
        start = k * self.stride_s
        if end is None or end >= nominal:
            end, stop = nominal, start + self.window_s
        else:
            stop = end / self.fps
        return Window(k, first, end, round(start, 3), round(stop, 3), self.clips(first, end))

    def windows(self, video_frames: int) -> List[Window]:
        """All windows of a video of ``video_frames`` frames (the offline plan)."""
        out: List[Window] = []
        k = 0
        while True:
            first, end = self.bounds(k)
            if end <= video_frames:
                out.append(self.window(k))
            else:
                if not out or out[-1].end < video_frames:
                    if first < video_frames:
                        out.append(self.window(k, video_frames))
                break
            k += 1
        return out


def plan_sliding_windows(video_frames: int, fps: float, window_s: float, stride_s: Optional[float],
                         num_frames: int, sampling_rate: float, num_clips: int = 1,
                         target_fps: Optional[float] = None) -> List[Window]:
    """The windows of a whole video (``stride_s`` None: = ``window_s``, consecutive windows)."""
    if window_s <= 0 or fps <= 0 or video_frames <= 0:
        return []
    return WindowPlan(fps=fps, window_s=window_s, stride_s=stride_s or window_s, num_frames=num_frames,
                      sampling_rate=sampling_rate, num_clips=num_clips, target_fps=target_fps).windows(video_frames)


# ----------------------------------------------------------------------------- frames
def short_side_of(transform: Any) -> Optional[int]:
    """The size of the transform's first ShortSideScale (None: it has none)."""
    for op in getattr(transform, "ops", []):
        if isinstance(op, ShortSideScale):
            return op.size
    return None


class FrameConverter:
    """av.VideoFrame -> (H, W, 3) uint8 RGB scaled to the test short side (PIL bilinear, as the
    transform's ShortSideScale does it, which is then a no-op)."""

    def __init__(self, short_side: Optional[int]) -> None:
        self.short_side = short_side
        self.converted = 0

    def __call__(self, frame: Any) -> np.ndarray:
        rgb = frame.to_ndarray(format="rgb24") if hasattr(frame, "to_ndarray") else np.asarray(frame)
        self.converted += 1
        if self.short_side is None:
            return rgb
        return scale_short_side(rgb[None], self.short_side)[0]


class FrameRing:
    """The last ``keep`` frames by source index plus an RGB cache; a missing (dropped) index is
    served by the nearest earlier frame (else the nearest later one)."""

    def __init__(self, keep: int, convert: Callable[[Any], np.ndarray]) -> None:
        self.keep = int(keep)
        self.convert = convert
        self.raw: "collections.OrderedDict[int, Any]" = collections.OrderedDict()
        self.rgb: Dict[int, np.ndarray] = {}
        self.pinned: Dict[int, np.ndarray] = {}  # frames wanted beyond the ring (whole-video clips)
        self.want: set = set()

    def push(self, index: int, frame: Any) -> None:
        self.raw[index] = frame
        if index in self.want:
            self.pinned[index] = self.convert(frame)
        while len(self.raw) > self.keep:
            old, _ = self.raw.popitem(last=False)
            self.rgb.pop(old, None)

    def _nearest(self, index: int) -> int:
        if index in self.raw:
            return index
        keys = list(self.raw.keys())
        earlier = [k for k in keys if k < index]
        return earlier[-1] if earlier else keys[0]

    def get(self, indices: Sequence[int]) -> np.ndarray:
        out = []
        for i in indices:
            k = self._nearest(int(i))
            if k not in self.rgb:
                self.rgb[k] = self.convert(self.raw[k])
            out.append(self.rgb[k])
        return np.stack(out)


# ----------------------------------------------------------------------------- scoring
class WindowScorer:
    """Views of windows, scored in full batches of the model (a partial batch only on flush)."""

    def __init__(self, model: Any, transform: Any, num_crops: int) -> None:
        self.model, self.transform, self.num_crops = model, transform, int(num_crops)
        self.batch = int(getattr(model, "batch_size", 1))
        self.views: List[np.ndarray] = []
        self.owners: List[Window] = []
        self.scores: List[np.ndarray] = []
        self.pending: Deque[Tuple[Window, int]] = collections.deque()  # (window, views)
        self.windows_scored = 0

    def add(self, window: Window, frames_of: Callable[[np.ndarray], np.ndarray]) -> None:
        n = 0
        for clip in window.clips:
            frames = frames_of(clip)
            for c in range(self.num_crops):
                self.views.append(self.transform(frames, crop_index=c))
                n += 1
        self.pending.append((window, n))

    def waiting(self) -> int:
        return len(self.views)

    def run(self, flush: bool = False) -> List[Tuple[Window, np.ndarray]]:
        """Score whole batches (all views with ``flush``); the windows now complete, with their
        probabilities (mean over views)."""
        take = len(self.views) if flush else (len(self.views) // self.batch) * self.batch
        if take:
            probs = self.model.predict(np.stack(self.views[:take]))
            self.scores.extend(probs)
            del self.views[:take]
        done = []
        while self.pending and self.pending[0][1] <= len(self.scores):
            window, n = self.pending.popleft()
            done.append((window, np.mean(self.scores[:n], axis=0)))
            del self.scores[:n]
            self.windows_scored += 1
        return done


class SlidingWindows:
    """Feeds frames in source order, emits ``(Window, probs)`` as windows complete.

    ``video_frames`` known (a file): the plan is exact and the last window is cut at the end;
    unknown (a stream): windows are emitted as their last frame arrives and :meth:`finish`
    (with the frame count) adds the cut last window, the same as the file plan."""

    def __init__(self, plan: WindowPlan, scorer: WindowScorer, convert: Callable[[Any], np.ndarray],
                 *, pin: Sequence[int] = ()) -> None:
        self.plan, self.scorer = plan, scorer
        self.ring = FrameRing(plan.keep, convert)
        self.ring.want = set(int(i) for i in pin)
        self.next_window = 0
        self.frames_seen = 0
        self.last_index = -1
        self.arrival: Dict[int, float] = {}  # window index -> arrival time of its last frame

    def push(self, index: int, frame: Any, arrived: Optional[float] = None) -> None:
        """Add frame ``index`` (indices increase; gaps are dropped frames)."""
        self.ring.push(index, frame)
        self.frames_seen += 1
        self.last_index = index
        while True:
            first, end = self.plan.bounds(self.next_window)
            if index < end - 1:
                break
            w = self.plan.window(self.next_window)
            self.arrival[w.index] = arrived if arrived is not None else time.monotonic()
            self.scorer.add(w, self.ring.get)
            self.next_window += 1

    def finish(self) -> None:
        """End of input: the last window cut at the end of the video, if frames remain uncovered."""
        n = self.last_index + 1
        if n <= 0:
            return
        first, end = self.plan.bounds(self.next_window)
        prev_end = self.plan.bounds(self.next_window - 1)[1] if self.next_window > 0 else 0
        if first < n and (self.next_window == 0 or prev_end < n):
            w = self.plan.window(self.next_window, n)
            self.arrival[w.index] = time.monotonic()
            self.scorer.add(w, self.ring.get)
            self.next_window += 1

    def pinned(self, indices: Sequence[int]) -> np.ndarray:
        """Frames kept because they were asked for up front (``pin``); nearest kept frame if absent."""
        keys = sorted(self.ring.pinned)
        if not keys:
            raise VideoDecodeError("<input>", "no frames decoded")
        out = []
        for i in indices:
            j = int(np.searchsorted(keys, int(i), side="right")) - 1
            out.append(self.ring.pinned[keys[max(j, 0)]])
        return np.stack(out)


# ----------------------------------------------------------------------------- timeline
@dataclass
class Timeline:
    """Per-window top-k with smoothing over the last ``smooth`` windows and an ``uncertain`` label
    when the (smoothed) top-1 probability is below ``threshold``."""
    class_names: Sequence[str]
    topk: int = 5
    smooth: int = 1
    threshold: float = 0.0
    entries: List[Dict[str, Any]] = field(default_factory=list)
    _recent: Deque[np.ndarray] = field(default_factory=collections.deque)

    def add(self, window: Window, probs: np.ndarray) -> Dict[str, Any]:
        from .inference import topk as top_classes

        self._recent.append(np.asarray(probs, np.float64))
        while len(self._recent) > max(1, self.smooth):
            self._recent.popleft()
        p = np.mean(self._recent, axis=0)
        best = top_classes(p, self.topk, self.class_names)
        uncertain = best[0]["prob"] < self.threshold
        entry = {"start": window.start, "end": window.stop, "frames": [int(window.first), int(window.end - 1)],
                 "label": -1 if uncertain else best[0]["label"], "name": UNCERTAIN if uncertain else best[0]["name"],
                 "prob": best[0]["prob"], "topk": best}
        self.entries.append(entry)
        return entry

    def segments(self) -> List[Dict[str, Any]]:
        """Consecutive windows with the same label merged: ``{name, label, start, end, windows,
        mean_prob}``; a segment ends where the next one's first window starts (the last one at
        the end of its last window)."""
        segs: List[Dict[str, Any]] = []
        for e in self.entries:
            if segs and segs[-1]["name"] == e["name"]:
                s = segs[-1]
                s["end"], s["windows"], s["_sum"] = e["end"], s["windows"] + 1, s["_sum"] + e["prob"]
            else:
                if segs:
                    segs[-1]["end"] = e["start"]
                segs.append({"name": e["name"], "label": e["label"], "start": e["start"], "end": e["end"],
                             "windows": 1, "_sum": e["prob"]})
        for s in segs:
            s["mean_prob"] = round(s.pop("_sum") / s["windows"], 6)
        return segs


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
    if not container.streams.video:
        container.close()
        raise StreamError(f"{spec}: no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    rate_f = float(fps) if fps else (float(rate) if rate else 0.0)
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


__all__ = ["Window", "WindowPlan", "plan_sliding_windows", "FrameConverter", "FrameRing", "WindowScorer",
           "SlidingWindows", "Timeline", "UNCERTAIN", "StreamError", "describe_source", "open_source",
           "Source", "FrameBuffer", "FrameReader", "FrameItem", "RunStats", "drive", "short_side_of"]
