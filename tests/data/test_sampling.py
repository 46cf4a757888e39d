"""Temporal sampling against hand-computed indices (SlowFast/mmaction2 conventions)."""
import numpy as np
import pytest

from src.data.sampling import eval_clip_indices, frame_step, train_clip_indices


class FixedRng:
    """A stand-in Generator whose integers() returns a chosen value (and records its range)."""

    def __init__(self, value):
        self.value, self.calls = value, []

    def integers(self, low, high):
        self.calls.append((low, high))
        return min(self.value, high - 1)


def test_train_clip_start_range_and_spacing():
    rng = FixedRng(10)
    idx = train_clip_indices(100, 4, 12, rng)
    # span = 3 * 12 + 1 = 37 frames -> starts 0..63
    assert rng.calls == [(0, 64)]
    assert idx.tolist() == [10, 22, 34, 46]
    assert train_clip_indices(100, 4, 12, FixedRng(10**6)).tolist() == [63, 75, 87, 99]


def test_train_clips_are_random_and_inside_video():
    rng = np.random.default_rng(0)
    starts = {int(train_clip_indices(100, 4, 12, rng)[0]) for _ in range(300)}
    assert min(starts) >= 0 and max(starts) <= 63 and len(starts) > 30


def test_short_video_indices_are_clamped():
    # 20 frames, span 37: the only start is 0 and indices past the end repeat the last frame
    assert train_clip_indices(20, 4, 12, np.random.default_rng(1)).tolist() == [0, 12, 19, 19]
    assert eval_clip_indices(20, 4, 12, 10, 7).tolist() == [0, 12, 19, 19]
    assert eval_clip_indices(3, 8, 2, 1, 0).tolist() == [0, 2, 2, 2, 2, 2, 2, 2]


def test_eval_clips_uniform_and_deterministic():
    # delta = 100 - 37 = 63; start_i = floor(64 * (2i + 1) / 20)
    starts = [int(eval_clip_indices(100, 4, 12, 10, i)[0]) for i in range(10)]
    assert starts == [3, 9, 16, 22, 28, 35, 41, 48, 54, 60]
    assert eval_clip_indices(100, 4, 12, 1, 0).tolist() == [32, 44, 56, 68]  # centre clip
    assert eval_clip_indices(100, 4, 12, 10, 4).tolist() == eval_clip_indices(100, 4, 12, 10, 4).tolist()
    with pytest.raises(ValueError, match="clip_idx 10 out of range"):
        eval_clip_indices(100, 4, 12, 10, 10)


def test_target_fps_rescales_the_step():
    assert frame_step(2, fps=50, target_fps=25) == 4.0
    assert frame_step(2, fps=None, target_fps=25) == 2.0
    # 50 fps video sampled as if 25 fps: step 4; 80 frames, span 13 -> centre start floor(68/2)=34
    assert eval_clip_indices(80, 4, 2, 1, 0, fps=50, target_fps=25).tolist() == [34, 38, 42, 46]
    # 30 -> 25 fps: step 2.4, offsets rounded
    assert eval_clip_indices(1000, 4, 2, 1, 0, fps=30, target_fps=25)[:4].tolist()[1:] == \
        (eval_clip_indices(1000, 4, 2, 1, 0, fps=30, target_fps=25)[0] + np.array([2, 5, 7])).tolist()
