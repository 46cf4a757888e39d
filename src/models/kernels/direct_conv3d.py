"""Python binding of ``direct_conv3d.cc``: a dense 3D convolution computed directly (no patch
matrix), fastest for few input channels (the stems; ``Conv3d`` / ``SpatialConv3d`` impl ``direct``).

bprop: the C++ weight gradient and, for the input, the adjoint of the patch gathering
(``vol2col.py``'s col2vol) applied to W^T dy (only built into the graph when the input needs a
gradient). cfg: kernel + stride + padding, as vol2col's (:func:`vol2col.patch_config`).
"""
from __future__ import annotations

from mindspore import ops

from ..layers.shapes import Triple, checked_out_dims
from .aot import aot_op, geometry_text
from .vol2col import col2vol_op

LIBRARY = "direct"
FORWARD, GRAD_W = "DirectConv3d", "DirectConv3dGradW"
SYMBOLS = (FORWARD, GRAD_W)


def direct_conv3d_op(kernel: Triple, stride: Triple, padding: Triple) -> ops.Custom:
    """``ops.Custom`` (x, w, cfg) -> y of the C++ direct convolution, with its bprop."""
    geometry = geometry_text(*kernel, *stride, *padding)
    taps = kernel[0] * kernel[1] * kernel[2]

    def out_shape(xs, ws, _cs):
        return [xs[0], ws[0]] + checked_out_dims("Conv3d", xs, kernel, stride, padding)

    def grad_w_shape(xs, dys, _cs):
        return [dys[1], xs[1]] + list(kernel)

    grad_w = aot_op(LIBRARY, GRAD_W, out_shape=grad_w_shape, geometry=geometry)
    col2vol = col2vol_op(geometry)

    def bprop(x, w, cfg, out, dout):
        n, c = x.shape[0], x.shape[1]
        co = w.shape[0]
        dy = dout.reshape(n, co, -1)
        dcols = ops.matmul(w.reshape(co, c * taps).T, dy.transpose(1, 0, 2).reshape(co, -1))
        dx = col2vol(x, cfg, dcols.reshape(c * taps, n, dy.shape[2]))
        return dx, grad_w(x, dout, cfg), ops.zeros_like(cfg)

    return aot_op(LIBRARY, FORWARD, out_shape=out_shape, bprop=bprop, geometry=geometry)


__all__ = ["LIBRARY", "SYMBOLS", "direct_conv3d_op"]
