"""CPU fast paths of the X3D layers equal the native MindSpore convolutions (outputs and gradients)."""
import numpy as np
import pytest
import mindspore as ms
from mindspore import Tensor

from src.models.layers import ChannelwiseConv3d, SpatialConv3d, resolve_impl

ms.set_device("CPU")


def grads(net, x):
    def loss(x):
        out = net(x)
        return (out * out).sum()  # a non-uniform upstream gradient
    fn = ms.value_and_grad(loss, grad_position=0, weights=net.trainable_params())
    value, (gx, gw) = fn(x)
    return value.asnumpy(), gx.asnumpy(), gw[0].asnumpy()


def rel_err(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))


@pytest.mark.parametrize("mode", [ms.GRAPH_MODE, ms.PYNATIVE_MODE])
@pytest.mark.parametrize("kernel,stride,padding", [
    ((3, 3, 3), (1, 1, 1), (1, 1, 1)),
    ((3, 3, 3), (1, 2, 2), (1, 1, 1)),   # stage-entry block: spatial stride 2
    ((5, 1, 1), (1, 1, 1), (2, 0, 0)),   # stem temporal conv
])
def test_channelwise_banded_matches_native_grouped_conv3d(mode, kernel, stride, padding):
    ms.set_context(mode=mode)
    rng = np.random.default_rng(0)
    c, t = 6, 4
    x = Tensor(rng.standard_normal((2, c, t, 9, 10)).astype(np.float32))
    fold = ChannelwiseConv3d(c, kernel, stride=stride, padding=padding, impl="banded")
    native = ChannelwiseConv3d(c, kernel, stride=stride, padding=padding, impl="native")
    native.weight.set_data(fold.weight.data.copy())
    assert fold.weight.shape == (c, 1) + kernel
    out_f, out_n = fold(x).asnumpy(), native(x).asnumpy()
    assert out_f.shape == out_n.shape
    assert rel_err(out_f, out_n) < 1e-5
    _, gx_f, gw_f = grads(fold, x)
    _, gx_n, gw_n = grads(native, x)
    assert rel_err(gx_f, gx_n) < 1e-5
    assert rel_err(gw_f, gw_n) < 1e-5
    ms.set_context(mode=ms.GRAPH_MODE)


@pytest.mark.parametrize("impl", ["im2col", "gemm", "direct"])
def test_stem_formulations_match_native_conv3d(impl):
    ms.set_context(mode=ms.GRAPH_MODE)
    rng = np.random.default_rng(1)
    x = Tensor(rng.standard_normal((2, 3, 3, 11, 12)).astype(np.float32))
    fast = SpatialConv3d(3, 8, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1), impl=impl)
    assert fast.impl == impl
    native = SpatialConv3d(3, 8, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1), impl="native")
    native.weight.set_data(fast.weight.data.copy())
    out_f, out_n = fast(x).asnumpy(), native(x).asnumpy()
    assert out_f.shape == (2, 8, 3, 6, 6) == out_n.shape
    assert rel_err(out_f, out_n) < 1e-5
    _, gx_f, gw_f = grads(fast, x)
    _, gx_n, gw_n = grads(native, x)
    assert rel_err(gx_f, gx_n) < 1e-5 and rel_err(gw_f, gw_n) < 1e-5


def test_auto_impl_follows_the_device_and_bad_names_fail():
    assert resolve_impl("auto", "channelwise") != "native"  # CPU here: never the per-channel kernel
    assert resolve_impl("native", "channelwise") == "native"
    assert resolve_impl("auto", "spatial") == "direct"  # CPU with a compiler: not the slow 3-channel Conv3D
    assert resolve_impl("auto", "pointwise") == "cpp"  # the fused C++ pass in inference networks
    assert resolve_impl("native", "pointwise") == "native"
    with pytest.raises(ValueError, match="channelwise conv impl 'fast' is not one of"):
        resolve_impl("fast", "channelwise")


# ----------------------------------------------------------------------------- Conv3d impls
from src.models import kernels, layers  # noqa: E402
from src.models.layers import policy  # noqa: E402
from src.models.layers import Conv3d, resolve_grouped_impl  # noqa: E402


def all_grads(net, x, up):
    """Output, d/dx and d/d(every parameter) of sum(net(x) * up)."""
    def loss(x):
        return (net(x) * up).sum()
    fn = ms.value_and_grad(loss, grad_position=0, weights=net.trainable_params())
    _, (gx, gws) = fn(x)
    return net(x).asnumpy(), gx.asnumpy(), [g.asnumpy() for g in gws]


def _pair(impl, dim_in, dim_out, kernel, stride, groups, has_bias=True):
    pad = kernel // 2
    net = Conv3d(dim_in, dim_out, kernel, stride=stride, padding=pad, groups=groups, has_bias=has_bias, impl=impl)
    ref = Conv3d(dim_in, dim_out, kernel, stride=stride, padding=pad, groups=groups, has_bias=has_bias,
                 impl="native")
    # one group: split and blockdiag are the plain convolution, so they resolve to native
    assert net.impl == ("native" if groups == 1 and impl in ("split", "blockdiag") else impl)
    assert ref.impl == "native"
    # the parameter keeps the reference layout whatever the formulation
    assert net.weight.shape == ref.weight.shape == (dim_out, dim_in // groups) + (kernel,) * 3
    ref.weight.set_data(net.weight.data.copy())
    if has_bias:
        ref.bias.set_data(net.bias.data.copy())
    return net, ref


needs_vol2col = pytest.mark.skipif(kernels.library_path("vol2col") is None,
                                   reason="no C++ compiler: the vol2col kernel cannot be built")
IMPLS = ["split", "blockdiag", pytest.param("gemm", marks=needs_vol2col)]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("groups,dim_in,dim_out", [(1, 4, 5), (3, 6, 9), (32, 64, 64)])
@pytest.mark.parametrize("kernel", [1, 3])
@pytest.mark.parametrize("stride", [1, 2])
def test_conv3d_impls_match_native_grouped_conv(impl, groups, dim_in, dim_out, kernel, stride):
    ms.set_context(mode=ms.GRAPH_MODE)
    rng = np.random.default_rng(groups * 10 + kernel + stride)
    net, ref = _pair(impl, dim_in, dim_out, kernel, stride, groups)
    x = Tensor(rng.standard_normal((2, dim_in, 3, 5, 6)).astype(np.float32))
    pad = kernel // 2
    out = tuple((n + 2 * pad - kernel) // stride + 1 for n in (3, 5, 6))
    up = Tensor(rng.standard_normal((2, dim_out) + out).astype(np.float32))
    y, gx, gws = all_grads(net, x, up)
    y_r, gx_r, gws_r = all_grads(ref, x, up)
    assert y.shape == y_r.shape == (2, dim_out) + out
    assert rel_err(y, y_r) < 1e-5
    assert rel_err(gx, gx_r) < 1e-5
    assert len(gws) == len(gws_r) == 2  # weight and bias
    for g, g_r in zip(gws, gws_r):
        assert g.shape == g_r.shape and rel_err(g, g_r) < 1e-5


@pytest.mark.parametrize("impl", IMPLS)
def test_conv3d_impls_match_native_in_pynative_with_temporal_stride(impl):
    ms.set_context(mode=ms.PYNATIVE_MODE)
    rng = np.random.default_rng(5)
    net, ref = _pair(impl, 6, 12, 3, (2, 2, 2), 3, has_bias=False)
    x = Tensor(rng.standard_normal((1, 6, 7, 9, 9)).astype(np.float32))
    up = Tensor(rng.standard_normal((1, 12, 4, 5, 5)).astype(np.float32))
    y, gx, (gw,) = all_grads(net, x, up)
    y_r, gx_r, (gw_r,) = all_grads(ref, x, up)
    assert rel_err(y, y_r) < 1e-5 and rel_err(gx, gx_r) < 1e-5 and rel_err(gw, gw_r) < 1e-5
    ms.set_context(mode=ms.GRAPH_MODE)


needs_direct = pytest.mark.skipif(kernels.library_path("direct") is None or kernels.library_path("vol2col") is None,
                                  reason="no C++ compiler: the direct convolution kernel cannot be built")


@pytest.mark.parametrize("impl, dim_out", [pytest.param("gemm", 4, marks=needs_vol2col),
                                           pytest.param("direct", 4, marks=needs_direct),
                                           pytest.param("direct", 72, marks=needs_direct)])  # > 64 channels
def test_conv3d_7x7x7_stem_and_uneven_geometry_match_native(impl, dim_out):
    ms.set_context(mode=ms.GRAPH_MODE)
    rng = np.random.default_rng(8)
    for kernel, stride, padding, shape in (((7, 7, 7), (1, 2, 2), (3, 3, 3), (1, 3, 5, 11, 12)),
                                           ((2, 3, 4), (2, 1, 3), (0, 2, 1), (2, 4, 5, 6, 11))):
        net = Conv3d(shape[1], dim_out, kernel, stride=stride, padding=padding, impl=impl)
        assert net.impl == impl
        ref = Conv3d(shape[1], dim_out, kernel, stride=stride, padding=padding, impl="native")
        ref.weight.set_data(net.weight.data.copy())
        x = Tensor(rng.standard_normal(shape).astype(np.float32))
        out = tuple((n + 2 * p - k) // s + 1 for n, k, s, p in zip(shape[2:], kernel, stride, padding))
        up = Tensor(rng.standard_normal((shape[0], dim_out) + out).astype(np.float32))
        y, gx, (gw,) = all_grads(net, x, up)
        y_r, gx_r, (gw_r,) = all_grads(ref, x, up)
        assert y.shape == (shape[0], dim_out) + out
        assert rel_err(y, y_r) < 1e-5 and rel_err(gx, gx_r) < 1e-5 and rel_err(gw, gw_r) < 1e-5


@needs_vol2col
def test_conv3d_depthwise_routes_to_the_channelwise_kernel_and_matches_native():
    ms.set_context(mode=ms.GRAPH_MODE)
    assert resolve_grouped_impl("auto", dim_in=8, dim_out=8, groups=8, kernel_size=(3, 3, 3)) == "cpp"
    rng = np.random.default_rng(9)
    net, ref = _pair("cpp", 5, 5, 3, (2, 2, 2), 5, has_bias=False)
    x = Tensor(rng.standard_normal((2, 5, 7, 13, 13)).astype(np.float32))
    up = Tensor(rng.standard_normal((2, 5, 4, 7, 7)).astype(np.float32))
    y, gx, (gw,) = all_grads(net, x, up)
    y_r, gx_r, (gw_r,) = all_grads(ref, x, up)
    assert rel_err(y, y_r) < 1e-5 and rel_err(gx, gx_r) < 1e-5 and rel_err(gw, gw_r) < 1e-5
    shift = rng.standard_normal(5).astype(np.float32)
    biased = Conv3d(5, 5, 3, stride=2, padding=1, groups=5, impl="cpp")
    biased.weight.set_data(net.weight.data.copy())
    biased.set_bias(shift)  # a folded BatchNorm (before the first call): the kernel adds it in-pass
    y_b = biased(x).asnumpy()
    np.testing.assert_allclose(y_b, y_r + shift.reshape(1, 5, 1, 1, 1), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="needs a depthwise convolution"):
        Conv3d(6, 12, 3, groups=3, impl="cpp")


@pytest.mark.parametrize("impl", ["native", "split", "blockdiag", pytest.param("gemm", marks=needs_vol2col)])
def test_conv3d_set_bias_adds_the_folded_shift(impl):
    ms.set_context(mode=ms.PYNATIVE_MODE)
    rng = np.random.default_rng(6)
    net = Conv3d(6, 9, 1, groups=3, impl=impl)
    x = Tensor(rng.standard_normal((1, 6, 2, 3, 3)).astype(np.float32))
    before = net(x).asnumpy()
    shift = rng.standard_normal(9).astype(np.float32)
    net.set_bias(shift)
    np.testing.assert_allclose(net(x).asnumpy(), before + shift.reshape(1, 9, 1, 1, 1), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match=r"bias must have shape \(9,\)"):
        net.set_bias(np.zeros(3, np.float32))
    ms.set_context(mode=ms.GRAPH_MODE)


GROUPED_SHAPES = [  # (dim_in, dim_out, groups, kernel): ShuffleNet g3 1x1x1, ResNeXt 3x3x3, odd ones
    (240, 60, 3, 1), (60, 216, 3, 1), (128, 128, 32, 3), (1024, 1024, 32, 3), (6, 4, 2, 3), (8, 8, 4, 1)]


@pytest.mark.parametrize("dim_in,dim_out,groups,kernel", GROUPED_SHAPES)
def test_ascend_never_gets_a_non_depthwise_grouped_conv3d(monkeypatch, dim_in, dim_out, groups, kernel):
    monkeypatch.setattr(policy, "device_target", lambda: "Ascend")
    for impl in ("auto", "native"):
        got = resolve_grouped_impl(impl, dim_in=dim_in, dim_out=dim_out, groups=groups, kernel_size=(kernel,) * 3)
        assert got in ("split", "blockdiag")
    with layers.use_impl(grouped="native"):
        assert Conv3d(dim_in, dim_out, kernel, groups=groups).impl in ("split", "blockdiag")
    # depthwise is the one grouped Conv3D Ascend runs; ungrouped is a plain convolution
    assert resolve_grouped_impl("auto", dim_in=8, dim_out=8, groups=8, kernel_size=(3, 3, 3)) == "native"
    assert resolve_grouped_impl("auto", dim_in=dim_in, dim_out=dim_out, groups=1, kernel_size=(3, 3, 3)) == "native"


def test_grouped_auto_rule_per_device(monkeypatch):
    monkeypatch.setattr(policy, "device_target", lambda: "GPU")
    assert resolve_grouped_impl("auto", dim_in=256, dim_out=256, groups=32, kernel_size=(3, 3, 3)) == "native"
    # the pointwise kernel is a CPU one; elsewhere a strided 1x1x1 stays the device's own Conv3D
    assert resolve_impl("cpp", "pointwise") == "native"
    conv = layers.PointwiseConv3d(4, 6, stride=(1, 2, 2))
    assert conv.impl == "native" and not conv.subsample
    monkeypatch.setattr(policy, "device_target", lambda: "CPU")
    for dim_in, dim_out, groups, kernel in GROUPED_SHAPES:
        # MindSpore's CPU Conv3D runs grouped convolutions one group at a time (measured ~50-100x slower)
        assert resolve_grouped_impl("auto", dim_in=dim_in, dim_out=dim_out, groups=groups,
                                    kernel_size=(kernel,) * 3) != "native"
    assert resolve_grouped_impl("split", dim_in=6, dim_out=6, groups=3, kernel_size=(1, 1, 1)) == "split"
    if kernels.library_path("direct") and kernels.library_path("vol2col"):
        # stems (few input channels) run the direct kernel; wider dense convolutions vol2col + product
        assert resolve_grouped_impl("auto", dim_in=3, dim_out=64, groups=1, kernel_size=(7, 7, 7)) == "direct"
        assert resolve_grouped_impl("auto", dim_in=64, dim_out=64, groups=1, kernel_size=(3, 3, 3)) == "gemm"
        assert resolve_grouped_impl("direct", dim_in=6, dim_out=6, groups=3, kernel_size=(3, 3, 3)) != "direct"
    with pytest.raises(ValueError, match="grouped conv impl 'dense' is not one of"):
        resolve_grouped_impl("dense", dim_in=6, dim_out=6, groups=3, kernel_size=(1, 1, 1))
    with pytest.raises(ValueError, match="not divisible by groups=4"):
        Conv3d(6, 8, 1, groups=4)


@pytest.mark.parametrize("mode", [ms.GRAPH_MODE, ms.PYNATIVE_MODE])
@pytest.mark.parametrize("impl,groups", [("native", 1), ("split", 2), ("blockdiag", 2)])
def test_strided_1x1x1_conv3d_on_cpu_is_the_convolution_at_every_strided_position(impl, groups, mode):
    """ResNet's shortcut B: on CPU the layer takes every strided position, then runs a stride-1
    Conv3D; forward and input gradient against numpy (the gradient is W^T up at the kept
    positions, zero elsewhere), in both modes (PyNative's StridedSliceGrad failed here)."""
    ms.set_context(mode=mode)
    rng = np.random.default_rng(6)
    conv = Conv3d(4, 6, 1, stride=(2, 2, 3), groups=groups, impl=impl)
    assert conv.subsample and conv.impl == impl
    w = conv.weight.asnumpy()[:, :, 0, 0, 0]  # (6, 4 / groups)
    dense = np.zeros((6, 4))
    for g in range(groups):
        co, ci = 6 // groups, 4 // groups
        dense[g * co:(g + 1) * co, g * ci:(g + 1) * ci] = w[g * co:(g + 1) * co]
    x = rng.standard_normal((2, 4, 5, 7, 8)).astype(np.float32)
    kept = x[:, :, ::2, ::2, ::3]
    up = rng.standard_normal((2, 6) + kept.shape[2:]).astype(np.float32)
    y, gx, _ = all_grads(conv, Tensor(x), Tensor(up))
    np.testing.assert_allclose(y, np.einsum("oc,nctuv->notuv", dense, kept), rtol=1e-5, atol=1e-5)
    expected_gx = np.zeros_like(x)
    expected_gx[:, :, ::2, ::2, ::3] = np.einsum("oc,notuv->nctuv", dense, up)
    np.testing.assert_allclose(gx, expected_gx, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- vocabulary
needs_channelwise = pytest.mark.skipif(kernels.library_path("channelwise") is None,
                                       reason="no C++ compiler: the channelwise kernel cannot be built")


def _fresh_alias_warnings(monkeypatch):
    monkeypatch.setattr(policy, "_WARNED_ALIASES", set())


@pytest.mark.parametrize("old,new", [("fold", "banded"), pytest.param("custom", "cpp", marks=needs_channelwise)])
def test_deprecated_channelwise_spellings_build_the_same_formulation(monkeypatch, old, new):
    """Old name -> same formulation -> same output, with one DeprecationWarning per spelling."""
    ms.set_context(mode=ms.GRAPH_MODE)
    _fresh_alias_warnings(monkeypatch)
    with pytest.warns(DeprecationWarning, match=f"'{old}' is deprecated; use '{new}'"):
        legacy = ChannelwiseConv3d(4, 3, stride=(1, 2, 2), padding=1, impl=old)
    current = ChannelwiseConv3d(4, 3, stride=(1, 2, 2), padding=1, impl=new)
    assert legacy.impl == current.impl == new
    current.weight.set_data(legacy.weight.data.copy())
    x = Tensor(np.random.default_rng(11).standard_normal((2, 4, 3, 9, 8)).astype(np.float32))
    np.testing.assert_array_equal(legacy(x).asnumpy(), current(x).asnumpy())
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once: the second use is silent
        assert ChannelwiseConv3d(4, 3, padding=1, impl=old).impl == new


@needs_channelwise
def test_deprecated_conv3d_and_pointwise_spellings_map_to_cpp(monkeypatch):
    _fresh_alias_warnings(monkeypatch)
    with pytest.warns(DeprecationWarning, match="grouped conv impl 'channelwise' is deprecated; use 'cpp'"):
        assert Conv3d(5, 5, 3, padding=1, groups=5, impl="channelwise").impl == "cpp"
    with pytest.raises(ValueError, match="grouped conv impl 'channelwise' needs a depthwise convolution"):
        Conv3d(6, 12, 3, groups=3, impl="channelwise")
    with pytest.warns(DeprecationWarning, match="pointwise conv impl 'custom' is deprecated"):
        assert layers.PointwiseConv3d(4, 6, has_bias=True, impl="custom").impl == "cpp"
    # each old spelling means only what it meant for its own kind
    with pytest.raises(ValueError, match=r"spatial conv impl 'custom' is not one of: auto, native, im2col"):
        resolve_impl("custom", "spatial")
    with pytest.raises(ValueError, match=r"pointwise conv impl 'fold' is not one of: .*\(deprecated: custom\)"):
        resolve_impl("fold", "pointwise")


def test_use_impl_is_scoped_nests_and_restores():
    base = policy.default_impl("channelwise")
    with layers.use_impl(channelwise="banded", spatial=None):
        assert policy.default_impl("channelwise") == "banded" and policy.default_impl("spatial") == base
        assert ChannelwiseConv3d(4, 3, padding=1).impl == "banded"
        with layers.use_impl(channelwise="native", pointwise="native"):
            assert ChannelwiseConv3d(4, 3, padding=1).impl == "native"
            assert layers.PointwiseConv3d(4, 6).impl == "native"
        assert ChannelwiseConv3d(4, 3, padding=1).impl == "banded"
        with pytest.raises(RuntimeError, match="inside"):
            with layers.use_impl(channelwise="native"):
                raise RuntimeError("inside")
        assert policy.default_impl("channelwise") == "banded"  # restored after an exception too
    assert policy.default_impl("channelwise") == base
    with pytest.raises(ValueError, match="channelwise conv impl 'fast' is not one of"):
        with layers.use_impl(channelwise="fast"):
            pass
    with pytest.raises(TypeError, match="unknown layer kind"):
        with layers.use_impl(depthwise="cpp"):
            pass


def test_config_schema_accepts_the_policy_names_and_aliases():
    """``model.conv_impl`` / ``model.stem_impl`` choices are the policy's names plus its aliases."""
    from src.config.schema import COMPONENT_ARGS
    conv, stem = COMPONENT_ARGS[("models", "*", "conv_impl")], COMPONENT_ARGS[("models", "*", "stem_impl")]
    assert conv.choices == policy.accepted_names("channelwise")
    assert stem.choices == policy.accepted_names("spatial")
    assert not conv.problem("fold") and not conv.problem("banded") and conv.problem("fast")


def test_x3d_built_with_an_old_conv_impl_gets_the_new_formulation(monkeypatch):
    from src.models import build_model
    _fresh_alias_warnings(monkeypatch)
    cfg = {"type": "x3d_xs", "num_classes": 5, "num_frames": 4, "crop_size": 64, "width_factor": 1.0,
           "depth_factor": 1.0, "head_dim": 16, "conv_impl": "fold", "stem_impl": "im2col"}
    with pytest.warns(DeprecationWarning, match="'fold' is deprecated; use 'banded'"):
        net = build_model(cfg)
    impls = {type(c).__name__: c.impl for _, c in net.cells_and_names() if hasattr(c, "impl")}
    assert impls["ChannelwiseConv3d"] == "banded" and impls["SpatialConv3d"] == "im2col"
