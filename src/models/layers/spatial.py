"""``SpatialConv3d``: a (1, kH, kW) convolution with few input channels (X3D's stem conv_xy, 3 -> 24)."""
from __future__ import annotations

from typing import Sequence

from mindspore import ops

from .conv import Conv3d
from .policy import resolve_impl
from .shapes import conv_out_size, triple


class SpatialConv3d(Conv3d):
    """A (1, kH, kW) Conv3d with weight (C_out, C_in, 1, kH, kW), no bias (the X3D stem's conv_xy).

    ``impl``: ``direct`` (CPU default: the C++ direct convolution of :class:`Conv3d`), ``gemm``
    (C++ vol2col + one product), ``native`` (one Conv3D; the default elsewhere), ``im2col`` (pure
    MindSpore: the kH*kW shifted views stacked as channels, then a 1x1x1 Conv3D; for CPUs without
    a compiler). MindSpore's CPU Conv3D for this 3-channel kernel depends on the CPU: fast on an
    AVX2 machine, on oneDNN's generic path (tens of times slower) on an AVX-512 one.
    """

    def __init__(self, dim_in: int, dim_out: int, kernel_size: Sequence[int], *,
                 stride: Sequence[int] = (1, 1, 1), padding: Sequence[int] = (0, 0, 0),
                 impl: str = "auto") -> None:
        kernel_size, stride, padding = triple(kernel_size), triple(stride), triple(padding)
        if kernel_size[0] != 1 or stride[0] != 1 or padding[0] != 0:
            raise ValueError(f"SpatialConv3d is for (1, kH, kW) kernels without temporal stride/padding, "
                             f"got kernel {kernel_size}, stride {stride}, padding {padding}")
        impl = resolve_impl(impl, "spatial")
        super().__init__(dim_in, dim_out, kernel_size, stride=stride, padding=padding,
                         impl="native" if impl == "im2col" else impl)
        self.impl = impl

    def construct(self, x):
        if self.impl != "im2col":
            return super().construct(x)
        n, c, t, h, w = x.shape
        _, kh, kw = self.kernel_size
        _, sh, sw = self.stride
        _, ph, pw = self.padding
        ho = conv_out_size(h, kh, sh, ph)
        wo = conv_out_size(w, kw, sw, pw)
        xp = ops.pad(x, (pw, pw, ph, ph))
        cols = []
        for i in range(kh):
            for j in range(kw):
                cols.append(xp[:, :, :, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw])
        # (N, C, kH*kW, T, Ho, Wo) -> (N, C*kH*kW, T, Ho, Wo): channel index c*kH*kW + i*kW + j
        cols = ops.stack(cols, axis=2).reshape(n, c * kh * kw, t, ho, wo)
        w2 = self.weight.reshape(self.dim_out, c * kh * kw, 1, 1, 1)
        return ops.conv3d(cols, w2)


__all__ = ["SpatialConv3d"]
