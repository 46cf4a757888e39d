"""Which frames each window of a long video or live source covers, and the timeline of scored
windows: pure functions and small classes (no frames, no I/O, no threads), unit-tested alone.

Windows (:class:`WindowPlan`): window ``k`` covers ``[k * stride, k * stride + window)`` seconds,
source frames ``[round(k * stride * fps), round((k * stride + window) * fps))``; windows are
emitted while they fit in the video, plus one last window cut at the end of the video when frames
remain uncovered (a video shorter than one window gives one window). Each window holds
``num_clips`` clips of the model (sampling from :mod:`src.data.sampling`: ``clip_size`` source
frames, ``clip_at``); clip ``i`` starts at ``window_clip_start`` within the window (one clip:
centred; several: spread as the test views), and a window shorter than one clip takes the clip
that ENDS at the window's last frame (earlier frames, never later ones: a live source has no
future). So the clips of a window depend only on frames before its end, and a file and the same
bytes from a pipe give the same windows.

Timeline (:class:`Timeline`): smoothing over the last K windows, "uncertain" below a threshold,
top-k per window, per-label segments (consecutive windows with the same label merged).
"""
from __future__ import annotations

import collections
import math
from dataclasses import dataclass, field
from typing import Any, Deque, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..data.sampling import clip_at, clip_size, eval_clip_start

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
