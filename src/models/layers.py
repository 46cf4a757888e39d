"""X3D building layers with device-aware implementations.

MindSpore's CPU ``Conv3d(group=C)`` runs C separate convolutions, so a literal X3D cannot even
compile a training step on CPU. The layers here keep the reference parameter shapes (so
checkpoints move freely between devices and frameworks) and pick a formulation per device:

* ``ChannelwiseConv3d`` - weight (C, 1, kT, kH, kW). ``native``: grouped Conv3D (GPU/Ascend).
  ``fold``: one grouped Conv2D over (N, C*T, H, W) whose (T_out x T_in) banded weight is built
  in-graph from the (C, 1, kT, kH, kW) parameter (exact; the CPU default).
* ``SpatialConv3d`` - a (1, kH, kW) convolution with few input channels (the stem's 3 -> 24).
  ``native``: Conv3D. ``im2col``: kH*kW strided slices stacked on the channel axis, then one
  1x1x1 convolution (the CPU default; the native 3-channel kernel is slow there).

``impl="auto"`` resolves from the device selected with ``mindspore.set_device`` when the layer
is built; ``set_default_impl`` or the ``impl`` argument override it.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import mindspore as ms
from mindspore import Parameter, Tensor, nn, ops
from mindspore.common.initializer import HeNormal, initializer

Triple = Tuple[int, int, int]
IntOr3 = Union[int, Sequence[int]]

CHANNELWISE_IMPLS = ("native", "fold")
SPATIAL_IMPLS = ("native", "im2col")
_DEFAULT_IMPL = {"channelwise": "auto", "spatial": "auto"}


def _triple(v: IntOr3) -> Triple:
    if isinstance(v, int):
        return (v, v, v)
    v = tuple(int(i) for i in v)
    if len(v) != 3:
        raise ValueError(f"expected an int or 3 ints, got {v}")
    return v  # type: ignore[return-value]


def device_target() -> str:
    """The device MindSpore will run on ('CPU', 'GPU' or 'Ascend')."""
    try:
        return ms.get_context("device_target")
    except Exception:  # pragma: no cover - very old/odd contexts
        return "CPU"


def set_default_impl(channelwise: Optional[str] = None, spatial: Optional[str] = None) -> None:
    """Override the ``auto`` choice for layers built from now on ('auto' restores it)."""
    if channelwise is not None:
        _check_impl(channelwise, CHANNELWISE_IMPLS, "channelwise")
        _DEFAULT_IMPL["channelwise"] = channelwise
    if spatial is not None:
        _check_impl(spatial, SPATIAL_IMPLS, "spatial")
        _DEFAULT_IMPL["spatial"] = spatial


def _check_impl(impl: str, known: Sequence[str], what: str) -> None:
    if impl != "auto" and impl not in known:
        raise ValueError(f"{what} conv impl '{impl}' is not one of: auto, {', '.join(known)}")


def resolve_impl(impl: str, kind: str) -> str:
    """'auto' -> the default for this kind of layer on the current device."""
    known = CHANNELWISE_IMPLS if kind == "channelwise" else SPATIAL_IMPLS
    _check_impl(impl, known, kind)
    if impl == "auto":
        impl = _DEFAULT_IMPL[kind]
    if impl == "auto":
        on_cpu = device_target() == "CPU"
        impl = ("fold" if on_cpu else "native") if kind == "channelwise" else \
               ("im2col" if on_cpu else "native")
    return impl


def kaiming_fan_out(shape: Sequence[int]) -> Tensor:
    """Kaiming-normal (fan_out, ReLU gain) init as the references use for every conv."""
    return initializer(HeNormal(mode="fan_out", nonlinearity="relu"), tuple(shape), ms.float32)


class BatchNorm3d(nn.BatchNorm2d):
    """BatchNorm over (N, C, T, H, W) with reference defaults (eps 1e-5, torch momentum 0.1).

    A subclass rather than ``nn.BatchNorm3d`` so parameter names stay flat
    (``bn.gamma``, not ``bn.bn2d.gamma``).
    """

    def __init__(self, num_features: int, *, eps: float = 1e-5, momentum: float = 0.9,
                 zero_init: bool = False) -> None:
        super().__init__(num_features, eps=eps, momentum=momentum,
                         gamma_init="zeros" if zero_init else "ones")

    def construct(self, x):
        n, c, t, h, w = x.shape
        y = super().construct(x.reshape(n, c, t * h, w))
        return y.reshape(n, c, t, h, w)


class Swish(nn.Cell):
    """x * sigmoid(x) (used once per bottleneck, after the channelwise conv)."""

    def construct(self, x):
        return x * ops.sigmoid(x)


def pointwise_conv(dim_in: int, dim_out: int, *, stride: IntOr3 = 1, has_bias: bool = False) -> nn.Conv3d:
    """1x1x1 Conv3d, Kaiming fan_out; already efficient on CPU (oneDNN)."""
    conv = nn.Conv3d(dim_in, dim_out, kernel_size=1, stride=_triple(stride), pad_mode="valid",
                     has_bias=has_bias, weight_init=kaiming_fan_out((dim_out, dim_in, 1, 1, 1)),
                     bias_init="zeros")
    return conv


class ChannelwiseConv3d(nn.Cell):
    """Depthwise (groups = channels) 3D convolution, weight (C, 1, kT, kH, kW), no bias.

    Temporal stride must be 1 for ``fold`` (X3D never strides in time).
    """

    def __init__(self, channels: int, kernel_size: IntOr3, *, stride: IntOr3 = 1,
                 padding: IntOr3 = 0, impl: str = "auto") -> None:
        super().__init__()
        self.channels = channels
        self.kernel_size = _triple(kernel_size)
        self.stride = _triple(stride)
        self.padding = _triple(padding)
        self.impl = resolve_impl(impl, "channelwise")
        if self.impl == "fold" and self.stride[0] != 1:
            raise ValueError(f"ChannelwiseConv3d impl 'fold' needs temporal stride 1, got {self.stride}")
        kt, kh, kw = self.kernel_size
        self.weight = Parameter(kaiming_fan_out((channels, 1, kt, kh, kw)), name="weight")
        pt, ph, pw = self.padding
        if self.impl == "native":
            self.conv = ops.Conv3D(channels, self.kernel_size, mode=1, pad_mode="pad",
                                   pad=(pt, pt, ph, ph, pw, pw), stride=self.stride, group=channels)

    def construct(self, x):
        if self.impl == "native":
            return self.conv(x, self.weight)
        return self._fold(x)

    def _fold(self, x):
        n, c, t, h, w = x.shape
        kt, kh, kw = self.kernel_size
        t_out = t + 2 * self.padding[0] - kt + 1
        band = _band_tensor(t, kt, self.padding[0])
        # (T_out*T_in, kT) @ (C, kT, kH*kW) -> (C, T_out*T_in, kH*kW): the banded 2D weight
        wk = ops.matmul(band, self.weight.reshape(c, kt, kh * kw)).reshape(c * t_out, t, kh, kw)
        ph, pw = self.padding[1], self.padding[2]
        y = ops.conv2d(x.reshape(n, c * t, h, w), wk, None, (self.stride[1], self.stride[2]),
                       "pad", (ph, pw), 1, c)
        return y.reshape(n, c, t_out, y.shape[2], y.shape[3])


@ms.constexpr
def _band_tensor(t_in: int, kt: int, pt: int) -> Tensor:
    t_out = t_in + 2 * pt - kt + 1
    band = np.zeros((t_out, t_in, kt), np.float32)
    for o in range(t_out):
        for k in range(kt):
            i = o + k - pt
            if 0 <= i < t_in:
                band[o, i, k] = 1.0
    return Tensor(band.reshape(t_out * t_in, kt))


class SpatialConv3d(nn.Cell):
    """A (1, kH, kW) Conv3d with weight (C_out, C_in, 1, kH, kW), no bias (the X3D stem's conv_xy)."""

    def __init__(self, dim_in: int, dim_out: int, kernel_size: Sequence[int], *,
                 stride: Sequence[int] = (1, 1, 1), padding: Sequence[int] = (0, 0, 0),
                 impl: str = "auto") -> None:
        super().__init__()
        self.kernel_size = _triple(kernel_size)
        self.stride = _triple(stride)
        self.padding = _triple(padding)
        if self.kernel_size[0] != 1 or self.stride[0] != 1 or self.padding[0] != 0:
            raise ValueError(f"SpatialConv3d is for (1, kH, kW) kernels without temporal stride/padding, "
                             f"got kernel {self.kernel_size}, stride {self.stride}, padding {self.padding}")
        self.dim_in, self.dim_out = dim_in, dim_out
        self.impl = resolve_impl(impl, "spatial")
        self.weight = Parameter(kaiming_fan_out((dim_out, dim_in) + self.kernel_size), name="weight")
        _, ph, pw = self.padding
        if self.impl == "native":
            self.conv = ops.Conv3D(dim_out, self.kernel_size, mode=1, pad_mode="pad",
                                   pad=(0, 0, ph, ph, pw, pw), stride=self.stride)

    def construct(self, x):
        if self.impl == "native":
            return self.conv(x, self.weight)
        n, c, t, h, w = x.shape
        _, kh, kw = self.kernel_size
        _, sh, sw = self.stride
        _, ph, pw = self.padding
        ho = (h + 2 * ph - kh) // sh + 1
        wo = (w + 2 * pw - kw) // sw + 1
        xp = ops.pad(x, (pw, pw, ph, ph))
        cols = []
        for i in range(kh):
            for j in range(kw):
                cols.append(xp[:, :, :, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw])
        # (N, C, kH*kW, T, Ho, Wo) -> (N, C*kH*kW, T, Ho, Wo): channel index c*kH*kW + i*kW + j
        cols = ops.stack(cols, axis=2).reshape(n, c * kh * kw, t, ho, wo)
        w2 = self.weight.reshape(self.dim_out, c * kh * kw, 1, 1, 1)
        return ops.conv3d(cols, w2)


def avg_pool_head(x, kernel: Triple):
    """Average over windows of ``kernel`` (clipped to the input) with stride 1."""
    _, _, t, h, w = x.shape
    kt, kh, kw = min(kernel[0], t), min(kernel[1], h), min(kernel[2], w)
    if (kt, kh, kw) == (t, h, w):
        return x.mean(axis=(2, 3, 4), keep_dims=True)
    return ops.avg_pool3d(x, (kt, kh, kw), 1)


def ceil_div(a: int, b: int) -> int:
    return int(math.ceil(a / b))
