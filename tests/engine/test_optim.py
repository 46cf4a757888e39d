"""Optimizer groups (SlowFast's rule: only BatchNorm gamma/beta at bn_weight_decay); losses from the registry."""
import numpy as np
import pytest
import mindspore as ms
from mindspore import Tensor

import src.engine  # noqa: F401
from src.models import build_model
from src.registry import LOSSES, OPTIMIZERS, build_from_cfg

ms.set_device("CPU")


def tiny_model():
    return build_model({"type": "x3d_xs", "num_classes": 3, "crop_size": 32, "width_factor": 0.5,
                        "depth_factor": 0.5, "head_dim": 16})


def _decay(opt):
    # MindSpore keeps per-parameter decay as a tuple aligned with the parameters
    values = getattr(opt, "weight_decay_tensor_tuple", None) or opt.weight_decay
    return {p.name: float(wd) for p, wd in zip(opt.parameters, values)}


def test_slowfast_groups_only_batchnorm_is_excluded_from_weight_decay():
    net = tiny_model()
    opt = build_from_cfg({"type": "sgd", "momentum": 0.9, "nesterov": True, "weight_decay": 5e-5,
                          "bn_weight_decay": 0.0}, OPTIMIZERS, params=net.trainable_params(),
                         learning_rate=np.full(10, 0.1, np.float32))
    decay = _decay(opt)
    bn = [n for n in decay if n.endswith((".gamma", ".beta"))]
    assert bn and all(decay[n] == 0.0 for n in bn)
    # biases of the SE convolutions and of the classifier are decayed, as in SlowFast
    for name in ("head.projection.bias", "head.projection.weight", "res2.0.branch2.se.fc1.bias",
                 "res2.0.branch2.se.fc2.bias", "res2.0.branch2.a.weight", "res2.0.branch2.b.weight",
                 "stem.conv_xy.weight", "head.lin_5.weight"):
        assert decay[name] == pytest.approx(5e-5), name
    others = [n for n in decay if n not in bn]
    assert all(decay[n] == pytest.approx(5e-5) for n in others)
    assert len(bn) + len(others) == len(net.trainable_params())
    assert opt.use_nesterov if hasattr(opt, "use_nesterov") else opt.nesterov


def test_zero_wd_1d_params_takes_biases_out_too():
    net = tiny_model()
    opt = build_from_cfg({"type": "sgd", "weight_decay": 5e-5, "bn_weight_decay": 0.0, "zero_wd_1d_params": True},
                         OPTIMIZERS, params=net.trainable_params(), learning_rate=0.1)
    decay = _decay(opt)
    for name in ("head.projection.bias", "res2.0.branch2.se.fc1.bias", "res2.0.branch2.se.fc2.bias",
                 "stem.bn.gamma", "res2.0.branch2.a_bn.beta"):
        assert decay[name] == 0.0, name
    for name in ("head.projection.weight", "res2.0.branch2.se.fc1.weight", "res2.0.branch2.b.weight"):
        assert decay[name] == pytest.approx(5e-5), name


def test_dampening_follows_torch_sgd():
    # torch SGD with dampening d: buf = m * buf + (1 - d) * g (the first step: buf = g), p -= lr * buf
    w = ms.Parameter(Tensor(np.array([1.0, -2.0], np.float32)), name="w")
    opt = build_from_cfg({"type": "sgd", "momentum": 0.9, "nesterov": False, "dampening": 0.9,
                          "weight_decay": 0.0}, OPTIMIZERS, params=[w], learning_rate=0.5)
    g = Tensor(np.array([0.2, 0.4], np.float32))
    opt((g,))
    first = np.array([1.0, -2.0]) - 0.5 * np.array([0.2, 0.4])
    np.testing.assert_allclose(w.asnumpy(), first, rtol=1e-6)
    opt((g,))
    buf = 0.9 * np.array([0.2, 0.4]) + 0.1 * np.array([0.2, 0.4])
    np.testing.assert_allclose(w.asnumpy(), first - 0.5 * buf, rtol=1e-6)


def test_label_smoothing_loss():
    loss = build_from_cfg({"type": "cross_entropy", "label_smoothing": 0.1}, LOSSES)
    logits = Tensor(np.array([[2.0, 0.0, -1.0]], np.float32))
    value = float(loss(logits, Tensor(np.array([0], np.int32))).asnumpy())
    logp = logits.asnumpy()[0] - np.log(np.exp(logits.asnumpy()[0]).sum())
    expected = -(0.9 + 0.1 / 3) * logp[0] - (0.1 / 3) * (logp[1] + logp[2])
    assert value == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="label_smoothing"):
        build_from_cfg({"type": "cross_entropy", "label_smoothing": 1.5}, LOSSES)
