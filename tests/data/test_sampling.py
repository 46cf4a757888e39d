"""Temporal sampling against SlowFast's formula, with values worked out by hand.

SlowFast (datasets/decoder.py): clip_size = sampling_rate * num_frames * fps / target_fps,
delta = max(frames - clip_size, 0), start = uniform(0, delta) (train) or delta * i / N (test,
USE_OFFSET_SAMPLING False: one clip starts at 0), or with USE_OFFSET_SAMPLING floor(delta / 2)
(one clip) and i * floor(delta / (N - 1)); indices = floor(linspace(start, start + clip_size - 1,
num_frames)) clamped to the last frame.
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
    # worked example of the docs: XS, 25 fps, 250 frames, clip_size 40, delta 210: the single clip
    # starts at 210 * 0 / 1 = 0, clip 3 of 10 at 210 * 3 / 10 = 63
    assert eval_clip_indices(250, 4, 12, 1, 0, 25, 30).tolist() == [0, 13, 26, 39]
    assert eval_clip_indices(250, 4, 12, 10, 3, 25, 30).tolist() == [63, 76, 89, 102]
    # offset sampling: one clip at floor(210 / 2) = 105, clip 3 of 10 at 3 * floor(210 / 9) = 3 * 23 = 69
    assert eval_clip_indices(250, 4, 12, 1, 0, 25, 30, offset_sampling=True).tolist() == [105, 118, 131, 144]
    assert eval_clip_indices(250, 4, 12, 10, 3, 25, 30, offset_sampling=True).tolist() == [69, 82, 95, 108]


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
    assert eval_clip_indices(frames, t, rate, 1, 0, fps, 30).tolist() == by_formula(0.0, size, t, frames)
    assert eval_clip_indices(frames, t, rate, 1, 0, fps, 30, offset_sampling=True).tolist() == \
        by_formula(math.floor(delta / 2), size, t, frames)
    for n in (2, 3, 10):
        for i in range(n):
            assert eval_clip_indices(frames, t, rate, n, i, fps, 30, offset_sampling=True).tolist() == \
                by_formula(i * math.floor(delta / (n - 1)), size, t, frames), (n, i)
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
    assert eval_clip_indices(300, 4, 12, 1, 0, 30, 30).tolist() == [0, 15, 31, 47]  # one clip: 252 * 0 / 1
    # offset sampling: one clip at floor(252 / 2) = 126; 10 clips at i * floor(252 / 9) = 28 i
    assert eval_clip_indices(300, 4, 12, 1, 0, 30, 30, offset_sampling=True).tolist() == [126, 141, 157, 173]
    starts = [int(eval_clip_indices(300, 4, 12, 10, i, 30, 30, offset_sampling=True)[0]) for i in range(10)]
    assert starts == [0, 28, 56, 84, 112, 140, 168, 196, 224, 252]
    assert eval_clip_indices(300, 4, 12, 10, 9, 30, 30, offset_sampling=True).tolist() == [252, 267, 283, 299]
    # 2 clips of 200 frames (delta 152): default starts 0, 76; offset 0, 152 (the last frame reached)
    assert [int(eval_clip_indices(200, 4, 12, 2, i, 30, 30)[0]) for i in range(2)] == [0, 76]
    assert [int(eval_clip_indices(200, 4, 12, 2, i, 30, 30, offset_sampling=True)[0]) for i in range(2)] == [0, 152]
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
    # centre of 41 frames (TemporalCenterCrop): begin = 41 // 2 - 32 // 2 = 4, whatever offset_sampling
    assert eval_clip_indices(41, 16, 2, 1, 0, pad_mode="loop").tolist() == list(range(4, 36, 2))
    assert eval_clip_indices(41, 16, 2, 1, 0, pad_mode="loop", offset_sampling=True).tolist() == list(range(4, 36, 2))
    # an odd window: 10 frames, 5 x 1: begin = 10 // 2 - 5 // 2 = 3 (floor((10 - 5) / 2) would be 2)
    assert eval_clip_indices(10, 5, 1, 1, 0, pad_mode="loop").tolist() == [3, 4, 5, 6, 7]
    # shorter than the window: begin max(0, 6 // 2 - 16 // 2) = 0, looped
    assert eval_clip_indices(6, 8, 2, 1, 0, pad_mode="loop").tolist() == [0, 2, 4, 0, 2, 4, 0, 2]
    # the video-level protocol: consecutive 16-frame windows, each looped at downsample 2
    windows = consecutive_clip_indices(40, 16, 2)
    assert windows.tolist()[0] == [0, 2, 4, 6, 8, 10, 12, 14] * 2
    assert windows.tolist()[2] == [32, 34, 36, 38] * 4


def test_video_windows_plan_every_window_of_every_video():
    from src.data.sampling import plan_video_windows, window_clip_indices

    # 16 x 2 windows: 18 frames -> starts 0, 16 (2 windows); 40 -> 0, 16, 32; 5 -> 0; 17 -> 0 only
    # (the reference's range(1, n, 16) drops a last window of one frame); unknown (0) -> one window
    video, window = plan_video_windows([18, 40, 5, 17, 0], 16, 2)
    assert video.tolist() == [0, 1, 2, 3, 4, 0, 1, 1] and window.tolist() == [0, 0, 0, 0, 0, 1, 1, 2]
    # window 1 of 18 frames holds frames 16, 17; looped to 32 and every 2nd kept: 16 + (2 k mod 2) = 16
    assert window_clip_indices(18, 1, 16, 2).tolist() == [16] * 16
    assert window_clip_indices(40, 2, 16, 2).tolist() == [32, 34, 36, 38] * 4  # frames 32..39, looped
    # a window past the video read later (count changed): the last window
    assert window_clip_indices(18, 5, 16, 2).tolist() == window_clip_indices(18, 1, 16, 2).tolist()
    # per-video frame rates with target_fps: step = 2 * 60 / 30 = 4 at 60 fps, 2 at 30 fps
    video, window = plan_video_windows([40, 40], 4, 2, fps=[30.0, 60.0], target_fps=30)
    assert video.tolist() == [0, 1] * 10 and window.tolist() == [w for w in range(10) for _ in range(2)]
    assert window_clip_indices(40, 1, 4, 2, 60.0, 30).tolist() == [4, 4, 4, 4]  # 4 + (0, 4, 8, 12) mod 4
