"""3D MobileNet (v1) of Köpüklü et al. 2019 ("Resource Efficient 3D CNNs"), as okankop/Efficient-3DCNNs
builds it (the pieces the family files share are in ``e3d_common.py``).

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

from typing import List, Tuple

from mindspore import nn

from .base import attach_pretrained_cfg, register_model
from .e3d_common import (test_view_of, E3D_CFG, IndexedSequential, LightE3D, Shape, chain_flops, check_channels, check_clip,
                         check_dropout, check_width, conv3d, conv_bn_act, conv_cost, depthwise3d, stem_cost)
from .layers import BatchNorm3d


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
        self.features = IndexedSequential(cells)
        self.stem_dim = cells[0][0].dim_out
        self._setup(num_classes=num_classes, num_frames=num_frames, crop_size=crop_size,
                    in_channels=in_channels, dropout_rate=dropout_rate, dim_out=dim)

    def forward_features(self, x):
        check_clip(x.shape, self.in_channels, self.min_thw, "e3d_mobilenet")
        return self.features(x)

    def feature_flops(self, shape: Shape) -> Tuple[int, Shape]:
        total, shape = stem_cost(shape, self.stem_dim)
        macs, shape = chain_flops(self.features.cell_list[1:], shape)
        return total + macs, shape


@register_model(E3D_CFG, record_updates=test_view_of)
def e3d_mobilenet(*, width_mult: float = 1.0, num_classes: int = 600, num_frames: int = 16,
                  crop_size: int = 112, dropout_rate: float = 0.2, in_channels: int = 3) -> MobileNet3D:
    """3D MobileNet v1 (paper widths 0.5/1.0/1.5/2.0x; any positive ``width_mult`` builds)."""
    check_width(width_mult, "e3d_mobilenet")
    check_dropout(dropout_rate)
    check_channels(width_mult, min(int(32 * width_mult), int(64 * width_mult)), "e3d_mobilenet")
    kwargs = dict(width_mult=width_mult, num_classes=num_classes, num_frames=num_frames, crop_size=crop_size,
                  dropout_rate=dropout_rate, in_channels=in_channels)
    return attach_pretrained_cfg(MobileNet3D(**kwargs), "e3d_mobilenet", kwargs)


__all__ = ["MobileNet3D", "MobileNetBlock", "e3d_mobilenet"]
