"""RandAugment and AugMix for video clips: one draw of operations and magnitudes per clip,
applied to every frame (registered as the transforms ``RandAugment``, ``AugMix`` and
``AutoAugment``).

Policies are timm-style strings, as mindcv's ``--auto_augment`` and SlowFast's ``AUG.AA_TYPE`` take
them: ``rand-m9-n2-mstd0.5-inc1`` (RandAugment: magnitude 9 of 10, 2 ops, magnitude noise std 0.5,
the "increasing" op set) and ``augmix-m5-w3-d2`` (AugMix: magnitude 5, 3 chains of depth 2).
The op list, the magnitude -> argument rules and the per-op probability follow timm's
``auto_augment.py`` (also what SlowFast's ``datasets/rand_augment.py`` uses); the code is our own.
Photometric ops are numpy definitions of PIL's ``ImageOps`` / ``ImageEnhance`` (the same uint8
values, ``tests/data/test_auto_augment.py``), run on the whole clip at once; geometric ops call PIL
per frame with the clip's one angle / shear / shift. Statistics-based ops (AutoContrast, Equalize, Contrast) use each
frame's own histogram or mean, as SlowFast (per PIL image) and pytorchvideo (per frame) do.

Clips are uint8 (T, H, W, 3) RGB, so these transforms go before ``Rescale`` / ``Normalize``.
"""
from __future__ import annotations

import math
import re
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from ..registry import TRANSFORMS
from .errors import DataError

LEVEL_DENOM = 10.0  # magnitudes run over [0, 10] (timm's _LEVEL_DENOM)

# timm's RandAugment op set, and its "increasing" variant (inc1: larger magnitude = stronger op)
RAND_OPS = ("AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize", "SolarizeAdd",
            "Color", "Contrast", "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel")
RAND_INCREASING_OPS = ("AutoContrast", "Equalize", "Invert", "Rotate", "PosterizeIncreasing",
                       "SolarizeIncreasing", "SolarizeAdd", "ColorIncreasing", "ContrastIncreasing",
                       "BrightnessIncreasing", "SharpnessIncreasing", "ShearX", "ShearY", "TranslateXRel",
                       "TranslateYRel")
AUGMIX_OPS = ("AutoContrast", "ColorIncreasing", "ContrastIncreasing", "BrightnessIncreasing",
              "SharpnessIncreasing", "Equalize", "Rotate", "PosterizeIncreasing", "SolarizeIncreasing",
              "ShearX", "ShearY", "TranslateXRel", "TranslateYRel")
INTERPOLATIONS = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}

Plan = List[Tuple[str, Any]]  # (op name, its argument or None), in the order applied


# ----------------------------------------------------------------------------- photometric ops
def _blend(degenerate: np.ndarray, clip: np.ndarray, factor: float) -> np.ndarray:
    """PIL's ``Image.blend(degenerate, image, factor)`` (what ImageEnhance does): ``d + f (x - d)``
    in float32, clipped to [0, 255], truncated to uint8."""
    d = degenerate.astype(np.float32)
    out = d + np.float32(factor) * (clip.astype(np.float32) - d)
    return np.clip(out, 0.0, 255.0).astype(np.uint8)


def _luma(clip: np.ndarray) -> np.ndarray:
    """PIL's RGB -> L conversion (ITU-R 601-2 in 16-bit fixed point, rounded)."""
    c = clip.astype(np.uint32)
    return ((c[..., 0] * 19595 + c[..., 1] * 38470 + c[..., 2] * 7471 + 0x8000) >> 16).astype(np.uint8)


def auto_contrast(clip: np.ndarray) -> np.ndarray:
    """Per frame and channel, stretch [min, max] to [0, 255] (``ImageOps.autocontrast``, cutoff 0):
    ``int(x * 255 / (hi - lo) - lo * 255 / (hi - lo))``; a flat channel is left alone."""
    out = np.empty_like(clip)
    values = np.arange(256, dtype=np.float64)
    lo, hi = clip.min(axis=(1, 2)), clip.max(axis=(1, 2))  # (T, 3)
    for t in range(clip.shape[0]):
        for c in range(3):
            if hi[t, c] <= lo[t, c]:
                out[t, :, :, c] = clip[t, :, :, c]
                continue
            scale = 255.0 / (float(hi[t, c]) - float(lo[t, c]))
            lut = np.clip(np.trunc(values * scale + (-float(lo[t, c]) * scale)), 0, 255).astype(np.uint8)
            out[t, :, :, c] = lut[clip[t, :, :, c]]
    return out


def equalize(clip: np.ndarray) -> np.ndarray:
    """Per frame and channel histogram equalisation (``ImageOps.equalize``): with ``step`` = (pixels
    - count of the highest occurring value) // 255, value ``i`` maps to (step // 2 + pixels below
    i) // step; a channel with one value (or step 0) is left alone."""
    out = np.empty_like(clip)
    for t in range(clip.shape[0]):
        for c in range(3):
            ch = clip[t, :, :, c]
            hist = np.bincount(ch.ravel(), minlength=256).astype(np.int64)
            used = hist[hist > 0]
            step = (int(used.sum()) - int(used[-1])) // 255 if used.size > 1 else 0
            if step == 0:
                out[t, :, :, c] = ch
                continue
            below = np.concatenate(([0], np.cumsum(hist)[:-1]))
            lut = np.minimum((step // 2 + below) // step, 255).astype(np.uint8)
            out[t, :, :, c] = lut[ch]
    return out


def invert(clip: np.ndarray) -> np.ndarray:
    return 255 - clip


def posterize(clip: np.ndarray, bits: int) -> np.ndarray:
    """Keep the ``bits`` most significant bits of every value (0 bits: black)."""
    if bits >= 8:
        return clip
    return clip & np.uint8((0xFF << (8 - max(0, bits))) & 0xFF)


def solarize(clip: np.ndarray, threshold: int) -> np.ndarray:
    """Invert every value >= ``threshold`` (256: nothing)."""
    return np.where(clip < threshold, clip, 255 - clip).astype(np.uint8)


def solarize_add(clip: np.ndarray, add: int, threshold: int = 128) -> np.ndarray:
    """Add ``add`` (saturating at 255) to every value below ``threshold``."""
    raised = np.minimum(clip.astype(np.int32) + add, 255).astype(np.uint8)
    return np.where(clip < threshold, raised, clip)


def color(clip: np.ndarray, factor: float) -> np.ndarray:
    """Saturation (``ImageEnhance.Color``): blend from the frame's grey version."""
    grey = _luma(clip)[..., None]
    return _blend(np.broadcast_to(grey, clip.shape), clip, factor)


def contrast(clip: np.ndarray, factor: float) -> np.ndarray:
    """``ImageEnhance.Contrast``: blend from a flat frame at the rounded mean of its grey version."""
    grey = _luma(clip).astype(np.int64)
    n = grey.shape[1] * grey.shape[2]
    mean = np.floor(grey.sum(axis=(1, 2)) / n + 0.5).astype(np.uint8)
    return _blend(np.broadcast_to(mean[:, None, None, None], clip.shape), clip, factor)


def brightness(clip: np.ndarray, factor: float) -> np.ndarray:
    """``ImageEnhance.Brightness``: blend from black."""
    return _blend(np.zeros_like(clip), clip, factor)


def smooth(clip: np.ndarray) -> np.ndarray:
    """PIL's ``ImageFilter.SMOOTH`` per frame: 3x3 kernel [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13,
    rounded; the one-pixel border is kept as it is."""
    out = clip.copy()
    if clip.shape[1] < 3 or clip.shape[2] < 3:
        return out
    x = clip.astype(np.float32)
    acc = 4.0 * x[:, 1:-1, 1:-1]
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            acc = acc + x[:, dy:dy + clip.shape[1] - 2, dx:dx + clip.shape[2] - 2]
    out[:, 1:-1, 1:-1] = np.clip(np.floor(acc / 13.0 + 0.5), 0, 255).astype(np.uint8)
    return out


def sharpness(clip: np.ndarray, factor: float) -> np.ndarray:
    """``ImageEnhance.Sharpness``: blend from the smoothed frame."""
    return _blend(smooth(clip), clip, factor)


# ----------------------------------------------------------------------------- geometric ops (PIL per frame)
def _per_frame(clip: np.ndarray, fn: Callable[[Image.Image], Image.Image]) -> np.ndarray:
    return np.stack([np.asarray(fn(Image.fromarray(np.ascontiguousarray(f)))) for f in clip])


def _affine(clip: np.ndarray, matrix: Tuple[float, ...], fill: Tuple[int, ...], resample: int) -> np.ndarray:
    """PIL affine transform of every frame (``matrix`` maps output to input coordinates)."""
    return _per_frame(clip, lambda im: im.transform(im.size, Image.AFFINE, matrix, resample=resample,
                                                    fillcolor=fill))


# ----------------------------------------------------------------------------- ops and their levels
def _signed(value: float, rng: np.random.Generator) -> float:
    """``value`` negated with probability 1/2 (one draw: negative when u > 0.5, as timm)."""
    return -value if rng.random() > 0.5 else value


def _enhance_level(m: float, rng: np.random.Generator) -> float:
    return m / LEVEL_DENOM * 1.8 + 0.1


def _enhance_increasing_level(m: float, rng: np.random.Generator) -> float:
    return max(0.1, 1.0 + _signed(m / LEVEL_DENOM * 0.9, rng))


# name -> (level(m, rng, hp) -> argument, or None for ops without one)
LEVELS: Dict[str, Optional[Callable[..., Any]]] = {
    "AutoContrast": None, "Equalize": None, "Invert": None,
    "Rotate": lambda m, rng, hp: _signed(m / LEVEL_DENOM * 30.0, rng),
    "Posterize": lambda m, rng, hp: int(m / LEVEL_DENOM * 4),
    "PosterizeIncreasing": lambda m, rng, hp: 4 - int(m / LEVEL_DENOM * 4),
    "Solarize": lambda m, rng, hp: int(m / LEVEL_DENOM * 256),
    "SolarizeIncreasing": lambda m, rng, hp: 256 - int(m / LEVEL_DENOM * 256),
    "SolarizeAdd": lambda m, rng, hp: int(m / LEVEL_DENOM * 110),
    **{name: (lambda m, rng, hp: _enhance_level(m, rng)) for name in ("Color", "Contrast", "Brightness", "Sharpness")},
    **{f"{name}Increasing": (lambda m, rng, hp: _enhance_increasing_level(m, rng))
       for name in ("Color", "Contrast", "Brightness", "Sharpness")},
    "ShearX": lambda m, rng, hp: _signed(m / LEVEL_DENOM * 0.3, rng),
    "ShearY": lambda m, rng, hp: _signed(m / LEVEL_DENOM * 0.3, rng),
    "TranslateXRel": lambda m, rng, hp: _signed(m / LEVEL_DENOM * hp["translate_pct"], rng),
    "TranslateYRel": lambda m, rng, hp: _signed(m / LEVEL_DENOM * hp["translate_pct"], rng),
}


def apply_op(clip: np.ndarray, name: str, arg: Any, *, fill: Tuple[int, int, int] = (128, 128, 128),
             interpolation: str = "bicubic") -> np.ndarray:
    """Apply op ``name`` with argument ``arg`` (as drawn) to every frame of a uint8 clip."""
    base = name[:-len("Increasing")] if name.endswith("Increasing") else name
    resample = INTERPOLATIONS[interpolation]
    if base == "AutoContrast":
        return auto_contrast(clip)
    if base == "Equalize":
        return equalize(clip)
    if base == "Invert":
        return invert(clip)
    if base == "Posterize":
        return posterize(clip, arg)
    if base == "Solarize":
        return solarize(clip, arg)
    if base == "SolarizeAdd":
        return solarize_add(clip, arg)
    if base in ("Color", "Contrast", "Brightness", "Sharpness"):
        return {"Color": color, "Contrast": contrast, "Brightness": brightness, "Sharpness": sharpness}[base](clip, arg)
    if base == "Rotate":
        return _per_frame(clip, lambda im: im.rotate(arg, resample=resample, fillcolor=fill))
    if base == "ShearX":
        return _affine(clip, (1, arg, 0, 0, 1, 0), fill, resample)
    if base == "ShearY":
        return _affine(clip, (1, 0, 0, arg, 1, 0), fill, resample)
    if base == "TranslateXRel":
        return _affine(clip, (1, 0, arg * clip.shape[2], 0, 1, 0), fill, resample)
    if base == "TranslateYRel":
        return _affine(clip, (1, 0, 0, 0, 1, arg * clip.shape[1]), fill, resample)
    raise ValueError(f"unknown augmentation op {name!r}")


# ----------------------------------------------------------------------------- policy strings
def parse_policy(policy: str, kind: str) -> Dict[str, float]:
    """``rand-m9-n2-mstd0.5-inc1`` / ``augmix-m5-w3-d2`` -> {key: value}; one-line DataError for a
    wrong prefix, an unknown key or a value that is not a number."""
    known = {"rand": ("m", "n", "mstd", "mmax", "inc", "p"), "augmix": ("m", "w", "d", "a", "mstd", "mmax")}[kind]
    parts = str(policy).split("-")
    if parts[0] != kind:
        raise DataError(f"{'RandAugment' if kind == 'rand' else 'AugMix'}: policy must start with '{kind}-', "
                        f"got {policy!r}")
    out: Dict[str, float] = {}
    for part in parts[1:]:
        match = re.fullmatch(r"([a-z]+)(\d+(?:\.\d*)?)", part)
        if not match or match.group(1) not in known:
            raise DataError(f"policy {policy!r}: cannot read {part!r} (expected one of "
                            f"{', '.join(k + '<number>' for k in known)})")
        out[match.group(1)] = float(match.group(2))
    return out


class _Augmenter:
    """What RandAugment and AugMix share: hyper-parameters and the per-op magnitude draw."""

    name = ""

    def __init__(self, fill: Sequence[int], interpolation: str, translate_pct: float) -> None:
        fill = tuple(int(v) for v in fill)
        if len(fill) != 3 or any(not 0 <= v <= 255 for v in fill):
            raise DataError(f"{self.name}: 'fill' must be 3 values in [0, 255], got {fill!r}")
        if interpolation not in INTERPOLATIONS:
            raise DataError(f"{self.name}: 'interpolation' must be one of {', '.join(INTERPOLATIONS)}, "
                            f"got {interpolation!r}")
        if not 0.0 <= float(translate_pct) <= 1.0:
            raise DataError(f"{self.name}: 'translate_pct' must be in [0, 1], got {translate_pct!r}")
        self.fill, self.interpolation = fill, interpolation
        self.hparams = {"translate_pct": float(translate_pct)}

    def draw_op(self, name: str, rng: np.random.Generator) -> Tuple[str, Any]:
        """The op's magnitude (``magnitude_std``: inf = uniform in [0, m], > 0 = normal around m;
        clipped to [0, magnitude_max]) and then its argument."""
        m = self.magnitude
        if self.magnitude_std == math.inf:
            m = float(rng.uniform(0.0, m))
        elif self.magnitude_std > 0:
            m = float(rng.normal(m, self.magnitude_std))
        m = max(0.0, min(m, self.magnitude_max))
        level = LEVELS[name]
        return name, (None if level is None else level(m, rng, self.hparams))

    def run(self, clip: np.ndarray, plan: Plan) -> np.ndarray:
        for name, arg in plan:
            clip = apply_op(clip, name, arg, fill=self.fill, interpolation=self.interpolation)
        return clip

    def _check(self, clip: np.ndarray) -> None:
        if not isinstance(clip, np.ndarray) or clip.ndim != 4 or clip.shape[-1] != 3 or clip.dtype != np.uint8:
            shape = getattr(clip, "shape", type(clip).__name__)
            raise ValueError(f"{self.name}: expected a uint8 (T, H, W, 3) clip (put it before Rescale), "
                             f"got {shape} {getattr(clip, 'dtype', '')}")


def _std(value: float) -> float:
    return math.inf if value > 100 else float(value)  # timm: mstd above 100 means uniform sampling


@TRANSFORMS.register("RandAugment")
class RandAugment(_Augmenter):
    """RandAugment (Cubuk et al. 2020) for video: per clip, ``n`` ops drawn uniformly with replacement
    from the 15-op list; each applied with probability ``p`` (default 0.5) at magnitude ``m``
    (+ normal noise of std ``mstd``), the same op and argument for every frame."""

    name = "RandAugment"

    def __init__(self, policy: str = "rand-m9-n2-mstd0.5-inc1", fill: Sequence[int] = (128, 128, 128),
                 interpolation: str = "bicubic", translate_pct: float = 0.45) -> None:
        super().__init__(fill, interpolation, translate_pct)
        keys = parse_policy(policy, "rand")
        self.policy = policy
        self.magnitude = keys.get("m", LEVEL_DENOM)
        self.num_layers = int(keys.get("n", 2))
        self.magnitude_std = _std(keys.get("mstd", 0.0))
        self.magnitude_max = keys.get("mmax", LEVEL_DENOM)
        self.prob = keys.get("p", 0.5)
        self.ops = RAND_INCREASING_OPS if keys.get("inc", 0) else RAND_OPS
        if self.num_layers < 0 or not 0.0 <= self.prob <= 1.0:
            raise DataError(f"RandAugment: policy {policy!r}: need n >= 0 and p in [0, 1]")

    def draw(self, rng: np.random.Generator) -> Plan:
        """The clip's plan. Draw order: the ``n`` op indices (``rng.integers(0, len(ops), n)``), then
        per op: one ``rng.random()`` skips it when above ``p`` (only if p < 1), its magnitude, its
        sign (signed ops)."""
        idx = rng.integers(0, len(self.ops), size=self.num_layers)
        plan: Plan = []
        for i in idx:
            if self.prob < 1.0 and rng.random() > self.prob:
                continue
            plan.append(self.draw_op(self.ops[int(i)], rng))
        return plan

    def __call__(self, clip: np.ndarray, *, crop_index: int = 0, rng=None) -> np.ndarray:
        self._check(clip)
        rng = rng if rng is not None else np.random.default_rng()
        return self.run(clip, self.draw(rng))


@TRANSFORMS.register("AugMix")
class AugMix(_Augmenter):
    """AugMix (Hendrycks et al. 2020) for video: ``w`` chains of ``d`` ops (d absent or -1: 1 to 3 per
    chain) from the 13-op AugMix list, mixing weights ~ Dirichlet(a, ..., a), skip weight
    m ~ Beta(a, a); ``out = round(m x + (1 - m) sum_i w_i chain_i(x))`` with the mixture clipped to
    [0, 255]. Magnitudes are uniform in [0, m] unless ``mstd`` says otherwise."""

    name = "AugMix"

    def __init__(self, policy: str = "augmix-m3-w3", fill: Sequence[int] = (128, 128, 128),
                 interpolation: str = "bicubic", translate_pct: float = 0.45) -> None:
        super().__init__(fill, interpolation, translate_pct)
        keys = parse_policy(policy, "augmix")
        self.policy = policy
        self.magnitude = keys.get("m", 3.0)
        self.width = int(keys.get("w", 3))
        self.depth = int(keys.get("d", -1))
        self.alpha = keys.get("a", 1.0)
        self.magnitude_std = _std(keys.get("mstd", math.inf))
        self.magnitude_max = keys.get("mmax", LEVEL_DENOM)
        self.ops = AUGMIX_OPS
        if self.width < 1 or self.alpha <= 0:
            raise DataError(f"AugMix: policy {policy!r}: need w >= 1 and a > 0")

    def draw(self, rng: np.random.Generator) -> Tuple[np.ndarray, float, List[Plan]]:
        """(mixing weights, skip weight m, one plan per chain). Draw order: ``rng.dirichlet``,
        ``rng.beta``, then per chain its depth (``rng.integers(1, 4)`` when not fixed), its op
        indices (``rng.integers(0, len(ops), depth)``) and per op its magnitude and sign."""
        weights = rng.dirichlet([self.alpha] * self.width)
        m = float(rng.beta(self.alpha, self.alpha))
        chains = []
        for _ in range(self.width):
            depth = self.depth if self.depth > 0 else int(rng.integers(1, 4))
            idx = rng.integers(0, len(self.ops), size=depth)
            chains.append([self.draw_op(self.ops[int(i)], rng) for i in idx])
        return weights, m, chains

    def mix(self, clip: np.ndarray, weights: np.ndarray, m: float, chains: List[Plan]) -> np.ndarray:
        mixed = np.zeros(clip.shape, np.float64)
        for w, plan in zip(weights, chains):
            mixed += w * self.run(clip, plan)
        mixed = np.clip(mixed, 0.0, 255.0)
        return np.clip(np.rint(m * clip + (1.0 - m) * mixed), 0, 255).astype(np.uint8)

    def __call__(self, clip: np.ndarray, *, crop_index: int = 0, rng=None) -> np.ndarray:
        self._check(clip)
        rng = rng if rng is not None else np.random.default_rng()
        return self.mix(clip, *self.draw(rng))


@TRANSFORMS.register("AutoAugment")
def auto_augment(policy: str, fill: Sequence[int] = (128, 128, 128), interpolation: str = "bicubic",
                 translate_pct: float = 0.45) -> _Augmenter:
    """mindcv's ``--auto_augment`` / SlowFast's ``AUG.AA_TYPE``: a ``rand-...`` string builds
    :class:`RandAugment`, an ``augmix-...`` string :class:`AugMix` (timm's fixed AutoAugment
    policies, ``original`` / ``v0``, are not implemented)."""
    kind = str(policy).split("-")[0]
    if kind == "rand":
        return RandAugment(policy, fill, interpolation, translate_pct)
    if kind == "augmix":
        return AugMix(policy, fill, interpolation, translate_pct)
    raise DataError(f"AutoAugment: policy must start with 'rand-' or 'augmix-' (timm's fixed AutoAugment "
                    f"policies are not implemented), got {policy!r}")


__all__ = ["RandAugment", "AugMix", "auto_augment", "apply_op", "parse_policy", "RAND_OPS", "RAND_INCREASING_OPS",
           "AUGMIX_OPS", "LEVELS", "auto_contrast", "equalize", "invert", "posterize", "solarize", "solarize_add",
           "color", "contrast", "brightness", "sharpness", "smooth"]
