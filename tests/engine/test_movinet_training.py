"""A few training steps of every MoViNet variant (A0/A1/A2, base and stream) with its recipe
config (src/config/movinet_*.yaml: Keras RMSprop, label smoothing, clip norm 1.0, L2 on kernels,
dropout, stochastic depth), at tiny size (4 x 32 x 32 clips, 3 classes, batch 2), built through
the registries as train.py builds them and stepped by TrainStep. The stream variants train as the
causal network on whole clips (no state): the same step as the base.

PyNative mode: the graph compile of a full-depth MoViNet train step takes minutes on CPU, a
PyNative step seconds (each case here about 20-30 s on a quiet 2-core machine, most of it the
compile of the jitted optimizer update), so CI runs every variant."""
import numpy as np
import pytest
import mindspore as ms
from mindspore import Parameter, ParameterTuple, Tensor, nn

import src.engine  # noqa: F401  (registers optimizers, schedules, losses)
from src.config import CONFIG_DIR, load_config
from src.engine.train_step import SPLIT_CHUNK, TrainStep
from src.models import build_model
from src.registry import LOSSES, LR_SCHEDULES, OPTIMIZERS, build_from_cfg

pytestmark = pytest.mark.usefixtures("pynative")

TINY = ["model.num_classes=3", "model.num_frames=4", "model.crop_size=32",
        # a rate that moves a 2-clip batch in a few steps (the recipe's 1.8 x 2 / 1024 would not)
        "learning_rate.base_lr=0.05", "learning_rate.reference_batch_size=null", "learning_rate.warmup_epochs=0"]


def _steps(config: str, steps: int):
    """The losses of ``steps`` updates on one repeated batch, and the step cell."""
    cfg = load_config(f"{CONFIG_DIR}/{config}.yaml", TINY)
    ms.set_seed(0)
    net = build_model(dict(cfg.model))
    lr = build_from_cfg(cfg.learning_rate, LR_SCHEDULES, where="learning_rate", epochs=1,
                        steps_per_epoch=steps, global_batch_size=2)
    opt = build_from_cfg(cfg.optimizer, OPTIMIZERS, where="optimizer", params=net.trainable_params(),
                         learning_rate=lr)
    step = TrainStep(net, build_from_cfg(cfg.loss, LOSSES, where="loss"), opt, clip_grad=cfg.train.clip_grad,
                     clip_value=cfg.train.clip_value)
    step.set_train()
    rng = np.random.default_rng(0)
    x = Tensor(rng.random((2, 3, 4, 32, 32)).astype(np.float32))  # RGB in [0, 1] (the record's)
    y = Tensor(np.array([0, 2], np.int32))
    return [float(step(x, y).asnumpy()) for _ in range(steps)], net, opt


@pytest.mark.parametrize("variant", ["base", "stream"])
def test_a0_recipe_step_lowers_the_loss_on_a_repeated_batch(variant):
    losses, net, opt = _steps(f"movinet_a0_{variant}", 4)
    assert all(np.isfinite(losses)), losses
    assert net.causal is (variant == "stream")
    # label smoothing 0.1 over 3 classes: the loss cannot go below the smoothed target's entropy,
    # and starts near log(3) (classifier initialised at std 0.01)
    assert losses[0] == pytest.approx(np.log(3), abs=0.15)
    assert losses[-1] < losses[0] - 0.1, losses
    assert int(opt.global_step.asnumpy()[0]) == 4


@pytest.mark.parametrize("config", ["movinet_a1_base", "movinet_a1_stream", "movinet_a2_base", "movinet_a2_stream"])
def test_a1_a2_recipe_steps_run_finite(config):
    losses, net, _ = _steps(config, 2)
    assert all(np.isfinite(losses)), losses
    assert net.causal is config.endswith("stream")
    assert losses[1] < losses[0], losses


class ManyTensors(nn.Cell):
    """x * sum_k c_k * sum(w_k) over 130 small weights (more than two SPLIT_CHUNKs, as MoViNet's
    265): dL/dw_k = c_k * dL/ds for every element of w_k, a different value per tensor."""

    def __init__(self, count: int = 130):
        super().__init__()
        rng = np.random.default_rng(1)
        self.ws = ParameterTuple([Parameter(Tensor(rng.normal(size=(k % 3 + 1,)).astype(np.float32) * 0.1),
                                            name=f"w{k}") for k in range(count)])
        self.coef = tuple(float(k + 1) / count for k in range(count))

    def construct(self, x):
        s = 0.0
        for w, c in zip(self.ws, self.coef):
            s = s + c * w.sum()
        return x * s


def test_clipped_step_splits_many_tensors_back_in_order():
    # graph mode (the chunked split exists for the graph compiler); SGD without momentum, clip norm 0.5
    ms.set_context(mode=ms.GRAPH_MODE)
    net = ManyTensors()
    assert len(net.trainable_params()) > 2 * SPLIT_CHUNK
    w0 = [p.asnumpy().astype(np.float64) for p in net.trainable_params()]
    opt = build_from_cfg({"type": "sgd", "momentum": 0.0, "nesterov": False, "weight_decay": 0.0},
                         OPTIMIZERS, params=net.trainable_params(), learning_rate=0.1)
    step = TrainStep(net, nn.MSELoss(), opt, clip_grad="norm", clip_value=0.5)
    x = np.array([1.0, -0.5, 2.0, 0.3])
    y = np.array([0.5, 0.2, -1.0, 0.0])
    step(Tensor(x.astype(np.float32)), Tensor(y.astype(np.float32)))
    # by hand: s = sum c_k sum(w_k); dL/ds = mean(2 (s x - y) x); g_k = c_k dL/ds per element
    coef = np.array(net.coef)
    s = sum(c * w.sum() for c, w in zip(coef, w0))
    dlds = np.mean(2 * (s * x - y) * x)
    grads = [c * dlds * np.ones_like(w) for c, w in zip(coef, w0)]
    norm = np.sqrt(sum((g * g).sum() for g in grads))
    factor = min(1.0, 0.5 / norm)
    assert factor < 1.0  # the clip is active
    for p, w, g in zip(net.trainable_params(), w0, grads):
        np.testing.assert_allclose(p.asnumpy(), w - 0.1 * factor * g, rtol=1e-5, atol=1e-7, err_msg=p.name)
