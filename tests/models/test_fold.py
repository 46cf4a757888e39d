"""BatchNorm folded into the convolutions (inference/export) computes the same eval-mode scores."""
import numpy as np
import pytest
import mindspore as ms
from mindspore import Tensor, nn

from src.models import build_model, fold_batchnorm, kernels
from src.models.layers import ChannelwiseConv3d

ms.set_device("CPU")

needs_kernel = pytest.mark.skipif(kernels.library_path("channelwise") is None,
                                  reason="no C++ compiler: the channelwise kernel cannot be built")


def _small_model(conv_impl, head_activation="softmax"):
    cfg = {"type": "x3d_xs", "num_classes": 7, "num_frames": 4, "crop_size": 64, "width_factor": 1.0,
           "depth_factor": 1.0, "head_dim": 32, "conv_impl": conv_impl, "head_activation": head_activation}
    net = build_model(cfg)
    # the same weights on every call, with non-trivial BN statistics and affine parameters
    # (fresh ones would fold to W and a zero bias)
    for name, p in net.parameters_and_names():
        rng = np.random.default_rng([ord(ch) for ch in name])
        if name.endswith(("moving_mean", "beta")):
            p.set_data(Tensor(rng.normal(0.0, 0.3, p.shape).astype(np.float32)))
        elif name.endswith(("moving_variance", "gamma")):
            p.set_data(Tensor(rng.uniform(0.4, 1.6, p.shape).astype(np.float32)))
        else:
            p.set_data(Tensor(rng.normal(0.0, 0.2, p.shape).astype(np.float32)))
    net.set_train(False)
    return net


def _rel(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))


@pytest.mark.parametrize("conv_impl", [pytest.param("cpp", marks=needs_kernel), "banded"])
def test_folded_network_equals_the_eval_network(conv_impl):
    ms.set_context(mode=ms.GRAPH_MODE)
    x = Tensor(np.random.default_rng(0).standard_normal((2, 3, 4, 64, 64)).astype(np.float32))
    expected = _small_model(conv_impl, "none")(x).asnumpy()
    folded = fold_batchnorm(_small_model(conv_impl, "none"))
    assert not [n for n, c in folded.cells_and_names() if isinstance(c, nn.BatchNorm2d)]
    names = [p.name for p in folded.get_parameters()]
    assert len(names) == len(set(names)) and "res2.0.branch2.b.bias" in names
    got = folded(x).asnumpy()
    assert got.shape == expected.shape == (2, 7)
    assert _rel(got, expected) < 1e-5


def test_fold_twice_is_a_no_op_and_a_compiled_network_is_refused():
    ms.set_context(mode=ms.GRAPH_MODE)
    net = fold_batchnorm(_small_model("banded"))
    w = net.res2[0].branch2.a.weight.asnumpy().copy()
    assert fold_batchnorm(net) is net
    np.testing.assert_array_equal(net.res2[0].branch2.a.weight.asnumpy(), w)
    compiled = _small_model("banded")
    compiled(Tensor(np.zeros((1, 3, 4, 64, 64), np.float32)))
    with pytest.raises(RuntimeError, match="already been compiled"):
        fold_batchnorm(compiled)


class _Loss(nn.Cell):
    def __init__(self, net, up):
        super().__init__()
        self.net, self.up = net, up

    def construct(self, x):
        return (self.net(x) * self.up).sum()


@needs_kernel
@pytest.mark.parametrize("mode", [ms.GRAPH_MODE, ms.PYNATIVE_MODE])
def test_channelwise_bias_in_the_kernel_matches_native_plus_bias(mode):
    ms.set_context(mode=mode)
    rng = np.random.default_rng(3)
    shape, c = (2, 5, 4, 9, 10), 5
    bias = rng.standard_normal(c).astype(np.float32)
    custom = ChannelwiseConv3d(c, 3, stride=(1, 2, 2), padding=1, impl="cpp")
    native = ChannelwiseConv3d(c, 3, stride=(1, 2, 2), padding=1, impl="native")
    native.weight.set_data(custom.weight.data.copy())
    for conv in (custom, native):
        conv.set_bias(bias)
    x = Tensor(rng.standard_normal(shape).astype(np.float32))
    up = Tensor(rng.standard_normal(native(x).shape).astype(np.float32))
    results = []
    for net in (custom, native):
        fn = ms.value_and_grad(_Loss(net, up), grad_position=0, weights=net.trainable_params())
        _, (gx, (gw, gb)) = fn(x)
        results.append((net(x).asnumpy(), gx.asnumpy(), gw.asnumpy(), gb.asnumpy()))
    for got, expected in zip(*results):
        assert _rel(got, expected) < 1e-5
    with pytest.raises(ValueError, match=r"bias must have shape \(5,\)"):
        custom.set_bias(np.zeros(4, np.float32))
