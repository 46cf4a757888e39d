"""Precise BN: saved statistics are the plain average over training batches, and it runs at
SlowFast's epochs: every ``precise_bn_period``-th, each validation epoch and the last, with or
without a validation set (not at every checkpoint)."""
import numpy as np
import pytest
import mindspore as ms
from mindspore import Tensor, nn

from src.engine.trainer import PreciseBN, TrainState, precise_bn
from src.models.layers import BatchNorm3d


class BNNet(nn.Cell):
    def __init__(self):
        super().__init__()
        self.bn = BatchNorm3d(3)

    def construct(self, x):
        return self.bn(x)

    def train_mode(self, finetune="complete"):
        self.set_train(True)


class Loader:
    """Stands in for the train loader: a fixed list of (video, label) batches."""

    def __init__(self, batches):
        self.batches = batches

    @property
    def dataset(self):
        return self

    def create_tuple_iterator(self, num_epochs=1):
        return iter([(Tensor(b), Tensor(np.zeros(len(b), np.int32))) for b in self.batches])


def _batches(seed=0, n=4):
    rng = np.random.default_rng(seed)
    # per-batch channel offsets and scales differ, so the average is not any single batch's value
    return [(rng.standard_normal((2, 3, 2, 4, 4)) * (1 + k) + k).astype(np.float32) for k in range(n)]


pytestmark = pytest.mark.usefixtures("pynative")  # every test here (fixture: tests/conftest.py)


def test_statistics_are_the_average_over_the_batches():
    batches = _batches()
    net = BNNet()
    net.bn.moving_mean.set_data(Tensor(np.full(3, 5.0, np.float32)))  # a stale running average
    used = precise_bn(net, Loader(batches), num_batches=3)
    assert used == 3
    # independently: per channel, the mean of each batch's mean, and of each batch's unbiased variance
    per = [b.transpose(1, 0, 2, 3, 4).reshape(3, -1) for b in batches[:3]]
    mean = np.mean([p.mean(axis=1) for p in per], axis=0)
    var = np.mean([p.var(axis=1, ddof=1) for p in per], axis=0)
    np.testing.assert_allclose(net.bn.moving_mean.asnumpy(), mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(net.bn.moving_variance.asnumpy(), var, rtol=1e-4, atol=1e-5)


def test_due_epochs_follow_slowfast_period_validation_and_end():
    from src.engine.trainer import precise_bn_due

    # SlowFast's X3D recipe: CHECKPOINT_PERIOD = EVAL_PERIOD = 10 over 300 epochs: 10, 20, ..., 300
    assert [e for e in range(1, 301) if precise_bn_due(e, 300, 10, 10)] == list(range(10, 301, 10))
    # period 10, no validation, 25 epochs: 10, 20 and the last one
    assert [e for e in range(1, 26) if precise_bn_due(e, 25, 10, 0)] == [10, 20, 25]
    # period 10, validation every 4 epochs, 22 epochs: 4, 8, 10, 12, 16, 20 and 22 (last)
    assert [e for e in range(1, 23) if precise_bn_due(e, 22, 10, 4)] == [4, 8, 10, 12, 16, 20, 22]
    # period 0: only the last epoch (and validations)
    assert [e for e in range(1, 8) if precise_bn_due(e, 7, 0, 0)] == [7]
    assert [e for e in range(1, 8) if precise_bn_due(e, 7, 0, 3)] == [3, 6, 7]


def test_runs_at_the_period_and_the_end_not_at_every_checkpoint():
    batches = _batches(1, 2)
    net = BNNet()

    def epochs_run(cb, epochs):
        ran = []
        for epoch in range(1, epochs + 1):
            net.bn.moving_mean.set_data(Tensor(np.full(3, 99.0, np.float32)))
            cb.on_epoch_end(TrainState(epoch=epoch, epochs=epochs))
            if np.all(net.bn.moving_mean.asnumpy() != 99.0):
                ran.append(epoch)
        return ran

    # period 2, no validation set (its interval does not count), 5 epochs: 2, 4 and 5 (the last)
    cb = PreciseBN(net, Loader(batches), num_batches=2, finetune="complete", eval_interval=1,
                   period=2, has_validation=False, log=lambda *_: None)
    assert epochs_run(cb, 5) == [2, 4, 5]
    # period 4 with a validation every 3 epochs, 9 epochs: 3, 4, 6, 8, 9
    cb = PreciseBN(net, Loader(batches), num_batches=2, finetune="complete", eval_interval=3,
                   period=4, has_validation=True, log=lambda *_: None)
    assert epochs_run(cb, 9) == [3, 4, 6, 8, 9]
    # last_layer fine-tuning keeps the backbone's statistics
    cb = PreciseBN(net, Loader(batches), num_batches=2, finetune="last_layer", eval_interval=1,
                   period=1, has_validation=True, log=lambda *_: None)
    assert epochs_run(cb, 2) == []
    with pytest.raises(ValueError, match="precise_bn_period must be >= 0"):
        PreciseBN(net, Loader(batches), num_batches=2, finetune="complete", eval_interval=1, period=-1,
                  has_validation=True, log=lambda *_: None)
