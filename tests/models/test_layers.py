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
def test_channelwise_fold_matches_native_grouped_conv3d(mode, kernel, stride, padding):
    ms.set_context(mode=mode)
    rng = np.random.default_rng(0)
    c, t = 6, 4
    x = Tensor(rng.standard_normal((2, c, t, 9, 10)).astype(np.float32))
    fold = ChannelwiseConv3d(c, kernel, stride=stride, padding=padding, impl="fold")
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


def test_stem_im2col_matches_native_conv3d():
    ms.set_context(mode=ms.GRAPH_MODE)
    rng = np.random.default_rng(1)
    x = Tensor(rng.standard_normal((2, 3, 3, 11, 12)).astype(np.float32))
    fast = SpatialConv3d(3, 8, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1), impl="im2col")
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
    with pytest.raises(ValueError, match="channelwise conv impl 'fast' is not one of"):
        resolve_impl("fast", "channelwise")
