"""The C++ channelwise kernel (impl "custom") equals the native grouped Conv3D, forward and both
gradients; the loader caches and falls back cleanly; the MatMul global average pool equals the mean."""
import logging

import numpy as np
import pytest
import mindspore as ms
from mindspore import Tensor, nn

from src.models import kernels, layers
from src.models.layers import ChannelwiseConv3d, global_avg_pool, resolve_impl

ms.set_device("CPU")

needs_kernel = pytest.mark.skipif(kernels.library_path("channelwise") is None,
                                  reason="no C++ compiler: the custom kernel cannot be built")


class _Loss(nn.Cell):
    def __init__(self, net, up):
        super().__init__()
        self.net, self.up = net, up

    def construct(self, x):
        return (self.net(x) * self.up).sum()  # a non-uniform upstream gradient


def _run(net, x, up):
    fn = ms.value_and_grad(_Loss(net, up), grad_position=0, weights=net.trainable_params())
    _, (gx, gw) = fn(x)
    return net(x).asnumpy(), gx.asnumpy(), gw[0].asnumpy()


def _rel(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))


@needs_kernel
@pytest.mark.parametrize("mode", [ms.GRAPH_MODE, ms.PYNATIVE_MODE])
@pytest.mark.parametrize("kernel,stride,padding,shape", [
    ((3, 3, 3), (1, 1, 1), (1, 1, 1), (2, 5, 4, 9, 10)),   # X3D block conv
    ((3, 3, 3), (1, 2, 2), (1, 1, 1), (2, 5, 4, 9, 10)),   # stage entry: spatial stride 2, odd sizes
    ((5, 1, 1), (1, 1, 1), (2, 0, 0), (2, 3, 4, 5, 6)),    # stem temporal conv
    ((2, 3, 4), (2, 1, 3), (0, 2, 1), (1, 3, 5, 6, 11)),   # generic kernel / stride / padding
])
def test_custom_matches_native_forward_and_gradients(mode, kernel, stride, padding, shape):
    ms.set_context(mode=mode)
    rng = np.random.default_rng(1)
    c = shape[1]
    custom = ChannelwiseConv3d(c, kernel, stride=stride, padding=padding, impl="custom")
    native = ChannelwiseConv3d(c, kernel, stride=stride, padding=padding, impl="native")
    assert custom.impl == "custom" and custom.weight.shape == (c, 1) + kernel
    native.weight.set_data(custom.weight.data.copy())
    x = Tensor(rng.standard_normal(shape).astype(np.float32))
    out_shape = native(x).shape
    up = Tensor(rng.standard_normal(out_shape).astype(np.float32))
    y_c, gx_c, gw_c = _run(custom, x, up)
    y_n, gx_n, gw_n = _run(native, x, up)
    assert y_c.shape == y_n.shape
    assert _rel(y_c, y_n) < 1e-5
    assert _rel(gx_c, gx_n) < 1e-5
    assert _rel(gw_c, gw_n) < 1e-5


@needs_kernel
def test_custom_trains_under_jit_with_an_optimizer():
    ms.set_context(mode=ms.GRAPH_MODE)
    rng = np.random.default_rng(2)
    net = ChannelwiseConv3d(4, 3, stride=(1, 2, 2), padding=1, impl="custom")
    x = Tensor(rng.standard_normal((2, 4, 3, 8, 8)).astype(np.float32))
    target = Tensor(rng.standard_normal((2, 4, 3, 4, 4)).astype(np.float32))
    opt = nn.Momentum(net.trainable_params(), learning_rate=0.05, momentum=0.9)

    class Mse(nn.Cell):
        def __init__(self):
            super().__init__()
            self.net = net

        def construct(self, inp):
            return ((self.net(inp) - target) ** 2).mean()

    grad_fn = ms.value_and_grad(Mse(), None, opt.parameters)

    @ms.jit
    def step(inp):
        loss, grads = grad_fn(inp)
        opt(grads)
        return loss

    losses = [float(step(x).asnumpy()) for _ in range(5)]
    assert losses[-1] < losses[0]


@needs_kernel
def test_auto_prefers_the_kernel_on_cpu_and_set_default_impl_still_wins():
    assert resolve_impl("auto", "channelwise") == "custom"
    try:
        layers.set_default_impl(channelwise="fold")
        assert ChannelwiseConv3d(4, 3, padding=1).impl == "fold"
    finally:
        layers.set_default_impl(channelwise="auto")
    assert ChannelwiseConv3d(4, 3, padding=1).impl == "custom"


def test_no_compiler_falls_back_to_fold_with_one_warning(monkeypatch, caplog):
    monkeypatch.setattr(kernels, "_CACHE", {})
    monkeypatch.setattr(kernels, "_WARNED", set())
    monkeypatch.setenv("CXX", "/nonexistent/g++")
    with caplog.at_level(logging.WARNING, logger=kernels.__name__):
        assert resolve_impl("auto", "channelwise") == "fold"
        assert resolve_impl("custom", "channelwise") == "fold"
        assert ChannelwiseConv3d(4, 3, padding=1, impl="custom").impl == "fold"
    warnings = [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(warnings) == 1 and "no C++ compiler" in warnings[0].getMessage()


@needs_kernel
def test_library_is_built_once_into_the_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setattr(kernels, "_CACHE", {})
    monkeypatch.setenv("X3D_KERNEL_CACHE", str(tmp_path))
    path = kernels.library_path("channelwise")
    assert path is not None and path.startswith(str(tmp_path)) and path.endswith(".so")
    monkeypatch.setattr(kernels, "_CACHE", {})
    assert kernels.library_path("channelwise") == path  # cached: same hash directory, no rebuild
    leftovers = [p.name for p in tmp_path.rglob("*") if p.is_file() and p.suffix == ".so" and str(p) != path]
    assert leftovers == []  # the temporary file was renamed into place
    with pytest.raises(ValueError, match="unknown kernel library 'nope'"):
        kernels.library_path("nope")


@needs_kernel
def test_input_smaller_than_the_kernel_is_a_clear_error():
    ms.set_context(mode=ms.PYNATIVE_MODE)
    net = ChannelwiseConv3d(2, 3, impl="custom")
    with pytest.raises(Exception, match="smaller than kernel"):
        net(Tensor(np.zeros((1, 2, 2, 5, 5), np.float32)))


def test_global_avg_pool_equals_mean():
    x = np.random.default_rng(4).standard_normal((2, 3, 4, 5, 6)).astype(np.float32)
    got = global_avg_pool(Tensor(x)).asnumpy()
    assert got.shape == (2, 3, 1, 1, 1)
    np.testing.assert_allclose(got, x.mean(axis=(2, 3, 4), keepdims=True), rtol=1e-5, atol=1e-6)


# The Efficient-3DCNNs depthwise convolutions: 3x3x3, padding 1, spatial stride 2 (every
# stage entry) and full stride 2 including time (MobileNet/ShuffleNet stage entries), at odd
# sizes so the last window is partial in every dimension.
@pytest.mark.parametrize("mode", [ms.GRAPH_MODE, ms.PYNATIVE_MODE])
@pytest.mark.parametrize("stride", [(1, 2, 2), (2, 2, 2)])
@pytest.mark.parametrize("impl", ["custom", "fold"])
def test_efficient_3dcnn_strides_match_native(mode, stride, impl):
    if impl == "custom" and kernels.library_path("channelwise") is None:
        pytest.skip("no C++ compiler: the custom kernel cannot be built")
    if impl == "fold" and stride[0] != 1:
        with pytest.raises(ValueError, match="needs temporal stride 1"):
            ChannelwiseConv3d(3, 3, stride=stride, padding=1, impl="fold")
        return
    ms.set_context(mode=mode)
    rng = np.random.default_rng(7)
    shape = (2, 3, 7, 13, 13)
    net = ChannelwiseConv3d(3, 3, stride=stride, padding=1, impl=impl)
    native = ChannelwiseConv3d(3, 3, stride=stride, padding=1, impl="native")
    assert net.impl == impl
    native.weight.set_data(net.weight.data.copy())
    x = Tensor(rng.standard_normal(shape).astype(np.float32))
    # output size by the convolution formula floor((n + 2p - k) / s) + 1
    expect = tuple((n + 2 - 3) // s + 1 for n, s in zip(shape[2:], stride))
    up = Tensor(rng.standard_normal((2, 3) + expect).astype(np.float32))
    y, gx, gw = _run(net, x, up)
    y_n, gx_n, gw_n = _run(native, x, up)
    assert y.shape == y_n.shape == (2, 3) + expect
    assert _rel(y, y_n) < 1e-5
    assert _rel(gx, gx_n) < 1e-5
    assert _rel(gw, gw_n) < 1e-5
    ms.set_context(mode=ms.GRAPH_MODE)
