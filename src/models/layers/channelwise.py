"""``ChannelwiseConv3d``: the depthwise 3D convolution (X3D's 3x3x3 and stem 5x1x1, the
MobileNet / ShuffleNet depthwise layers), weight (C, 1, kT, kH, kW).

MindSpore's CPU ``Conv3d(group=C)`` runs C separate convolutions and cannot compile an X3D
training step, hence three formulations of the same parameter:

* ``cpp`` (the CPU default when a C++ compiler is available): the C++ forward and backward
  kernels (``kernels/channelwise_conv3d.cc``, binding beside it), any kernel, stride and padding;
  a folded BatchNorm's bias is added in the same pass.
* ``banded``: one grouped Conv2D over (N, C*T, H, W) whose banded (T_out x T_in) temporal weight is
  built in the graph from the parameter (exact; the CPU fallback without a compiler, and what the
  portable MINDIR export uses). Temporal stride 1 only: a layer that strides in time runs
  ``native`` instead (``policy.resolve_impl``).
* ``native``: MindSpore's grouped Conv3D (the GPU/Ascend default).
"""
from __future__ import annotations

import numpy as np
import mindspore as ms
from mindspore import Parameter, Tensor, nn, ops

from ..kernels.channelwise_conv3d import ChannelwiseKernel
from .params import checked_bias, kaiming_fan_out
from .policy import resolve_impl
from .shapes import IntOr3, conv_out_size, triple


class ChannelwiseConv3d(nn.Cell):
    """Depthwise (groups = channels) 3D convolution, weight (C, 1, kT, kH, kW), no bias until a
    BatchNorm is folded into it (:meth:`set_bias`). ``impl``: ``auto``, ``native``, ``banded``,
    ``cpp`` (module docstring; ``custom`` and ``fold`` are deprecated aliases)."""

    def __init__(self, channels: int, kernel_size: IntOr3, *, stride: IntOr3 = 1,
                 padding: IntOr3 = 0, impl: str = "auto") -> None:
        super().__init__()
        self.channels = channels
        self.kernel_size = triple(kernel_size)
        self.stride = triple(stride)
        self.padding = triple(padding)
        self.impl = resolve_impl(impl, "channelwise", stride=self.stride)
        kt, kh, kw = self.kernel_size
        self.weight = Parameter(kaiming_fan_out((channels, 1, kt, kh, kw)), name="weight")
        pt, ph, pw = self.padding
        if self.impl == "native":
            self.conv = ops.Conv3D(channels, self.kernel_size, mode=1, pad_mode="pad",
                                   pad=(pt, pt, ph, ph, pw, pw), stride=self.stride, group=channels)
        elif self.impl == "cpp":
            self.conv = ChannelwiseKernel(self.stride, self.padding)
        self.bias = None  # set by ``set_bias`` when a following BatchNorm is folded in

    def set_bias(self, bias: np.ndarray) -> None:
        """Add a per-channel bias (C,): the shift of a BatchNorm folded into this convolution."""
        self.bias = Parameter(Tensor(checked_bias(self, bias, self.channels)), name="bias")
        if self.impl == "cpp":
            self.conv.add_bias()

    def construct(self, x):
        if self.impl == "cpp":
            return self.conv(x, self.weight, self.bias)
        y = self.conv(x, self.weight) if self.impl == "native" else self._banded(x)
        if self.bias is not None:
            y = y + self.bias.reshape(1, -1, 1, 1, 1)
        return y

    def _banded(self, x):
        n, c, t, h, w = x.shape
        kt, kh, kw = self.kernel_size
        t_out = conv_out_size(t, kt, 1, self.padding[0])
        band = _band_tensor(t, kt, self.padding[0])
        # (T_out*T_in, kT) @ (C, kT, kH*kW) -> (C, T_out*T_in, kH*kW): the banded 2D weight
        wk = ops.matmul(band, self.weight.reshape(c, kt, kh * kw)).reshape(c * t_out, t, kh, kw)
        ph, pw = self.padding[1], self.padding[2]
        y = ops.conv2d(x.reshape(n, c * t, h, w), wk, None, (self.stride[1], self.stride[2]),
                       "pad", (ph, pw), 1, c)
        return y.reshape(n, c, t_out, y.shape[2], y.shape[3])


@ms.constexpr
def _band_tensor(t_in: int, kt: int, pt: int) -> Tensor:
    """(T_out*T_in, kT) 0/1 matrix: entry (o, i, k) is 1 where output frame o reads input frame i
    through tap k (stride 1, zero padding ``pt``)."""
    t_out = t_in + 2 * pt - kt + 1
    band = np.zeros((t_out, t_in, kt), np.float32)
    for o in range(t_out):
        for k in range(kt):
            i = o + k - pt
            if 0 <= i < t_in:
                band[o, i, k] = 1.0
    return Tensor(band.reshape(t_out * t_in, kt))


__all__ = ["ChannelwiseConv3d"]
