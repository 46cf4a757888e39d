"""Python binding of ``channelwise_conv3d.cc``: the depthwise (channelwise) 3D convolution.

The forward ``ops.Custom`` takes (x, w, cfg) or, with a folded BatchNorm's bias added in the same
pass, (x, w, bias, cfg); cfg is the int64 tensor stride (t, h, w) + padding (t, h, w). Its bprop is
the C++ backward (dx and dw in one pass). Used by ``ChannelwiseConv3d`` and, for depthwise shapes,
``Conv3d`` (impl ``cpp`` in both).
"""
from __future__ import annotations

from mindspore import Tensor, nn, ops

from ..layers.shapes import Triple, checked_out_dims
from .aot import aot_op, config_tensor, first_dtype, geometry_text

LIBRARY = "channelwise"
FORWARD = "ChannelwiseConv3dForward"
FORWARD_BIAS = "ChannelwiseConv3dForwardBias"  # + a folded BatchNorm's bias in the same pass
BACKWARD = "ChannelwiseConv3dBackward"
SYMBOLS = (FORWARD, FORWARD_BIAS, BACKWARD)


def channelwise_config(stride: Triple, padding: Triple) -> Tensor:
    """The configuration tensor the ops read: stride + padding (int64)."""
    return config_tensor(stride + padding)


def channelwise_conv3d_op(stride: Triple, padding: Triple, *, with_bias: bool = False) -> ops.Custom:
    """The forward ``ops.Custom`` of the C++ channelwise kernel, with its C++ backward as bprop.

    ``with_bias``: the (x, w, bias, cfg) variant that adds a folded BatchNorm's shift in the same pass.
    """
    geometry = geometry_text(*stride, *padding)

    def out_shape(xs, ws, *_rest):
        return [xs[0], xs[1]] + checked_out_dims("ChannelwiseConv3d", xs, ws[2:], stride, padding)

    backward = aot_op(LIBRARY, BACKWARD, out_shape=lambda xs, ws, _c, _g: (xs, ws),
                      out_dtype=lambda xt, wt, _c, _g: (xt, wt), geometry=geometry)
    if with_bias:
        def bprop_bias(x, w, b, cfg, out, dout):
            dx, dw = backward(x, w, cfg, dout)
            return dx, dw, dout.sum(axis=(0, 2, 3, 4)), ops.zeros_like(cfg)

        return aot_op(LIBRARY, FORWARD_BIAS, out_shape=out_shape, out_dtype=first_dtype, bprop=bprop_bias,
                      geometry=geometry)

    def bprop(x, w, cfg, out, dout):
        dx, dw = backward(x, w, cfg, dout)
        return dx, dw, ops.zeros_like(cfg)

    return aot_op(LIBRARY, FORWARD, out_shape=out_shape, out_dtype=first_dtype, bprop=bprop, geometry=geometry)


class ChannelwiseKernel(nn.Cell):
    """The C++ depthwise convolution as a cell without parameters: ``(x, weight[, bias]) -> y``.

    The one way both layers that run this kernel (``ChannelwiseConv3d`` and depthwise ``Conv3d``,
    impl ``cpp``) call it; the layer owns the weight (and, once a BatchNorm is folded in, the bias,
    after :meth:`add_bias`), so parameter names stay the layer's own.
    """

    def __init__(self, stride: Triple, padding: Triple) -> None:
        super().__init__()
        self.stride, self.padding = stride, padding
        self.op = channelwise_conv3d_op(stride, padding)
        self.op_bias = None
        self.geometry = channelwise_config(stride, padding)

    def add_bias(self) -> None:
        """Also build the (x, w, bias, cfg) variant, which adds the bias in the same pass."""
        if self.op_bias is None:
            self.op_bias = channelwise_conv3d_op(self.stride, self.padding, with_bias=True)

    def construct(self, x, weight, bias=None):
        if bias is None:
            return self.op(x, weight, self.geometry)
        return self.op_bias(x, weight, bias, self.geometry)  # bias added in C++


__all__ = ["LIBRARY", "SYMBOLS", "ChannelwiseKernel", "channelwise_config", "channelwise_conv3d_op"]
