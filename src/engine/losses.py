"""Losses (registry ``LOSSES``)."""
from __future__ import annotations

from mindspore import nn, ops

from ..registry import LOSSES


class CrossEntropy(nn.Cell):
    """Softmax cross-entropy on logits, mean over the batch, for either kind of target:

    * int labels (N,): ``nn.CrossEntropyLoss`` with ``label_smoothing`` s, i.e. the cross-entropy
      against ``1 - s + s/K`` at the label and ``s/K`` elsewhere;
    * soft targets (N, K) float (MixUp/CutMix, ``src/data/mixup.py``): ``mean(-sum(t * log_softmax))``,
      timm's ``SoftTargetCrossEntropy`` / SlowFast's ``soft_cross_entropy``. No smoothing is added:
      the pipeline folds it into the targets already (with ``mixup.label_smoothing`` null it takes
      this loss's ``label_smoothing``), as timm and SlowFast do when mixing is on.

    The branch is chosen from the label rank when the graph is compiled."""

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.label_smoothing = float(label_smoothing)
        self.hard = nn.CrossEntropyLoss(reduction="mean", label_smoothing=self.label_smoothing)

    def construct(self, logits, labels):
        if labels.ndim == 2:
            logp = ops.log_softmax(logits.astype(labels.dtype), -1)
            return ops.mean(-(labels * logp).sum(-1))
        return self.hard(logits, labels)


@LOSSES.register("cross_entropy")
def cross_entropy(label_smoothing: float = 0.0) -> nn.Cell:
    """Softmax cross-entropy on logits, mean over the batch: sparse int labels (with optional
    ``label_smoothing``) or soft (N, K) targets (:class:`CrossEntropy`)."""
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"loss.label_smoothing: expected a value in [0, 1), got {label_smoothing}")
    return CrossEntropy(label_smoothing)


# MindSpore built-ins, registered by explicit choice (not by scanning mindspore.nn)
LOSSES.register("SoftmaxCrossEntropyWithLogits", nn.SoftmaxCrossEntropyWithLogits)
LOSSES.register("CrossEntropyLoss", nn.CrossEntropyLoss)
