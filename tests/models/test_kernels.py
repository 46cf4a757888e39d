"""The C++ channelwise kernel (impl "cpp") equals the native grouped Conv3D, forward and both
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
                                  reason="no C++ compiler: the channelwise kernel cannot be built")


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
def test_cpp_matches_native_forward_and_gradients(mode, kernel, stride, padding, shape):
    ms.set_context(mode=mode)
    rng = np.random.default_rng(1)
    c = shape[1]
    custom = ChannelwiseConv3d(c, kernel, stride=stride, padding=padding, impl="cpp")
    native = ChannelwiseConv3d(c, kernel, stride=stride, padding=padding, impl="native")
    assert custom.impl == "cpp" and custom.weight.shape == (c, 1) + kernel
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
def test_cpp_trains_under_jit_with_an_optimizer():
    ms.set_context(mode=ms.GRAPH_MODE)
    rng = np.random.default_rng(2)
    net = ChannelwiseConv3d(4, 3, stride=(1, 2, 2), padding=1, impl="cpp")
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
def test_auto_prefers_the_kernel_on_cpu_and_the_policy_choice_still_wins():
    assert resolve_impl("auto", "channelwise") == "cpp"
    with layers.use_impl(channelwise="banded"):
        assert ChannelwiseConv3d(4, 3, padding=1).impl == "banded"
    assert ChannelwiseConv3d(4, 3, padding=1).impl == "cpp"
    try:
        layers.set_default_impl(channelwise="banded")  # process-wide, until set back
        assert ChannelwiseConv3d(4, 3, padding=1).impl == "banded"
        with layers.use_impl(channelwise="auto"):  # a block's choice wins over the process-wide one
            assert ChannelwiseConv3d(4, 3, padding=1).impl == "cpp"
    finally:
        layers.set_default_impl(channelwise="auto")
    assert ChannelwiseConv3d(4, 3, padding=1).impl == "cpp"


def test_no_compiler_falls_back_to_banded_with_one_warning(monkeypatch, caplog):
    monkeypatch.setattr(kernels, "_CACHE", {})
    monkeypatch.setattr(kernels, "_WARNED", set())
    monkeypatch.setenv("CXX", "/nonexistent/g++")
    with caplog.at_level(logging.WARNING, logger=kernels.__name__):
        assert resolve_impl("auto", "channelwise") == "banded"
        assert resolve_impl("cpp", "channelwise") == "banded"
        assert ChannelwiseConv3d(4, 3, padding=1, impl="cpp").impl == "banded"
    warnings = [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(warnings) == 1 and "no C++ compiler" in warnings[0].getMessage()


@needs_kernel
def test_library_is_built_once_into_the_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setattr(kernels, "_CACHE", {})
    monkeypatch.delenv("X3D_KERNEL_CACHE", raising=False)
    monkeypatch.setenv("VIDEO_ZOO_KERNEL_CACHE", str(tmp_path))
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
    net = ChannelwiseConv3d(2, 3, impl="cpp")
    with pytest.raises(Exception, match="smaller than kernel"):
        net(Tensor(np.zeros((1, 2, 2, 5, 5), np.float32)))


def test_global_avg_pool_equals_mean():
    x = np.random.default_rng(4).standard_normal((2, 3, 4, 5, 6)).astype(np.float32)
    got = global_avg_pool(Tensor(x)).asnumpy()
    assert got.shape == (2, 3, 1, 1, 1)
    np.testing.assert_allclose(got, x.mean(axis=(2, 3, 4), keepdims=True), rtol=1e-5, atol=1e-6)


# The Efficient-3DCNNs depthwise convolutions: 3x3x3, padding 1, spatial stride 2 (every
# stage entry) and full stride 2 including time (MobileNet/ShuffleNet stage entries), at odd
# sizes so the last window is partial in every dimension. ``banded`` cannot stride in time: such
# a layer runs ``native`` (the policy's rule, which the MobileNet / ShuffleNet stage entries need
# when ``banded`` is the default, e.g. in the portable MINDIR export).
@pytest.mark.parametrize("mode", [ms.GRAPH_MODE, ms.PYNATIVE_MODE])
@pytest.mark.parametrize("stride", [(1, 2, 2), (2, 2, 2)])
@pytest.mark.parametrize("impl", ["cpp", "banded"])
def test_efficient_3dcnn_strides_match_native(mode, stride, impl):
    if impl == "cpp" and kernels.library_path("channelwise") is None:
        pytest.skip("no C++ compiler: the channelwise kernel cannot be built")
    if impl == "banded" and stride[0] != 1:
        assert ChannelwiseConv3d(3, 3, stride=stride, padding=1, impl="banded").impl == "native"
        with layers.use_impl(channelwise="banded"):
            assert ChannelwiseConv3d(3, 3, stride=stride, padding=1).impl == "native"
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


# ----------------------------------------------------------------------------------- pointwise
needs_pointwise = pytest.mark.skipif(kernels.library_path("pointwise") is None,
                                     reason="no C++ compiler: the pointwise kernel cannot be built")


def _pointwise_reference(x, w, b, stride, relu, residual, swish_input, gate):
    """float64 numpy: [gate, Swish] -> 1x1x1 conv at every stride-th position + bias [+ r] [ReLU]."""
    u = x[:, :, ::stride[0], ::stride[1], ::stride[2]].astype(np.float64)
    if gate is not None:
        u = u * gate
    if swish_input:
        u = u / (1.0 + np.exp(-u))
    y = np.einsum("oc,nctuv->notuv", w[:, :, 0, 0, 0].astype(np.float64), u) + b[None, :, None, None, None]
    if residual is not None:
        y = y + residual
    return np.maximum(y, 0.0) if relu else y


class _Fused(nn.Cell):
    def __init__(self, conv, relu, swish_input):
        super().__init__()
        self.conv, self.relu, self.swish_input = conv, relu, swish_input

    def construct(self, x, r, g):
        return self.conv.fused(x, relu=self.relu, residual=r, swish_input=self.swish_input, gate=g)


@needs_pointwise
@pytest.mark.parametrize("mode", [ms.GRAPH_MODE, ms.PYNATIVE_MODE])
@pytest.mark.parametrize("shape,dim_out,stride", [
    ((2, 5, 3, 7, 9), 11, (1, 1, 1)),      # partial position tiles, output channels not a panel multiple
    ((2, 5, 3, 7, 9), 11, (1, 2, 2)),      # strided shortcut: every second position, odd sizes
    ((1, 6, 5, 8, 7), 3, (2, 3, 2)),       # temporal stride too
    ((2, 40, 4, 13, 13), 19, (1, 1, 1)),   # several position blocks, split over the threads
    ((2, 37, 1, 1, 1), 11, (1, 1, 1)),     # one position (SE fc, classifier): the few-positions path
    ((2, 5, 3, 4, 3), 9, (2, 2, 2)),       # 8 strided positions: the few-positions path, gathered
])
@pytest.mark.parametrize("relu,with_residual,swish_input,with_gate", [
    (False, False, False, False), (True, False, False, False), (True, True, False, False),
    (True, True, True, False), (True, True, True, True), (False, False, True, True)])
def test_pointwise_kernel_matches_its_definition(mode, shape, dim_out, stride, relu, with_residual,
                                                 swish_input, with_gate):
    ms.set_context(mode=mode)
    rng = np.random.default_rng(3)
    n, c = shape[:2]
    conv = layers.PointwiseConv3d(c, dim_out, stride=stride, has_bias=True, impl="cpp")
    assert conv.impl == "cpp"
    w = rng.normal(0.0, 0.3, (dim_out, c, 1, 1, 1)).astype(np.float32)
    b = rng.normal(0.0, 0.5, dim_out).astype(np.float32)
    conv.weight.set_data(Tensor(w))
    conv.set_bias(b)
    conv.set_train(False)
    x = (rng.standard_normal(shape) * 4).astype(np.float32)
    x.flat[:4] = [-120.0, 95.0, -60.0, 30.0]  # far into the exponential's clamped range
    out = (n, dim_out) + tuple((shape[2 + i] - 1) // stride[i] + 1 for i in range(3))
    r = rng.standard_normal(out).astype(np.float32) if with_residual else None
    g = rng.uniform(0.0, 1.0, (n, c, 1, 1, 1)).astype(np.float32) if with_gate else None
    net = _Fused(conv, relu, swish_input)
    got = net(Tensor(x), None if r is None else Tensor(r), None if g is None else Tensor(g)).asnumpy()
    expected = _pointwise_reference(x, w, b, stride, relu, r, swish_input, g)
    assert got.shape == out
    assert _rel(got, expected) < 2e-6


@needs_pointwise
@pytest.mark.parametrize("swish_input,with_gate", [(False, False), (True, True)])
def test_pointwise_kernel_few_positions_agree_with_the_tiles(swish_input, with_gate):
    """A pooled position (Q = 1, a classifier's 480 -> 2048) takes the few-positions path, a clip
    of 64 positions the register tiles; position 0 must come out the same to float rounding (the
    same products, summed in another order), threads or not, and match the definition."""
    ms.set_context(mode=ms.PYNATIVE_MODE)
    rng = np.random.default_rng(5)
    c, co = 480, 2048
    conv = layers.PointwiseConv3d(c, co, has_bias=True, impl="cpp")
    conv.weight.set_data(Tensor(rng.normal(0.0, 0.05, (co, c, 1, 1, 1)).astype(np.float32)))
    conv.set_bias(rng.normal(0.0, 0.5, co).astype(np.float32))
    conv.set_train(False)
    net = _Fused(conv, True, swish_input)
    x = rng.standard_normal((2, c, 1, 8, 8)).astype(np.float32)
    g = rng.uniform(0.0, 1.0, (2, c, 1, 1, 1)).astype(np.float32) if with_gate else None
    gt = None if g is None else Tensor(g)
    tiled = net(Tensor(x), None, gt).asnumpy()
    few = net(Tensor(np.ascontiguousarray(x[:, :, :, :1, :1])), None, gt).asnumpy()
    np.testing.assert_allclose(few[:, :, :, 0, 0], tiled[:, :, :, 0, 0], rtol=1e-5, atol=1e-5)
    expected = _pointwise_reference(x[:, :, :, :1, :1], conv.weight.asnumpy(), conv.bias.asnumpy(), (1, 1, 1),
                                    True, None, swish_input, g)
    assert _rel(few, expected) < 2e-6


@needs_pointwise
@pytest.mark.parametrize("mode", [ms.GRAPH_MODE, ms.PYNATIVE_MODE])
def test_pointwise_kernel_serves_inference_only_training_keeps_the_native_gradients(mode):
    """In training mode (and without a bias) the layer is Conv3D: gradients flow as before."""
    ms.set_context(mode=mode)
    rng = np.random.default_rng(4)
    custom = layers.PointwiseConv3d(6, 5, stride=(1, 2, 2), has_bias=True, impl="cpp")
    native = layers.PointwiseConv3d(6, 5, stride=(1, 2, 2), has_bias=True, impl="native")
    native.weight.set_data(custom.weight.data.copy())
    custom.set_train(True)
    native.set_train(True)
    x = Tensor(rng.standard_normal((2, 6, 3, 9, 8)).astype(np.float32))
    up = Tensor(rng.standard_normal((2, 5, 3, 5, 4)).astype(np.float32))
    y_c, gx_c, gw_c = _run(custom, x, up)
    y_n, gx_n, gw_n = _run(native, x, up)
    assert _rel(y_c, y_n) < 1e-6 and _rel(gx_c, gx_n) < 1e-6 and _rel(gw_c, gw_n) < 1e-6
    # and the strided native layer itself is the convolution at every second position
    w = custom.weight.asnumpy()
    expected = _pointwise_reference(x.asnumpy(), w, np.zeros(5, np.float32), (1, 2, 2), False, None, False, None)
    assert _rel(y_n, expected) < 2e-6


def test_pointwise_fused_rejects_forms_the_kernel_does_not_have():
    ms.set_context(mode=ms.PYNATIVE_MODE)
    conv = layers.PointwiseConv3d(3, 2, has_bias=True, impl="native")
    x = Tensor(np.ones((1, 3, 1, 2, 2), np.float32))
    with pytest.raises(ValueError, match="residual is only summed before a ReLU"):
        conv.fused(x, residual=Tensor(np.ones((1, 2, 1, 2, 2), np.float32)))
    with pytest.raises(ValueError, match="gate is only applied before a Swish"):
        conv.fused(x, gate=Tensor(np.ones((1, 3, 1, 1, 1), np.float32)))


class _FusedLoss(nn.Cell):
    def __init__(self, fused, up, use_residual, use_gate):
        super().__init__()
        self.fused, self.up, self.use_residual, self.use_gate = fused, up, use_residual, use_gate

    def construct(self, x, r, g):
        y = self.fused(x, r if self.use_residual else None, g if self.use_gate else None)
        return (y * self.up).sum()


@needs_pointwise
@pytest.mark.parametrize("stride,relu,with_residual,swish_input,with_gate", [
    ((1, 1, 1), True, True, True, True), ((1, 2, 2), True, False, True, False),
    ((2, 1, 3), False, False, False, False), ((1, 1, 1), True, True, False, False)])
def test_pointwise_kernel_gradients_equal_the_native_ops(stride, relu, with_residual, swish_input, with_gate):
    """An inference network stays differentiable: the kernel's bprop against MindSpore's autodiff
    of the same computation as separate ops (impl native), w.r.t. input, residual, gate, weight, bias."""
    ms.set_context(mode=ms.GRAPH_MODE)
    rng = np.random.default_rng(5)
    shape, dim_out = (2, 6, 4, 7, 5), 9
    out = (2, dim_out) + tuple((shape[2 + i] - 1) // stride[i] + 1 for i in range(3))
    x = Tensor((rng.standard_normal(shape) * 2).astype(np.float32))
    r = Tensor(rng.standard_normal(out).astype(np.float32))
    g = Tensor(rng.uniform(0.1, 1.0, (2, 6, 1, 1, 1)).astype(np.float32))
    up = Tensor(rng.standard_normal(out).astype(np.float32))
    w = rng.normal(0.0, 0.3, (dim_out, 6, 1, 1, 1)).astype(np.float32)
    b = rng.normal(0.0, 0.5, dim_out).astype(np.float32)
    grads = {}
    for impl in ("cpp", "native"):
        conv = layers.PointwiseConv3d(6, dim_out, stride=stride, has_bias=True, impl=impl)
        assert conv.impl == impl
        conv.weight.set_data(Tensor(w))
        conv.set_bias(b)
        conv.set_train(False)
        loss = _FusedLoss(_Fused(conv, relu, swish_input), up, with_residual, with_gate)
        inputs, params = ms.grad(loss, grad_position=(0, 1, 2), weights=conv.trainable_params())(x, r, g)
        grads[impl] = [t.asnumpy() for t in list(inputs) + list(params)]
    assert len(grads["cpp"]) == 5  # x, r, g, weight, bias
    for got, expected in zip(grads["cpp"], grads["native"]):
        assert got.shape == expected.shape
        assert _rel(got, expected) < 1e-5 or np.abs(expected).max() == np.abs(got).max() == 0.0


# ----------------------------------------------------------------------------- bindings, names
@needs_kernel
def test_every_binding_names_symbols_its_library_exports():
    """Each binding beside its .cc calls functions the built library has (a renamed C symbol
    changes the source, hence the cache hash: a stale library with the old names is never loaded)."""
    import ctypes
    from src.models.kernels import channelwise_conv3d, direct_conv3d, pointwise_conv3d, vol2col
    for binding in (channelwise_conv3d, vol2col, direct_conv3d, pointwise_conv3d):
        lib = ctypes.CDLL(kernels.library_path(binding.LIBRARY))
        for symbol in binding.SYMBOLS:
            assert hasattr(lib, symbol), (binding.__name__, symbol)
        assert not hasattr(lib, "X3dCwForward") and not hasattr(lib, "X3dVol2Col")


def test_kernel_variables_read_their_old_names_as_deprecated_aliases(monkeypatch, tmp_path, caplog):
    from src import envvars
    monkeypatch.setattr(envvars, "_WARNED", set())
    for name in ("VIDEO_ZOO_KERNEL_CACHE", "X3D_KERNEL_CACHE", "VIDEO_ZOO_DISABLE_KERNELS", "X3D_DISABLE_KERNELS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert kernels.cache_root().parts[-2:] == ("ms_video_zoo", "kernels")  # no "x3d" in the default folder
    monkeypatch.setenv("X3D_KERNEL_CACHE", str(tmp_path / "old"))
    with pytest.warns(DeprecationWarning, match="X3D_KERNEL_CACHE is deprecated; set VIDEO_ZOO_KERNEL_CACHE"):
        assert kernels.cache_root() == tmp_path / "old"
    monkeypatch.setenv("VIDEO_ZOO_KERNEL_CACHE", str(tmp_path / "new"))
    assert kernels.cache_root() == tmp_path / "new"  # the new name wins
    monkeypatch.setattr(kernels, "_CACHE", {})
    monkeypatch.setattr(kernels, "_WARNED", set())
    monkeypatch.setenv("X3D_DISABLE_KERNELS", "1")
    with caplog.at_level(logging.WARNING, logger=kernels.__name__), pytest.warns(DeprecationWarning):
        assert kernels.library_path("vol2col") is None
    assert any("VIDEO_ZOO_DISABLE_KERNELS is set" in r.getMessage() for r in caplog.records)
