"""Losses (registry ``LOSSES``)."""
from __future__ import annotations

from mindspore import nn

from ..registry import LOSSES


@LOSSES.register("cross_entropy")
def cross_entropy(label_smoothing: float = 0.0) -> nn.Cell:
    """Softmax cross-entropy on logits and sparse int labels, mean over the batch."""
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"loss.label_smoothing: expected a value in [0, 1), got {label_smoothing}")
    return nn.CrossEntropyLoss(reduction="mean", label_smoothing=float(label_smoothing))


# MindSpore built-ins, registered by explicit choice (not by scanning mindspore.nn)
LOSSES.register("SoftmaxCrossEntropyWithLogits", nn.SoftmaxCrossEntropyWithLogits)
LOSSES.register("CrossEntropyLoss", nn.CrossEntropyLoss)
