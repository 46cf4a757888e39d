"""Clip transforms, registered in ``TRANSFORMS`` and built from ``map.operations``.

A clip is a numpy array (T, H, W, 3), uint8 until ``Rescale`` (float32 in [0, 1]) and
``Normalize``; ``ToCTHW`` reorders it to (3, T, H, W) and comes last. Every transform is called as
``op(clip, crop_index=..., rng=...)``: random ones draw from ``rng`` (a numpy Generator), and
``SpatialCrops`` takes crop number ``crop_index`` of its ``num_crops``. The same spatial choice
is applied to every frame of the clip. Frames smaller than a crop are upscaled, never padded.
"""
from __future__ import annotations

from typing import Any, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from ..registry import TRANSFORMS, build_from_cfg


def _check_clip(clip: np.ndarray, name: str) -> None:
    if not isinstance(clip, np.ndarray) or clip.ndim != 4 or clip.shape[-1] != 3:
        shape = getattr(clip, "shape", type(clip).__name__)
        raise ValueError(f"{name}: expected a (T, H, W, 3) clip, got {shape}")


def _positive_int(value: Any, name: str, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name}: '{key}' must be a positive integer, got {value!r}")
    return int(value)


def resize_clip(clip: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of every frame to (height, width); float clips keep their dtype."""
    t, h, w, _ = clip.shape
    if (h, w) == (height, width):
        return clip
    if clip.dtype == np.uint8:
        out = np.empty((t, height, width, 3), np.uint8)
        for i in range(t):
            out[i] = np.asarray(Image.fromarray(clip[i]).resize((width, height), Image.BILINEAR))
        return out
    out = np.empty((t, height, width, 3), np.float32)
    for i in range(t):
        for c in range(3):
            img = Image.fromarray(np.ascontiguousarray(clip[i, :, :, c], np.float32), mode="F")
            out[i, :, :, c] = np.asarray(img.resize((width, height), Image.BILINEAR))
    return out.astype(clip.dtype, copy=False)


def short_side_size(height: int, width: int, size: int) -> Tuple[int, int]:
    """``(height, width)`` with the short side ``size`` and the aspect ratio kept (long side
    rounded): the one short-side rule of training, evaluation, inference, streams, previews and
    frame extraction."""
    if height <= width:
        return int(size), max(1, int(round(width * size / height)))
    return max(1, int(round(height * size / width))), int(size)


def scale_short_side(clip: np.ndarray, size: int) -> np.ndarray:
    """Resize a (T, H, W, 3) clip so the short side is ``size``, keeping the aspect ratio."""
    return resize_clip(clip, *short_side_size(clip.shape[1], clip.shape[2], size))


def _at_least(clip: np.ndarray, size: int) -> np.ndarray:
    """Upscale (keeping aspect) so both sides are >= ``size``."""
    return scale_short_side(clip, size) if min(clip.shape[1:3]) < size else clip


@TRANSFORMS.register("ShortSideScale")
class ShortSideScale:
    """Resize every frame so its short side is ``size`` (test-time scale)."""

    def __init__(self, size: int) -> None:
        self.size = _positive_int(size, "ShortSideScale", "size")

    def __call__(self, clip: np.ndarray, *, crop_index: int = 0, rng=None) -> np.ndarray:
        _check_clip(clip, "ShortSideScale")
        return scale_short_side(clip, self.size)


@TRANSFORMS.register("RandomShortSideScale")
class RandomShortSideScale:
    """Scale jitter: short side drawn uniformly from the integers ``[min_size, max_size]``."""

    def __init__(self, min_size: int, max_size: int) -> None:
        self.min_size = _positive_int(min_size, "RandomShortSideScale", "min_size")
        self.max_size = _positive_int(max_size, "RandomShortSideScale", "max_size")
        if self.max_size < self.min_size:
            raise ValueError(f"RandomShortSideScale: max_size {max_size} < min_size {min_size}")

    def __call__(self, clip: np.ndarray, *, crop_index: int = 0, rng=None) -> np.ndarray:
        _check_clip(clip, "RandomShortSideScale")
        rng = rng if rng is not None else np.random.default_rng()
        return scale_short_side(clip, int(rng.integers(self.min_size, self.max_size + 1)))


@TRANSFORMS.register("RandomCrop")
class RandomCrop:
    """A ``size`` x ``size`` crop at a random position (same for all frames)."""

    def __init__(self, size: int) -> None:
        self.size = _positive_int(size, "RandomCrop", "size")

    def __call__(self, clip: np.ndarray, *, crop_index: int = 0, rng=None) -> np.ndarray:
        _check_clip(clip, "RandomCrop")
        rng = rng if rng is not None else np.random.default_rng()
        clip = _at_least(clip, self.size)
        h, w = clip.shape[1:3]
        y = int(rng.integers(0, h - self.size + 1))
        x = int(rng.integers(0, w - self.size + 1))
        return clip[:, y:y + self.size, x:x + self.size]


def spatial_crop_offsets(height: int, width: int, size: int, num_crops: int,
                         crop_index: int) -> tuple:
    """(y, x) of crop ``crop_index``: 1 crop = centre; 3 crops = start/centre/end of the long side
    (left/centre/right for landscape, top/centre/bottom for portrait), centred on the short side."""
    if num_crops not in (1, 3):
        raise ValueError(f"SpatialCrops: num_crops must be 1 or 3, got {num_crops}")
    cy, cx = (height - size) // 2, (width - size) // 2
    if num_crops == 1:
        return cy, cx
    k = crop_index % 3
    if height > width:
        return (0, cy, height - size)[k], cx
    return cy, (0, cx, width - size)[k]


@TRANSFORMS.register("SpatialCrops")
class SpatialCrops:
    """Test-time crops: ``num_crops`` = 1 (centre) or 3 (along the long side); the sample's
    ``crop_index`` chooses which one this call returns."""

    def __init__(self, size: int, num_crops: int = 1) -> None:
        self.size = _positive_int(size, "SpatialCrops", "size")
        if num_crops not in (1, 3):
            raise ValueError(f"SpatialCrops: 'num_crops' must be 1 or 3, got {num_crops!r}")
        self.num_crops = int(num_crops)

    def __call__(self, clip: np.ndarray, *, crop_index: int = 0, rng=None) -> np.ndarray:
        _check_clip(clip, "SpatialCrops")
        clip = _at_least(clip, self.size)
        y, x = spatial_crop_offsets(clip.shape[1], clip.shape[2], self.size, self.num_crops, crop_index)
        return clip[:, y:y + self.size, x:x + self.size]


@TRANSFORMS.register("CenterCrop")
class CenterCrop(SpatialCrops):
    """The centre ``size`` x ``size`` crop (SpatialCrops with one crop)."""

    def __init__(self, size: int) -> None:
        super().__init__(size, 1)


@TRANSFORMS.register("RandomHorizontalFlip")
class RandomHorizontalFlip:
    """Mirror the clip left-right with probability ``prob`` (0 turns it off: for data sets whose
    classes differ by left/right motion)."""

    def __init__(self, prob: float = 0.5) -> None:
        if not 0.0 <= float(prob) <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: 'prob' must be in [0, 1], got {prob!r}")
        self.prob = float(prob)

    def __call__(self, clip: np.ndarray, *, crop_index: int = 0, rng=None) -> np.ndarray:
        _check_clip(clip, "RandomHorizontalFlip")
        if self.prob <= 0.0:
            return clip
        rng = rng if rng is not None else np.random.default_rng()
        return clip[:, :, ::-1] if rng.random() < self.prob else clip


@TRANSFORMS.register("Rescale")
class Rescale:
    """uint8 [0, 255] -> float32 [0, ``value_range``]: 1.0 (X3D) or 255.0 (raw pixel values, the
    Efficient-3DCNNs weights); null in a config = the model record's."""

    def __init__(self, value_range: float = 1.0) -> None:
        if not isinstance(value_range, (int, float)) or isinstance(value_range, bool) or value_range <= 0:
            raise ValueError(f"Rescale: 'value_range' must be > 0, got {value_range!r}")
        self.value_range = float(value_range)

    def __call__(self, clip: np.ndarray, *, crop_index: int = 0, rng=None) -> np.ndarray:
        _check_clip(clip, "Rescale")
        if self.value_range == 255.0:
            return clip.astype(np.float32)
        return clip.astype(np.float32) * np.float32(self.value_range / 255.0)


@TRANSFORMS.register("ChannelOrder")
class ChannelOrder:
    """``RGB`` (as decoded: a no-op) or ``BGR`` (reversed channels, as OpenCV-decoded training
    frames of the Efficient-3DCNNs Kinetics weights); null in a config = the model record's."""

    def __init__(self, order: str = "RGB") -> None:
        if order not in ("RGB", "BGR"):
            raise ValueError(f"ChannelOrder: 'order' must be 'RGB' or 'BGR', got {order!r}")
        self.order = order

    def __call__(self, clip: np.ndarray, *, crop_index: int = 0, rng=None) -> np.ndarray:
        _check_clip(clip, "ChannelOrder")
        return np.ascontiguousarray(clip[..., ::-1]) if self.order == "BGR" else clip


MULTI_SCALES = (1.0, 2 ** -0.25, 2 ** -0.5, 2 ** -0.75, 0.5)  # the reference's 5 scales, step 2^(-1/4)


def _check_scales(scales: Sequence[float], name: str) -> List[float]:
    out = [float(s) for s in scales]
    if not out or any(not 0 < s <= 1 for s in out):
        raise ValueError(f"{name}: 'scales' must be in (0, 1], got {scales!r}")
    return out


@TRANSFORMS.register("MultiScaleCornerCrop")
class MultiScaleCornerCrop:
    """The Efficient-3DCNNs ``corner`` train crop (their ``opts.py`` default): per clip, a scale from
    ``scales`` and a position from ``positions`` (c, tl, tr, bl, br) are drawn uniformly; the
    square of side ``int(short_side * scale)`` at that position is cut and resized (bilinear) to
    ``size``."""

    SCALES = MULTI_SCALES

    def __init__(self, size: int, scales: Sequence[float] = MULTI_SCALES,
                 positions: Sequence[str] = ("c", "tl", "tr", "bl", "br")) -> None:
        self.size = _positive_int(size, "MultiScaleCornerCrop", "size")
        self.scales = _check_scales(scales, "MultiScaleCornerCrop")
        bad = [p for p in positions if p not in ("c", "tl", "tr", "bl", "br")]
        if bad or not positions:
            raise ValueError(f"MultiScaleCornerCrop: 'positions' must be among c, tl, tr, bl, br, got {positions!r}")
        self.positions = list(positions)

    def box(self, height: int, width: int, scale: float, position: str):
        """(top, left, side) of the crop in a (height, width) frame."""
        side = int(min(height, width) * scale)
        if position == "c":
            return int(round(height / 2 - side / 2)), int(round(width / 2 - side / 2)), side
        top = 0 if position[0] == "t" else height - side
        left = 0 if position[1] == "l" else width - side
        return top, left, side

    def __call__(self, clip: np.ndarray, *, crop_index: int = 0, rng=None) -> np.ndarray:
        _check_clip(clip, "MultiScaleCornerCrop")
        rng = rng if rng is not None else np.random.default_rng()
        scale = self.scales[int(rng.integers(len(self.scales)))]
        position = self.positions[int(rng.integers(len(self.positions)))]
        top, left, side = self.box(clip.shape[1], clip.shape[2], scale, position)
        return resize_clip(clip[:, top:top + side, left:left + side], self.size, self.size)


@TRANSFORMS.register("MultiScaleRandomCrop")
class MultiScaleRandomCrop:
    """The Efficient-3DCNNs ``random`` train crop (``--train_crop random``, the one their README
    and run scripts train with): per clip a scale drawn uniformly from ``scales`` and a uniform
    top-left corner ``(u, v)`` in [0, 1); the square of side ``s = int(short_side * scale)`` whose
    box is ``(u (W - s), v (H - s))`` to that plus ``s``, each coordinate rounded to the nearest
    pixel as PIL's ``crop`` rounds it, resized (bilinear) to ``size``."""

    def __init__(self, size: int, scales: Sequence[float] = MULTI_SCALES) -> None:
        self.size = _positive_int(size, "MultiScaleRandomCrop", "size")
        self.scales = _check_scales(scales, "MultiScaleRandomCrop")

    @staticmethod
    def box(height: int, width: int, scale: float, u: float, v: float):
        """(top, bottom, left, right) of the crop in a (height, width) frame."""
        side = int(min(height, width) * scale)
        x, y = u * (width - side), v * (height - side)
        return round(y), round(y + side), round(x), round(x + side)

    def __call__(self, clip: np.ndarray, *, crop_index: int = 0, rng=None) -> np.ndarray:
        _check_clip(clip, "MultiScaleRandomCrop")
        rng = rng if rng is not None else np.random.default_rng()
        scale = self.scales[int(rng.integers(len(self.scales)))]
        u, v = float(rng.random()), float(rng.random())
        top, bottom, left, right = self.box(clip.shape[1], clip.shape[2], scale, u, v)
        return resize_clip(clip[:, top:bottom, left:right], self.size, self.size)


@TRANSFORMS.register("Normalize")
class Normalize:
    """``(x - mean) / std`` per channel on a channels-last float clip."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean = np.asarray(mean, np.float32).reshape(-1)
        self.std = np.asarray(std, np.float32).reshape(-1)
        if self.mean.size != 3 or self.std.size != 3 or np.any(self.std <= 0):
            raise ValueError(f"Normalize: expected 3 means and 3 positive stds, got {mean!r} / {std!r}")

    def __call__(self, clip: np.ndarray, *, crop_index: int = 0, rng=None) -> np.ndarray:
        _check_clip(clip, "Normalize")
        if clip.dtype == np.uint8:
            raise ValueError("Normalize: got a uint8 clip; put Rescale before Normalize")
        return ((clip - self.mean) / self.std).astype(np.float32, copy=False)


@TRANSFORMS.register("ToCTHW")
class ToCTHW:
    """(T, H, W, C) -> contiguous (C, T, H, W), the network's input layout."""

    def __call__(self, clip: np.ndarray, *, crop_index: int = 0, rng=None) -> np.ndarray:
        _check_clip(clip, "ToCTHW")
        return np.ascontiguousarray(clip.transpose(3, 0, 1, 2))


class _RescaleNormalize:
    """``Rescale`` then ``Normalize`` (then ``ToCTHW`` when ``to_cthw``) in one pass per channel:
    the same float32 operations on every value in the same order, so the result is bit-identical
    to the three transforms, without their full-size float32 intermediates (``Compose`` fuses
    them; they are most of the transform time of a training clip)."""

    def __init__(self, rescale: "Rescale", normalize: "Normalize", to_cthw: bool) -> None:
        self.scale = None if rescale.value_range == 255.0 else np.float32(rescale.value_range / 255.0)
        self.mean, self.std, self.to_cthw = normalize.mean, normalize.std, to_cthw

    def __call__(self, clip: np.ndarray, *, crop_index: int = 0, rng=None) -> np.ndarray:
        _check_clip(clip, "Rescale")
        shape = (3,) + clip.shape[:3] if self.to_cthw else clip.shape
        out = np.empty(shape, np.float32)
        for c in range(3):
            v = clip[..., c].astype(np.float32)
            if self.scale is not None:
                v *= self.scale
            v -= self.mean[c]
            v /= self.std[c]
            if self.to_cthw:
                out[c] = v
            else:
                out[..., c] = v
        return out


def _fuse(ops: List[Any]) -> List[Any]:
    """The ops ``Compose`` runs: each ``Rescale, Normalize[, ToCTHW]`` run fused into one."""
    run, i = [], 0
    while i < len(ops):
        if (i + 1 < len(ops) and type(ops[i]) is Rescale and type(ops[i + 1]) is Normalize):
            cthw = i + 2 < len(ops) and type(ops[i + 2]) is ToCTHW
            run.append(_RescaleNormalize(ops[i], ops[i + 1], cthw))
            i += 3 if cthw else 2
        else:
            run.append(ops[i])
            i += 1
    return run


class Compose:
    """Apply transforms in order; ``num_crops`` is the SpatialCrops count (1 without one)."""

    def __init__(self, ops: Iterable[Any]) -> None:
        self.ops: List[Any] = list(ops)
        crops = [op.num_crops for op in self.ops if isinstance(op, SpatialCrops)]
        self.num_crops = crops[-1] if crops else 1
        self._run = _fuse(self.ops)

    def __call__(self, clip: np.ndarray, *, crop_index: int = 0,
                 rng: Optional[np.random.Generator] = None) -> np.ndarray:
        rng = rng if rng is not None else np.random.default_rng()
        for op in self._run:
            clip = op(clip, crop_index=crop_index, rng=rng)
        return clip

    def __repr__(self) -> str:
        return f"Compose({[type(op).__name__ for op in self.ops]})"


def build_transforms(operations_cfg: Iterable[Mapping], where: str = "map.operations") -> Compose:
    """Build the list of ``{type: ..., kwargs}`` mappings into a :class:`Compose` callable
    ``f(clip, *, crop_index=0, rng=None)``; usable outside the MindSpore pipeline."""
    if operations_cfg is None:
        raise ValueError(f"{where}: expected a list of transforms, got null")
    return Compose(build_from_cfg(op, TRANSFORMS, where=f"{where}[{i}]")
                   for i, op in enumerate(operations_cfg))


def _plain_ops(ops: Iterable[Any]) -> List[dict]:
    return [dict(op.to_dict() if hasattr(op, "to_dict") else op) for op in ops]


def eval_operations(operations_cfg: Iterable[Mapping], *, num_crops: Optional[int] = None,
                    short_side: Optional[int] = None,
                    crop_size: Optional[int] = None) -> List[dict]:
    """A copy of an eval ``map.operations`` list with the view settings replaced: ``short_side``
    sets ShortSideScale's size, ``crop_size``/``num_crops`` set SpatialCrops'. A missing
    ShortSideScale/SpatialCrops is inserted before Rescale when its setting is given."""
    ops = _plain_ops(operations_cfg)
    types = [op.get("type") for op in ops]
    head = next((i for i, t in enumerate(types) if t in ("Rescale", "Normalize", "ToCTHW")), len(ops))
    if short_side is not None:
        if "ShortSideScale" in types:
            ops[types.index("ShortSideScale")]["size"] = int(short_side)
        else:
            ops.insert(0, {"type": "ShortSideScale", "size": int(short_side)})
            head += 1
        types = [op.get("type") for op in ops]
    if crop_size is not None or num_crops is not None:
        if "CenterCrop" in types:
            i = types.index("CenterCrop")
            ops[i] = {"type": "SpatialCrops", "size": ops[i]["size"], "num_crops": 1}
            types[i] = "SpatialCrops"
        if "SpatialCrops" in types:
            op = ops[types.index("SpatialCrops")]
        else:
            if crop_size is None:
                raise ValueError("eval_operations: num_crops given but no SpatialCrops and no crop_size")
            op = {"type": "SpatialCrops", "size": int(crop_size), "num_crops": 1}
            ops.insert(head, op)
        if crop_size is not None:
            op["size"] = int(crop_size)
        if num_crops is not None:
            op["num_crops"] = int(num_crops)
    return ops


def infer_operations(cfg: Any) -> List[dict]:
    """The test-time transform list from ``cfg.infer`` (short side, crop size, crops) applied to
    ``cfg.data_loader.eval.map.operations`` (which supplies Rescale/Normalize/ToCTHW)."""
    return eval_operations(cfg.data_loader.eval.map.operations, num_crops=int(cfg.infer.num_crops),
                           short_side=int(cfg.infer.short_side), crop_size=int(cfg.infer.crop_size))
