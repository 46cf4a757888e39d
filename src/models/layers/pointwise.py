"""``PointwiseConv3d``: the 1x1x1 convolution, with the C++ fused inference pass (impl ``cpp``)."""
from __future__ import annotations

import numpy as np
import mindspore as ms
from mindspore import Parameter, Tensor, nn, ops
from mindspore.common.initializer import initializer

from ..kernels.pointwise_conv3d import pointwise_config, pointwise_conv3d_op
from .params import kaiming_fan_out, set_bias_parameter
from .policy import resolve_impl, subsamples
from .shapes import IntOr3, strided_positions, triple


class PointwiseConv3d(nn.Cell):
    """1x1x1 Conv3d, weight (C_out, C_in, 1, 1, 1), optional bias (C_out,).

    ``native``: Conv3D (+ BiasAdd), oneDNN's matrix product; what training always runs.
    ``cpp`` (the CPU default): in an inference network (eval mode, with a bias, e.g. a folded
    BatchNorm's shift) one C++ pass (``kernels/pointwise_conv3d.cc``) computes the product and
    the bias and, through :meth:`fused`, what an X3D block does around the convolution: a Swish
    (after a squeeze-excitation gate) on its input, a ReLU or the residual sum + ReLU on its
    output. As separate ops each of those reads and writes the whole activation again.
    ``set_bias`` lets ``fold_batchnorm`` give the layer a bias after construction.

    A strided layer on CPU takes every s-th position first (``policy.subsamples``; the C++ kernel
    reads them itself).
    """

    def __init__(self, dim_in: int, dim_out: int, *, stride: IntOr3 = 1, has_bias: bool = False,
                 impl: str = "auto") -> None:
        super().__init__()
        self.dim_in, self.dim_out = dim_in, dim_out
        self.stride = triple(stride)
        self.weight = Parameter(kaiming_fan_out((dim_out, dim_in, 1, 1, 1)), name="weight")
        self.bias = Parameter(initializer("zeros", (dim_out,), ms.float32), name="bias") if has_bias else None
        self.subsample = subsamples((1, 1, 1), self.stride, (0, 0, 0))
        self.conv = ops.Conv3D(dim_out, 1, mode=1, pad_mode="valid",
                               stride=1 if self.subsample else self.stride)
        self.relu = ops.ReLU()
        self.impl = resolve_impl(impl, "pointwise") if self.stride == (1, 1, 1) or self.subsample else "native"
        if self.impl == "cpp":
            # one op and configuration tensor per epilogue (0 none, 1 ReLU, 2 residual + ReLU) and
            # prologue (0 none, 1 Swish, 2 gate + Swish)
            self.kernels = tuple(tuple(pointwise_conv3d_op(self.stride, e, p) for p in range(3)) for e in range(3))
            self.kernel_cfgs = tuple(tuple(pointwise_config(self.stride, e, p) for p in range(3)) for e in range(3))
            self.unused = Tensor(np.zeros((1,), np.float32))  # for the kernel's residual / gate slot

    @property
    def has_bias(self) -> bool:
        return self.bias is not None

    def set_bias(self, bias: np.ndarray) -> None:
        """Set (or add) the per-channel bias (C_out,): the shift of a BatchNorm folded into this conv."""
        set_bias_parameter(self, bias, self.dim_out)

    def construct(self, x):
        return self.fused(x)

    def fused(self, x, relu: bool = False, residual=None, swish_input: bool = False, gate=None):
        """[Swish(x [* gate])] -> conv + bias [+ residual] [-> ReLU].

        ``gate`` (N, C_in, 1, 1, 1) scales the input before the Swish (only with
        ``swish_input``); a residual is summed only with ``relu`` (the C++ kernel's forms).
        """
        if gate is not None and not swish_input:
            raise ValueError("PointwiseConv3d.fused: a gate is only applied before a Swish")
        if residual is not None and not relu:
            raise ValueError("PointwiseConv3d.fused: a residual is only summed before a ReLU")
        if self.impl == "cpp" and self.bias is not None and not self.training:
            epilogue = 2 if residual is not None else (1 if relu else 0)
            prologue = 2 if gate is not None else (1 if swish_input else 0)
            r = self.unused if residual is None else residual
            s = self.unused if gate is None else gate
            return self.kernels[epilogue][prologue](x, self.weight, self.bias, r, s,
                                                    self.kernel_cfgs[epilogue][prologue])
        if gate is not None:
            x = x * gate
        if swish_input:
            x = x * ops.sigmoid(x)
        if self.subsample:
            x = strided_positions(x, self.stride)
        # called as a method (not through the cell) under mixed precision, x may be float16 while
        # the weights are float32 master copies: compute in x's type (a no-op in float32)
        weight = self.weight if x.dtype == self.weight.dtype else self.weight.astype(x.dtype)
        y = self.conv(x, weight)
        if self.bias is not None:
            y = ops.bias_add(y, self.bias if y.dtype == self.bias.dtype else self.bias.astype(y.dtype))
        if residual is not None:
            y = y + residual
        if relu:
            y = self.relu(y)
        return y


__all__ = ["PointwiseConv3d"]
