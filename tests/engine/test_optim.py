"""Optimizer groups: BatchNorm parameters and biases get no weight decay; losses from the registry."""
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


def test_bn_parameters_are_excluded_from_weight_decay():
    net = tiny_model()
    opt = build_from_cfg({"type": "sgd", "momentum": 0.9, "nesterov": True, "weight_decay": 5e-5,
                          "bn_weight_decay": 0.0}, OPTIMIZERS, params=net.trainable_params(),
                         learning_rate=np.full(10, 0.1, np.float32))
    decay = {p.name: float(wd) for p, wd in zip(opt.parameters, opt.weight_decay_tensor_tuple)} \
        if hasattr(opt, "weight_decay_tensor_tuple") else None
    if decay is None:  # MindSpore keeps per-parameter decay as a tuple aligned with the parameters
        decay = {p.name: float(wd) for p, wd in zip(opt.parameters, opt.weight_decay)}
    bn = [n for n in decay if n.endswith((".gamma", ".beta"))]
    assert bn and all(decay[n] == 0.0 for n in bn)
    assert decay["head.projection.bias"] == 0.0
    assert decay["res2.0.branch2.a.weight"] == pytest.approx(5e-5)
    assert decay["res2.0.branch2.b.weight"] == pytest.approx(5e-5)
    assert opt.use_nesterov if hasattr(opt, "use_nesterov") else opt.nesterov


def test_label_smoothing_loss():
    loss = build_from_cfg({"type": "cross_entropy", "label_smoothing": 0.1}, LOSSES)
    logits = Tensor(np.array([[2.0, 0.0, -1.0]], np.float32))
    value = float(loss(logits, Tensor(np.array([0], np.int32))).asnumpy())
    logp = logits.asnumpy()[0] - np.log(np.exp(logits.asnumpy()[0]).sum())
    expected = -(0.9 + 0.1 / 3) * logp[0] - (0.1 / 3) * (logp[1] + logp[2])
    assert value == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="label_smoothing"):
        build_from_cfg({"type": "cross_entropy", "label_smoothing": 1.5}, LOSSES)
