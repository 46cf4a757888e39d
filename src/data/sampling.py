"""Temporal sampling exactly as SlowFast (``datasets/decoder.py``) and pytorchvideo do it.

A clip of ``num_frames`` (T) frames at ``sampling_rate`` (r) covers ``clip_size = r * T *
fps / target_fps`` source frames (``r * T`` when ``target_fps`` is null: the rate then counts the
video's own frames, whatever its fps). Its frames are ``floor(linspace(start, start + clip_size -
1, T))``, clamped to the last frame of a video shorter than the clip. With ``delta = max(frames -
clip_size, 0)`` the start is: train, uniform in ``[0, delta]``; test clip ``i`` of ``N``,
``delta * i / N`` (SlowFast's default, ``DATA.USE_OFFSET_SAMPLING: False``), so a single test
clip (one-view validation) starts at frame 0. ``offset_sampling=True`` is SlowFast's
``USE_OFFSET_SAMPLING: True``: ``floor(delta / 2)`` for one clip (the centre clip), else
``i * floor(delta / (N - 1))`` (the first clip at 0, the last one ending near the last frame).

``pad_mode="loop"`` is the Efficient-3DCNNs reference instead (its frame-folder data): a window of
``T * r`` consecutive frames from a whole-frame start, every ``r``-th kept (the reference's
``downsample``), and a window running past the end of the video loops back to its start
(``start + offset mod (frames - start)``, the reference's LoopPadding). Its single test clip is
the reference's TemporalCenterCrop, ``max(0, frames // 2 - (T * r) // 2)``, whatever
``offset_sampling`` says. :func:`consecutive_clip_indices` plans the reference's video-level test
and :func:`plan_video_windows` lists its windows for a whole data set (frame folders and video
files alike).

Worked example, X3D-XS (T=4, r=12, target_fps 30) on a 25 fps video of 250 frames:
clip_size = 12 * 4 * 25 / 30 = 40, delta = 210; the single test clip starts at 0 and takes
floor(linspace(0, 39, 4)) = [0, 13, 26, 39]; test clip 3 of 10 starts at 210 * 3 / 10 = 63
([63, 76, 89, 102]). With ``offset_sampling``: the single clip starts at floor(210 / 2) = 105
([105, 118, 131, 144]), clip 3 of 10 at 3 * floor(210 / 9) = 69 ([69, 82, 95, 108]).
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import numpy as np


def frame_step(sampling_rate: float, fps: Optional[float] = None,
               target_fps: Optional[float] = None) -> float:
    """Source frames per sampled frame: ``sampling_rate``, times ``fps/target_fps`` if both set."""
    if sampling_rate <= 0:
        raise ValueError(f"sampling_rate must be > 0, got {sampling_rate}")
    if target_fps and fps:
        return float(sampling_rate) * float(fps) / float(target_fps)
    return float(sampling_rate)


def clip_size(num_frames: int, sampling_rate: float, fps: Optional[float] = None,
              target_fps: Optional[float] = None) -> float:
    """Source frames one clip covers: ``sampling_rate * num_frames * fps / target_fps``."""
    if num_frames <= 0:
        raise ValueError(f"num_frames must be > 0, got {num_frames}")
    return frame_step(sampling_rate, fps, target_fps) * num_frames


PAD_MODES = ("clamp", "loop")


def clip_at(start: float, size: float, num_frames: int, video_frames: int, pad_mode: str = "clamp") -> np.ndarray:
    """``clamp``: ``floor(linspace(start, start + size - 1, T))`` clamped to ``[0, video_frames - 1]``.
    ``loop``: ``s + (k * size / T) mod (video_frames - s)`` with ``s = floor(start)``."""
    if pad_mode == "loop":
        s = int(np.floor(start + 1e-9))
        offsets = np.floor(np.arange(int(num_frames)) * (size / num_frames) + 1e-9).astype(np.int64)
        return (s + offsets % max(int(video_frames) - s, 1)).astype(np.int64)
    if pad_mode != "clamp":
        raise ValueError(f"pad_mode must be one of {PAD_MODES}, got {pad_mode!r}")
    idx = np.floor(np.linspace(float(start), float(start) + size - 1.0, int(num_frames)) + 1e-9)
    return np.clip(idx, 0, max(int(video_frames) - 1, 0)).astype(np.int64)


def train_clip_indices(video_frames: int, num_frames: int, sampling_rate: float,
                       rng: np.random.Generator, fps: Optional[float] = None,
                       target_fps: Optional[float] = None, pad_mode: str = "clamp") -> np.ndarray:
    """One random clip: start uniform in ``[0, max(video_frames - clip_size, 0)]`` (``loop``: a
    whole frame in ``[0, max(video_frames - clip_size - 1, 0)]``, the reference's TemporalRandomCrop)."""
    size = clip_size(num_frames, sampling_rate, fps, target_fps)
    delta = max(video_frames - size, 0.0)
    if pad_mode == "loop":  # TemporalRandomCrop: begin = randint(0, max(0, frames - size - 1))
        start = float(rng.integers(0, max(int(video_frames - size) - 1, 0) + 1))
    else:
        start = rng.uniform(0.0, delta)
    return clip_at(start, size, num_frames, video_frames, pad_mode)


def eval_clip_start(video_frames: int, size: float, num_clips: int, clip_idx: int,
                    offset_sampling: bool = False, pad_mode: str = "clamp") -> float:
    """Start of test clip ``clip_idx`` of ``num_clips`` (see the module doc): ``delta * i / N``;
    ``offset_sampling``: ``floor(delta / 2)`` for one clip, else ``i * floor(delta / (N - 1))``;
    ``pad_mode="loop"`` with one clip: ``max(0, frames // 2 - floor(size) // 2)`` (the
    Efficient-3DCNNs TemporalCenterCrop)."""
    if not 0 <= clip_idx < num_clips:
        raise ValueError(f"clip_idx {clip_idx} out of range for num_clips={num_clips}")
    if pad_mode == "loop" and num_clips == 1:
        return float(max(0, int(video_frames) // 2 - int(np.floor(size + 1e-9)) // 2))
    delta = max(video_frames - size, 0.0)
    if offset_sampling:
        if num_clips == 1:
            return float(np.floor(delta / 2.0 + 1e-9))
        return float(clip_idx * np.floor(delta / (num_clips - 1) + 1e-9))
    return delta * clip_idx / num_clips


def eval_clip_indices(video_frames: int, num_frames: int, sampling_rate: float, num_clips: int,
                      clip_idx: int, fps: Optional[float] = None,
                      target_fps: Optional[float] = None, pad_mode: str = "clamp",
                      offset_sampling: bool = False) -> np.ndarray:
    """Frame indices of test clip ``clip_idx`` of ``num_clips`` (start: :func:`eval_clip_start`)."""
    size = clip_size(num_frames, sampling_rate, fps, target_fps)
    start = eval_clip_start(video_frames, size, num_clips, clip_idx, offset_sampling, pad_mode)
    return clip_at(start, size, num_frames, video_frames, pad_mode)


def consecutive_clip_indices(video_frames: int, num_frames: int, sampling_rate: float,
                             fps: Optional[float] = None,
                             target_fps: Optional[float] = None) -> np.ndarray:
    """(windows, num_frames) indices of the Efficient 3D CNN video-level test: windows of
    ``num_frames`` consecutive frames starting at 0, ``num_frames`` apart, while the start is
    before the last frame (so a last window of one frame is dropped, as the reference's
    ``range(1, n_frames, step)`` does; a 1-frame video still gets one window). Each window is
    sampled at ``sampling_rate`` (the reference's downsample) and looped when shorter than the clip."""
    if video_frames <= 0:
        raise ValueError(f"video_frames must be > 0, got {video_frames}")
    step = frame_step(sampling_rate, fps, target_fps)
    offsets = np.floor(np.arange(num_frames) * step + 1e-9).astype(np.int64)
    starts = list(range(0, max(video_frames - 1, 1), num_frames))
    return np.stack([s + offsets % min(num_frames, video_frames - s) for s in starts]).astype(np.int64)


def window_clip_indices(video_frames: int, window: int, num_frames: int, sampling_rate: float,
                        fps: Optional[float] = None, target_fps: Optional[float] = None) -> np.ndarray:
    """Indices of window ``window`` of :func:`consecutive_clip_indices` (the last window if the
    video has fewer: a frame count known at start-up can differ from the one read later)."""
    windows = consecutive_clip_indices(max(int(video_frames), 1), num_frames, sampling_rate, fps, target_fps)
    return windows[min(int(window), len(windows) - 1)]


def plan_clip(video_frames: int, num_frames: int, sampling_rate: float, *, clip_idx: Optional[int] = None,
              num_clips: int = 1, window: Optional[int] = None, rng: Optional[np.random.Generator] = None,
              fps: Optional[float] = None, target_fps: Optional[float] = None, pad_mode: str = "clamp",
              offset_sampling: bool = False) -> np.ndarray:
    """The frame indices of one clip, the planner every data set uses: window ``window`` of the
    video-level test (:func:`window_clip_indices`) when given, else test clip ``clip_idx`` of
    ``num_clips`` (:func:`eval_clip_indices`), else a random training clip drawn from ``rng``
    (:func:`train_clip_indices`)."""
    if window is not None:
        return window_clip_indices(video_frames, window, num_frames, sampling_rate, fps, target_fps)
    if clip_idx is None:
        return train_clip_indices(video_frames, num_frames, sampling_rate,
                                  rng if rng is not None else np.random.default_rng(), fps, target_fps,
                                  pad_mode=pad_mode)
    return eval_clip_indices(video_frames, num_frames, sampling_rate, num_clips, clip_idx, fps, target_fps,
                             pad_mode=pad_mode, offset_sampling=offset_sampling)


def plan_video_windows(frame_counts: Sequence[int], num_frames: int, sampling_rate: float,
                       fps: Union[None, float, Sequence[Optional[float]]] = None,
                       target_fps: Optional[float] = None) -> Tuple[np.ndarray, np.ndarray]:
    """The samples of the video-level test over a data set: every window of
    :func:`consecutive_clip_indices` of every video. ``frame_counts[v]`` is video ``v``'s frame
    count (0 or less: unknown, e.g. unreadable; it gets one window and fails when read); ``fps``
    one frame rate for all videos or one per video (only used with ``target_fps``). Returns
    ``(window_video, window_index)``: sample ``i`` is window ``window_index[i]`` of video
    ``window_video[i]``, window-major (all first windows, then all second ones, ...), so a bad
    video's windows are not neighbours."""
    counts = [int(n) for n in frame_counts]
    rates = list(fps) if isinstance(fps, (list, tuple, np.ndarray)) else [fps] * len(counts)
    if len(rates) != len(counts):
        raise ValueError(f"plan_video_windows: {len(rates)} frame rates for {len(counts)} videos")
    windows = [len(consecutive_clip_indices(max(n, 1), num_frames, sampling_rate, f, target_fps))
               for n, f in zip(counts, rates)]
    order = [(v, w) for w in range(max(windows, default=0)) for v in range(len(counts)) if w < windows[v]]
    return np.array([v for v, _ in order], np.int64), np.array([w for _, w in order], np.int64)
