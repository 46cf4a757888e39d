"""Random erasing of clips (src/data/erasing.py): box bounds, one box for every frame, probability."""
import math

import numpy as np
import pytest

from src.data.erasing import RandomErasing
from src.data.transforms import build_transforms


def test_boxes_respect_the_area_and_aspect_bounds():
    op = RandomErasing(prob=1.0)  # SlowFast's bounds: area 0.02..1/3, aspect 0.3..1/0.3 (log-uniform)
    rng = np.random.default_rng(0)
    height, width = 90, 120
    area = height * width
    log_aspects = []
    for _ in range(3000):
        top, left, h, w = op.box(height, width, 1, rng)
        assert 0 <= top and top + h <= height and 0 <= left and left + w <= width
        # h and w are rounded from sqrt(area * aspect) and sqrt(area / aspect): allow half a pixel
        assert (h - 0.5) * (w - 0.5) <= area / 3 and (h + 0.5) * (w + 0.5) >= 0.02 * area
        assert (h - 0.5) / (w + 0.5) <= 1 / 0.3 and (h + 0.5) / (w - 0.5) >= 0.3
        log_aspects.append(math.log(h / w))
    # log-uniform aspect: symmetric around 0 (h / w and w / h equally likely)
    assert abs(np.mean(log_aspects)) < 0.05
    assert max(log_aspects) > 0.9 and min(log_aspects) < -0.9  # reaches near log(1/0.3) = 1.20


def test_every_frame_shares_the_box_and_pixel_mode_draws_per_frame():
    op = RandomErasing(prob=1.0, mode="pixel")
    clip = np.full((6, 40, 48, 3), 7.0, np.float32)  # no N(0, 1) draw lands exactly on 7
    rng = np.random.default_rng(1)
    for _ in range(50):
        out = op(clip, rng=rng)
        changed = out != 7.0
        assert changed.any()
        mask = changed[0, :, :, 0]
        assert np.all(changed == mask[None, :, :, None])  # same box in every frame and channel
        rows, cols = np.nonzero(mask.any(1))[0], np.nonzero(mask.any(0))[0]
        assert mask.sum() == len(rows) * len(cols) == (rows[-1] - rows[0] + 1) * (cols[-1] - cols[0] + 1)
        inside = out[:, mask]  # (T, pixels, 3)
        assert not np.allclose(inside[0], inside[1])  # new values in each frame
    assert clip.max() == clip.min() == 7.0  # the input is not modified


def test_prob_count_and_modes():
    rng = np.random.default_rng(2)
    clip = np.full((2, 32, 32, 3), 5.0, np.float32)
    op = RandomErasing(prob=0.25)
    hits = sum(bool((op(clip, rng=rng) != 5.0).any()) for _ in range(2000))
    assert hits / 2000 == pytest.approx(0.25, abs=0.03)
    assert RandomErasing(prob=0.0)(clip, rng=rng) is clip
    const = RandomErasing(prob=1.0, mode="const")(clip, rng=rng)
    assert set(np.unique(const)) == {0.0, 5.0}
    rand = RandomErasing(prob=1.0, mode="rand")(clip, rng=rng)
    box = rand[0] != 5.0
    assert len(np.unique(rand[0][box])) == 3  # one colour (3 channels) per frame
    # max_count 3: one to three boxes, each of an area drawn from the bounds divided by the count
    several = RandomErasing(prob=1.0, max_count=3)
    for count in (2, 3):
        for _ in range(300):
            _, _, h, w = several.box(64, 64, count, rng)
            assert (h - 0.5) * (w - 0.5) <= 64 * 64 / 3 / count and (h + 0.5) * (w + 0.5) >= 0.02 * 64 * 64 / count


def test_registered_transform_after_normalize_and_bad_values():
    ops = [{"type": "Rescale"}, {"type": "Normalize", "mean": [0.5] * 3, "std": [0.25] * 3},
           {"type": "RandomErasing", "prob": 1.0}, {"type": "ToCTHW"}]
    compose = build_transforms(ops)
    out = compose(np.full((4, 16, 16, 3), 128, np.uint8), rng=np.random.default_rng(0))
    assert out.shape == (3, 4, 16, 16) and out.dtype == np.float32
    assert (out != out[0, 0, 0, 0]).any()
    with pytest.raises(ValueError, match="uint8"):
        RandomErasing(prob=1.0)(np.zeros((2, 8, 8, 3), np.uint8), rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="mode"):
        RandomErasing(mode="noise")
    with pytest.raises(ValueError, match="max_area"):
        RandomErasing(min_area=0.5, max_area=0.2)
