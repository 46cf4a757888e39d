"""Temporal sampling as SlowFast/mmaction2 do it.

A clip is ``num_frames`` frames spaced by ``sampling_rate`` source frames (rescaled by
``fps / target_fps`` when a target frame rate is given), spanning ``(num_frames-1)*step + 1``
frames. Train: one clip at a uniformly random start. Eval: ``num_clips`` clips whose starts sit at
the centres of ``num_clips`` equal segments of the valid start range (deterministic; a single
clip is the centre clip). Indices past the end of a short video are clamped to its last frame
(``pad_mode="clamp"``) or, as the Efficient 3D CNN reference does, looped from the clip's start
(``pad_mode="loop"``: frame ``start + offset mod (video_frames - start)``).

:func:`consecutive_clip_indices` plans the reference's video-level test: consecutive
non-overlapping windows of ``num_frames`` frames from frame 0, each looped to fill its clip.
"""
from __future__ import annotations

from typing import Optional

import numpy as np


def frame_step(sampling_rate: float, fps: Optional[float] = None,
               target_fps: Optional[float] = None) -> float:
    """Source frames between sampled frames: ``sampling_rate``, times ``fps/target_fps`` if both set."""
    if sampling_rate <= 0:
        raise ValueError(f"sampling_rate must be > 0, got {sampling_rate}")
    if target_fps and fps:
        return float(sampling_rate) * float(fps) / float(target_fps)
    return float(sampling_rate)


def clip_offsets(num_frames: int, step: float) -> np.ndarray:
    """Offsets of the frames of one clip from its first frame."""
    if num_frames <= 0:
        raise ValueError(f"num_frames must be > 0, got {num_frames}")
    return np.round(np.arange(num_frames) * step).astype(np.int64)


PAD_MODES = ("clamp", "loop")


def _finish(start: int, offsets: np.ndarray, video_frames: int, pad_mode: str = "clamp") -> np.ndarray:
    if pad_mode == "loop":  # the reference's LoopPadding: repeat the frames from the clip's start
        return (start + offsets % max(video_frames - start, 1)).astype(np.int64)
    if pad_mode != "clamp":
        raise ValueError(f"pad_mode must be one of {PAD_MODES}, got {pad_mode!r}")
    return np.clip(start + offsets, 0, max(video_frames - 1, 0)).astype(np.int64)


def train_clip_indices(video_frames: int, num_frames: int, sampling_rate: float,
                       rng: np.random.Generator, fps: Optional[float] = None,
                       target_fps: Optional[float] = None, pad_mode: str = "clamp") -> np.ndarray:
    """One random clip: start uniform in ``[0, max(video_frames - span, 0)]``."""
    offsets = clip_offsets(num_frames, frame_step(sampling_rate, fps, target_fps))
    delta = max(video_frames - int(offsets[-1]) - 1, 0)
    start = int(rng.integers(0, delta + 1))
    return _finish(start, offsets, video_frames, pad_mode)


def eval_clip_start(video_frames: int, span: int, num_clips: int, clip_idx: int) -> int:
    """Start of clip ``clip_idx`` of ``num_clips``: centre of its segment of the start range."""
    if not 0 <= clip_idx < num_clips:
        raise ValueError(f"clip_idx {clip_idx} out of range for num_clips={num_clips}")
    delta = max(video_frames - span, 0)
    return min(delta, ((delta + 1) * (2 * clip_idx + 1)) // (2 * num_clips))


def eval_clip_indices(video_frames: int, num_frames: int, sampling_rate: float, num_clips: int,
                      clip_idx: int, fps: Optional[float] = None,
                      target_fps: Optional[float] = None, pad_mode: str = "clamp") -> np.ndarray:
    """Frame indices of eval clip ``clip_idx`` of ``num_clips`` uniformly spaced clips."""
    offsets = clip_offsets(num_frames, frame_step(sampling_rate, fps, target_fps))
    start = eval_clip_start(video_frames, int(offsets[-1]) + 1, num_clips, clip_idx)
    return _finish(start, offsets, video_frames, pad_mode)


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
    offsets = clip_offsets(num_frames, frame_step(sampling_rate, fps, target_fps))
    starts = list(range(0, max(video_frames - 1, 1), num_frames))
    return np.stack([s + offsets % min(num_frames, video_frames - s) for s in starts]).astype(np.int64)
