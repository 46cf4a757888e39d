"""Stochastic depth (``model.drop_path_rate``): the per-sample mask's distribution and expectation,
the identity in eval mode (cell, every family's block, a whole X3D), the per-block rates against
the linear rule written out here, rate 0 = the network as before, and a graph-mode train step."""
import math

import numpy as np
import pytest
import mindspore as ms
from mindspore import Tensor, nn

import src.models  # noqa: F401  (registers the models)
from src.models.e3d_mobilenetv2 import MOBILENETV2_SETTINGS, InvertedResidual
from src.models.e3d_resnet import BasicBlock, Bottleneck
from src.models.e3d_shufflenet import ShuffleBottleneck
from src.models.e3d_squeezenet import Fire
from src.models.layers import DropPath
from src.models.x3d import ResBlock
from src.registry import MODELS

TINY_X3D = dict(num_classes=3, num_frames=4, crop_size=32, width_factor=0.5, depth_factor=0.5, head_dim=16,
                dropout_rate=0.0)


@pytest.fixture(autouse=True)
def graph_mode():
    ms.set_context(mode=ms.GRAPH_MODE)
    yield


def linear_rates(rate, count):
    """The rule, written out: block i of count gets rate * i / (count - 1)."""
    return [rate * i / (count - 1) for i in range(count)]


def block_rates(net, kinds, has_shortcut=lambda b: True):
    """Per residual block (in network order) its drop path rate (0 where none was built)."""
    return [b.drop_path.rate if b.use_drop_path else 0.0
            for _, b in net.cells_and_names() if isinstance(b, kinds) and has_shortcut(b)]


# ----------------------------------------------------------------------------- the mask
def test_mask_is_per_sample_bernoulli_with_unbiased_scaling():
    """N samples through DropPath(p): each sample is 0 or x / (1 - p) whole; the kept count is
    Binomial(N, 1 - p) and the sample mean of out / x has std sqrt(p / ((1 - p) N)): both within
    5 standard deviations. A new call draws a new mask; eval mode returns x."""
    p, n = 0.3, 4000
    x = np.random.default_rng(0).uniform(0.5, 1.5, (n, 2, 1, 2, 2)).astype(np.float32)
    cell = DropPath(p)
    cell.set_train(True)
    outs = [cell(Tensor(x)).asnumpy() for _ in range(2)]
    for out in outs:
        ratio = (out / x).reshape(n, -1)
        kept = np.all(np.isclose(ratio, 1.0 / (1.0 - p), rtol=1e-6), axis=1)
        dropped = np.all(ratio == 0.0, axis=1)
        assert np.all(kept | dropped)  # whole samples, exact scaling
        assert abs(kept.mean() - (1 - p)) <= 5 * math.sqrt(p * (1 - p) / n)
        assert abs(ratio.mean(axis=0) - 1.0).max() <= 5 * math.sqrt(p / ((1 - p) * n))
    assert not np.array_equal(outs[0], outs[1])
    cell.set_train(False)
    assert np.array_equal(cell(Tensor(x)).asnumpy(), x)


def test_masks_follow_the_global_seed():
    """Seeded as nn.Dropout: the same ms.set_seed gives the same masks, another seed others."""
    x = Tensor(np.ones((64, 1, 1, 1, 1), np.float32))

    def masks(seed):
        ms.set_seed(seed)
        cell = DropPath(0.5)
        cell.set_train(True)
        return [cell(x).asnumpy().ravel() for _ in range(3)]

    first, again, other = masks(7), masks(7), masks(8)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


# ----------------------------------------------------------------------------- rates
def test_rates_are_linear_over_the_residual_blocks_of_every_family():
    r = 0.2
    x3d = MODELS.get("x3d_xs")(**TINY_X3D, drop_path_rate=r)
    depth_factor = TINY_X3D["depth_factor"]
    n_x3d = sum(math.ceil(depth_factor * k) for k in (1, 2, 5, 3))  # blocks of res2..res5
    assert block_rates(x3d, ResBlock) == pytest.approx(linear_rates(r, n_x3d), abs=1e-12)

    resnet = MODELS.get("e3d_resnet")(depth=18, num_classes=3, num_frames=4, crop_size=32, drop_path_rate=r)
    assert block_rates(resnet, (BasicBlock, Bottleneck)) == pytest.approx(linear_rates(r, 8), abs=1e-12)

    # MobileNetV2: only blocks with stride 1 and in == out have a shortcut: per stage its n - 1
    # repeats (no stage's first block keeps its width at 0.2x, nor at 1.0x)
    mbv2 = MODELS.get("e3d_mobilenetv2")(width_mult=0.2, num_classes=3, num_frames=4, crop_size=32,
                                         drop_path_rate=r)
    n_res = sum(n - 1 for _, _, n, _ in MOBILENETV2_SETTINGS)
    assert n_res == 10
    assert block_rates(mbv2, InvertedResidual, lambda b: b.use_residual) == pytest.approx(
        linear_rates(r, n_res), abs=1e-12)
    assert all(not b.use_drop_path for _, b in mbv2.cells_and_names()
               if isinstance(b, InvertedResidual) and not b.use_residual)

    # ShuffleNet v1: the stride-1 blocks (summed with x): 3 + 7 + 3 of 4 + 8 + 4
    shuf = MODELS.get("e3d_shufflenet")(width_mult=0.5, num_classes=3, num_frames=16, crop_size=32,
                                        drop_path_rate=r)
    assert block_rates(shuf, ShuffleBottleneck, lambda b: b.stride == 1) == pytest.approx(
        linear_rates(r, 13), abs=1e-12)
    assert all(not b.use_drop_path for _, b in shuf.cells_and_names()
               if isinstance(b, ShuffleBottleneck) and b.stride == 2)

    # SqueezeNet: the Fires whose input width equals their output (e1 + e3): the 2nd, 4th, 6th, 8th
    for version in ("1.1", "1.0"):
        sq = MODELS.get("e3d_squeezenet")(version=version, num_classes=3, num_frames=4, crop_size=32,
                                          drop_path_rate=r)
        fires = [c for _, c in sq.cells_and_names() if isinstance(c, Fire)]
        assert [f.bypass for f in fires] == [False, True] * 4
        assert block_rates(sq, Fire, lambda b: b.bypass) == pytest.approx(linear_rates(r, 4), abs=1e-12)

    # ShuffleNetV2 and MobileNet v1 have no additive shortcut: the key is refused by name
    from src.registry import RegistryError, build_from_cfg
    for name in ("e3d_shufflenetv2", "e3d_mobilenet"):
        with pytest.raises(RegistryError, match="drop_path_rate"):
            build_from_cfg({"type": name, "drop_path_rate": 0.1}, MODELS, where="model")


def test_rate_zero_builds_the_network_as_before():
    """No DropPath cell, the same parameters, and the head dropout gets the same seeds (no random
    op was built before it), so the training masks are those of a network without the option."""
    def build(**kw):
        ms.set_seed(3)
        return MODELS.get("x3d_xs")(**dict(TINY_X3D, dropout_rate=0.5), **kw)

    plain, zero, on = build(), build(drop_path_rate=0.0), build(drop_path_rate=0.1)
    assert not any(isinstance(c, DropPath) for _, c in zero.cells_and_names())
    assert [p.name for p in plain.get_parameters()] == [p.name for p in zero.get_parameters()]
    assert [p.name for p in on.get_parameters()] == [p.name for p in plain.get_parameters()]  # no parameters
    seeds = lambda net: (net.head.dropout.dropout.attrs["Seed0"], net.head.dropout.dropout.attrs["Seed1"])  # noqa: E731
    assert seeds(plain) == seeds(zero)
    assert seeds(on) != seeds(plain)  # (the check can tell: random ops built before it shift it)


def test_rate_out_of_range_is_one_line():
    from src.errors import UserError
    for name, kw in (("x3d_xs", TINY_X3D), ("e3d_resnet", dict(depth=10, num_frames=4, crop_size=32))):
        with pytest.raises(UserError, match="model.drop_path_rate"):
            MODELS.get(name)(**kw, drop_path_rate=1.0)


# ----------------------------------------------------------------------------- eval = identity
def _same_weights(dst, src):
    ms.load_param_into_net(dst, {p.name: p for p in src.get_parameters()}, strict_load=True)


@pytest.mark.parametrize("make, shape", [
    (lambda r: ResBlock(dim_in=8, dim_inner=12, dim_out=8, spatial_stride=1, temporal_kernel=3,
                        se_ratio=0.0625, conv_impl="auto", drop_path_rate=r), (2, 8, 2, 6, 6)),
    (lambda r: BasicBlock(8, 8, drop_path_rate=r), (2, 8, 2, 6, 6)),
    (lambda r: Bottleneck(64, 32, cardinality=4, drop_path_rate=r), (2, 64, 2, 4, 4)),
    (lambda r: InvertedResidual(8, 8, 1, 2, drop_path_rate=r), (2, 8, 2, 6, 6)),
    (lambda r: ShuffleBottleneck(12, 12, 1, 3, drop_path_rate=r), (2, 12, 2, 6, 6)),
    (lambda r: Fire(8, 4, 4, 4, drop_path_rate=r), (2, 8, 2, 6, 6)),
], ids=["x3d", "resnet_basic", "resnext_bottleneck", "mobilenetv2", "shufflenet", "squeezenet"])
def test_eval_mode_block_is_the_block_without_drop_path(make, shape):
    on, off = make(0.5), make(0.0)
    assert on.use_drop_path and not off.use_drop_path
    _same_weights(on, off)
    x = Tensor(np.random.default_rng(1).standard_normal(shape).astype(np.float32))
    on.set_train(False)
    off.set_train(False)
    assert np.array_equal(on(x).asnumpy(), off(x).asnumpy())


class TwoBlocks(nn.Cell):
    """Two X3D blocks with drop path, pooled, then a linear classifier: a network small enough to
    compile a training step in seconds."""

    def __init__(self):
        super().__init__()
        self.blocks = nn.SequentialCell([
            ResBlock(dim_in=4, dim_inner=8, dim_out=8, spatial_stride=2, temporal_kernel=3, se_ratio=0.0625,
                     conv_impl="auto", drop_path_rate=0.25),
            ResBlock(dim_in=8, dim_inner=8, dim_out=8, spatial_stride=1, temporal_kernel=3, se_ratio=0.0,
                     conv_impl="auto", drop_path_rate=0.5)])
        self.fc = nn.Dense(8, 3)

    def construct(self, x):
        return self.fc(self.blocks(x).mean(axis=(2, 3, 4)))


def test_graph_mode_train_step_with_drop_path():
    """The zoo's TrainStep in graph mode through blocks with drop path: finite losses, every
    weight that gets a gradient moves (c_bn's gamma starts at zero; with it the rest trains)."""
    from src.engine.train_step import TrainStep
    net = TwoBlocks()
    before = {p.name: p.asnumpy().copy() for p in net.trainable_params()}
    opt = nn.Momentum(net.trainable_params(), learning_rate=0.1, momentum=0.9)
    step = TrainStep(net, nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean"), opt)
    step.set_train(True)
    x = Tensor(np.random.default_rng(3).standard_normal((4, 4, 2, 8, 8)).astype(np.float32))
    y = Tensor(np.array([0, 1, 2, 1], np.int32))
    losses = [float(step(x, y).asnumpy()) for _ in range(3)]
    assert all(math.isfinite(v) for v in losses)
    assert not np.array_equal(before["fc.weight"], net.fc.weight.asnumpy())
    gamma = [p for p in net.trainable_params() if p.name.endswith("c_bn.gamma")]
    assert gamma and all(np.abs(p.asnumpy()).max() > 0 for p in gamma)


@pytest.mark.slow
def test_x3d_eval_identity_and_a_graph_mode_train_step():
    """Whole X3D: eval outputs equal the rate-0 network's with the same weights; a train step
    (graph mode, the zoo's TrainStep) with drop path 0.5 gives a finite loss and moves the weights."""
    from src.engine.train_step import TrainStep
    on = MODELS.get("x3d_xs")(**TINY_X3D, drop_path_rate=0.5)
    off = MODELS.get("x3d_xs")(**TINY_X3D)
    _same_weights(off, on)
    x = Tensor(np.random.default_rng(2).standard_normal((2, 3, 4, 32, 32)).astype(np.float32))
    on.set_train(False)
    off.set_train(False)
    assert np.array_equal(on(x).asnumpy(), off(x).asnumpy())

    on.set_train(True)
    before = {p.name: p.asnumpy().copy() for p in on.trainable_params()}
    opt = nn.Momentum(on.trainable_params(), learning_rate=0.1, momentum=0.9)
    step = TrainStep(on, nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean"), opt)
    step.set_train(True)
    y = Tensor(np.array([0, 2], np.int32))
    losses = [float(step(x, y).asnumpy()) for _ in range(2)]
    assert all(math.isfinite(v) for v in losses)
    moved = sum(not np.array_equal(before[p.name], p.asnumpy()) for p in on.trainable_params())
    assert moved > len(before) // 2
