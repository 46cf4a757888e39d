"""3D MobileNetV2 of Köpüklü et al. 2019 ("Resource Efficient 3D CNNs"), as okankop/Efficient-3DCNNs
builds it.

Data flow at 1.0x (16 x 112 x 112 clip; "/2" strides T, H and W; t = expansion, n = repeats)::

    clip (N, 3, 16, 112, 112)
      -> features.0      conv 3x3x3 stride (1,2,2) (3->32) -> BN -> ReLU6          (N, 32, 16, 56, 56)
      -> features.1      t1: dw 3x3x3 -> BN -> ReLU6 -> pw (->16) -> BN             (N, 16, 16, 56, 56)
      -> features.2-3    t6 24 x2, first /2                                         (N, 24, 8, 28, 28)
      -> features.4-6    t6 32 x3, first /2                                         (N, 32, 4, 14, 14)
      -> features.7-10   t6 64 x4, first /2                                         (N, 64, 2, 7, 7)
      -> features.11-13  t6 96 x3                                                   (N, 96, 2, 7, 7)
      -> features.14-16  t6 160 x3, first /2                                        (N, 160, 1, 4, 4)
      -> features.17     t6 320                                                     (N, 320, 1, 4, 4)
      -> features.18     pw 1x1x1 (->1280) -> BN -> ReLU6                           (N, 1280, 1, 4, 4)
      == forward_features ==
      -> global average over T x H x W -> classifier.0 Dropout(0.2) -> classifier.1 Dense (1280 -> classes)

t=6 block (``conv.0..7``): pw (in->round(6 in)) -> BN -> ReLU6 -> dw 3x3x3 (stride) -> BN -> ReLU6 ->
pw (->out) -> BN; t=1 block (``conv.0..4``) drops the expansion. Residual iff stride 1 and
in == out. Widths ``int(c * width_mult)`` (no divisor rounding: 0.45x has 7, 43 channels); the last
conv has ``int(1280 * w)`` channels if w > 1 else 1280. Init: conv N(0, sqrt(2 / (k^3 * out))),
BN 1/0, Dense N(0, 0.01) with bias 0.

FLOPs (``flops()``): conv + classifier multiply-adds + 2 per BN output element (1.0x: 547.40 M). The
paper's 561 MFLOPs (thop) adds 1 per ReLU6 output element and counts the Linear as 2*in-1 per output.
"""
from __future__ import annotations

from typing import List, Tuple

from mindspore import nn

from .base import attach_pretrained_cfg, register_model
from .e3d_common import (test_view_of, E3D_CFG, KAIMING_FAN_OUT, NORMAL_001, IndexedSequential, LightE3D, Shape,
                         chain_flops, check_channels, check_clip, check_dropout, check_width, conv3d,
                         conv_bn_act, conv_cost, depthwise3d, stem_cost)
from .layers import BatchNorm3d, DropPath, drop_path_rates

# (expansion t, channels c, repeats n, first stride s)
MOBILENETV2_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                        (6, 160, 3, 2), (6, 320, 1, 1))


class InvertedResidual(nn.Cell):
    """``conv`` = [pw BN ReLU6] dw BN ReLU6 pw BN, plus the input when stride 1 and in == out."""

    def __init__(self, dim_in: int, dim_out: int, stride: int, expand_ratio: int,
                 drop_path_rate: float = 0.0) -> None:
        super().__init__()
        hidden = round(dim_in * expand_ratio)
        self.use_residual = stride == 1 and dim_in == dim_out
        self.use_drop_path = self.use_residual and drop_path_rate > 0  # only a block with a shortcut
        if self.use_drop_path:
            self.drop_path = DropPath(drop_path_rate)
        cells: List[nn.Cell] = []
        if expand_ratio != 1:
            cells += [conv3d(dim_in, hidden, 1, init=KAIMING_FAN_OUT), BatchNorm3d(hidden), nn.ReLU6()]
        cells += [depthwise3d(hidden, stride=stride, init=KAIMING_FAN_OUT), BatchNorm3d(hidden), nn.ReLU6(),
                  conv3d(hidden, dim_out, 1, init=KAIMING_FAN_OUT), BatchNorm3d(dim_out)]
        self.conv = IndexedSequential(cells)
        pairs = (("0", "1"), ("3", "4")) if expand_ratio == 1 else (("0", "1"), ("3", "4"), ("6", "7"))
        self.conv.conv_bn_pairs = pairs
        self.dims = (dim_in, hidden, dim_out, stride, expand_ratio)

    def construct(self, x):
        if self.use_drop_path:
            return x + self.drop_path(self.conv(x))
        if self.use_residual:
            return x + self.conv(x)
        return self.conv(x)

    def flops(self, shape: Shape) -> Tuple[int, Shape]:
        dim_in, hidden, dim_out, stride, t = self.dims
        total = 0
        if t != 1:
            total, shape = conv_cost(shape, hidden, 1)
        macs, shape = conv_cost(shape, hidden, 3, stride, groups=hidden)
        total += macs
        macs, shape = conv_cost(shape, dim_out, 1)
        return total + macs, shape


class MobileNetV2_3D(LightE3D):
    """``features`` (stem, 17 inverted residuals, last 1x1x1) -> global average -> ``classifier``."""

    classifier_init = NORMAL_001

    def __init__(self, *, width_mult: float = 1.0, num_classes: int = 600, num_frames: int = 16,
                 crop_size: int = 112, dropout_rate: float = 0.2, in_channels: int = 3,
                 drop_path_rate: float = 0.0) -> None:
        super().__init__()
        dim = int(32 * width_mult)
        last = int(1280 * width_mult) if width_mult > 1.0 else 1280
        cells: List[nn.Cell] = [conv_bn_act(in_channels, dim, 3, stride=(1, 2, 2), act=nn.ReLU6,
                                            init=KAIMING_FAN_OUT)]
        plan = []  # (in, out, stride, expansion) of each inverted residual
        for t, c, n, s in MOBILENETV2_SETTINGS:
            out = int(c * width_mult)
            for i in range(n):
                plan.append((dim, out, s if i == 0 else 1, t))
                dim = out
        # stochastic depth: linear over the blocks that have a shortcut (stride 1, in == out)
        rates = drop_path_rates(drop_path_rate, sum(1 for i, o, s, _ in plan if s == 1 and i == o))
        for dim_in, out, s, t in plan:
            rate = rates.pop(0) if s == 1 and dim_in == out else 0.0
            cells.append(InvertedResidual(dim_in, out, s, t, drop_path_rate=rate))
        cells.append(conv_bn_act(dim, last, 1, act=nn.ReLU6, init=KAIMING_FAN_OUT))
        self.features = IndexedSequential(cells)
        self.stem_dim = cells[0][0].dim_out
        self._setup(num_classes=num_classes, num_frames=num_frames, crop_size=crop_size,
                    in_channels=in_channels, dropout_rate=dropout_rate, dim_out=last)

    def forward_features(self, x):
        check_clip(x.shape, self.in_channels, self.min_thw, "e3d_mobilenetv2")
        return self.features(x)

    def feature_flops(self, shape: Shape) -> Tuple[int, Shape]:
        total, shape = stem_cost(shape, self.stem_dim)
        blocks, shape = chain_flops(self.features.cell_list[1:-1], shape)
        last, shape = conv_cost(shape, self.dim_out, 1)
        return total + blocks + last, shape


@register_model(E3D_CFG, record_updates=test_view_of)
def e3d_mobilenetv2(*, width_mult: float = 1.0, num_classes: int = 600, num_frames: int = 16,
                    crop_size: int = 112, dropout_rate: float = 0.2, in_channels: int = 3,
                    drop_path_rate: float = 0.0) -> MobileNetV2_3D:
    """3D MobileNetV2 (paper widths 0.2/0.45/0.7/1.0x; any positive ``width_mult`` builds).
    ``drop_path_rate`` (not in the reference): stochastic depth on the blocks with a shortcut."""
    check_width(width_mult, "e3d_mobilenetv2")
    check_dropout(dropout_rate)
    check_dropout(drop_path_rate, "model.drop_path_rate")
    check_channels(width_mult, min(int(32 * width_mult), int(16 * width_mult)), "e3d_mobilenetv2")
    kwargs = dict(width_mult=width_mult, num_classes=num_classes, num_frames=num_frames, crop_size=crop_size,
                  dropout_rate=dropout_rate, in_channels=in_channels)
    return attach_pretrained_cfg(MobileNetV2_3D(**kwargs, drop_path_rate=drop_path_rate), "e3d_mobilenetv2", kwargs)


__all__ = ["MobileNetV2_3D", "InvertedResidual", "e3d_mobilenetv2"]
