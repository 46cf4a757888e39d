"""Python binding of ``pointwise_conv3d.cc``: a 1x1x1 convolution (any stride) with its bias and
what an X3D-style block does around it fused into one pass (``PointwiseConv3d`` impl ``cpp``).

Op inputs (x, w, b, r, s, cfg): r the residual (epilogue 2), s the squeeze-excitation gate
(prologue 2), cfg the int64 tensor stride (t, h, w) + (epilogue, prologue); epilogue 0 none,
1 ReLU, 2 residual + ReLU; prologue 0 none, 1 Swish, 2 gate then Swish. The bprop (MindSpore
ops) makes an inference network differentiable too (saliency maps, attacks); training itself
runs the native layer.
"""
from __future__ import annotations

from typing import Dict, Tuple

from mindspore import Tensor, ops

from ..layers.shapes import Triple, scatter_strided, strided_positions
from .aot import aot_op, config_tensor, geometry_text

LIBRARY = "pointwise"
SYMBOL = "PointwiseConv3d"
SE_SYMBOL = "MovinetSeStream"
SYMBOLS = (SYMBOL, SE_SYMBOL)
SE_ACTS = ("swish", "hard_swish")                             # index = the kernel's act code
SE_GATES = ("sigmoid", "hard_sigmoid", "hard_sigmoid_relu6")  # index = the kernel's gate code
EPILOGUES = ("none", "relu", "residual_relu")  # index = the kernel's epilogue code
PROLOGUES = ("none", "swish", "gate_swish")    # index = the kernel's prologue code

_OPS: Dict[Tuple[Triple, int, int], ops.Custom] = {}


def pointwise_config(stride: Triple, epilogue: int, prologue: int) -> Tensor:
    """The configuration tensor of one (stride, epilogue, prologue) form."""
    return config_tensor(stride + (epilogue, prologue))


def pointwise_conv3d_op(stride: Triple, epilogue: int, prologue: int) -> ops.Custom:
    """The C++ pointwise kernel in one (epilogue, prologue) form, shared by the layers with this stride."""
    key = (stride, epilogue, prologue)
    if key in _OPS:
        return _OPS[key]
    strided = stride != (1, 1, 1)

    def out_shape(xs, ws, *_rest):
        return [xs[0], ws[0]] + [(xs[2 + i] - 1) // stride[i] + 1 for i in range(3)]

    def bprop(x, w, b, r, s, cfg, out, dout):
        xs = strided_positions(x, stride) if strided else x
        v = xs * s if prologue == 2 else xs
        sig = ops.sigmoid(v)
        u = v * sig if prologue else v
        dz = dout * (out > 0).astype(dout.dtype) if epilogue else dout  # ReLU: out > 0 where it passed
        n, co, c = dz.shape[0], dz.shape[1], u.shape[1]
        dz2 = dz.reshape(n, co, -1)
        dw = ops.matmul(dz2, u.reshape(n, c, -1).transpose(0, 2, 1)).sum(axis=0).reshape(w.shape)
        du = ops.matmul(w.reshape(co, c).T, dz2).reshape(u.shape)
        dv = du * (sig * (1.0 + v * (1.0 - sig))) if prologue else du
        dxs = dv * s if prologue == 2 else dv
        ds = (dv * xs).sum(axis=(2, 3, 4), keepdims=True).reshape(s.shape) if prologue == 2 else ops.zeros_like(s)
        dx = scatter_strided(dxs, x.shape, stride) if strided else dxs
        dr = dz if epilogue == 2 else ops.zeros_like(r)
        return dx, dw, dz.sum(axis=(0, 2, 3, 4)), dr, ds, ops.zeros_like(cfg)

    op = aot_op(LIBRARY, SYMBOL, out_shape=out_shape, bprop=bprop,
                geometry=geometry_text(*stride, epilogue, prologue))
    _OPS[key] = op
    return op


_SE_OPS: Dict[Tuple[int, int], ops.Custom] = {}


def se_stream_op(act: str, gate: str) -> ops.Custom:
    """MoViNet's causal squeeze-excitation on one stream frame in one call (``MovinetSeStream``):
    (x, pool_sum, count, w1, b1, w2, b2, cfg) -> (x * gate, running spatial-mean sum). Inference
    only: no bprop (training and whole clips run the MindSpore ops)."""
    key = (SE_ACTS.index(act), SE_GATES.index(gate))
    if key not in _SE_OPS:
        def out_shape(xs, ps, *_rest):
            return (list(xs), [xs[0], xs[1], 1, 1, 1])

        def out_dtype(xt, *_rest):
            return (xt, xt)

        _SE_OPS[key] = aot_op(LIBRARY, SE_SYMBOL, out_shape=out_shape, out_dtype=out_dtype,
                              geometry=geometry_text(*key))
    return _SE_OPS[key]


def se_stream_config(act: str, gate: str) -> Tensor:
    """The configuration tensor of :func:`se_stream_op` (act code, gate code)."""
    return config_tensor((SE_ACTS.index(act), SE_GATES.index(gate)))


__all__ = ["LIBRARY", "SYMBOLS", "EPILOGUES", "PROLOGUES", "SE_ACTS", "SE_GATES", "pointwise_config",
           "pointwise_conv3d_op", "se_stream_config", "se_stream_op"]
