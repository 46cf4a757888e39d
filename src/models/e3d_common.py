"""What the Efficient-3DCNNs family files (``e3d_*.py``, Köpüklü et al. 2019) share.

Each ``e3d_<family>.py`` holds only its family (blocks, network, ``@register_model`` builders);
this module holds the rest, so that no family file imports another:

* ``E3D_CFG``: the one default record of every Efficient-3DCNNs variant (Kinetics-600 weights,
  16 x 112 x 112 clips of raw 0..255 BGR values minus the ActivityNet mean, std 1);
* cells: ``IndexedSequential`` (the reference's ``nn.Sequential``, so parameter names keep its
  indices: ``features.0.1.gamma``), ``MaxPool3d`` and ``FixedAvgPool`` (torch semantics),
  ``channel_shuffle`` (ShuffleNet v1/v2);
* the light family's (MobileNet v1/v2, ShuffleNet v1/v2) convolution builders with the
  reference's initialisations, its FLOP counting (``conv_cost``, ``stem_cost``) and its base class
  ``LightE3D`` (features -> global average -> ``classifier`` = Dropout, Dense);
* the argument checks, which raise one-line ``UserError`` naming the config key.

FLOPs everywhere in the family: multiply-adds of convolutions and linear layers plus ``BN_OPS`` =
2 per BatchNorm output element (scale and shift), the convention of ``x3d.py``.
"""
from __future__ import annotations

import math
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import mindspore as ms
from mindspore import Tensor, nn, ops
from mindspore.common.initializer import Normal, Uniform

from ..errors import UserError
from .base import PretrainedCfg, VideoClassifier
from .layers import BatchNorm3d, ChannelwiseConv3d, Conv3d, ceil_div, conv_out_size, global_avg_pool

Shape = Tuple[int, int, int, int]  # (C, T, H, W) of one clip

# multiply-adds of conv/linear layers plus 2 per BatchNorm output element (scale and shift), as x3d.py
BN_OPS = 2

# The default record of every Efficient-3DCNNs variant: Kinetics-600 weights, 16 x 112 x 112 clips of
# raw 0..255 BGR values (OpenCV frames, never converted) minus the ActivityNet mean, std 1.
E3D_CFG = PretrainedCfg(
    num_classes=600, num_frames=16, sampling_rate=1, crop_size=112, test_short_side=112, test_crop_size=112,
    mean=(114.7748, 107.7354, 99.4750), std=(1.0, 1.0, 1.0), value_range=255.0, channel_order="BGR",
    target_fps=None, dataset="kinetics600",
    paper="Köpüklü et al., Resource Efficient 3D Convolutional Neural Networks, ICCVW 2019")


def test_view_of(model_kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """Record updates of a config's ``model`` section: the reference tests at its sample size (short
    side and centre crop = ``crop_size``), so a model built for another crop is tested at it."""
    crop = model_kwargs.get("crop_size")
    return {} if crop is None else {"test_short_side": int(crop), "test_crop_size": int(crop)}

TORCH_DEFAULT = "torch_default"
KAIMING_FAN_OUT = "kaiming_fan_out"  # N(0, sqrt(2 / (k^3 * out))): MobileNetV2's conv init
NORMAL_001 = "normal_0.01"  # N(0, 0.01) weight, zero bias: MobileNetV2's classifier init


# ----------------------------------------------------------------------------- cells
class IndexedSequential(nn.SequentialCell):
    """``nn.SequentialCell`` whose numbered children can be replaced with ``setattr(cell, "1", new)``.

    ``fold_batchnorm`` swaps a folded BatchNorm for ``nn.Identity`` that way; the plain
    SequentialCell would update its child table but keep running its cached cell list. Children
    are named by index, as the reference's ``nn.Sequential`` (``features.1.gamma``).
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name.isdigit() and isinstance(value, nn.Cell) and name in self.__dict__.get("_cells", {}):
            self[list(self._cells).index(name)] = value
        else:
            super().__setattr__(name, value)


class MaxPool3d(nn.Cell):
    """Max pool with torch semantics (implicit -inf padding, floor output size)."""

    def __init__(self, kernel_size: int = 3, stride: int = 2, padding: int = 1) -> None:
        super().__init__()
        self.geometry = (kernel_size, stride, padding)
        # MindSpore's MaxPool3D pads with -inf (checked against torch in tests/models/test_e3d_heavy.py)
        self.pool = ops.MaxPool3D(kernel_size=kernel_size, strides=stride, pad_mode="pad", pad_list=padding)

    def construct(self, x):
        return self.pool(x)

    def out_shape(self, shape: Shape) -> Shape:
        """(C, T, H, W) after the pool."""
        k, s, p = self.geometry
        c, t, h, w = shape
        return (c, conv_out_size(t, k, s, p), conv_out_size(h, k, s, p), conv_out_size(w, k, s, p))


class FixedAvgPool(nn.Cell):
    """The reference's ``AvgPool3d(kernel, stride=1)``, kernel fixed at build time from the clip
    geometry; returns (N, C): the pooled map flattened at the build size (one position), the mean
    over the positions for a larger clip (where the reference's flatten would break its fc). A
    smaller clip than the build size has no window to pool (``VideoClassifier.smaller_clip_problem``)."""

    fixed_window = True

    def __init__(self, kernel: Tuple[int, int, int]) -> None:
        super().__init__()
        self.kernel = tuple(int(k) for k in kernel)
        self.pool = ops.AvgPool3D(kernel_size=self.kernel, strides=1)

    def construct(self, x):
        return self.pool(x).mean(axis=(2, 3, 4))

    @classmethod
    def for_clip(cls, num_frames: int, crop_size: int) -> "FixedAvgPool":
        """The final pool of ResNet and SqueezeNet: (ceil(T/16), ceil(S/32), ceil(S/32)), the
        whole last map of the clip they are built for."""
        return cls((ceil_div(num_frames, 16), ceil_div(crop_size, 32), ceil_div(crop_size, 32)))


def channel_shuffle(x, groups: int):
    """View C as (groups, C/groups), swap the two axes, flatten: out[j*g + i] = in[i*(C/g) + j].

    Written as one gather of the channels by a constant permutation: the same values as the
    reshape-transpose-reshape, and it keeps T, H and W static when the batch is dynamic (an
    exported graph), where the transposed 6-D view loses them."""
    return ops.gather(x, _shuffle_index(x.shape[1], groups), 1)


@ms.constexpr
def _shuffle_index(channels: int, groups: int) -> Tensor:
    per = channels // groups
    return Tensor(np.arange(channels).reshape(groups, per).T.reshape(-1).astype(np.int32))


# ----------------------------------------------------------------------------- light-family layers
def conv_cost(shape: Shape, c_out: int, k: int = 1, stride: int = 1, groups: int = 1,
              bn: bool = True) -> Tuple[int, Shape]:
    """Multiply-adds (+ BN_OPS per output element when a BatchNorm follows) of a k^3 convolution
    with padding k // 2, and its output shape."""
    c, t, h, w = shape
    p = k // 2
    out = (c_out, conv_out_size(t, k, stride, p), conv_out_size(h, k, stride, p), conv_out_size(w, k, stride, p))
    n = out[0] * out[1] * out[2] * out[3]
    return n * (c // groups) * k ** 3 + (BN_OPS * n if bn else 0), out


def chain_flops(blocks: Iterable[nn.Cell], shape: Shape) -> Tuple[int, Shape]:
    """Multiply-adds of ``blocks`` run one after the other (each has ``flops(shape) -> (macs,
    out_shape)``), and the shape after the last."""
    total = 0
    for block in blocks:
        macs, shape = block.flops(shape)
        total += macs
    return total, shape


def stem_cost(shape: Shape, c_out: int) -> Tuple[int, Shape]:
    """The 3x3x3 stride (1,2,2) stem conv + BN."""
    c, t, h, w = shape
    out = (c_out, t, conv_out_size(h, 3, 2, 1), conv_out_size(w, 3, 2, 1))
    n = out[0] * out[1] * out[2] * out[3]
    return n * c * 27 + BN_OPS * n, out


def conv3d(dim_in: int, dim_out: int, kernel: int, *, stride: int = 1, groups: int = 1,
           init: str = TORCH_DEFAULT) -> Conv3d:
    """Dense or grouped k^3 convolution, padding k // 2, no bias (as every light-family conv)."""
    return Conv3d(dim_in, dim_out, kernel, stride=stride, padding=kernel // 2, groups=groups, init=init)


def depthwise3d(channels: int, *, stride: int = 1, init: str = TORCH_DEFAULT) -> ChannelwiseConv3d:
    """Depthwise 3x3x3 convolution, padding 1, weight (C, 1, 3, 3, 3), no bias."""
    conv = ChannelwiseConv3d(channels, 3, stride=stride, padding=1)  # the device policy picks the formulation
    if init == TORCH_DEFAULT:  # kaiming_uniform(a=sqrt(5)) with fan_in 27: U(-1/sqrt(27), 1/sqrt(27))
        bound = 1.0 / math.sqrt(27)
        conv.weight.set_data(Tensor(np.random.uniform(-bound, bound, conv.weight.shape).astype(np.float32)))
    elif init != KAIMING_FAN_OUT:  # ChannelwiseConv3d's own init is kaiming fan_out
        raise ValueError(f"depthwise3d init must be '{TORCH_DEFAULT}' or '{KAIMING_FAN_OUT}', got '{init}'")
    return conv


def conv_bn_act(dim_in: int, dim_out: int, kernel: int, *, stride: Any = 1, act: Optional[type] = nn.ReLU,
                init: str = TORCH_DEFAULT) -> IndexedSequential:
    """``IndexedSequential(conv, BN, act)`` (indices 0, 1, 2) with its conv/BN pair declared for folding."""
    cells: List[nn.Cell] = [Conv3d(dim_in, dim_out, kernel, stride=stride, padding=kernel // 2, init=init),
                            BatchNorm3d(dim_out)]
    if act is not None:
        cells.append(act())
    seq = IndexedSequential(cells)
    seq.conv_bn_pairs = (("0", "1"),)
    return seq


def make_classifier(dim_in: int, num_classes: int, dropout_rate: float, init: str) -> IndexedSequential:
    """``classifier`` = (Dropout (or Identity at rate 0), Dense): the reference's ``classifier.1``."""
    if init == TORCH_DEFAULT:  # nn.Linear default: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias
        bound = 1.0 / math.sqrt(dim_in)
        dense = nn.Dense(dim_in, num_classes, weight_init=Uniform(bound), bias_init=Uniform(bound))
    elif init == NORMAL_001:  # MobileNetV2
        dense = nn.Dense(dim_in, num_classes, weight_init=Normal(0.01), bias_init="zeros")
    else:
        raise ValueError(f"classifier init must be '{TORCH_DEFAULT}' or '{NORMAL_001}', got '{init}'")
    drop = nn.Dropout(p=dropout_rate) if dropout_rate > 0 else nn.Identity()
    return IndexedSequential([drop, dense])


class LightE3D(VideoClassifier):
    """Shared head and contract of the light family: features -> global average -> classifier."""

    classifier_init = TORCH_DEFAULT
    min_thw: Tuple[int, int, int] = (1, 1, 1)

    def _setup(self, *, num_classes: int, num_frames: int, crop_size: int, in_channels: int,
               dropout_rate: float, dim_out: int) -> None:
        self.classifier = make_classifier(dim_out, num_classes, dropout_rate, self.classifier_init)
        self._num_classes = num_classes
        self.num_frames, self.crop_size, self.in_channels = num_frames, crop_size, in_channels
        self.dropout_rate, self.dim_out = dropout_rate, dim_out

    def forward_head(self, x):
        n, c = x.shape[0], x.shape[1]
        return self.classifier(global_avg_pool(x).reshape(n, c))

    def get_classifier(self) -> nn.Cell:
        return self.classifier[1]

    def reset_classifier(self, num_classes: int) -> None:
        self.classifier = make_classifier(self.dim_out, num_classes, self.dropout_rate, self.classifier_init)
        self._num_classes = num_classes

    def feature_flops(self, shape: Shape) -> Tuple[int, Shape]:
        """Multiply-adds of ``forward_features`` on one clip and its output shape (per family)."""
        raise NotImplementedError

    def flops(self, shape: Optional[Sequence[int]] = None) -> int:
        """Multiply-adds of one clip (C, T, H, W) (default the train clip): conv and classifier
        MACs + 2 per BatchNorm output element; pools, activations and adds are not counted."""
        shape = tuple(shape or (self.in_channels, self.num_frames, self.crop_size, self.crop_size))
        total, out = self.feature_flops(shape)  # type: ignore[arg-type]
        return int(total + out[0] * self._num_classes)


# ----------------------------------------------------------------------------- argument checks
def check_choice(key: str, value: Any, choices: Sequence[Any]) -> None:
    """``value`` must be one of ``choices`` (never a bool)."""
    if value not in choices or isinstance(value, bool):
        raise UserError(f"{key}: expected one of {', '.join(str(c) for c in choices)}, got {value!r}")


def check_positive_int(key: str, value: Any) -> None:
    """``value`` must be an int >= 1 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"{key}: expected a positive integer, got {value!r}")


def check_sizes(num_classes: int, num_frames: int, crop_size: int, in_channels: int) -> None:
    """The class count and clip geometry of ResNet and SqueezeNet must be positive integers."""
    for key, value in (("num_classes", num_classes), ("num_frames", num_frames), ("crop_size", crop_size),
                       ("in_channels", in_channels)):
        check_positive_int(f"model.{key}", value)


def check_dropout(dropout_rate: Any, key: str = "model.dropout_rate") -> None:
    """The dropout rate must be a number in [0, 1) (not a bool): the one check of every e3d builder."""
    if isinstance(dropout_rate, bool) or not isinstance(dropout_rate, (int, float)) \
            or not 0.0 <= dropout_rate < 1.0:
        raise UserError(f"{key}: expected a probability in [0, 1), got {dropout_rate!r}")


def check_width(width_mult: float, name: str) -> None:
    """``width_mult`` must be a positive number (MobileNet v1/v2, ShuffleNet v1)."""
    if isinstance(width_mult, bool) or not isinstance(width_mult, (int, float)) or width_mult <= 0:
        raise UserError(f"model.width_mult: {name} expects a positive number, got {width_mult!r}")


def check_channels(width_mult: float, smallest: int, name: str) -> None:
    """The narrowest layer at ``width_mult`` (``smallest`` channels) must keep at least one channel."""
    if smallest < 1:
        raise UserError(f"model.width_mult: {width_mult} leaves {name} a layer with no channels")


@ms.constexpr
def check_clip(shape, in_channels, min_thw, name):
    """In graph: a clip must be (N, in_channels, T, H, W) with T, H, W >= ``min_thw``."""
    if len(shape) != 5 or shape[1] != in_channels:
        raise ValueError(f"{name} expects clips of shape (N, {in_channels}, T, H, W), got {tuple(shape)}")
    if any(s < m for s, m in zip(shape[2:], min_thw)):
        raise ValueError(f"{name} needs T, H, W >= {tuple(min_thw)}, got {tuple(shape)}")


__all__ = ["E3D_CFG", "BN_OPS", "Shape", "IndexedSequential", "MaxPool3d", "FixedAvgPool", "channel_shuffle",
           "LightE3D", "conv_cost", "chain_flops", "stem_cost", "conv3d", "depthwise3d", "conv_bn_act",
           "make_classifier", "TORCH_DEFAULT", "KAIMING_FAN_OUT", "NORMAL_001", "check_choice",
           "check_positive_int", "check_sizes", "check_dropout", "check_width", "check_channels", "check_clip"]
