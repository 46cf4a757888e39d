"""Average pooling of the heads."""
from __future__ import annotations

from mindspore import Tensor, ops

from .shapes import Triple


def global_avg_pool(x: Tensor) -> Tensor:
    """Mean over (T, H, W) with kept dims, as one MatMul with a constant column.

    On CPU (2 threads) this measured 1.4-7x faster than ReduceMean over the three axes.
    """
    n, c, t, h, w = x.shape
    col = ops.full((t * h * w, 1), 1.0 / (t * h * w), dtype=x.dtype)
    return ops.matmul(x.reshape(n * c, t * h * w), col).reshape(n, c, 1, 1, 1)


def avg_pool_head(x: Tensor, kernel: Triple) -> Tensor:
    """Average over windows of ``kernel`` (clipped to the input) with stride 1."""
    _, _, t, h, w = x.shape
    kt, kh, kw = min(kernel[0], t), min(kernel[1], h), min(kernel[2], w)
    if (kt, kh, kw) == (t, h, w):
        return global_avg_pool(x)
    return ops.avg_pool3d(x, (kt, kh, kw), 1)


__all__ = ["global_avg_pool", "avg_pool_head"]
