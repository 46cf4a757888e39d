"""Random erasing for clips (SlowFast ``AUG.RE_*``, timm ``RandomErasing``), a registered transform.

It goes after ``Normalize`` (and before ``ToCTHW``): erased pixels get values drawn from N(0, 1),
the distribution of normalised pixels. With probability ``prob`` a clip gets ``count`` boxes
(``count`` uniform in 1..``max_count``); each box keeps trying (up to 10 draws) an area uniform in
[``min_area``, ``max_area``] of the frame divided by ``count`` and an aspect ratio (height / width)
log-uniform in [``min_aspect``, ``max_aspect``] until it fits inside the frame. A box is the same
for every frame of the clip (SlowFast's ``cube=True``); with ``mode: pixel`` every frame gets its
own random values inside it, as SlowFast's ``_erase_cube`` fills frame by frame.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import numpy as np

from ..registry import TRANSFORMS

MODES = ("const", "rand", "pixel")
MAX_TRIES = 10


@TRANSFORMS.register("RandomErasing")
class RandomErasing:
    """Erase random boxes, the same box in every frame (per clip), values by ``mode``: ``pixel``
    (per pixel, channel and frame N(0, 1): SlowFast's ``RE_MODE`` default), ``rand`` (one N(0, 1)
    colour per frame and channel) or ``const`` (0, the normalised mean)."""

    def __init__(self, prob: float = 0.25, mode: str = "pixel", max_count: int = 1, min_area: float = 0.02,
                 max_area: float = 1 / 3, min_aspect: float = 0.3, max_aspect: Optional[float] = None) -> None:
        if not 0.0 <= float(prob) <= 1.0:
            raise ValueError(f"RandomErasing: 'prob' must be in [0, 1], got {prob!r}")
        if mode not in MODES:
            raise ValueError(f"RandomErasing: 'mode' must be one of {', '.join(MODES)}, got {mode!r}")
        if isinstance(max_count, bool) or not isinstance(max_count, (int, np.integer)) or max_count < 1:
            raise ValueError(f"RandomErasing: 'max_count' must be an int >= 1, got {max_count!r}")
        if not 0.0 < float(min_area) <= float(max_area) <= 1.0:
            raise ValueError(f"RandomErasing: need 0 < min_area <= max_area <= 1, got {min_area!r}, {max_area!r}")
        max_aspect = 1.0 / min_aspect if max_aspect is None else max_aspect
        if not 0.0 < float(min_aspect) <= float(max_aspect):
            raise ValueError(f"RandomErasing: need 0 < min_aspect <= max_aspect, got {min_aspect!r}, {max_aspect!r}")
        self.prob, self.mode, self.max_count = float(prob), mode, int(max_count)
        self.min_area, self.max_area = float(min_area), float(max_area)
        self.log_aspect = (math.log(min_aspect), math.log(max_aspect))

    def box(self, height: int, width: int, count: int, rng: np.random.Generator) -> Optional[Tuple[int, int, int, int]]:
        """(top, left, h, w) of one box for a clip of ``count`` boxes, or None after 10 misses."""
        area = height * width
        for _ in range(MAX_TRIES):
            target = rng.uniform(self.min_area, self.max_area) * area / count
            aspect = math.exp(rng.uniform(*self.log_aspect))
            h = int(round(math.sqrt(target * aspect)))
            w = int(round(math.sqrt(target / aspect)))
            if w < width and h < height:
                return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
        return None

    def __call__(self, clip: np.ndarray, *, crop_index: int = 0, rng=None) -> np.ndarray:
        if not isinstance(clip, np.ndarray) or clip.ndim != 4 or clip.shape[-1] != 3:
            raise ValueError(f"RandomErasing: expected a (T, H, W, 3) clip, got {getattr(clip, 'shape', clip)!r}")
        if clip.dtype == np.uint8:
            raise ValueError("RandomErasing: got a uint8 clip; put it after Rescale and Normalize")
        rng = rng if rng is not None else np.random.default_rng()
        if self.prob <= 0.0 or rng.random() >= self.prob:
            return clip
        t, height, width, c = clip.shape
        count = 1 if self.max_count == 1 else int(rng.integers(1, self.max_count + 1))
        out = np.array(clip, copy=True)
        for _ in range(count):
            found = self.box(height, width, count, rng)
            if found is None:
                continue
            top, left, h, w = found
            if self.mode == "pixel":
                values = rng.standard_normal((t, h, w, c))
            elif self.mode == "rand":
                values = rng.standard_normal((t, 1, 1, c))
            else:
                values = 0.0
            out[:, top:top + h, left:left + w] = values
        return out


__all__ = ["RandomErasing", "MODES"]
