"""``Conv3d``: the general dense or grouped 3D convolution of the Efficient-3DCNNs family (3x3x3
stems, ResNet convolutions, ShuffleNet's grouped 1x1x1, ResNeXt's grouped 3x3x3), weight
(C_out, C_in / groups, kT, kH, kW), optional bias (C_out,).

The parameter has the reference shape for every ``impl``, so checkpoints move between devices:

* ``native`` - one Conv3D with ``group`` (cuDNN on GPU). MindSpore's CPU kernel runs the groups
  one after another, and Ascend accepts group > 1 only for depthwise convolutions.
* ``split`` - the input split into ``groups`` channel slices, one ungrouped Conv3D per slice
  with its slice of the weight, outputs concatenated.
* ``blockdiag`` - one dense Conv3D whose block-diagonal (C_out, C_in, k...) weight is built in
  the graph from the parameter (tiled along C_in, times a constant 0/1 mask): exact, one
  kernel call, ``groups`` times the multiply-adds.
* ``gemm`` - (CPU) C++ vol2col gathers the patches into (C_in*taps, N, L), then one product
  reads the weight once: a 1x1x1 Conv3D when ungrouped, a MatMul batched over the groups
  otherwise (exact arithmetic). Grouped 1x1x1 convolutions need no gathering.
* ``cpp`` - (CPU) depthwise only (``dim_in == dim_out == groups``): the C++ depthwise kernel,
  the one ``ChannelwiseConv3d`` runs as ``cpp`` (deprecated alias: ``channelwise``).
* ``direct`` - (CPU) ungrouped only: the C++ direct convolution (output channels in vector
  registers, no patch matrix; weight gradient in C++, input gradient via vol2col's adjoint).
  Fastest for few input channels (stems).

``impl="auto"`` is resolved by ``policy.resolve_grouped_impl`` from the device and the shape.
"""
from __future__ import annotations

import math

import numpy as np
from mindspore import Parameter, Tensor, nn, ops

from ..kernels.channelwise_conv3d import ChannelwiseKernel
from ..kernels.direct_conv3d import direct_conv3d_op
from ..kernels.vol2col import patch_config, vol2col_op
from .params import kaiming_fan_out, set_bias_parameter
from .policy import resolve_grouped_impl, subsamples
from .shapes import IntOr3, conv_out_dims, strided_positions, triple


class Conv3d(nn.Cell):
    """General 3D convolution, weight (C_out, C_in / groups, kT, kH, kW), optional bias (C_out,);
    formulations in the module docstring.

    ``set_bias`` lets ``fold_batchnorm`` give it a bias. ``init``: ``kaiming_fan_out`` (the
    references' ResNet/SqueezeNet/MobileNetV2 init) or ``torch_default`` (PyTorch's default Conv3d
    init: kaiming-uniform with a = sqrt(5)).
    """

    def __init__(self, dim_in: int, dim_out: int, kernel_size: IntOr3, *, stride: IntOr3 = 1,
                 padding: IntOr3 = 0, groups: int = 1, has_bias: bool = False,
                 init: str = "kaiming_fan_out", impl: str = "auto") -> None:
        super().__init__()
        if groups < 1 or dim_in % groups or dim_out % groups:
            raise ValueError(f"Conv3d: channels {dim_in} -> {dim_out} are not divisible by groups={groups}")
        self.dim_in, self.dim_out, self.groups = dim_in, dim_out, groups
        self.kernel_size = triple(kernel_size)
        self.stride = triple(stride)
        self.padding = triple(padding)
        self.impl = resolve_grouped_impl(impl, dim_in=dim_in, dim_out=dim_out, groups=groups,
                                         kernel_size=self.kernel_size, stride=self.stride)
        shape = (dim_out, dim_in // groups) + self.kernel_size
        fan_in = (dim_in // groups) * int(np.prod(self.kernel_size))
        if init == "kaiming_fan_out":
            w = kaiming_fan_out(shape)
        elif init == "torch_default":
            bound = 1.0 / math.sqrt(fan_in)  # kaiming_uniform(a=sqrt(5)) bound = sqrt(6/((1+5)*fan_in))
            w = Tensor(np.random.uniform(-bound, bound, shape).astype(np.float32))
        else:
            raise ValueError(f"Conv3d init must be 'kaiming_fan_out' or 'torch_default', got '{init}'")
        self.weight = Parameter(w, name="weight")
        self.bias = None
        if has_bias:
            bound = 1.0 / math.sqrt(fan_in)
            self.bias = Parameter(Tensor(np.random.uniform(-bound, bound, (dim_out,)).astype(np.float32)),
                                  name="bias")
        self._build_formulation()

    def _build_formulation(self) -> None:
        """The ops (and constant tensors) of ``self.impl``."""
        dim_out, groups = self.dim_out, self.groups
        pt, ph, pw = self.padding
        pad = (pt, pt, ph, ph, pw, pw)
        # a strided 1x1x1 convolution (ResNet's shortcut B): on CPU a slice, then stride 1
        self.subsample = (self.impl in ("native", "split", "blockdiag")
                          and subsamples(self.kernel_size, self.stride, self.padding))
        conv_stride = (1, 1, 1) if self.subsample else self.stride
        if self.impl == "cpp":
            self.conv = ChannelwiseKernel(self.stride, self.padding)
        elif self.impl == "direct":
            self.conv = direct_conv3d_op(self.kernel_size, self.stride, self.padding)
            self.geometry = patch_config(self.kernel_size, self.stride, self.padding)
        elif self.impl == "gemm":
            self.pointwise = self.kernel_size == (1, 1, 1) and self.stride == (1, 1, 1) and self.padding == (0, 0, 0)
            self.conv = ops.Conv3D(dim_out, 1, mode=1, pad_mode="valid")  # the product when groups == 1
            if not self.pointwise:
                self.vol2col = vol2col_op(self.kernel_size, self.stride, self.padding)
                self.geometry = patch_config(self.kernel_size, self.stride, self.padding)
        elif self.impl == "native":
            self.conv = ops.Conv3D(dim_out, self.kernel_size, mode=1, pad_mode="pad", pad=pad,
                                   stride=conv_stride, group=groups)
        else:
            out_per_conv = dim_out // groups if self.impl == "split" else dim_out
            self.conv = ops.Conv3D(out_per_conv, self.kernel_size, mode=1, pad_mode="pad", pad=pad,
                                   stride=conv_stride)
        if self.impl == "blockdiag" and groups > 1:
            cin_g, cout_g = self.dim_in // groups, dim_out // groups
            mask = (np.arange(dim_out)[:, None] // cout_g == np.arange(self.dim_in)[None, :] // cin_g)
            self.block_mask = Tensor(mask.astype(np.float32).reshape(dim_out, self.dim_in, 1, 1, 1))

    def set_bias(self, bias: np.ndarray) -> None:
        """Set the per-channel bias (C_out,): the shift of a BatchNorm folded into this conv."""
        set_bias_parameter(self, bias, self.dim_out)
        if self.impl == "cpp":
            self.conv.add_bias()

    def construct(self, x):
        if self.impl == "cpp":
            return self.conv(x, self.weight, self.bias)  # the bias, once set, added in C++
        if self.subsample:
            x = strided_positions(x, self.stride)
        if self.impl == "native":
            y = self.conv(x, self.weight)
        elif self.impl == "direct":
            y = self.conv(x, self.weight, self.geometry)
        elif self.impl == "blockdiag":
            y = self.conv(x, self._dense_weight())
        elif self.impl == "gemm":
            y = self._gemm(x)
        else:
            # static slices, not ops.split: a graph with a dynamic batch (export) cannot size a Split
            ci, co = self.dim_in // self.groups, self.dim_out // self.groups
            y = ops.cat([self.conv(x[:, i * ci:(i + 1) * ci], self.weight[i * co:(i + 1) * co])
                         for i in range(self.groups)], axis=1)
        if self.bias is not None:
            y = y + self.bias.reshape(1, -1, 1, 1, 1)
        return y

    def _dense_weight(self):
        """(C_out, C_in, k...): the parameter itself, or its block-diagonal expansion when grouped."""
        if self.groups == 1:
            return self.weight
        return ops.tile(self.weight, (1, self.groups, 1, 1, 1)) * self.block_mask

    def _gemm(self, x):
        """vol2col (C++) into (C_in*taps, N, L), then one product that reads the weight once: a
        1x1x1 Conv3D over the patch rows when ungrouped (oneDNN's fast path), else a MatMul batched
        over the groups. Exact arithmetic, no loop over groups. Grouped 1x1x1 convolutions skip
        vol2col: a MatMul batched over samples and groups."""
        n, c, t, h, w = x.shape
        kt, kh, kw = self.kernel_size
        g, cout = self.groups, self.dim_out
        to, ho, wo = conv_out_dims((t, h, w), self.kernel_size, self.stride, self.padding)
        k = (c // g) * kt * kh * kw
        if self.pointwise:
            if g == 1:
                return self.conv(x, self.weight)
            y = ops.matmul(self.weight.reshape(g, cout // g, k), x.reshape(n, g, k, t * h * w))
            return y.reshape(n, cout, t, h, w)
        cols = self.vol2col(x, self.geometry)  # (C_in*taps, N, L)
        length = n * to * ho * wo
        if g == 1:
            # positions on the last axis: with them on the first spatial axis oneDNN's weight gradient
            # took a slow path (hundreds of times slower)
            y = self.conv(cols.reshape(1, k, 1, 1, length), self.weight.reshape(cout, k, 1, 1, 1))
        else:
            y = ops.matmul(self.weight.reshape(g, cout // g, k), cols.reshape(g, k, length))
        return y.reshape(cout, n, to * ho * wo).transpose(1, 0, 2).reshape(n, cout, to, ho, wo)


__all__ = ["Conv3d"]
