"""What every kernel binding shares: one ``ops.Custom(func_type="aot")`` per C++ function.

A binding (``channelwise_conv3d.py``, ``vol2col.py``, ...) names its library and the C++ symbols
it calls (``LIBRARY``, ``SYMBOLS``; ``tests/models/test_kernels.py`` checks that the built library
exports them) and builds its ops through :func:`aot_op`.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import numpy as np
from mindspore import Tensor, ops

from . import library_path

# PyNative caches shape inference per primitive name + attributes + input shapes: every op carries
# its geometry as an attribute, so two convolutions with equal inputs but other strides don't collide
GEOMETRY_ATTR = "kernel_geometry"


def first_shape(xs: Sequence[int], *_rest: Any) -> list:
    """Custom-op shape inference: the output has the first input's shape."""
    return list(xs)


def first_dtype(xt: Any, *_rest: Any) -> Any:
    """Custom-op type inference: the output has the first input's dtype."""
    return xt


def geometry_text(*values: int) -> str:
    """The geometry attribute of an op: its integer configuration, comma-separated."""
    return ",".join(str(v) for v in values)


def config_tensor(values: Sequence[int]) -> Tensor:
    """The int64 configuration tensor a kernel reads its geometry from (the op's last input)."""
    return Tensor(np.array(tuple(values), np.int64))


def aot_op(library: str, symbol: str, *, out_shape: Callable[..., Any], geometry: str,
           out_dtype: Callable[..., Any] = first_dtype, bprop: Optional[Callable[..., Any]] = None) -> ops.Custom:
    """``ops.Custom`` calling ``symbol`` of the built kernel library ``library`` (see
    :func:`library_path`), tagged with its ``geometry`` (see :data:`GEOMETRY_ATTR`)."""
    op = ops.Custom(f"{library_path(library)}:{symbol}", out_shape=out_shape, out_dtype=out_dtype,
                    func_type="aot", bprop=bprop)
    op.add_prim_attr(GEOMETRY_ATTR, geometry)
    return op


__all__ = ["GEOMETRY_ATTR", "aot_op", "config_tensor", "first_dtype", "first_shape", "geometry_text"]
