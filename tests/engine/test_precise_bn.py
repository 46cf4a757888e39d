"""Precise BN: saved statistics are the plain average over training batches, and it runs before
every periodic / final checkpoint even without a validation set."""
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


def test_runs_before_periodic_and_final_checkpoints_without_validation():
    batches = _batches(1, 2)
    net = BNNet()
    cb = PreciseBN(net, Loader(batches), num_batches=2, finetune="complete", eval_interval=5,
                   ckpt_interval=2, has_validation=False, log=lambda *_: None)
    ran = []
    for epoch in (1, 2, 3, 4, 5):
        net.bn.moving_mean.set_data(Tensor(np.full(3, 99.0, np.float32)))
        cb.on_epoch_end(TrainState(epoch=epoch, epochs=5))
        ran.append(bool(np.all(net.bn.moving_mean.asnumpy() != 99.0)))
    assert ran == [False, True, False, True, True]  # epochs 2, 4 (periodic) and 5 (final)
    # with a validation set every 3 epochs it also runs before validation (epoch 3)
    cb = PreciseBN(net, Loader(batches), num_batches=2, finetune="complete", eval_interval=3,
                   ckpt_interval=10, has_validation=True, log=lambda *_: None)
    net.bn.moving_mean.set_data(Tensor(np.full(3, 99.0, np.float32)))
    cb.on_epoch_end(TrainState(epoch=3, epochs=10))
    assert np.all(net.bn.moving_mean.asnumpy() != 99.0)
    # last_layer fine-tuning keeps the backbone's statistics
    cb = PreciseBN(net, Loader(batches), num_batches=2, finetune="last_layer", eval_interval=1,
                   ckpt_interval=1, has_validation=True, log=lambda *_: None)
    net.bn.moving_mean.set_data(Tensor(np.full(3, 99.0, np.float32)))
    cb.on_epoch_end(TrainState(epoch=1, epochs=1))
    assert np.all(net.bn.moving_mean.asnumpy() == 99.0)
