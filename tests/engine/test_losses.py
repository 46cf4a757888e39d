"""The cross_entropy loss with soft (N, K) targets (MixUp/CutMix) and int labels, in both modes."""
import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor, nn

from src.data.mixup import smoothed_one_hot
from src.engine.losses import cross_entropy
from src.registry import LOSSES, build_from_cfg

LOGITS = np.array([[2.0, 0.0, -1.0, 0.5], [0.1, 0.2, 3.0, -2.0], [-1.0, 1.0, 0.0, 0.0]], np.float32)


def _log_softmax(x):
    x = x.astype(np.float64)
    return x - np.log(np.exp(x).sum(1, keepdims=True))


class _Graph(nn.Cell):
    def __init__(self, loss):
        super().__init__()
        self.loss = loss

    def construct(self, logits, labels):
        return self.loss(logits, labels)


@pytest.fixture(params=[ms.PYNATIVE_MODE, ms.GRAPH_MODE], ids=["pynative", "graph"])
def mode(request):
    ms.set_device("CPU")
    previous = ms.get_context("mode")
    ms.set_context(mode=request.param)
    yield request.param
    ms.set_context(mode=previous)


def _value(loss, labels):
    return float(_Graph(loss)(Tensor(LOGITS), Tensor(labels)).asnumpy())


def test_soft_targets_give_minus_sum_t_log_softmax(mode):
    t = np.array([[0.3, 0.7, 0.0, 0.0], [0.1, 0.2, 0.3, 0.4], [0.0, 0.0, 0.5, 0.5]], np.float32)
    expected = np.mean(-(t * _log_softmax(LOGITS)).sum(1))
    loss = build_from_cfg({"type": "cross_entropy", "label_smoothing": 0.2}, LOSSES)
    # soft targets are taken as they are: no smoothing on top of the one they may carry
    assert _value(loss, t) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_smoothed_one_hot_targets_equal_int_labels_with_label_smoothing(mode, smoothing):
    labels = np.array([0, 2, 1], np.int32)
    hard = _value(cross_entropy(smoothing), labels)
    soft = _value(cross_entropy(0.0), smoothed_one_hot(labels, 4, smoothing))
    # the formula: (1 - s) * CE(label) + s * mean over classes of -log p (torch/timm/SlowFast)
    logp = _log_softmax(LOGITS)
    formula = np.mean((1 - smoothing) * -logp[np.arange(3), labels] + smoothing * -logp.mean(1))
    assert hard == pytest.approx(formula, rel=1e-5)
    assert soft == pytest.approx(formula, rel=1e-5)
