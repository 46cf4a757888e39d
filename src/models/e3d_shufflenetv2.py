"""3D ShuffleNetV2 of Köpüklü et al. 2019 ("Resource Efficient 3D CNNs"), as okankop/Efficient-3DCNNs
builds it.

Data flow at 1.0x (16 x 112 x 112 clip; "/2" strides T, H and W)::

    clip (N, 3, 16, 112, 112)
      -> conv1         conv 3x3x3 stride (1,2,2) (3->24) -> BN -> ReLU             (N, 24, 16, 56, 56)
      -> maxpool       3x3x3 /2, pad 1                                              (N, 24, 8, 28, 28)
      -> features.0-3  4 blocks, first /2                                           (N, 116, 4, 14, 14)
      -> features.4-11 8 blocks, first /2                                           (N, 232, 2, 7, 7)
      -> features.12-15 4 blocks, first /2                                          (N, 464, 1, 4, 4)
      -> conv_last     1x1x1 (->1024) -> BN -> ReLU                                 (N, 1024, 1, 4, 4)
      == forward_features ==
      -> global average over T x H x W -> classifier.0 Dropout(0.2) -> classifier.1 Dense (1024 -> classes)

Block (out channels, half = out / 2). Branch A ``banch2`` (sic, the reference's key):
pw -> BN -> ReLU -> dw 3x3x3 (stride) -> BN -> pw -> BN -> ReLU (indices 0,1,2,3,4,5,6,7).
Stride 1: concat(first half of the channels unchanged, A(second half)). Stride 2: concat(B(x), A(x))
with B ``banch1`` = dw 3x3x3 /2 -> BN -> pw (in -> half) -> BN -> ReLU (indices 0..4). Then a
channel shuffle with 2 groups.

Stage widths (stem 24 always): 0.25x 32/64/128, last 1024 | 0.5x 48/96/192, 1024 | 1.0x 116/232/464, 1024 |
1.5x 176/352/704, 1024 | 2.0x 224/488/976, 2048. No other width exists. Init: PyTorch defaults.

FLOPs (``flops()``): conv + classifier multiply-adds + 2 per BN output element (1.0x: 191.73 M). The
paper's 195 MFLOPs (thop) adds ReLU outputs, the max pool and the Linear as 2*in-1 per output.
"""
from __future__ import annotations

from typing import Dict, List, Tuple

from mindspore import nn, ops

from ..errors import UserError
from .base import attach_pretrained_cfg, register_model
from .e3d_common import (test_view_of, E3D_CFG, IndexedSequential, LightE3D, MaxPool3d, Shape, chain_flops, channel_shuffle,
                         check_clip, check_dropout, conv3d, conv_bn_act, conv_cost, depthwise3d, stem_cost)
from .layers import BatchNorm3d

SHUFFLENETV2_WIDTHS: Dict[float, Tuple[int, int, int, int]] = {
    0.25: (32, 64, 128, 1024), 0.5: (48, 96, 192, 1024), 1.0: (116, 232, 464, 1024),
    1.5: (176, 352, 704, 1024), 2.0: (224, 488, 976, 2048)}
SHUFFLENETV2_BLOCKS = (4, 8, 4)
STEM_WIDTH = 24


class ShuffleV2Block(nn.Cell):
    """``banch2`` on half the channels (stride 1) or on all with ``banch1`` beside it (stride 2);
    concat, then shuffle with 2 groups."""

    def __init__(self, dim_in: int, dim_out: int, stride: int) -> None:
        super().__init__()
        half = dim_out // 2
        a_in = half if stride == 1 else dim_in
        self.banch2 = IndexedSequential([conv3d(a_in, half, 1), BatchNorm3d(half), nn.ReLU(),
                                         depthwise3d(half, stride=stride), BatchNorm3d(half),
                                         conv3d(half, half, 1), BatchNorm3d(half), nn.ReLU()])
        self.banch2.conv_bn_pairs = (("0", "1"), ("3", "4"), ("5", "6"))
        if stride == 2:
            self.banch1 = IndexedSequential([depthwise3d(dim_in, stride=stride), BatchNorm3d(dim_in),
                                             conv3d(dim_in, half, 1), BatchNorm3d(half), nn.ReLU()])
            self.banch1.conv_bn_pairs = (("0", "1"), ("2", "3"))
        self.stride, self.half, self.dims = stride, half, (dim_in, dim_out)

    def construct(self, x):
        if self.stride == 1:
            keep = x[:, :self.half]
            out = ops.cat((keep, self.banch2(x[:, self.half:])), axis=1)
        else:
            out = ops.cat((self.banch1(x), self.banch2(x)), axis=1)
        return channel_shuffle(out, 2)

    def flops(self, shape: Shape) -> Tuple[int, Shape]:
        dim_in, dim_out = self.dims
        half, s = self.half, self.stride
        a_in = shape if s == 2 else (half,) + tuple(shape[1:])
        a, out = conv_cost(a_in, half, 1)  # type: ignore[arg-type]
        b, out = conv_cost(out, half, 3, s, groups=half)
        c, out = conv_cost(out, half, 1)
        total = a + b + c
        if s == 2:
            d, mid = conv_cost(shape, dim_in, 3, s, groups=dim_in)
            e, _ = conv_cost(mid, half, 1)
            total += d + e
        return total, (dim_out,) + tuple(out[1:])  # type: ignore[return-value]


class ShuffleNetV2_3D(LightE3D):
    """conv1 -> maxpool -> ``features`` (16 blocks) -> conv_last -> global average -> ``classifier``."""

    def __init__(self, *, width_mult: float = 1.0, num_classes: int = 600, num_frames: int = 16,
                 crop_size: int = 112, dropout_rate: float = 0.2, in_channels: int = 3) -> None:
        super().__init__()
        widths = SHUFFLENETV2_WIDTHS[width_mult]
        self.conv1 = conv_bn_act(in_channels, STEM_WIDTH, 3, stride=(1, 2, 2))
        self.maxpool = MaxPool3d(3, 2, 1)
        blocks: List[nn.Cell] = []
        dim = STEM_WIDTH
        for dim_out, n in zip(widths[:3], SHUFFLENETV2_BLOCKS):
            for i in range(n):
                blocks.append(ShuffleV2Block(dim, dim_out, 2 if i == 0 else 1))
                dim = dim_out
        self.features = IndexedSequential(blocks)
        self.conv_last = conv_bn_act(dim, widths[3], 1)
        self.last_in = dim
        self._setup(num_classes=num_classes, num_frames=num_frames, crop_size=crop_size,
                    in_channels=in_channels, dropout_rate=dropout_rate, dim_out=widths[3])

    def forward_features(self, x):
        check_clip(x.shape, self.in_channels, self.min_thw, "e3d_shufflenetv2")
        x = self.maxpool(self.conv1(x))
        return self.conv_last(self.features(x))

    def feature_flops(self, shape: Shape) -> Tuple[int, Shape]:
        total, shape = stem_cost(shape, STEM_WIDTH)
        blocks, shape = chain_flops(self.features.cell_list, self.maxpool.out_shape(shape))
        last, shape = conv_cost(shape, self.dim_out, 1)
        return total + blocks + last, shape


@register_model(E3D_CFG, record_updates=test_view_of)
def e3d_shufflenetv2(*, width_mult: float = 1.0, num_classes: int = 600, num_frames: int = 16,
                     crop_size: int = 112, dropout_rate: float = 0.2, in_channels: int = 3) -> ShuffleNetV2_3D:
    """3D ShuffleNetV2 (``width_mult`` one of 0.25, 0.5, 1.0, 1.5, 2.0)."""
    if isinstance(width_mult, bool) or not isinstance(width_mult, (int, float)) \
            or width_mult not in SHUFFLENETV2_WIDTHS:
        raise UserError(f"model.width_mult: e3d_shufflenetv2 expects one of 0.25, 0.5, 1.0, 1.5, 2.0, "
                        f"got {width_mult!r}")
    check_dropout(dropout_rate)
    kwargs = dict(width_mult=float(width_mult), num_classes=num_classes, num_frames=num_frames,
                  crop_size=crop_size, dropout_rate=dropout_rate, in_channels=in_channels)
    return attach_pretrained_cfg(ShuffleNetV2_3D(**kwargs), "e3d_shufflenetv2", kwargs)


__all__ = ["ShuffleNetV2_3D", "ShuffleV2Block", "e3d_shufflenetv2", "SHUFFLENETV2_WIDTHS"]
