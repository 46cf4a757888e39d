"""3D MobileNet (v1) of Köpüklü et al. 2019 ("Resource Efficient 3D CNNs"), as okankop/Efficient-3DCNNs
builds it, plus the pieces the light family (MobileNet v1/v2, ShuffleNet v1/v2) shares.

Data flow at 1.0x (16 x 112 x 112 clip, BGR 0..255 minus the mean; every "/2" strides T, H and W)::

    clip (N, 3, 16, 112, 112)
      -> features.0    conv 3x3x3 stride (1,2,2) (3->32) -> BN -> ReLU            (N, 32, 16, 56, 56)
      -> features.1    dw 3x3x3 /2 -> BN -> ReLU -> pw 1x1x1 (->64) -> BN -> ReLU   (N, 64, 8, 28, 28)
      -> features.2-3  128 /2, 128                                                  (N, 128, 4, 14, 14)
      -> features.4-5  256 /2, 256                                                  (N, 256, 2, 7, 7)
      -> features.6-11 512 /2, 512 x5                                               (N, 512, 1, 4, 4)
      -> features.12-13 1024, 1024                                                  (N, 1024, 1, 4, 4)
      == forward_features ==
      -> global average over T x H x W (runtime size) -> classifier.0 Dropout(0.2)
         -> classifier.1 Dense (1024 -> classes)                                    (N, classes)

Widths are ``int(c * width_mult)`` (truncation, no divisor rounding). Unlike the 2D MobileNet the
first block already strides. No residuals. Init: PyTorch defaults (kaiming-uniform a=sqrt(5)).

Parameter names mirror the reference state dict (``features.0.0.weight``, ``features.0.1.gamma``,
``features.3.conv1.weight``, ``classifier.1.weight``), so a converted checkpoint only strips
``module.``, renames BatchNorm weight/bias/running_mean/running_var to
gamma/beta/moving_mean/moving_variance and drops num_batches_tracked.

FLOPs (``flops()``): multiply-adds of convolutions and the classifier plus 2 per BatchNorm output
element (``BN_OPS``, as x3d.py counts). The paper's MFLOPs column is the repo's bundled thop at
batch 1: the same conv MACs and BN 2/elem, plus ReLU modules 1/elem, pools, and Linear (2*in-1) per
output; MobileNet v1's ReLUs are functional there, so it differs from ours only in the classifier
(1.0x: ours 238.63 M, paper 240.8 M; measured in ``tests/models/test_e3d_light.py``).
"""
from __future__ import annotations

import math
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np
import mindspore as ms
from mindspore import Tensor, nn, ops
from mindspore.common.initializer import Normal, Uniform

from ..errors import UserError
from .base import PretrainedCfg, VideoClassifier, attach_pretrained_cfg, register_model
from .layers import BatchNorm3d, ChannelwiseConv3d, Conv3d, global_avg_pool, resolve_impl

Shape = Tuple[int, int, int, int]  # (C, T, H, W) of one clip

# multiply-adds of conv/linear layers plus 2 per BatchNorm output element (scale and shift), as x3d.py
BN_OPS = 2

# The default record of every light Efficient-3DCNNs variant: Kinetics-600 weights, 16 x 112 x 112
# clips of raw 0..255 BGR values (OpenCV frames, never converted) minus the ActivityNet mean, std 1.
E3D_KINETICS_CFG = PretrainedCfg(
    num_classes=600, num_frames=16, sampling_rate=1, crop_size=112, test_short_side=112, test_crop_size=112,
    mean=(114.7748, 107.7354, 99.4750), std=(1.0, 1.0, 1.0), value_range=255.0, channel_order="BGR",
    target_fps=None, dataset="kinetics600",
    paper="Köpüklü et al., Resource Efficient 3D Convolutional Neural Networks, ICCVW 2019")

TORCH_DEFAULT = "torch_default"
KAIMING_FAN_OUT = "kaiming_fan_out"  # N(0, sqrt(2 / (k^3 * out))): MobileNetV2's conv init
NORMAL_001 = "normal_0.01"  # N(0, 0.01) weight, zero bias: MobileNetV2's classifier init


# ----------------------------------------------------------------------------- shared pieces
class Seq(nn.SequentialCell):
    """``nn.SequentialCell`` whose numbered children can be replaced with ``setattr``.

    ``fold_batchnorm`` swaps a folded BatchNorm for ``nn.Identity`` with ``setattr(cell, "1", ...)``;
    the plain SequentialCell would update its child table but keep running its cached cell list.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        cells = self.__dict__.get("_cells")
        if isinstance(value, nn.Cell) and cells is not None and name in cells and name.isdigit():
            self[list(cells).index(name)] = value
        else:
            super().__setattr__(name, value)


def conv_out(size: int, k: int, s: int, p: int) -> int:
    return (size + 2 * p - k) // s + 1


def conv_cost(shape: Shape, c_out: int, k: int = 1, stride: int = 1, groups: int = 1,
              bn: bool = True) -> Tuple[int, Shape]:
    """Multiply-adds (+ BN_OPS per output element when a BatchNorm follows) of a k^3 convolution
    with padding k // 2, and its output shape."""
    c, t, h, w = shape
    p = k // 2
    out = (c_out, conv_out(t, k, stride, p), conv_out(h, k, stride, p), conv_out(w, k, stride, p))
    n = out[0] * out[1] * out[2] * out[3]
    return n * (c // groups) * k ** 3 + (BN_OPS * n if bn else 0), out


def conv3d(dim_in: int, dim_out: int, kernel: int, *, stride: int = 1, groups: int = 1,
           init: str = TORCH_DEFAULT) -> Conv3d:
    """Dense or grouped k^3 convolution, padding k // 2, no bias (as every light-family conv)."""
    return Conv3d(dim_in, dim_out, kernel, stride=stride, padding=kernel // 2, groups=groups, init=init)


def depthwise3d(channels: int, *, stride: int = 1, init: str = TORCH_DEFAULT) -> ChannelwiseConv3d:
    """Depthwise 3x3x3 convolution, padding 1, weight (C, 1, 3, 3, 3), no bias."""
    impl = resolve_impl("auto", "channelwise")
    if impl == "fold" and stride != 1:
        impl = "native"  # 'fold' (no C++ compiler) cannot stride in time
    conv = ChannelwiseConv3d(channels, 3, stride=stride, padding=1, impl=impl)
    if init == TORCH_DEFAULT:  # kaiming_uniform(a=sqrt(5)) with fan_in 27: U(-1/sqrt(27), 1/sqrt(27))
        bound = 1.0 / math.sqrt(27)
        conv.weight.set_data(Tensor(np.random.uniform(-bound, bound, conv.weight.shape).astype(np.float32)))
    elif init != KAIMING_FAN_OUT:  # ChannelwiseConv3d's own init is kaiming fan_out
        raise ValueError(f"depthwise3d init must be '{TORCH_DEFAULT}' or '{KAIMING_FAN_OUT}', got '{init}'")
    return conv


def conv_bn_act(dim_in: int, dim_out: int, kernel: int, *, stride: Any = 1, act: Optional[type] = nn.ReLU,
                init: str = TORCH_DEFAULT) -> Seq:
    """``Seq(conv, BN, act)`` (indices 0, 1, 2) with its conv/BN pair declared for folding."""
    cells: List[nn.Cell] = [Conv3d(dim_in, dim_out, kernel, stride=stride, padding=kernel // 2, init=init),
                            BatchNorm3d(dim_out)]
    if act is not None:
        cells.append(act())
    seq = Seq(cells)
    seq.conv_bn_pairs = (("0", "1"),)
    return seq


def stem_cost(shape: Shape, c_out: int) -> Tuple[int, Shape]:
    """The 3x3x3 stride (1,2,2) stem conv + BN."""
    c, t, h, w = shape
    out = (c_out, t, conv_out(h, 3, 2, 1), conv_out(w, 3, 2, 1))
    n = out[0] * out[1] * out[2] * out[3]
    return n * c * 27 + BN_OPS * n, out


def make_classifier(dim_in: int, num_classes: int, dropout_rate: float, init: str) -> Seq:
    """``classifier`` = Seq(Dropout (or Identity at rate 0), Dense): the reference's ``classifier.1``."""
    if init == TORCH_DEFAULT:  # nn.Linear default: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias
        bound = 1.0 / math.sqrt(dim_in)
        dense = nn.Dense(dim_in, num_classes, weight_init=Uniform(bound), bias_init=Uniform(bound))
    elif init == NORMAL_001:  # MobileNetV2
        dense = nn.Dense(dim_in, num_classes, weight_init=Normal(0.01), bias_init="zeros")
    else:
        raise ValueError(f"classifier init must be '{TORCH_DEFAULT}' or '{NORMAL_001}', got '{init}'")
    drop = nn.Dropout(p=dropout_rate) if dropout_rate > 0 else nn.Identity()
    return Seq([drop, dense])


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


def check_width(width_mult: float, name: str) -> None:
    if isinstance(width_mult, bool) or not isinstance(width_mult, (int, float)) or width_mult <= 0:
        raise UserError(f"model.width_mult: {name} expects a positive number, got {width_mult!r}")


def check_dropout(dropout_rate: float) -> None:
    if not 0.0 <= float(dropout_rate) < 1.0:
        raise UserError(f"model.dropout_rate: expected a value in [0, 1), got {dropout_rate!r}")


@ms.constexpr
def check_clip(shape, in_channels, min_thw, name):
    if len(shape) != 5 or shape[1] != in_channels:
        raise ValueError(f"{name} expects clips of shape (N, {in_channels}, T, H, W), got {tuple(shape)}")
    if any(s < m for s, m in zip(shape[2:], min_thw)):
        raise ValueError(f"{name} needs T, H, W >= {tuple(min_thw)}, got {tuple(shape)}")


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
        raise NotImplementedError

    def flops(self, shape: Optional[Sequence[int]] = None) -> int:
        """Multiply-adds of one clip (C, T, H, W) (default the train clip): conv and classifier
        MACs + 2 per BatchNorm output element; pools, activations and adds are not counted."""
        shape = tuple(shape or (self.in_channels, self.num_frames, self.crop_size, self.crop_size))
        total, out = self.feature_flops(shape)  # type: ignore[arg-type]
        return int(total + out[0] * self._num_classes)


# ----------------------------------------------------------------------------- MobileNet v1
MOBILENET_BLOCKS = ((64, 2), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
                    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 1), (1024, 1))


class MobileNetBlock(nn.Cell):
    """dw 3x3x3 (stride) -> BN -> ReLU -> pw 1x1x1 -> BN -> ReLU (``conv1, bn1, conv2, bn2``)."""

    def __init__(self, dim_in: int, dim_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = depthwise3d(dim_in, stride=stride)
        self.bn1 = BatchNorm3d(dim_in)
        self.conv2 = conv3d(dim_in, dim_out, 1)
        self.bn2 = BatchNorm3d(dim_out)
        self.relu = nn.ReLU()
        self.dims = (dim_in, dim_out, stride)
        self.conv_bn_pairs = (("conv1", "bn1"), ("conv2", "bn2"))

    def construct(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(x)))

    def flops(self, shape: Shape) -> Tuple[int, Shape]:
        dim_in, dim_out, stride = self.dims
        a, shape = conv_cost(shape, dim_in, 3, stride, groups=dim_in)
        b, shape = conv_cost(shape, dim_out, 1)
        return a + b, shape


class MobileNet3D(LightE3D):
    """``features`` (stem + 13 blocks) -> global average -> ``classifier`` (Dropout, Dense)."""

    def __init__(self, *, width_mult: float = 1.0, num_classes: int = 600, num_frames: int = 16,
                 crop_size: int = 112, dropout_rate: float = 0.2, in_channels: int = 3) -> None:
        super().__init__()
        dim = int(32 * width_mult)
        cells: List[nn.Cell] = [conv_bn_act(in_channels, dim, 3, stride=(1, 2, 2))]
        for c, s in MOBILENET_BLOCKS:
            cells.append(MobileNetBlock(dim, int(c * width_mult), s))
            dim = int(c * width_mult)
        self.features = Seq(cells)
        self.stem_dim = cells[0][0].dim_out
        self._setup(num_classes=num_classes, num_frames=num_frames, crop_size=crop_size,
                    in_channels=in_channels, dropout_rate=dropout_rate, dim_out=dim)

    def forward_features(self, x):
        check_clip(x.shape, self.in_channels, self.min_thw, "e3d_mobilenet")
        return self.features(x)

    def feature_flops(self, shape: Shape) -> Tuple[int, Shape]:
        total, shape = stem_cost(shape, self.stem_dim)
        for block in self.features.cell_list[1:]:
            macs, shape = block.flops(shape)
            total += macs
        return total, shape


def check_channels(width_mult: float, smallest: int, name: str) -> None:
    if smallest < 1:
        raise UserError(f"model.width_mult: {width_mult} leaves {name} a layer with no channels")


@register_model(E3D_KINETICS_CFG)
def e3d_mobilenet(*, width_mult: float = 1.0, num_classes: int = 600, num_frames: int = 16,
                  crop_size: int = 112, dropout_rate: float = 0.2, in_channels: int = 3) -> MobileNet3D:
    """3D MobileNet v1 (paper widths 0.5/1.0/1.5/2.0x; any positive ``width_mult`` builds)."""
    check_width(width_mult, "e3d_mobilenet")
    check_dropout(dropout_rate)
    check_channels(width_mult, min(int(32 * width_mult), int(64 * width_mult)), "e3d_mobilenet")
    kwargs = dict(width_mult=width_mult, num_classes=num_classes, num_frames=num_frames, crop_size=crop_size,
                  dropout_rate=dropout_rate, in_channels=in_channels)
    return attach_pretrained_cfg(MobileNet3D(**kwargs), "e3d_mobilenet", kwargs)


__all__ = ["MobileNet3D", "e3d_mobilenet", "LightE3D", "Seq", "BN_OPS", "E3D_KINETICS_CFG", "channel_shuffle"]
