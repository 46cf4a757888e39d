"""The MoViNet training recipe (src/config/movinet_a{0,1,2}_{base,stream}.yaml) against the facts
sheet (TF Model Garden movinet_a*_k600_8x8.yaml), whose values are written out here; the optimizer
and LR schedule are built through the registries as train.py builds them, and the ``rmsprop``
update is checked against a NumPy transcription of Keras' RMSprop rule."""
import math

import numpy as np
import pytest
import mindspore as ms
from mindspore import Parameter, Tensor

import src.engine  # noqa: F401  (registers optimizers, schedules, losses)
from src.config import CONFIG_DIR, load_config
from src.models import build_model
from src.registry import LOSSES, LR_SCHEDULES, OPTIMIZERS, build_from_cfg

ms.set_device("CPU")

VARIANTS = [(a, v) for a in ("a0", "a1", "a2") for v in ("base", "stream")]
# facts sheet section 5: dropout per model, base / stream
DROPOUT = {("a0", "base"): 0.2, ("a0", "stream"): 0.2, ("a1", "base"): 0.5, ("a1", "stream"): 0.2,
           ("a2", "base"): 0.5, ("a2", "stream"): 0.5}
TF_BATCH, TF_LR, TF_STEPS, TF_WARMUP, TF_CLIPS = 1024, 1.8, 85_785, 2_145, 366_016


@pytest.mark.parametrize("arch,variant", VARIANTS)
def test_recipe_values_are_the_facts_sheets(arch, variant):
    cfg = load_config(f"{CONFIG_DIR}/movinet_{arch}_{variant}.yaml")
    assert cfg.model.type == f"movinet_{arch}"
    assert cfg.model.get("causal", False) is (variant == "stream")  # stream: trained as the causal network
    assert cfg.model.dropout_rate == DROPOUT[(arch, variant)]
    assert cfg.model.drop_path_rate == 0.2
    opt = cfg.optimizer
    assert (opt.type, opt.rho, opt.momentum, opt.epsilon) == ("rmsprop", 0.9, 0.9, 1.0)
    # l2_weight_decay 3e-5 = a Keras l2(1.5e-5): d/dw 1.5e-5 * w^2 = 3e-5 * w, on kernels only
    assert opt.weight_decay == pytest.approx(2 * 1.5e-5)
    assert (opt.bn_weight_decay, opt.zero_wd_1d_params) == (0.0, True)
    lr = cfg.learning_rate
    assert (lr.type, lr.base_lr, lr.reference_batch_size, lr.warmup_start_lr, lr.eta_min) == \
        ("cosine_warmup", TF_LR, TF_BATCH, 0.0, 0.0)
    steps_per_epoch = TF_CLIPS / TF_BATCH
    assert cfg.train.epochs == round(TF_STEPS / steps_per_epoch)  # 240.0
    assert lr.warmup_epochs == pytest.approx(TF_WARMUP / steps_per_epoch, abs=0.01)  # 6.0
    assert (cfg.loss.type, cfg.loss.label_smoothing) == ("cross_entropy", 0.1)
    assert (cfg.train.clip_grad, cfg.train.clip_value) == ("norm", 1.0)
    loss = build_from_cfg(cfg.loss, LOSSES)
    assert loss is not None


@pytest.mark.parametrize("global_batch", [1024, 16])
def test_recipe_schedule_is_tf_linear_warmup_then_cosine(global_batch):
    cfg = load_config(f"{CONFIG_DIR}/movinet_a0_stream.yaml")
    n = 357  # steps per epoch at 1024 clips (366,016 / 1024 = 357.4)
    lr = build_from_cfg(cfg.learning_rate, LR_SCHEDULES, where="learning_rate", epochs=cfg.train.epochs,
                        steps_per_epoch=n, global_batch_size=global_batch)
    total, warm = 240 * n, 6 * n
    peak = TF_LR * global_batch / TF_BATCH  # the linear scaling rule

    def tf_lr(step):  # Model Garden: LinearWarmup(from 0) over CosineDecay(peak, total steps, alpha 0)
        cosine = lambda s: peak * 0.5 * (1 + math.cos(math.pi * s / total))  # noqa: E731
        return cosine(warm) * step / warm if step < warm else cosine(step)

    assert len(lr) == total
    for step in (0, 1, warm // 2, warm - 1, warm, warm + 1, total // 2, total - 1):
        assert lr[step] == pytest.approx(tf_lr(step), rel=1e-5, abs=1e-9), step


def _decay(opt):
    values = getattr(opt, "weight_decay_tensor_tuple", None) or opt.weight_decay
    return {p.name: float(wd) for p, wd in zip(opt.parameters, values)}


def test_recipe_l2_is_on_kernels_only():
    cfg = load_config(f"{CONFIG_DIR}/movinet_a0_stream.yaml")
    net = build_model({"type": "movinet_a0", "num_classes": 4, "num_frames": 4, "crop_size": 32, "causal": True})
    opt = build_from_cfg(cfg.optimizer, OPTIMIZERS, where="optimizer", params=net.trainable_params(),
                         learning_rate=np.full(4, 0.01, np.float32))
    decay = _decay(opt)
    assert len(decay) == len(net.trainable_params())
    kernels = [p.name for p in net.trainable_params() if len(p.shape) >= 2]
    others = [p.name for p in net.trainable_params() if len(p.shape) < 2]
    for name in ("conv1.conv_1.conv3d.weight", "blocks.b1_l0.deep.conv_1.conv3d.weight",
                 "blocks.b1_l0.deep.conv_2.conv3d.weight", "blocks.b0_l0.se.fc1.conv_1.conv3d.weight",
                 "classifier.0.conv_1.conv3d.weight", "classifier.3.conv_1.conv3d.weight"):
        assert name in kernels, name
    for name in ("blocks.b0_l0.alpha", "blocks.b0_l0.se.fc1.conv_1.conv3d.bias", "conv1.conv_1.norm.gamma",
                 "conv1.conv_1.norm.beta", "classifier.3.conv_1.conv3d.bias"):
        assert name in others, name
    assert all(decay[n] == pytest.approx(3e-5) for n in kernels)
    assert all(decay[n] == 0.0 for n in others)


def keras_rmsprop(w, grads, lrs, rho, momentum, eps, l2):
    """tf.keras.optimizers.RMSprop (ResourceApplyRMSProp) with the gradient of a Keras l2(l2 / 2)
    regularizer added, from its documented formulas: rms and mom start at 0."""
    rms, mom, out = np.zeros_like(w), np.zeros_like(w), []
    for g, lr in zip(grads, lrs):
        g = g + l2 * w
        rms = rho * rms + (1 - rho) * g * g
        mom = momentum * mom + lr * g / np.sqrt(rms + eps)
        w = w - mom
        out.append(w.copy())
    return out


@pytest.mark.parametrize("eps", [1.0, 1e-3])
def test_rmsprop_steps_as_keras(eps):
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(3, 4)).astype(np.float64)  # a kernel (L2)
    b0 = rng.normal(size=(4,)).astype(np.float64)  # a bias (no L2 with zero_wd_1d_params)
    grads_w = [rng.normal(size=w0.shape) * s for s in (1.0, 0.3, 2.0)]
    grads_b = [rng.normal(size=b0.shape) * s for s in (0.5, 1.5, 0.2)]
    lrs = np.array([0.1, 0.05, 0.2], np.float32)
    w = Parameter(Tensor(w0.astype(np.float32)), name="k.weight")
    b = Parameter(Tensor(b0.astype(np.float32)), name="k.bias")
    opt = build_from_cfg({"type": "rmsprop", "rho": 0.9, "momentum": 0.9, "epsilon": eps, "weight_decay": 0.01,
                          "bn_weight_decay": 0.0, "zero_wd_1d_params": True}, OPTIMIZERS, params=[w, b],
                         learning_rate=lrs)
    want_w = keras_rmsprop(w0, grads_w, lrs.astype(np.float64), 0.9, 0.9, eps, 0.01)
    want_b = keras_rmsprop(b0, grads_b, lrs.astype(np.float64), 0.9, 0.9, eps, 0.0)
    for step in range(3):
        opt((Tensor(grads_w[step].astype(np.float32)), Tensor(grads_b[step].astype(np.float32))))
        np.testing.assert_allclose(w.asnumpy(), want_w[step], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(b.asnumpy(), want_b[step], rtol=1e-5, atol=1e-6)
    # torch's placement (sqrt(rms) + eps) would give a different first step: the test can tell them apart
    g = grads_b[0]
    torch_first = b0 - lrs[0] * g / (np.sqrt(0.1 * g * g) + eps)
    assert not np.allclose(torch_first, want_b[0], rtol=1e-3)
