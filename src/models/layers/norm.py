"""BatchNorm over 5D video tensors with the reference defaults and flat parameter names."""
from __future__ import annotations

from mindspore import nn


class BatchNorm3d(nn.BatchNorm2d):
    """BatchNorm over (N, C, T, H, W) with reference defaults (eps 1e-5, torch momentum 0.1).

    A subclass rather than ``nn.BatchNorm3d`` so parameter names stay flat
    (``bn.gamma``, not ``bn.bn2d.gamma``).
    """

    def __init__(self, num_features: int, *, eps: float = 1e-5, momentum: float = 0.9,
                 zero_init: bool = False) -> None:
        super().__init__(num_features, eps=eps, momentum=momentum,
                         gamma_init="zeros" if zero_init else "ones")

    def construct(self, x):
        n, c, t, h, w = x.shape
        y = super().construct(x.reshape(n, c, t * h, w))
        return y.reshape(n, c, t, h, w)


__all__ = ["BatchNorm3d"]
