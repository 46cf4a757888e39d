"""3D ResNet and ResNeXt of Efficient-3DCNNs (Köpüklü et al. 2019; Hara et al.'s 3D ResNets), in MindSpore.

Data flow at 16 x 112 x 112 (e = block expansion: 1 Basic (depth 10/18/34), 4 Bottleneck
(50/101/152/200), ResNeXt: 2 on planes 128..1024, so outputs 256..2048)::

    clip (N, 3, 16, 112, 112)
      -> conv1 7x7x7 s(1,2,2) p3 (3->64) -> bn1 -> ReLU          (N, 64, 16, 56, 56)
      -> maxpool 3x3x3 s2 p1                                    (N, 64, 8, 28, 28)
      -> layer1  (stride 1)                                     (N, 64e, 8, 28, 28)    ResNeXt 256
      -> layer2  (first block 3x3x3 s2: T, H, W halve)          (N, 128e, 4, 14, 14)   ResNeXt 512
      -> layer3                                                 (N, 256e, 2, 7, 7)     ResNeXt 1024
      -> layer4                                                 (N, 512e, 1, 4, 4)     ResNeXt 2048
      == forward_features ==
      -> avgpool (ceil(T/16), ceil(S/32), ceil(S/32)) = (1, 4, 4), stride 1   (N, 512e, 1, 1, 1)
      -> flatten -> fc                                          (N, classes)

Blocks: Basic = conv1 3x3x3 (stride) BN ReLU -> conv2 3x3x3 BN; Bottleneck = conv1 1x1x1 BN ReLU ->
conv2 3x3x3 (stride; ResNeXt: groups = cardinality, mid = cardinality * int(planes / 32)) BN ReLU
-> conv3 1x1x1 BN; then relu(branch + shortcut). A shortcut is needed when the stride is not 1 or
the channels change: ``A`` has no parameters (every s-th element in T/H/W, zero channels appended,
no gradient along it, as the reference's ``.data``); ``B`` is ``downsample.0`` conv 1x1x1 (stride)
+ ``downsample.1`` BN.

Parameter names mirror the reference's state_dict keys (``conv1.weight``, ``bn1.gamma``,
``layer2.0.downsample.0.weight``, ``fc.weight``), so a checkpoint converts by renaming BN leaves
only (``src.models.state_map``). The pooling window is fixed at build time from ``num_frames`` and
``crop_size`` as in the reference; a larger clip gives several pooled positions, whose fc outputs
are averaged (the reference would fail there); a clip whose final map is smaller than the window
fails, as in the reference.
"""
from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

from mindspore import nn, ops
from mindspore.common.initializer import HeUniform, Uniform

from .base import FlopsSequential, VideoClassifier, attach_pretrained_cfg, register_model
from .e3d_common import (test_view_of, BN_OPS, E3D_CFG, FixedAvgPool, IndexedSequential, MaxPool3d, Shape, check_choice,
                         check_dropout, check_positive_int, check_sizes)
from .layers import BatchNorm3d, Conv3d, DropPath, conv_out_size, drop_path_rates

# FLOPs = multiply-adds of convolutions and linear layers + 2 per BatchNorm output element (BN_OPS, the
# convention of x3d.py). The paper's MFLOPs (thop, batch 1) also count ReLU, pools, additions and
# Linear as 2*in-1, so they are 0.2-0.4% higher. At 16x112 (ours vs paper, MFLOPs): ResNet-18 A
# 8307 vs 8323, ResNet-50 A 9809 vs 9835, ResNet-101 A 13635 vs 13664, ResNeXt-101 9618 vs 9652.

BLOCKS = {10: (1, 1, 1, 1), 18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3),
          152: (3, 8, 36, 3), 200: (3, 24, 36, 3)}
RESNEXT_DEPTHS = (50, 101, 152)
SHORTCUTS = ("A", "B")


# ----------------------------------------------------------------------------- blocks
class ShortcutA(nn.Cell):
    """Parameter-free shortcut: every ``stride``-th element in T/H/W, zero channels appended up to
    ``planes``. ``stop_gradient``: like the reference's ``.data``, nothing flows back along it.
    Built from the known channel counts, so the graph has no shape-dependent Python."""

    def __init__(self, inplanes: int, planes: int, stride: int) -> None:
        super().__init__()
        if planes < inplanes:
            raise ValueError(f"ShortcutA cannot shrink {inplanes} channels to {planes}")
        self.inplanes, self.planes, self.stride = inplanes, planes, stride
        self.channel_pad = (0, 0, 0, 0, 0, 0, 0, planes - inplanes)  # (W, H, T, C) pairs, last dim first

    def construct(self, x):
        s = self.stride
        if s > 1:
            x = x[:, :, ::s, ::s, ::s]
        x = ops.stop_gradient(x)
        if self.planes > self.inplanes:
            x = ops.pad(x, self.channel_pad)
        return x


def dense_torch_default(dim_in: int, dim_out: int) -> nn.Dense:
    """``nn.Dense`` initialised as torch's ``nn.Linear`` (U(+-1/sqrt(in)) for weight and bias)."""
    return nn.Dense(dim_in, dim_out, weight_init=HeUniform(negative_slope=math.sqrt(5)),
                    bias_init=Uniform(1.0 / math.sqrt(dim_in)))


class BasicBlock(nn.Cell):
    """conv1 3x3x3 (stride) -> bn1 -> ReLU -> conv2 3x3x3 -> bn2; + shortcut; ReLU."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, *, stride: int = 1, downsample: Optional[nn.Cell] = None,
                 drop_path_rate: float = 0.0) -> None:
        super().__init__()
        _set_drop_path(self, drop_path_rate)
        self.conv1 = Conv3d(inplanes, planes, 3, stride=stride, padding=1)
        self.bn1 = BatchNorm3d(planes)
        self.conv2 = Conv3d(planes, planes, 3, padding=1)
        self.bn2 = BatchNorm3d(planes)
        self.relu = nn.ReLU()
        self.has_downsample = downsample is not None
        if self.has_downsample:
            self.downsample = downsample
        self.dims = (inplanes, planes, stride)
        self.conv_bn_pairs = (("conv1", "bn1"), ("conv2", "bn2"))

    def construct(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.use_drop_path:
            out = self.drop_path(out)
        residual = self.downsample(x) if self.has_downsample else x
        return self.relu(out + residual)

    def flops(self, shape: Shape) -> Tuple[int, Shape]:
        cin, planes, s = self.dims
        _, t, h, w = shape
        to, ho, wo = conv_out_size(t, 3, s, 1), conv_out_size(h, 3, s, 1), conv_out_size(w, 3, s, 1)
        n = planes * to * ho * wo
        macs = n * cin * 27 + n * planes * 27 + 2 * BN_OPS * n
        return macs + _downsample_flops(self, n), (planes, to, ho, wo)


class Bottleneck(nn.Cell):
    """conv1 1x1x1 -> bn1 -> ReLU -> conv2 3x3x3 (stride, groups) -> bn2 -> ReLU -> conv3 1x1x1 -> bn3;
    + shortcut; ReLU. ResNet: mid = planes, out = 4 planes. ResNeXt: mid = cardinality * int(planes / 32),
    groups = cardinality, out = 2 planes."""

    def __init__(self, inplanes: int, planes: int, *, stride: int = 1, downsample: Optional[nn.Cell] = None,
                 cardinality: int = 0, drop_path_rate: float = 0.0) -> None:
        super().__init__()
        _set_drop_path(self, drop_path_rate)
        self.expansion = 2 if cardinality else 4
        mid = cardinality * int(planes / 32) if cardinality else planes
        out = planes * self.expansion
        groups = cardinality or 1
        self.conv1 = Conv3d(inplanes, mid, 1)
        self.bn1 = BatchNorm3d(mid)
        self.conv2 = Conv3d(mid, mid, 3, stride=stride, padding=1, groups=groups)
        self.bn2 = BatchNorm3d(mid)
        self.conv3 = Conv3d(mid, out, 1)
        self.bn3 = BatchNorm3d(out)
        self.relu = nn.ReLU()
        self.has_downsample = downsample is not None
        if self.has_downsample:
            self.downsample = downsample
        self.dims = (inplanes, mid, out, stride, groups)
        self.conv_bn_pairs = (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"))

    def construct(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        if self.use_drop_path:
            y = self.drop_path(y)
        residual = self.downsample(x) if self.has_downsample else x
        return self.relu(y + residual)

    def flops(self, shape: Shape) -> Tuple[int, Shape]:
        cin, mid, out, s, groups = self.dims
        _, t, h, w = shape
        to, ho, wo = conv_out_size(t, 3, s, 1), conv_out_size(h, 3, s, 1), conv_out_size(w, 3, s, 1)
        n1, n2, n3 = mid * t * h * w, mid * to * ho * wo, out * to * ho * wo
        macs = n1 * cin + n2 * (mid // groups) * 27 + n3 * mid + BN_OPS * (n1 + n2 + n3)
        return macs + _downsample_flops(self, n3), (out, to, ho, wo)


def _set_drop_path(block: nn.Cell, rate: float) -> None:
    """Stochastic depth on the block's residual branch (every block, shortcut A or B as well as
    identity, as timm's ResNet); rate 0 builds no random op, so the block is as before."""
    block.use_drop_path = rate > 0
    if block.use_drop_path:
        block.drop_path = DropPath(rate)


def _downsample_flops(block: nn.Cell, n_out: int) -> int:
    """Shortcut B: 1x1x1 conv (in MACs per output) + BN; shortcut A and identity: 0."""
    if block.has_downsample and isinstance(block.downsample, IndexedSequential):
        return n_out * (block.dims[0] + BN_OPS)
    return 0


class ResLayer(FlopsSequential):
    """``layerN``: blocks ``0..n-1``; block 0 carries the stride and the shortcut."""


# ----------------------------------------------------------------------------- network
class ResNet3D(VideoClassifier):
    """conv1 -> bn1 -> ReLU -> maxpool -> layer1..4 (``forward_features``) -> avgpool -> fc."""

    def __init__(self, *, depth: int, shortcut: str, cardinality: int = 0, num_classes: int = 600,
                 num_frames: int = 16, crop_size: int = 112, in_channels: int = 3,
                 zero_init_residual: bool = False, drop_path_rate: float = 0.0) -> None:
        super().__init__()
        rates = drop_path_rates(drop_path_rate, sum(BLOCKS[depth]))  # linear over every block
        bottleneck = depth >= 50
        widths = (128, 256, 512, 1024) if cardinality else (64, 128, 256, 512)
        expansion = (2 if cardinality else 4) if bottleneck else 1
        self.conv1 = Conv3d(in_channels, 64, 7, stride=(1, 2, 2), padding=3)
        self.bn1 = BatchNorm3d(64)
        self.relu = nn.ReLU()
        self.maxpool = MaxPool3d(3, 2, 1)
        inplanes = 64
        layers: List[ResLayer] = []
        for i, (planes, n_blocks) in enumerate(zip(widths, BLOCKS[depth])):
            stride = 1 if i == 0 else 2
            out = planes * expansion
            downsample = None
            if stride != 1 or inplanes != out:
                if shortcut == "A":
                    downsample = ShortcutA(inplanes, out, stride)
                else:
                    downsample = IndexedSequential([Conv3d(inplanes, out, 1, stride=stride), BatchNorm3d(out)])
                    downsample.conv_bn_pairs = (("0", "1"),)
            blocks = []
            for j in range(n_blocks):
                kw = dict(stride=stride if j == 0 else 1, downsample=downsample if j == 0 else None,
                          drop_path_rate=rates.pop(0))
                if bottleneck:
                    blocks.append(Bottleneck(inplanes if j == 0 else out, planes, cardinality=cardinality, **kw))
                else:
                    blocks.append(BasicBlock(inplanes if j == 0 else out, planes, **kw))
            if zero_init_residual:  # each residual branch starts as zero: the block is its shortcut
                for block in blocks:
                    last_bn = block.bn3 if bottleneck else block.bn2
                    last_bn.gamma.set_data(ops.zeros_like(last_bn.gamma))
            layers.append(ResLayer(blocks))
            inplanes = out
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.num_features = inplanes
        self.fc = dense_torch_default(inplanes, num_classes)
        self.avgpool = FixedAvgPool.for_clip(num_frames, crop_size)
        self.num_frames, self.crop_size, self.in_channels = num_frames, crop_size, in_channels
        self._num_classes = num_classes
        self.conv_bn_pairs = (("conv1", "bn1"),)

    def forward_features(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.layer4(x)

    def forward_head(self, x):
        return self.fc(self.avgpool(x))  # fc is linear: pooled positions averaged before = after

    def get_classifier(self) -> nn.Cell:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        check_positive_int("model.num_classes", num_classes)
        self.fc = dense_torch_default(self.num_features, num_classes)
        self._num_classes = num_classes

    def flops(self, shape: Optional[Sequence[int]] = None) -> int:
        """Multiply-adds of one clip (C, T, H, W) (default: the train clip): conv/linear MACs + 2 per
        BN output element. The paper's MFLOPs (thop) add ReLU, pools and additions: ResNet-18 A
        8.307 G here vs 8.323 G there."""
        c, t, h, w = tuple(shape) if shape is not None else self.default_input_shape()
        t1, h1, w1 = conv_out_size(t, 7, 1, 3), conv_out_size(h, 7, 2, 3), conv_out_size(w, 7, 2, 3)
        n = 64 * t1 * h1 * w1
        total = n * c * 343 + BN_OPS * n
        s = self.maxpool.out_shape((64, t1, h1, w1))
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            macs, s = layer.flops(s)
            total += macs
        # pooled positions are averaged before fc (equal to averaging fc outputs): one fc per clip
        return total + self.num_features * self._num_classes

    def default_input_shape(self) -> Tuple[int, int, int, int]:
        return (self.in_channels, self.num_frames, self.crop_size, self.crop_size)


@register_model(E3D_CFG, record_updates=test_view_of)
def e3d_resnet(*, depth: int = 18, shortcut: str = "A", num_classes: int = 600, num_frames: int = 16,
               crop_size: int = 112, in_channels: int = 3, zero_init_residual: bool = False,
               drop_path_rate: float = 0.0) -> ResNet3D:
    """3D ResNet-``depth`` (10/18/34 basic, 50/101/152/200 bottleneck) with shortcut ``A``
    (parameter-free, as the paper's FLOPs) or ``B`` (conv + BN, as the published training runs).

    ``zero_init_residual`` (not in the reference; torchvision's option of that name): the last
    BatchNorm of every block starts with gamma 0, so training from scratch starts from the
    shortcuts alone (what lets the deep bottleneck networks learn the small demo at batch 8).
    ``drop_path_rate`` (not in the reference): stochastic depth, linear over all blocks; 0 = off."""
    check_choice("model.depth", depth, tuple(BLOCKS))
    check_choice("model.shortcut", shortcut, SHORTCUTS)
    check_sizes(num_classes, num_frames, crop_size, in_channels)
    check_dropout(drop_path_rate, "model.drop_path_rate")
    net = ResNet3D(depth=depth, shortcut=shortcut, num_classes=num_classes, num_frames=num_frames,
                   crop_size=crop_size, in_channels=in_channels, zero_init_residual=zero_init_residual,
                   drop_path_rate=drop_path_rate)
    net.arch = f"e3d_resnet (depth={depth}, shortcut={shortcut})"
    return attach_pretrained_cfg(net, "e3d_resnet", dict(num_classes=num_classes, num_frames=num_frames,
                                                         crop_size=crop_size))


@register_model(E3D_CFG, record_updates=test_view_of)
def e3d_resnext(*, depth: int = 101, cardinality: int = 32, shortcut: str = "B", num_classes: int = 600,
                num_frames: int = 16, crop_size: int = 112, in_channels: int = 3,
                zero_init_residual: bool = False, drop_path_rate: float = 0.0) -> ResNet3D:
    """3D ResNeXt-``depth`` (50/101/152), grouped 3x3x3 with ``cardinality`` groups, shortcut B
    (``zero_init_residual``, ``drop_path_rate``: as for :func:`e3d_resnet`).

    The reference sizes fc as cardinality * 64 inputs, which equals layer4's 2048 channels only at
    cardinality 32 (the only value it can run); here fc takes layer4's channels."""
    check_choice("model.depth", depth, RESNEXT_DEPTHS)
    check_choice("model.shortcut", shortcut, SHORTCUTS)
    check_positive_int("model.cardinality", cardinality)
    check_sizes(num_classes, num_frames, crop_size, in_channels)
    check_dropout(drop_path_rate, "model.drop_path_rate")
    net = ResNet3D(depth=depth, shortcut=shortcut, cardinality=cardinality, num_classes=num_classes,
                   num_frames=num_frames, crop_size=crop_size, in_channels=in_channels,
                   zero_init_residual=zero_init_residual, drop_path_rate=drop_path_rate)
    net.arch = f"e3d_resnext (depth={depth}, cardinality={cardinality}, shortcut={shortcut})"
    return attach_pretrained_cfg(net, "e3d_resnext", dict(num_classes=num_classes, num_frames=num_frames,
                                                          crop_size=crop_size))


__all__ = ["ResNet3D", "BasicBlock", "Bottleneck", "ShortcutA", "e3d_resnet", "e3d_resnext"]
