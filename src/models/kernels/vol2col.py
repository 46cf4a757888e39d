"""Python binding of ``vol2col.cc``: convolution patches gathered into a matrix, and the adjoint.

``vol2col_op`` gathers (N, C, T, H, W) into (C*taps, N, L) so one product reads the weight once
(``Conv3d`` impl ``gemm``); its bprop is ``col2vol_op``, which sums patch gradients back onto the
input (also the input gradient of the direct convolution, ``direct_conv3d.py``). cfg is the int64
tensor kernel (t, h, w) + stride (t, h, w) + padding (t, h, w).
"""
from __future__ import annotations

from mindspore import Tensor, ops

from ..layers.shapes import Triple, checked_out_dims
from .aot import aot_op, config_tensor, first_shape, geometry_text

LIBRARY = "vol2col"
VOL2COL, COL2VOL = "Vol2Col", "Col2Vol"
SYMBOLS = (VOL2COL, COL2VOL)


def patch_config(kernel: Triple, stride: Triple, padding: Triple) -> Tensor:
    """The configuration tensor of vol2col, col2vol and the direct convolution: kernel + stride + padding."""
    return config_tensor(kernel + stride + padding)


def col2vol_op(geometry: str) -> ops.Custom:
    """``ops.Custom`` summing patch gradients back onto the input (C++ ``Col2Vol``): the adjoint
    of vol2col, used by the bprops of ``gemm`` and ``direct``; (x, cfg, dcols) -> dx, x giving the shape."""
    return aot_op(LIBRARY, COL2VOL, out_shape=first_shape, geometry=geometry)


def vol2col_op(kernel: Triple, stride: Triple, padding: Triple) -> ops.Custom:
    """``ops.Custom`` gathering convolution patches (C++ ``Vol2Col``), its adjoint as bprop."""
    geometry = geometry_text(*kernel, *stride, *padding)
    taps = kernel[0] * kernel[1] * kernel[2]

    def out_shape(xs, _cs):
        dims = checked_out_dims("Conv3d", xs, kernel, stride, padding)
        return [xs[1] * taps, xs[0], dims[0] * dims[1] * dims[2]]

    backward = col2vol_op(geometry)

    def bprop(x, cfg, out, dout):
        return backward(x, cfg, dout), ops.zeros_like(cfg)

    return aot_op(LIBRARY, VOL2COL, out_shape=out_shape, bprop=bprop, geometry=geometry)


__all__ = ["LIBRARY", "SYMBOLS", "patch_config", "col2vol_op", "vol2col_op"]
