"""Temporal sampling against SlowFast's formula, with values worked out by hand.

SlowFast (datasets/decoder.py): clip_size = sampling_rate * num_frames * fps / target_fps,
delta = max(frames - clip_size, 0), start = uniform(0, delta) (train) or delta * i / N (test),
indices = floor(linspace(start, start + clip_size - 1, num_frames)) clamped to the last frame.
"""
import math

import numpy as np
import pytest

from src.data.sampling import (clip_size, consecutive_clip_indices, eval_clip_indices, frame_step,
                               train_clip_indices)

# (variant, frames T, sampling rate) of the SlowFast Kinetics configs
VARIANTS = {"xs": (4, 12), "s": (13, 6), "m": (16, 5), "l": (16, 5)}


class FixedRng:
    """A stand-in Generator whose uniform() returns a chosen point of its range (and records it)."""

    def __init__(self, fraction):
        self.fraction, self.calls = fraction, []

    def uniform(self, low, high):
        self.calls.append((low, high))
        return low + self.fraction * (high - low)


def by_formula(start, size, t, frames):
    """The formula written out with plain floats (independent of numpy's linspace)."""
    step = (size - 1) / (t - 1) if t > 1 else 0.0
    return [min(max(math.floor(start + k * step + 1e-9), 0), frames - 1) for k in range(t)]


def test_hand_computed_clips_at_30_fps():
    # XS: 12 * 4 * 30/30 = 48 frames; linspace(0, 47, 4) = 0, 15.67, 31.33, 47
    assert eval_clip_indices(48, 4, 12, 1, 0, 30, 30).tolist() == [0, 15, 31, 47]
    # S: 6 * 13 = 78; step 77/12 = 6.4167
    assert eval_clip_indices(78, 13, 6, 1, 0, 30, 30).tolist() == [0, 6, 12, 19, 25, 32, 38, 44, 51, 57, 64, 70, 77]
    # M and L: 5 * 16 = 80; step 79/15 = 5.2667
    assert eval_clip_indices(80, 16, 5, 1, 0, 30, 30).tolist() == [0, 5, 10, 15, 21, 26, 31, 36, 42, 47, 52, 57,
                                                                  63, 68, 73, 79]


def test_hand_computed_clips_at_other_frame_rates():
    # XS at 25 fps: clip_size = 12 * 4 * 25 / 30 = 40 -> step 13
    assert clip_size(4, 12, 25, 30) == pytest.approx(40.0)
    assert eval_clip_indices(40, 4, 12, 1, 0, 25, 30).tolist() == [0, 13, 26, 39]
    # XS at 24 fps: 38.4 -> linspace(0, 37.4, 4) = 0, 12.47, 24.93, 37.4
    assert eval_clip_indices(38, 4, 12, 1, 0, 24, 30).tolist() == [0, 12, 24, 37]
    # XS at 60 fps: 96 -> linspace(0, 95, 4) = 0, 31.67, 63.33, 95
    assert eval_clip_indices(96, 4, 12, 1, 0, 60, 30).tolist() == [0, 31, 63, 95]
    # worked example of the docs: XS, 25 fps, 250 frames: centre start 105, clip 3 of 10 starts at 63
    assert eval_clip_indices(250, 4, 12, 1, 0, 25, 30).tolist() == [105, 118, 131, 144]
    assert eval_clip_indices(250, 4, 12, 10, 3, 25, 30).tolist() == [63, 76, 89, 102]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("fps", [24, 25, 30, 60])
def test_all_variants_and_rates_follow_the_formula(variant, fps):
    t, rate = VARIANTS[variant]
    size = rate * t * fps / 30
    frames = 300
    delta = max(frames - size, 0)
    for n in (2, 3, 10):
        for i in range(n):
            expected = by_formula(delta * i / n, size, t, frames)
            assert eval_clip_indices(frames, t, rate, n, i, fps, 30).tolist() == expected, (n, i)
    assert eval_clip_indices(frames, t, rate, 1, 0, fps, 30).tolist() == by_formula(delta / 2, size, t, frames)
    for frac in (0.0, 0.37, 1.0):
        rng = FixedRng(frac)
        got = train_clip_indices(frames, t, rate, rng, fps, 30).tolist()
        assert rng.calls == [(0.0, pytest.approx(delta))]
        assert got == by_formula(frac * delta, size, t, frames)


def test_test_clip_starts_are_delta_i_over_n():
    # XS at 30 fps, 300 frames: delta = 252; 10 clips start at 0, 25.2, ..., 226.8
    starts = [int(eval_clip_indices(300, 4, 12, 10, i, 30, 30)[0]) for i in range(10)]
    assert starts == [0, 25, 50, 75, 100, 126, 151, 176, 201, 226]
    assert eval_clip_indices(300, 4, 12, 10, 3, 30, 30).tolist() == [75, 91, 106, 122]  # 75.6 + k * 15.67
    assert eval_clip_indices(300, 4, 12, 1, 0, 30, 30).tolist() == [126, 141, 157, 173]  # centre: 252 / 2
    with pytest.raises(ValueError, match="clip_idx 10 out of range"):
        eval_clip_indices(300, 4, 12, 10, 10, 30, 30)


def test_short_videos_clamp_to_the_last_frame():
    # 20 frames < clip_size 48: start 0, linspace(0, 47, 4) clamped to 19
    assert eval_clip_indices(20, 4, 12, 10, 7, 30, 30).tolist() == [0, 15, 19, 19]
    assert train_clip_indices(20, 4, 12, np.random.default_rng(1), 30, 30).tolist() == [0, 15, 19, 19]
    assert eval_clip_indices(3, 8, 2, 1, 0).tolist() == [0, 2, 2, 2, 2, 2, 2, 2]


def test_target_fps_null_counts_the_videos_own_frames():
    # null target_fps: clip_size = rate * T whatever the fps (the demo's setting)
    assert frame_step(2, fps=50, target_fps=None) == 2.0
    assert eval_clip_indices(16, 8, 2, 1, 0, fps=50, target_fps=None).tolist() == [0, 2, 4, 6, 8, 10, 12, 15]
    assert frame_step(2, fps=50, target_fps=25) == 4.0


def test_train_starts_are_random_and_cover_the_range():
    rng = np.random.default_rng(0)
    starts = {int(train_clip_indices(300, 4, 12, rng, 30, 30)[0]) for _ in range(400)}
    assert min(starts) >= 0 and max(starts) <= 252 and len(starts) > 150


def test_loop_mode_is_the_efficient3dcnns_reference():
    # downsample 2, 16 frames: a 32-frame window, every 2nd frame; a 20-frame video loops from its start
    class IntRng:
        def integers(self, low, high):
            assert (low, high) == (0, 1)  # randint(0, max(0, 20 - 32 - 1)) = 0
            return 0
    assert train_clip_indices(20, 16, 2, IntRng(), pad_mode="loop").tolist() == \
        [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 0, 2, 4, 6, 8, 10]
    # centre of 41 frames: begin = 41 // 2 - 32 // 2 = 4
    assert eval_clip_indices(41, 16, 2, 1, 0, pad_mode="loop").tolist() == list(range(4, 36, 2))
    # the video-level protocol: consecutive 16-frame windows, each looped at downsample 2
    windows = consecutive_clip_indices(40, 16, 2)
    assert windows.tolist()[0] == [0, 2, 4, 6, 8, 10, 12, 14] * 2
    assert windows.tolist()[2] == [32, 34, 36, 38] * 4
