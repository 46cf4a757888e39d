"""Stochastic depth ("drop path", Huang et al. 2016; pytorchvideo ``layers/drop_path.py``, timm's
``DropPath``): in training, a residual branch's output is zeroed for a whole sample with
probability ``rate`` and scaled by ``1 / (1 - rate)`` otherwise, so its expectation is unchanged;
in eval mode it is the identity.

The per-sample mask is MindSpore's ``Dropout`` op applied to a (N, 1, ..., 1) tensor of ones (its
output is 0 or ``1 / keep``): the kernel and the seeding of ``nn.Dropout`` (seeds from the global
seed and the count of random ops built, ``_get_graph_seed``), so ``context.seed`` and
``context.deterministic`` make its masks reproducible exactly as they do the head dropout's.
"""
from __future__ import annotations

from typing import List

from mindspore import nn, ops
from mindspore.common.seed import _get_graph_seed


def drop_path_rates(rate: float, count: int) -> List[float]:
    """Linear over depth: block ``i`` of ``count`` gets ``rate * i / (count - 1)`` (0 for the first,
    ``rate`` for the last; timm's ``linspace(0, rate, count)``)."""
    if count <= 1:
        return [0.0] * count
    return [rate * i / (count - 1) for i in range(count)]


class DropPath(nn.Cell):
    """``x * mask`` with one Bernoulli(1 - rate) / (1 - rate) value per sample (training only)."""

    def __init__(self, rate: float) -> None:
        super().__init__()
        if not 0.0 <= float(rate) < 1.0:
            raise ValueError(f"DropPath: rate must be in [0, 1), got {rate!r}")
        self.rate = float(rate)
        seed0, seed1 = _get_graph_seed(0, "dropout")
        self.dropout = ops.Dropout(keep_prob=1.0 - self.rate, Seed0=seed0, Seed1=seed1)

    def construct(self, x):
        if not self.training or self.rate == 0.0:
            return x
        mask, _ = self.dropout(ops.ones((x.shape[0],) + (1,) * (x.ndim - 1), x.dtype))
        return x * ops.stop_gradient(mask)  # no gradient for the mask (nor the reduction it would need)

    def extend_repr(self) -> str:
        return f"rate={self.rate:.4f}"


__all__ = ["DropPath", "drop_path_rates"]
