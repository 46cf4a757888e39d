"""Frames in, scored windows out: the ring of recent decoded frames, their conversion to the test
short side (once per frame, shared by overlapping windows) and the batched scoring of windows'
views. No I/O and no threads: :mod:`src.engine.stream` feeds it from a source, ``infer.py
--window`` from a file.

    SlidingWindows.push(k, frame): a ring of the last ``keep`` decoded frames (av.VideoFrame,
    unconverted); when frame ``end - 1`` of a window has arrived, the frames its clips use are
    converted to RGB and scaled to the test short side ONCE (``scale_short_side``, the
    transforms' rule; cached by index), cut into views (num_clips x num_crops, (3, T, S, S) each)
    and queued
      -> WindowScorer: views of several windows batched through ``InferenceModel.predict``
         ((batch, 3, T, S, S) -> (batch, classes)); a window's probabilities = mean of its views

Memory: the ring holds ``keep = max(window frames, clip_size) + 1`` decoded frames and at most as
many scaled RGB ones, the whole-video clips (``pin``) num_clips x T scaled frames, the scorer at
most one batch plus one window of views: all independent of the video's length.
"""
from __future__ import annotations

import collections
import time
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..data.errors import VideoDecodeError
from ..data.transforms import ShortSideScale, scale_short_side
from .windows import Window, WindowPlan


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
        return pinned_frames(self.ring, indices)


def pinned_frames(ring: FrameRing, indices: Sequence[int]) -> np.ndarray:
    """The frames ``indices`` of those ``ring`` kept because they were asked for up front
    (``ring.want``); the nearest earlier kept frame stands in for an absent one."""
    keys = sorted(ring.pinned)
    if not keys:
        raise VideoDecodeError("<input>", "no frames decoded")
    out = []
    for i in indices:
        j = int(np.searchsorted(keys, int(i), side="right")) - 1
        out.append(ring.pinned[keys[max(j, 0)]])
    return np.stack(out)
