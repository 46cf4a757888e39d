"""Shape helpers shared by the layers and the kernel bindings: argument normalisation,
convolution output sizes, and the strided positions a 1x1x1 convolution reads (with its adjoint).

No MindSpore state and no device policy here (that is ``policy.py``): pure functions of shapes,
plus the two graph helpers that take and scatter back every stride-th position.
"""
from __future__ import annotations

import math
from typing import List, Sequence, Tuple, Union

import mindspore as ms
from mindspore import Tensor, ops

Triple = Tuple[int, int, int]
IntOr3 = Union[int, Sequence[int]]


def triple(v: IntOr3) -> Triple:
    """``k`` -> ``(k, k, k)``; a sequence of 3 ints -> that tuple (anything else: ValueError)."""
    if isinstance(v, int):
        return (v, v, v)
    v = tuple(int(i) for i in v)
    if len(v) != 3:
        raise ValueError(f"expected an int or 3 ints, got {v}")
    return v  # type: ignore[return-value]


def conv_out_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Output length of a convolution along one axis: floor((size + 2p - k) / s) + 1."""
    return (size + 2 * padding - kernel) // stride + 1


def conv_out_dims(dims: Sequence[int], kernel: Sequence[int], stride: Sequence[int],
                  padding: Sequence[int]) -> Triple:
    """Output (T, H, W) of a 3D convolution over input (T, H, W) (also inside a graph: no comprehension)."""
    return (conv_out_size(dims[0], kernel[0], stride[0], padding[0]),
            conv_out_size(dims[1], kernel[1], stride[1], padding[1]),
            conv_out_size(dims[2], kernel[2], stride[2], padding[2]))


def checked_out_dims(what: str, in_shape: Sequence[int], kernel: Sequence[int], stride: Sequence[int],
                     padding: Sequence[int]) -> List[int]:
    """:func:`conv_out_dims` of an (N, C, T, H, W) input, refusing an input smaller than the
    kernel in one line (a kernel's shape inference would otherwise produce an empty output)."""
    dims = list(conv_out_dims(in_shape[2:], kernel, stride, padding))
    if min(dims) < 1:
        raise ValueError(f"{what}: input {tuple(in_shape)} is smaller than kernel {tuple(kernel)} "
                         f"with padding {tuple(padding)}")
    return dims


def ceil_div(a: int, b: int) -> int:
    """ceil(a / b) for the pooling windows of the heads (a crop of 182 -> ceil(182 / 32) = 6)."""
    return int(math.ceil(a / b))


@ms.constexpr
def pynative() -> bool:
    """True when run in PyNative mode (a constant, False, when compiled into a graph)."""
    return ms.get_context("mode") == ms.PYNATIVE_MODE


def strided_positions(x: Tensor, stride: Triple) -> Tensor:
    """The positions a 1x1x1 convolution with ``stride`` reads: x[:, :, ::sT, ::sH, ::sW]. In
    PyNative mode as one Gather per strided axis: there the stepped slice's gradient
    (StridedSliceGrad) fails; in a graph the slice is kept (its forward + backward measured
    about 18x faster than the Gathers')."""
    if pynative():
        for i in range(3):
            if stride[i] > 1:
                x = ops.gather(x, ops.arange(0, x.shape[2 + i], stride[i]), 2 + i)
        return x
    return x[:, :, ::stride[0], ::stride[1], ::stride[2]]


def scatter_strided(t: Tensor, shape: Sequence[int], stride: Triple) -> Tensor:
    """Zeros of ``shape`` (N, C, T, H, W) holding ``t`` at every stride-th position (the adjoint of
    :func:`strided_positions`): per axis, a zero block after each element, then cut to size."""
    for i in range(3):
        step, axis = stride[i], 2 + i
        if step > 1:
            e = ops.expand_dims(t, axis + 1)
            pad = list(e.shape)
            pad[axis + 1] = step - 1
            t = ops.concat((e, ops.zeros(tuple(pad), t.dtype)), axis + 1)
            merged = list(t.shape[:axis]) + [t.shape[axis] * step] + list(t.shape[axis + 2:])
            t = t.reshape(tuple(merged))
            t = ops.narrow(t, axis, 0, shape[axis])
    return t


__all__ = ["Triple", "IntOr3", "triple", "conv_out_size", "conv_out_dims", "checked_out_dims", "ceil_div",
           "pynative", "strided_positions", "scatter_strided"]
