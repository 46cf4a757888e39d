"""3D ShuffleNet (v1) of Köpüklü et al. 2019 ("Resource Efficient 3D CNNs"), as okankop/Efficient-3DCNNs
builds it (paper: groups g = 3).

Data flow at 1.0x, g = 3 (16 x 112 x 112 clip; "/2" strides T, H and W)::

    clip (N, 3, 16, 112, 112)
      -> conv1    conv 3x3x3 stride (1,2,2) (3->24) -> BN -> ReLU                  (N, 24, 16, 56, 56)
      -> maxpool  3x3x3 /2, pad 1                                                   (N, 24, 8, 28, 28)
      -> layer1   4 bottlenecks, first /2                                           (N, 240, 4, 14, 14)
      -> layer2   8 bottlenecks, first /2                                           (N, 480, 2, 7, 7)
      -> layer3   4 bottlenecks, first /2                                           (N, 960, 1, 4, 4)
      == forward_features ==
      -> global average over T x H x W -> classifier.0 Dropout(0.2) -> classifier.1 Dense (960 -> classes)

Bottleneck(in, out), mid = out // 4 (``conv1, bn1, conv2, bn2, conv3, bn3``):
conv1 1x1x1 in->mid (groups 1 if in == 24 else g) -> BN -> ReLU -> channel shuffle (g groups) ->
conv2 3x3x3 depthwise (stride) -> BN -> conv3 1x1x1 (groups g) to out (stride 1) or out - in
(stride 2) -> BN. Stride 1: ReLU(branch + x). Stride 2: ReLU(concat[branch, AvgPool3d(k (2,3,3),
s 2, pad (0,1,1), zeros counted)(x)]). So conv1 is ungrouped only where the input has 24 channels:
layer1.0 at 1.0x; at 0.5/1.5/2.0x (stem 12/36/48) layer1.0.conv1 IS grouped (as the paper's counts).

Stage widths (stem, layer1..3) per g, each ``int(x * width_mult)``: g1 24/144/288/567, g2 24/200/400/800,
g3 24/240/480/960, g4 24/272/544/1088, g8 24/384/768/1536. Init: PyTorch defaults.

Clip length: the stride-2 shortcut pool has a temporal kernel of 2 without padding, so its output
length (floor(T/2)) matches the branch's (ceil(T/2)) only for even T: the length after the max pool,
ceil(T/2), must be a multiple of 8 (T = 15, 16, 31, 32, ...; the reference fails otherwise too).
Spatially, torch's AvgPool3d also wants the unpadded input >= its 3x3 kernel (H, W >= 3 before layer3,
so crops >= 33); MindSpore's pool accepts 2x2 (zero padding counted), so a 32 crop runs here but
has no reference output to compare with.

FLOPs (``flops()``): conv + classifier multiply-adds + 2 per BN output element (1.0x g3: 194.45 M). The
paper's 199 MFLOPs (thop) adds ReLU outputs, both pools and the Linear as 2*in-1 per output.
"""
from __future__ import annotations

from typing import Dict, List, Tuple

import mindspore as ms
from mindspore import nn, ops

from ..errors import UserError
from .base import attach_pretrained_cfg, register_model
from .e3d_common import (test_view_of, E3D_CFG, IndexedSequential, LightE3D, MaxPool3d, Shape, chain_flops, channel_shuffle,
                         check_dropout, check_width, conv3d, conv_bn_act, conv_cost, depthwise3d, stem_cost)
from .layers import BatchNorm3d, DropPath, drop_path_rates

SHUFFLENET_WIDTHS: Dict[int, Tuple[int, int, int, int]] = {
    1: (24, 144, 288, 567), 2: (24, 200, 400, 800), 3: (24, 240, 480, 960),
    4: (24, 272, 544, 1088), 8: (24, 384, 768, 1536)}
SHUFFLENET_BLOCKS = (4, 8, 4)


def shufflenet_plan(width_mult: float, groups: int) -> List[List[Tuple[int, int, int]]]:
    """Per layer the (in, out, stride) of each bottleneck; raises UserError when the channel
    counts do not divide by the groups (the reference would fail in its convolutions)."""
    check_width(width_mult, "e3d_shufflenet")
    if groups not in SHUFFLENET_WIDTHS:
        raise UserError(f"model.groups: e3d_shufflenet expects one of 1, 2, 3, 4, 8, got {groups!r}")
    widths = [int(c * width_mult) for c in SHUFFLENET_WIDTHS[groups]]
    plan, dim_in = [], widths[0]
    for dim_out, n in zip(widths[1:], SHUFFLENET_BLOCKS):
        layer = []
        for i in range(n):
            stride = 2 if i == 0 else 1
            mid, branch_out = dim_out // 4, dim_out - dim_in if stride == 2 else dim_out
            g1 = 1 if dim_in == 24 else groups
            if min(widths[0], mid, branch_out) < 1 or dim_in % g1 or mid % groups or branch_out % groups:
                raise UserError(f"model.width_mult: {width_mult} with groups={groups} gives a bottleneck "
                                f"{dim_in}->{dim_out} (mid {mid}) whose channels do not divide by the groups")
            layer.append((dim_in, dim_out, stride))
            dim_in = dim_out
        plan.append(layer)
    return plan


class ShuffleBottleneck(nn.Cell):
    """conv1 (grouped 1x1x1) BN ReLU shuffle -> conv2 (dw 3x3x3) BN -> conv3 (grouped 1x1x1) BN,
    then ReLU(+ x) or, when striding, ReLU(concat[branch, avg-pooled x])."""

    def __init__(self, dim_in: int, dim_out: int, stride: int, groups: int, drop_path_rate: float = 0.0) -> None:
        super().__init__()
        mid = dim_out // 4
        # stochastic depth only where the branch is summed with x (stride 1): dropping the branch of a
        # stride-2 block would zero its new channels, not skip the block
        self.use_drop_path = stride == 1 and drop_path_rate > 0
        if self.use_drop_path:
            self.drop_path = DropPath(drop_path_rate)
        branch_out = dim_out - dim_in if stride == 2 else dim_out
        g1 = 1 if dim_in == 24 else groups
        self.conv1 = conv3d(dim_in, mid, 1, groups=g1)
        self.bn1 = BatchNorm3d(mid)
        self.conv2 = depthwise3d(mid, stride=stride)
        self.bn2 = BatchNorm3d(mid)
        self.conv3 = conv3d(mid, branch_out, 1, groups=groups)
        self.bn3 = BatchNorm3d(branch_out)
        self.relu = nn.ReLU()
        self.stride, self.groups = stride, groups
        if stride == 2:  # count_include_pad: the zero padding counts in the mean, as torch's default
            self.shortcut = ops.AvgPool3D(kernel_size=(2, 3, 3), strides=2, pad_mode="pad",
                                          pad=(0, 0, 1, 1, 1, 1), count_include_pad=True)
        self.dims = (dim_in, mid, branch_out, g1)
        self.conv_bn_pairs = (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"))

    def construct(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = channel_shuffle(out, self.groups)
        out = self.bn3(self.conv3(self.bn2(self.conv2(out))))
        if self.stride == 2:
            return self.relu(ops.cat((out, self.shortcut(x)), axis=1))
        if self.use_drop_path:
            out = self.drop_path(out)
        return self.relu(out + x)

    def flops(self, shape: Shape) -> Tuple[int, Shape]:
        dim_in, mid, branch_out, g1 = self.dims
        a, out = conv_cost(shape, mid, 1, groups=g1)
        b, out = conv_cost(out, mid, 3, self.stride, groups=mid)
        c, out = conv_cost(out, branch_out, 1, groups=self.groups)
        channels = branch_out + (dim_in if self.stride == 2 else 0)
        return a + b + c, (channels,) + tuple(out[1:])  # type: ignore[return-value]


@ms.constexpr
def _check_clip(shape, in_channels):
    if len(shape) != 5 or shape[1] != in_channels:
        raise ValueError(f"e3d_shufflenet expects clips of shape (N, {in_channels}, T, H, W), got {tuple(shape)}")
    if ((shape[2] + 1) // 2) % 8:
        raise ValueError(f"e3d_shufflenet needs ceil(T / 2) to be a multiple of 8 (T = 15, 16, 31, 32, ...: "
                         f"the stride-2 shortcut pools need even lengths), got T = {shape[2]}")


class ShuffleNet3D(LightE3D):
    """conv1 -> maxpool -> layer1..3 -> global average -> ``classifier``."""

    def __init__(self, *, width_mult: float = 1.0, groups: int = 3, num_classes: int = 600,
                 num_frames: int = 16, crop_size: int = 112, dropout_rate: float = 0.2,
                 in_channels: int = 3, drop_path_rate: float = 0.0) -> None:
        super().__init__()
        plan = shufflenet_plan(width_mult, groups)
        stem = plan[0][0][0]
        self.conv1 = conv_bn_act(in_channels, stem, 3, stride=(1, 2, 2))
        self.maxpool = MaxPool3d(3, 2, 1)
        # stochastic depth: linear over the stride-1 (summed) blocks of the three layers
        rates = drop_path_rates(drop_path_rate, sum(1 for layer in plan for _, _, s in layer if s == 1))
        self.layer1, self.layer2, self.layer3 = (
            IndexedSequential([ShuffleBottleneck(i, o, s, groups, rates.pop(0) if s == 1 else 0.0)
                               for i, o, s in layer]) for layer in plan)
        self.stem_dim, self.groups = stem, groups
        self._setup(num_classes=num_classes, num_frames=num_frames, crop_size=crop_size,
                    in_channels=in_channels, dropout_rate=dropout_rate, dim_out=plan[-1][-1][1])

    def forward_features(self, x):
        _check_clip(x.shape, self.in_channels)
        x = self.maxpool(self.conv1(x))
        return self.layer3(self.layer2(self.layer1(x)))

    def feature_flops(self, shape: Shape) -> Tuple[int, Shape]:
        total, shape = stem_cost(shape, self.stem_dim)
        blocks = [block for layer in (self.layer1, self.layer2, self.layer3) for block in layer.cell_list]
        macs, shape = chain_flops(blocks, self.maxpool.out_shape(shape))
        return total + macs, shape


@register_model(E3D_CFG, record_updates=test_view_of)
def e3d_shufflenet(*, width_mult: float = 1.0, groups: int = 3, num_classes: int = 600, num_frames: int = 16,
                   crop_size: int = 112, dropout_rate: float = 0.2, in_channels: int = 3,
                   drop_path_rate: float = 0.0) -> ShuffleNet3D:
    """3D ShuffleNet v1 (paper: groups 3, widths 0.5/1.0/1.5/2.0x; groups 1, 2, 4, 8 also build).
    ``drop_path_rate`` (not in the reference): stochastic depth on the stride-1 blocks."""
    check_dropout(dropout_rate)
    check_dropout(drop_path_rate, "model.drop_path_rate")
    shufflenet_plan(width_mult, groups)  # one-line UserError for bad width/groups before building
    if ((num_frames + 1) // 2) % 8:
        raise UserError(f"model.num_frames: e3d_shufflenet needs ceil(num_frames / 2) to be a multiple of 8 "
                        f"(15, 16, 31, 32, ...), got {num_frames}")
    kwargs = dict(width_mult=width_mult, groups=groups, num_classes=num_classes, num_frames=num_frames,
                  crop_size=crop_size, dropout_rate=dropout_rate, in_channels=in_channels)
    return attach_pretrained_cfg(ShuffleNet3D(**kwargs, drop_path_rate=drop_path_rate), "e3d_shufflenet", kwargs)


__all__ = ["ShuffleNet3D", "ShuffleBottleneck", "e3d_shufflenet", "shufflenet_plan", "SHUFFLENET_WIDTHS"]
