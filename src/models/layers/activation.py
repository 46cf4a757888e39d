"""Activations the reference networks use beyond MindSpore's own."""
from __future__ import annotations

from mindspore import nn, ops


class Swish(nn.Cell):
    """x * sigmoid(x) (used once per X3D bottleneck, after the channelwise conv)."""

    def construct(self, x):
        return x * ops.sigmoid(x)


__all__ = ["Swish"]
