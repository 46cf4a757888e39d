"""X3D (Feichtenhofer, CVPR 2020) exactly as SlowFast builds it, in MindSpore.

Data flow for X3D-XS (4 x 160 x 160 clip; widths for width factor 2.0)::

    clip (N, 3, T, 160, 160)
      -> stem   conv_xy 1x3x3 /2 (3->24) -> conv_t 5x1x1 channelwise -> BN -> ReLU    (N, 24, T, 80, 80)
      -> res2   3 blocks, first /2                                               (N, 24, T, 40, 40)
      -> res3   5 blocks, first /2                                               (N, 48, T, 20, 20)
      -> res4  11 blocks, first /2                                               (N, 96, T, 10, 10)
      -> res5   7 blocks, first /2                                               (N, 192, T, 5, 5)
      == forward_features ==
      -> head   conv_5 1x1x1 (192->432) -> BN -> ReLU -> avg pool (T, 5, 5)
                -> lin_5 1x1x1 (432->2048) -> ReLU -> dropout -> Dense (2048->classes)
      -> logits (N, classes) in training; in eval mode softmax per position, averaged

Each block: a 1x1x1 (in->inner) BN ReLU -> b 3x3x3 channelwise (stride 1,s,s) BN -> SE (every
other block) -> Swish -> c 1x1x1 (inner->out) BN(gamma 0); plus a 1x1x1+BN shortcut when the
shape changes; sum, ReLU. Blocks per stage = ceil(depth_factor * [1, 2, 5, 3]).

Test-time behaviour (as SlowFast): the head pools with a fixed window (T, ceil(crop/32),
ceil(crop/32)) and stride 1, so a test crop larger than the train crop (e.g. 182 for XS) yields a
2x2 map of class scores; in eval mode each position gets a softmax and the positions are averaged
(fully convolutional testing). Set ``head_activation="none"`` to average logits instead.
"""
from __future__ import annotations

import math
from typing import Any, Dict, Optional, Sequence, Tuple

import mindspore as ms
from mindspore import nn, ops
from mindspore.common.initializer import Normal

from ..errors import UserError
from .base import FlopsSequential, PretrainedCfg, VideoClassifier, attach_pretrained_cfg, count_params, register_model
from .layers import (BatchNorm3d, ChannelwiseConv3d, DropPath, SpatialConv3d, Swish, avg_pool_head,
                     ceil_div, conv_out_size, drop_path_rates, global_avg_pool, PointwiseConv3d)

Shape = Tuple[int, int, int, int]  # (C, T, H, W) of one clip


def round_width(width: float, multiplier: float, min_width: int = 8, divisor: int = 8) -> int:
    """Channel rounding of SlowFast/pytorchvideo: nearest multiple of ``divisor``, >= 90% of w."""
    w = width * multiplier
    min_width = min_width or divisor
    out = max(min_width, int(w + divisor / 2) // divisor * divisor)
    if out < 0.9 * w:
        out += divisor
    return int(out)


def round_repeats(repeats: int, multiplier: float) -> int:
    return int(math.ceil(multiplier * repeats))


# FLOPs are multiply-adds of convolutions and linear layers plus 2 per BatchNorm output element
# (its affine scale and shift at inference): the convention of fvcore, which the published
# X3D figures (0.626 / 2.03 / 4.90 / 18.93 G) use. Without BN: the paper's 0.60 / 1.96 / 4.73 / 18.37.
BN_OPS = 2


# ----------------------------------------------------------------------------------- stem
class X3DStem(nn.Cell):
    """conv_xy (1xkxk, stride 1,2,2) -> conv_t (kTx1x1 channelwise) -> BN -> ReLU."""

    def __init__(self, *, dim_in: int, dim_out: int, temporal_kernel: int, conv_impl: str,
                 stem_impl: str) -> None:
        super().__init__()
        self.conv_xy = SpatialConv3d(dim_in, dim_out, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1),
                                     impl=stem_impl)
        self.conv_t = ChannelwiseConv3d(dim_out, (temporal_kernel, 1, 1),
                                        padding=(temporal_kernel // 2, 0, 0), impl=conv_impl)
        self.bn = BatchNorm3d(dim_out)
        self.relu = nn.ReLU()
        self.dims = (dim_in, dim_out, temporal_kernel)
        self.conv_bn_pairs = (("conv_t", "bn"),)  # for fold_batchnorm

    def construct(self, x):
        return self.relu(self.bn(self.conv_t(self.conv_xy(x))))

    def flops(self, shape: Shape) -> Tuple[int, Shape]:
        dim_in, dim_out, kt = self.dims
        _, t, h, w = shape
        ho, wo = conv_out_size(h, 3, 2, 1), conv_out_size(w, 3, 2, 1)
        n_out = dim_out * t * ho * wo
        return n_out * dim_in * 9 + n_out * kt + BN_OPS * n_out, (dim_out, t, ho, wo)


def create_x3d_stem(*, dim_in: int = 3, dim_out: int = 24, temporal_kernel: int = 5,
                    conv_impl: str = "auto", stem_impl: str = "auto") -> X3DStem:
    return X3DStem(dim_in=dim_in, dim_out=dim_out, temporal_kernel=temporal_kernel,
                   conv_impl=conv_impl, stem_impl=stem_impl)


# ----------------------------------------------------------------------------------- blocks
class SqueezeExcitation(nn.Cell):
    """Global average pool -> 1x1x1 conv (bias) -> ReLU -> 1x1x1 conv (bias) -> sigmoid -> scale."""

    def __init__(self, *, dim: int, dim_fc: int) -> None:
        super().__init__()
        self.fc1 = PointwiseConv3d(dim, dim_fc, has_bias=True)
        self.fc2 = PointwiseConv3d(dim_fc, dim, has_bias=True)
        self.dims = (dim, dim_fc)

    def construct(self, x):
        return x * self.gate(x)

    def gate(self, x):
        """The per-channel scale (N, C, 1, 1, 1) in (0, 1)."""
        s = global_avg_pool(x)
        return ops.sigmoid(self.fc2(self.fc1.fused(s, relu=True)))

    def flops(self, shape: Shape) -> int:
        dim, dim_fc = self.dims
        return 2 * dim * dim_fc


class BottleneckBranch(nn.Cell):
    """Branch 2 of an X3D block: a (1x1x1) -> b (3x3x3 channelwise) -> [SE] -> Swish -> c (1x1x1)."""

    def __init__(self, *, dim_in: int, dim_inner: int, dim_out: int, spatial_stride: int,
                 temporal_kernel: int, se_ratio: float, conv_impl: str) -> None:
        super().__init__()
        self.a = PointwiseConv3d(dim_in, dim_inner)
        self.a_bn = BatchNorm3d(dim_inner)
        self.b = ChannelwiseConv3d(dim_inner, (temporal_kernel, 3, 3), stride=(1, spatial_stride, spatial_stride),
                                   padding=(temporal_kernel // 2, 1, 1), impl=conv_impl)
        self.b_bn = BatchNorm3d(dim_inner)
        self.use_se = se_ratio > 0.0
        if self.use_se:
            self.se = SqueezeExcitation(dim=dim_inner, dim_fc=round_width(dim_inner, se_ratio))
        self.swish = Swish()
        self.c = PointwiseConv3d(dim_inner, dim_out)
        self.c_bn = BatchNorm3d(dim_out, zero_init=True)
        self.relu = nn.ReLU()
        self.dims = (dim_in, dim_inner, dim_out, spatial_stride, temporal_kernel)
        self.conv_bn_pairs = (("a", "a_bn"), ("b", "b_bn"), ("c", "c_bn"))

    def construct(self, x, shortcut=None):
        """The branch; with ``shortcut`` (given once BatchNorm is folded) the block's output
        ReLU(shortcut + branch)."""
        if shortcut is not None:  # folded: conv c applies the gate, Swish, sum and ReLU in one pass
            x = self.b(self.a.fused(x, relu=True))
            gate = self.se.gate(x) if self.use_se else None
            return self.c.fused(x, relu=True, residual=shortcut, swish_input=True, gate=gate)
        x = self.relu(self.a_bn(self.a(x)))
        x = self.b_bn(self.b(x))
        if self.use_se:
            x = self.se(x)
        x = self.swish(x)
        return self.c_bn(self.c(x))

    def flops(self, shape: Shape) -> Tuple[int, Shape]:
        dim_in, dim_inner, dim_out, s, kt = self.dims
        _, t, h, w = shape
        ho, wo = conv_out_size(h, 3, s, 1), conv_out_size(w, 3, s, 1)
        a_out, b_out, c_out = dim_inner * t * h * w, dim_inner * t * ho * wo, dim_out * t * ho * wo
        macs = dim_in * a_out + b_out * kt * 9 + dim_inner * c_out
        if self.use_se:
            macs += self.se.flops(shape)
        return macs + BN_OPS * (a_out + b_out + c_out), (dim_out, t, ho, wo)


class ResBlock(nn.Cell):
    """relu(shortcut(x) + branch2(x)); the shortcut is 1x1x1 conv + BN when shape changes.
    ``drop_path_rate`` > 0: stochastic depth on branch2 in training (``layers/drop_path.py``)."""

    def __init__(self, *, dim_in: int, dim_inner: int, dim_out: int, spatial_stride: int,
                 temporal_kernel: int, se_ratio: float, conv_impl: str, drop_path_rate: float = 0.0) -> None:
        super().__init__()
        self.use_drop_path = drop_path_rate > 0  # 0: no random op is built, the block is as before
        if self.use_drop_path:
            self.drop_path = DropPath(drop_path_rate)
        self.has_branch1 = dim_in != dim_out or spatial_stride != 1
        if self.has_branch1:
            self.branch1 = PointwiseConv3d(dim_in, dim_out, stride=(1, spatial_stride, spatial_stride))
            self.branch1_bn = BatchNorm3d(dim_out)
        self.branch2 = BottleneckBranch(dim_in=dim_in, dim_inner=dim_inner, dim_out=dim_out,
                                        spatial_stride=spatial_stride, temporal_kernel=temporal_kernel,
                                        se_ratio=se_ratio, conv_impl=conv_impl)
        self.relu = nn.ReLU()
        self.dims = (dim_in, dim_out, spatial_stride)
        self.conv_bn_pairs = (("branch1", "branch1_bn"),) if self.has_branch1 else ()
        self.bn_folded = False  # set by fold_batchnorm

    def construct(self, x):
        shortcut = self.branch1_bn(self.branch1(x)) if self.has_branch1 else x
        if self.bn_folded:  # conv c sums the shortcut and applies the ReLU in its own pass
            return self.branch2(x, shortcut)  # (folding is for eval, where drop path is the identity)
        if self.use_drop_path:
            return self.relu(shortcut + self.drop_path(self.branch2(x)))
        return self.relu(shortcut + self.branch2(x))

    def flops(self, shape: Shape) -> Tuple[int, Shape]:
        macs, out = self.branch2.flops(shape)
        if self.has_branch1:
            dim_in, dim_out, _ = self.dims
            macs += (dim_in + BN_OPS) * dim_out * out[1] * out[2] * out[3]
        return macs, out


def create_x3d_res_block(*, dim_in: int, dim_inner: int, dim_out: int, spatial_stride: int = 1,
                         temporal_kernel: int = 3, se_ratio: float = 0.0625,
                         conv_impl: str = "auto", drop_path_rate: float = 0.0) -> ResBlock:
    return ResBlock(dim_in=dim_in, dim_inner=dim_inner, dim_out=dim_out, spatial_stride=spatial_stride,
                    temporal_kernel=temporal_kernel, se_ratio=se_ratio, conv_impl=conv_impl,
                    drop_path_rate=drop_path_rate)


class ResStage(FlopsSequential):
    """``depth`` blocks; the first one strides spatially; SE on blocks 0, 2, 4, ..."""


def create_x3d_res_stage(*, depth: int, dim_in: int, dim_inner: int, dim_out: int,
                         spatial_stride: int = 2, temporal_kernel: int = 3, se_ratio: float = 0.0625,
                         conv_impl: str = "auto", drop_path_rates: Optional[Sequence[float]] = None) -> ResStage:
    rates = list(drop_path_rates) if drop_path_rates is not None else [0.0] * depth
    blocks = [create_x3d_res_block(dim_in=dim_in if i == 0 else dim_out, dim_inner=dim_inner,
                                   dim_out=dim_out, spatial_stride=spatial_stride if i == 0 else 1,
                                   temporal_kernel=temporal_kernel,
                                   se_ratio=se_ratio if (i + 1) % 2 else 0.0, conv_impl=conv_impl,
                                   drop_path_rate=rates[i])
              for i in range(depth)]
    return ResStage(blocks)


# ----------------------------------------------------------------------------------- head
def pool_positions(x, kernel: Tuple[int, int, int]):
    """``avg_pool_head`` (windows of ``kernel`` clipped to the input, stride 1) written as one
    slice + mean per output position, ops that MindSpore's ONNX exporter converts (its
    ``AvgPool3D`` has no ONNX converter). Same values up to float rounding (about 1e-7 on unit
    features); on the CPU it measured 12x (batch 1) to 50x (batch 8) slower than ``AvgPool3D``, so
    only the ONNX export uses it. A test crop gives few positions (XS at 182: a 4x6x6 map, 4x5x5 window: 1x2x2)."""
    n, c, t, h, w = x.shape
    kt, kh, kw = min(kernel[0], t), min(kernel[1], h), min(kernel[2], w)
    if (kt, kh, kw) == (t, h, w):
        return global_avg_pool(x)
    pooled = []
    for a in range(t - kt + 1):
        for b in range(h - kh + 1):
            for d in range(w - kw + 1):
                pooled.append(x[:, :, a:a + kt, b:b + kh, d:d + kw].mean(axis=(2, 3, 4), keep_dims=True))
    return ops.concat(pooled, axis=2).reshape(n, c, t - kt + 1, h - kh + 1, w - kw + 1)


class X3DHead(nn.Cell):
    """conv_5 -> BN -> ReLU -> avg pool -> lin_5 -> ReLU -> dropout -> projection (-> softmax at test)."""

    def __init__(self, *, dim_in: int, dim_inner: int, dim_out: int, num_classes: int,
                 pool_kernel: Tuple[int, int, int], dropout_rate: float, activation: str) -> None:
        super().__init__()
        if activation not in ("softmax", "none"):
            raise ValueError(f"head activation must be 'softmax' or 'none', got '{activation}'")
        self.conv_5 = PointwiseConv3d(dim_in, dim_inner)
        self.conv_5_bn = BatchNorm3d(dim_inner)
        self.lin_5 = PointwiseConv3d(dim_inner, dim_out)
        self.relu = nn.ReLU()
        self.dropout = nn.Dropout(p=dropout_rate) if dropout_rate > 0 else nn.Identity()
        self.projection = nn.Dense(dim_out, num_classes, weight_init=Normal(0.01), bias_init="zeros")
        self.pool_kernel = tuple(pool_kernel)
        self.softmax = activation == "softmax"
        self.dims = (dim_in, dim_inner, dim_out, num_classes)
        self.conv_bn_pairs = (("conv_5", "conv_5_bn"),)
        self.bn_folded = False  # set by fold_batchnorm
        self.pool_by_position = False  # set by X3D.prepare_export("ONNX"): see pool_positions

    def construct(self, x):
        if self.bn_folded:
            x = self.conv_5.fused(x, relu=True)
        else:
            x = self.relu(self.conv_5_bn(self.conv_5(x)))
        if self.pool_by_position:
            x = pool_positions(x, self.pool_kernel)
        else:
            x = avg_pool_head(x, self.pool_kernel)
        x = self.relu(self.lin_5(x))
        x = self.dropout(x)
        x = self.projection(ops.transpose(x, (0, 2, 3, 4, 1)))  # (N, T', H', W', classes)
        if self.softmax and not self.training:
            x = ops.softmax(x, axis=-1)
        return x.mean(axis=(1, 2, 3))

    def flops(self, shape: Shape) -> int:
        dim_in, dim_inner, dim_out, classes = self.dims
        _, t, h, w = shape
        pt, ph, pw = (min(k, s) for k, s in zip(self.pool_kernel, (t, h, w)))
        positions = (t - pt + 1) * (h - ph + 1) * (w - pw + 1)
        return ((dim_in + BN_OPS) * dim_inner * t * h * w
                + positions * (dim_inner * dim_out + dim_out * classes))


def create_x3d_head(*, dim_in: int, dim_inner: int, dim_out: int = 2048, num_classes: int = 400,
                    pool_kernel: Tuple[int, int, int] = (13, 5, 5), dropout_rate: float = 0.5,
                    activation: str = "softmax") -> X3DHead:
    return X3DHead(dim_in=dim_in, dim_inner=dim_inner, dim_out=dim_out, num_classes=num_classes,
                   pool_kernel=pool_kernel, dropout_rate=dropout_rate, activation=activation)


# ----------------------------------------------------------------------------------- network
class X3D(VideoClassifier):
    """stem -> res2..res5 (``forward_features``) -> head (``forward_head``)."""

    def __init__(self, *, stem: X3DStem, stages: Sequence[ResStage], head: X3DHead,
                 num_frames: int, crop_size: int, in_channels: int = 3) -> None:
        super().__init__()
        self.stem = stem
        self.res2, self.res3, self.res4, self.res5 = stages
        self.head = head
        self.num_frames = num_frames
        self.crop_size = crop_size
        self.in_channels = in_channels
        self._num_classes = head.dims[3]

    def forward_features(self, x):
        _check_clip(x.shape, self.in_channels)
        x = self.stem(x)
        x = self.res2(x)
        x = self.res3(x)
        x = self.res4(x)
        return self.res5(x)

    def forward_head(self, x):
        return self.head(x)

    def construct(self, x):
        return self.forward_head(self.forward_features(x))

    def flops(self, shape: Optional[Shape] = None) -> int:
        """Multiply-adds of one clip of ``shape`` (C, T, H, W), default the train clip."""
        shape = shape or (self.in_channels, self.num_frames, self.crop_size, self.crop_size)
        total, shape = self.stem.flops(shape)
        for stage in (self.res2, self.res3, self.res4, self.res5):
            macs, shape = stage.flops(shape)
            total += macs
        return total + self.head.flops(shape)

    def prepare_export(self, fmt: str) -> None:
        """ONNX: the head pools a map larger than its window (a test crop above the train crop,
        182 vs 160 for XS) position by position (:func:`pool_positions`) instead of with
        ``AvgPool3D``, which MindSpore's ONNX exporter cannot write."""
        self.head.pool_by_position = fmt == "ONNX"

    def get_classifier(self) -> nn.Cell:
        return self.head.projection

    def reset_classifier(self, num_classes: int) -> None:
        dim_in, dim_inner, dim_out, _ = self.head.dims
        self.head.projection = nn.Dense(dim_out, num_classes, weight_init=Normal(0.01), bias_init="zeros")
        self.head.dims = (dim_in, dim_inner, dim_out, num_classes)
        self._num_classes = num_classes
        self.update_parameters_name()


@ms.constexpr
def _check_clip(shape, in_channels):
    if len(shape) != 5 or shape[1] != in_channels:
        raise ValueError(f"X3D expects clips of shape (N, {in_channels}, T, H, W), got {tuple(shape)}")
    if shape[3] < 32 or shape[4] < 32:
        raise ValueError(f"X3D needs H and W >= 32 (five stride-2 stages), got {tuple(shape)}")


def create_x3d(*, num_classes: int = 400, num_frames: int = 13, crop_size: int = 160,
               in_channels: int = 3, width_factor: float = 2.0, depth_factor: float = 2.2,
               base_width: int = 12, bottleneck_factor: float = 2.25, se_ratio: float = 0.0625,
               stem_temporal_kernel: int = 5, head_dim: int = 2048, dropout_rate: float = 0.5,
               head_activation: str = "softmax", conv_impl: str = "auto",
               stem_impl: str = "auto", drop_path_rate: float = 0.0) -> X3D:
    """Build X3D from its expansion factors (the paper's defaults are those of X3D-S).
    ``drop_path_rate``: stochastic depth, linear over the blocks of res2..res5 (0 for the first,
    the rate for the last; 0 = off)."""
    if isinstance(drop_path_rate, bool) or not 0.0 <= drop_path_rate < 1.0:
        raise UserError(f"model.drop_path_rate: expected a probability in [0, 1), got {drop_path_rate!r}")
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if crop_size < 32:
        raise ValueError(f"crop_size must be >= 32 (the network strides by 32), got {crop_size}")
    stem_out = round_width(base_width, width_factor)
    stem = create_x3d_stem(dim_in=in_channels, dim_out=stem_out, temporal_kernel=stem_temporal_kernel,
                           conv_impl=conv_impl, stem_impl=stem_impl)
    # stage base widths 12, 24, 48, 96 (each the previous x2, divisor 8), then x width_factor
    bases = [base_width]
    for _ in range(3):
        bases.append(round_width(bases[-1], 2.0))
    stages, dim_in = [], stem_out
    depths = [round_repeats(repeats, depth_factor) for repeats in (1, 2, 5, 3)]
    rates = drop_path_rates(drop_path_rate, sum(depths))
    for base, depth in zip(bases, depths):
        dim_out = round_width(base, width_factor)
        dim_inner = int(bottleneck_factor * dim_out)
        stages.append(create_x3d_res_stage(depth=depth, dim_in=dim_in,
                                           dim_inner=dim_inner, dim_out=dim_out, spatial_stride=2,
                                           se_ratio=se_ratio, conv_impl=conv_impl,
                                           drop_path_rates=rates[:depth]))
        rates = rates[depth:]
        dim_in = dim_out
    pool = (num_frames, ceil_div(crop_size, 32), ceil_div(crop_size, 32))
    head = create_x3d_head(dim_in=dim_in, dim_inner=int(bottleneck_factor * dim_in), dim_out=head_dim,
                           num_classes=num_classes, pool_kernel=pool, dropout_rate=dropout_rate,
                           activation=head_activation)
    return X3D(stem=stem, stages=stages, head=head, num_frames=num_frames, crop_size=crop_size,
               in_channels=in_channels)


# ----------------------------------------------------------------------------------- variants
# Default records: the SlowFast Kinetics-400 recipe of each variant (configs/Kinetics/X3D_*.yaml):
# frames x sampling rate, train crop, test short side = test crop (one 3-crop view covers it).
# Train jitter: short side uniform in [test, 1.25 * test] (SlowFast TRAIN_JITTER_SCALES).
def _k400(num_frames: int, sampling_rate: int, crop: int, test: int, jitter_max: int) -> PretrainedCfg:
    return PretrainedCfg(num_classes=400, num_frames=num_frames, sampling_rate=sampling_rate, crop_size=crop,
                         test_short_side=test, test_crop_size=test, train_jitter=(test, jitter_max),
                         mean=(0.45, 0.45, 0.45),
                         std=(0.225, 0.225, 0.225), value_range=1.0, channel_order="RGB",
                         eval_output="probabilities", dataset="kinetics400", paper="Feichtenhofer, X3D, CVPR 2020")


# What each variant passes to create_x3d (any of it overridable from the config's model section).
VARIANT_ARGS: Dict[str, Dict[str, Any]] = {
    "x3d_xs": dict(num_frames=4, crop_size=160, depth_factor=2.2),
    "x3d_s": dict(num_frames=13, crop_size=160, depth_factor=2.2),
    "x3d_m": dict(num_frames=16, crop_size=224, depth_factor=2.2),
    "x3d_l": dict(num_frames=16, crop_size=312, depth_factor=5.0),
}


def _head_output(kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """The record's eval output follows ``head_activation`` (``"none"``: logits)."""
    return {"eval_output": "logits"} if kwargs.get("head_activation") == "none" else {}


def _build(name: str, kwargs: Dict[str, Any]) -> X3D:
    return attach_pretrained_cfg(create_x3d(**{**VARIANT_ARGS[name], **kwargs}), name, kwargs)


@register_model(_k400(4, 12, 160, 182, 228), signature_of=create_x3d, record_updates=_head_output)
def x3d_xs(**kwargs: Any) -> X3D:
    """X3D-XS: 4 x 160^2 clips, depth factor 2.2 (0.63 GFLOPs, 3.79 M parameters)."""
    return _build("x3d_xs", kwargs)


@register_model(_k400(13, 6, 160, 182, 228), signature_of=create_x3d, record_updates=_head_output)
def x3d_s(**kwargs: Any) -> X3D:
    """X3D-S: 13 x 160^2 clips, depth factor 2.2 (2.03 GFLOPs, 3.79 M parameters)."""
    return _build("x3d_s", kwargs)


@register_model(_k400(16, 5, 224, 256, 320), signature_of=create_x3d, record_updates=_head_output)
def x3d_m(**kwargs: Any) -> X3D:
    """X3D-M: 16 x 224^2 clips, depth factor 2.2 (4.90 GFLOPs, 3.79 M parameters)."""
    return _build("x3d_m", kwargs)


@register_model(_k400(16, 5, 312, 356, 446), signature_of=create_x3d, record_updates=_head_output)
def x3d_l(**kwargs: Any) -> X3D:
    """X3D-L: 16 x 312^2 clips, depth factor 5.0 (18.93 GFLOPs, 6.15 M parameters)."""
    return _build("x3d_l", kwargs)


@register_model(_k400(13, 6, 160, 182, 228), signature_of=create_x3d, record_updates=_head_output)
def x3d(**kwargs: Any) -> X3D:
    """X3D from its expansion factors (``create_x3d``; its defaults, and this record, are X3D-S's)."""
    return attach_pretrained_cfg(create_x3d(**kwargs), "x3d", kwargs)


__all__ = ["X3D", "create_x3d", "x3d", "x3d_xs", "x3d_s", "x3d_m", "x3d_l", "count_params", "round_width"]
