"""X3D built from the YAML configs through the registry: exact size, FLOPs, shapes, init, training."""
import os

import numpy as np
import pytest
import mindspore as ms
from mindspore import Tensor, nn

from src.config import CONFIG_DIR, load_config
from src.engine.trainer import TrainStep
from src.models import build_model, count_params

ms.set_device("CPU")
ms.set_context(mode=ms.GRAPH_MODE)

# (variant, params, GFLOPs at train crop (fvcore figures from the reference), frames, crop)
REFERENCE = [
    ("x3d_xs", 3794322, 0.626, 4, 160),
    ("x3d_s", 3794322, 2.03, 13, 160),
    ("x3d_m", 3794322, 4.90, 16, 224),
    ("x3d_l", 6153432, 18.93, 16, 312),
]


def model_from_yaml(variant, *overrides):
    cfg = load_config(os.path.join(CONFIG_DIR, f"{variant}.yaml"), list(overrides))
    return build_model(cfg.model)


@pytest.mark.parametrize("variant,params,gflops,frames,crop", REFERENCE)
def test_exact_parameter_count_and_flops(variant, params, gflops, frames, crop):
    net = model_from_yaml(variant)
    assert count_params(net) == params
    assert (net.num_frames, net.crop_size) == (frames, crop)
    assert net.flops() / 1e9 == pytest.approx(gflops, rel=0.02)


def test_flops_at_the_xs_test_crop():
    assert model_from_yaml("x3d_xs").flops((3, 4, 182, 182)) / 1e9 == pytest.approx(0.873, rel=0.02)


def test_channelwise_convs_are_really_channelwise():
    # the earlier port's "X3D" used full 3x3x3 convs (~54.6M params); ours has (C, 1, 3, 3, 3) weights
    net = model_from_yaml("x3d_xs")
    shapes = {p.name: p.shape for p in net.trainable_params()}
    assert shapes["res4.3.branch2.b.weight"] == (216, 1, 3, 3, 3)
    assert shapes["stem.conv_t.weight"] == (24, 1, 5, 1, 1)
    assert shapes["stem.conv_xy.weight"] == (24, 3, 1, 3, 3)
    assert shapes["head.lin_5.weight"] == (2048, 432, 1, 1, 1)
    se = [n for n in shapes if ".se.fc1.weight" in n and n.startswith("res3.")]
    assert se == ["res3.0.branch2.se.fc1.weight", "res3.2.branch2.se.fc1.weight", "res3.4.branch2.se.fc1.weight"]


@pytest.mark.parametrize("variant,frames", [("x3d_xs", 4), ("x3d_s", 13), ("x3d_m", 16), ("x3d_l", 16)])
def test_output_shapes_at_reduced_size(variant, frames, pynative):
    # real depth and frame count of each variant; reduced width, a 32x32 crop and PyNative mode
    # (no graph compile of the deep network) keep it fast
    net = model_from_yaml(variant, "model.num_classes=7", "model.crop_size=32", "model.width_factor=0.5",
                          "model.head_dim=32")
    x = Tensor(np.random.default_rng(0).standard_normal((2, 3, frames, 32, 32)).astype(np.float32))
    feats = net.forward_features(x)
    assert feats.shape == (2, 48, frames, 1, 1)
    net.set_train(True)
    assert net(x).shape == (2, 7)


def test_larger_test_crop_is_fully_convolutional_and_averages_softmax(pynative):
    net = model_from_yaml("x3d_xs", "model.num_classes=5", "model.crop_size=32", "model.width_factor=0.5",
                          "model.head_dim=16", "model.depth_factor=0.5")
    net.set_train(False)
    rng = np.random.default_rng(0)
    big = rng.standard_normal((1, 3, 4, 64, 64)).astype(np.float32)
    probs = net(Tensor(big)).asnumpy()
    assert probs.shape == (1, 5)
    assert probs.sum() == pytest.approx(1.0, abs=1e-5)
    # same result by hand: the 2x2 grid of positions, each softmaxed, then averaged
    feats = net.forward_features(Tensor(big))
    head = net.head
    x = head.relu(head.conv_5_bn(head.conv_5(feats))).asnumpy()
    assert x.shape[2:] == (4, 2, 2)
    w5 = head.lin_5.weight.asnumpy().reshape(16, -1)
    wp, bp = head.projection.weight.asnumpy(), head.projection.bias.asnumpy()
    logits = np.maximum(np.einsum("oc,ncthw->nthwo", w5, x).mean(1), 0) @ wp.T + bp  # pool over T, window 1x1
    soft = np.exp(logits - logits.max(-1, keepdims=True))
    soft /= soft.sum(-1, keepdims=True)
    np.testing.assert_allclose(probs[0], soft[0].mean((0, 1)), rtol=1e-4, atol=1e-6)


def test_initialisation_follows_the_reference():
    net = model_from_yaml("x3d_xs")
    params = {p.name: p.asnumpy() for p in net.get_parameters()}
    assert np.all(params["res3.1.branch2.c_bn.gamma"] == 0)       # zero-init final BN of each block
    assert np.all(params["res3.1.branch2.b_bn.gamma"] == 1)
    w = params["res4.0.branch2.a.weight"]                          # Kaiming normal, fan_out
    assert w.std() == pytest.approx(np.sqrt(2.0 / w.shape[0]), rel=0.1)
    assert params["head.projection.weight"].std() == pytest.approx(0.01, rel=0.1)
    assert np.all(params["head.projection.bias"] == 0)
    bn = [c for _, c in net.cells_and_names() if isinstance(c, nn.BatchNorm2d)]
    # MindSpore momentum 0.9 is stored as the torch-convention 0.1 (new = 0.9 * old + 0.1 * batch)
    assert bn and all(abs(c.momentum - 0.1) < 1e-9 and abs(c.eps - 1e-5) < 1e-12 for c in bn)


def test_bad_input_shapes_are_rejected():
    with pytest.raises(ValueError, match="crop_size must be >= 32"):
        model_from_yaml("x3d_xs", "model.crop_size=16")
    net = model_from_yaml("x3d_xs", "model.crop_size=32", "model.width_factor=0.5", "model.depth_factor=0.5",
                          "model.head_dim=16")
    with pytest.raises(ValueError, match=r"expects clips of shape \(N, 3, T, H, W\)"):
        net(Tensor(np.zeros((1, 4, 4, 32, 32), np.float32)))


def test_graph_mode_training_step_lowers_the_loss_on_a_repeated_batch():
    ms.set_context(mode=ms.GRAPH_MODE)  # another module's test may have left PyNative mode set
    ms.set_seed(0)
    net = model_from_yaml("x3d_xs", "model.num_classes=4", "model.crop_size=32", "model.width_factor=0.5",
                          "model.depth_factor=0.5", "model.head_dim=32", "model.dropout_rate=0.0")
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((4, 3, 4, 32, 32)).astype(np.float32))
    y = Tensor(np.array([0, 1, 2, 3], np.int32))
    opt = nn.Momentum(net.trainable_params(), learning_rate=0.05, momentum=0.9)
    step = TrainStep(net, nn.CrossEntropyLoss(), opt)  # the cell train.py runs

    net.set_train(True)
    losses = [float(step(x, y).asnumpy()) for _ in range(12)]
    assert np.isfinite(losses).all()
    assert losses[-1] < losses[0] - 0.05
