"""3D SqueezeNet 1.0 / 1.1 of Efficient-3DCNNs (Köpüklü et al. 2019), in MindSpore.

Data flow of version 1.1 at 16 x 112 x 112 (F(in, squeeze, e1, e3), "+" = bypass)::

    clip (N, 3, 16, 112, 112)
      -> features.0 conv 3x3x3 s(1,2,2) p1 (3->64, bias) -> .1 BN -> .2 ReLU   (N, 64, 16, 56, 56)
      -> .3 maxpool 3x3x3 s2 p1                                            (N, 64, 8, 28, 28)
      -> .4 F(64,16,64,64)  .5 F(128,16,64,64)+                            (N, 128, 8, 28, 28)
      -> .6 maxpool -> .7 F(128,32,128,128)  .8 F(256,32,128,128)+         (N, 256, 4, 14, 14)
      -> .9 maxpool -> .10 F(256,48,192,192) .11 F(384,48,192,192)+        (N, 384, 2, 7, 7)
      -> .12 maxpool -> .13 F(384,64,256,256) .14 F(512,64,256,256)+       (N, 512, 1, 4, 4)
      == forward_features ==
      -> classifier .0 Dropout(0.5) -> .1 conv 1x1x1 (512->classes, bias) -> .2 ReLU
         -> .3 avgpool (ceil(T/16), ceil(S/32), ceil(S/32)) = (1, 4, 4) stride 1 -> flatten
                                                                           (N, classes), >= 0

Version 1.0: features.0 conv 7x7x7 s(1,2,2) p3 (3->96); .4 F(96,16,64,64) .5 F(128,..)+ | .6 pool
.7 F(128,32,..) .8 F(256,..)+ | .9 pool .10 F(256,48,..) .11 F(384,48,..)+ .12 F(384,64,..) | .13 pool
.14 F(512,64,..)+ - the same shapes at each pool.

Fire: squeeze 1x1x1 (bias) -> squeeze_bn -> ReLU; expand1x1 (bias) -> BN and expand3x3 p1 (bias)
-> BN; concat [e1, e3]; + x when bypassed (in == out); ReLU. The logits pass a ReLU, as in the
reference. Parameter names mirror the reference's state_dict keys (``features.4.squeeze.weight``,
``features.4.squeeze_bn.gamma``, ``classifier.1.weight``).
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

from mindspore import nn, ops

from .base import VideoClassifier, attach_pretrained_cfg, register_model
from .e3d_common import (test_view_of, BN_OPS, E3D_CFG, FixedAvgPool, IndexedSequential, MaxPool3d, Shape, check_choice,
                         check_dropout, check_positive_int, check_sizes)
from .layers import BatchNorm3d, Conv3d, DropPath, conv_out_size, drop_path_rates

VERSIONS = ("1.0", "1.1")


class Fire(nn.Cell):
    """squeeze -> BN -> ReLU -> [expand1x1 -> BN, expand3x3 -> BN] concat (+ x) -> ReLU."""

    def __init__(self, inplanes: int, squeeze: int, e1: int, e3: int, drop_path_rate: float = 0.0) -> None:
        super().__init__()
        self.bypass = inplanes == e1 + e3
        self.use_drop_path = self.bypass and drop_path_rate > 0  # stochastic depth where x is added
        if self.use_drop_path:
            self.drop_path = DropPath(drop_path_rate)
        self.squeeze = Conv3d(inplanes, squeeze, 1, has_bias=True)
        self.squeeze_bn = BatchNorm3d(squeeze)
        self.expand1x1 = Conv3d(squeeze, e1, 1, has_bias=True)
        self.expand1x1_bn = BatchNorm3d(e1)
        self.expand3x3 = Conv3d(squeeze, e3, 3, padding=1, has_bias=True)
        self.expand3x3_bn = BatchNorm3d(e3)
        self.relu = nn.ReLU()
        self.dims = (inplanes, squeeze, e1, e3)
        self.conv_bn_pairs = (("squeeze", "squeeze_bn"), ("expand1x1", "expand1x1_bn"),
                              ("expand3x3", "expand3x3_bn"))

    def construct(self, x):
        s = self.relu(self.squeeze_bn(self.squeeze(x)))
        out = ops.concat((self.expand1x1_bn(self.expand1x1(s)), self.expand3x3_bn(self.expand3x3(s))), axis=1)
        if self.use_drop_path:
            out = self.drop_path(out)
        if self.bypass:
            out = out + x
        return self.relu(out)

    def flops(self, shape: Shape) -> Tuple[int, Shape]:
        cin, sq, e1, e3 = self.dims
        _, t, h, w = shape
        v = t * h * w
        macs = v * (sq * cin + e1 * sq + e3 * sq * 27) + BN_OPS * v * (sq + e1 + e3)
        return macs, (e1 + e3, t, h, w)


def _fires(version: str):
    """(stem channels, kernel, padding), the layout after features.3 ("F" = next Fire, "pool"),
    and the Fire (squeeze, expand1x1, expand3x3) widths in order."""
    f = [(16, 64, 64), (16, 64, 64), (32, 128, 128), (32, 128, 128), (48, 192, 192), (48, 192, 192),
         (64, 256, 256), (64, 256, 256)]
    if version == "1.1":
        stem, layout = (64, 3, 1), ["F", "F", "pool", "F", "F", "pool", "F", "F", "pool", "F", "F"]
    else:
        stem, layout = (96, 7, 3), ["F", "F", "pool", "F", "F", "pool", "F", "F", "F", "pool", "F"]
    return stem, layout, f


class SqueezeNet3D(VideoClassifier):
    """features (``forward_features``) -> classifier (dropout, conv 1x1x1, ReLU, avg pool)."""

    def __init__(self, *, version: str = "1.1", num_classes: int = 600, num_frames: int = 16,
                 crop_size: int = 112, in_channels: int = 3, dropout_rate: float = 0.5,
                 drop_path_rate: float = 0.0) -> None:
        super().__init__()
        (stem_out, k, pad), layout, fire_args = _fires(version)
        # stochastic depth: linear over the bypassed Fires (in == out: every second one)
        ins = [stem_out] + [e1 + e3 for _, e1, e3 in fire_args[:-1]]
        bypassed = [cin == e1 + e3 for cin, (_, e1, e3) in zip(ins, fire_args)]
        rates = drop_path_rates(drop_path_rate, sum(bypassed))
        cells = [Conv3d(in_channels, stem_out, k, stride=(1, 2, 2), padding=pad, has_bias=True),
                 BatchNorm3d(stem_out), nn.ReLU(), MaxPool3d(3, 2, 1)]
        cin, i = stem_out, 0
        for item in layout:
            if item == "pool":
                cells.append(MaxPool3d(3, 2, 1))
            else:
                sq, e1, e3 = fire_args[i]
                cells.append(Fire(cin, sq, e1, e3, rates.pop(0) if bypassed[i] else 0.0))
                cin, i = e1 + e3, i + 1
        self.features = IndexedSequential(cells)
        self.features.conv_bn_pairs = (("0", "1"),)
        self.stem_geometry = (in_channels, stem_out, k, pad)
        self.num_features = cin
        self.classifier = nn.SequentialCell([
            nn.Dropout(p=dropout_rate) if dropout_rate > 0 else nn.Identity(),
            self._final_conv(num_classes), nn.ReLU(), FixedAvgPool.for_clip(num_frames, crop_size)])
        self.version = version
        self.num_frames, self.crop_size, self.in_channels = num_frames, crop_size, in_channels
        self._num_classes = num_classes

    def _final_conv(self, num_classes: int) -> Conv3d:
        return Conv3d(self.num_features, num_classes, 1, has_bias=True)

    def forward_features(self, x):
        return self.features(x)

    def forward_head(self, x):
        # (N, classes): the reference's flatten at its build size; several positions are averaged
        return self.classifier(x)

    def get_classifier(self) -> nn.Cell:
        return self.classifier[1]

    def reset_classifier(self, num_classes: int) -> None:
        check_positive_int("model.num_classes", num_classes)
        self.classifier[1] = self._final_conv(num_classes)
        self._num_classes = num_classes

    def flops(self, shape: Optional[Sequence[int]] = None) -> int:
        """Multiply-adds of one clip (C, T, H, W) (default: the train clip): conv MACs (biases not
        counted) + 2 per BN output element. The paper's MFLOPs (thop) add ReLU, pools and biases:
        1.1 is 0.914 G here vs 0.926 G there."""
        c, t, h, w = tuple(shape) if shape is not None else (self.in_channels, self.num_frames,
                                                             self.crop_size, self.crop_size)
        cin, cout, k, pad = self.stem_geometry
        s = (cout, conv_out_size(t, k, 1, pad), conv_out_size(h, k, 2, pad), conv_out_size(w, k, 2, pad))
        n = cout * s[1] * s[2] * s[3]
        total = n * cin * k ** 3 + BN_OPS * n
        for cell in self.features.cell_list[3:]:
            if isinstance(cell, MaxPool3d):
                s = cell.out_shape(s)
            else:
                macs, s = cell.flops(s)
                total += macs
        return total + self.num_features * self._num_classes * s[1] * s[2] * s[3]

    def default_input_shape(self) -> Tuple[int, int, int, int]:
        return (self.in_channels, self.num_frames, self.crop_size, self.crop_size)


@register_model(E3D_CFG, record_updates=test_view_of)
def e3d_squeezenet(*, version: str = "1.1", num_classes: int = 600, num_frames: int = 16, crop_size: int = 112,
                   in_channels: int = 3, dropout_rate: float = 0.5, drop_path_rate: float = 0.0) -> SqueezeNet3D:
    """3D SqueezeNet ``version`` "1.1" (the paper's: 3x3x3 stem, 64 channels) or "1.0" (7x7x7, 96).
    ``drop_path_rate`` (not in the reference): stochastic depth on the bypassed Fires."""
    if isinstance(version, float):  # YAML reads `version: 1.1` as a number
        version = f"{version:.1f}"
    check_choice("model.version", version, VERSIONS)
    check_sizes(num_classes, num_frames, crop_size, in_channels)
    check_dropout(dropout_rate)
    check_dropout(drop_path_rate, "model.drop_path_rate")
    net = SqueezeNet3D(version=version, num_classes=num_classes, num_frames=num_frames, crop_size=crop_size,
                       in_channels=in_channels, dropout_rate=dropout_rate, drop_path_rate=drop_path_rate)
    net.arch = f"e3d_squeezenet (version={version})"
    return attach_pretrained_cfg(net, "e3d_squeezenet", dict(num_classes=num_classes, num_frames=num_frames,
                                                             crop_size=crop_size))


__all__ = ["SqueezeNet3D", "Fire", "e3d_squeezenet"]
