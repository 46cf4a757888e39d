"""TrainStep: clipping, accumulation and loss scaling against numpy hand computations on a linear
classifier (its gradients are known in closed form), mixed precision on real zoo networks on CPU
(float16 Conv3D, its gradients and BatchNorm on float16 inputs all run here), resume of the step's
own state, and the loop's counting (optimizer steps, skipped updates in the log and metrics.jsonl)."""
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import mindspore as ms
from mindspore import Tensor, nn

from src.engine.trainer import MetricsWriter, ProgressLogger, TrainState, TrainStep, fit

FMAX = float(np.finfo(np.float32).max)
RNG = np.random.default_rng(0)
X = RNG.standard_normal((8, 5)).astype(np.float32)
Y = np.array([0, 1, 2, 0, 1, 2, 2, 1], np.int32)
W0 = (0.3 * RNG.standard_normal((3, 5))).astype(np.float32)
B0 = (0.1 * RNG.standard_normal(3)).astype(np.float32)


@pytest.fixture(autouse=True)
def graph_mode():
    ms.set_context(mode=ms.GRAPH_MODE)
    yield


# ----------------------------------------------------------------------------------- numpy reference
def np_grads(w, b, x, y):
    """Gradients of the mean softmax cross-entropy of x @ w.T + b (float64): the closed form
    (softmax - onehot) / N, times x for the weight."""
    z = x.astype(np.float64) @ w.T.astype(np.float64) + b
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    d = (p - np.eye(w.shape[0])[y]) / len(y)
    return d.T @ x, d.sum(0)


def sgd_momentum(params, grads, bufs, lr, momentum, wd):
    """MindSpore/torch SGD without dampening or Nesterov: v = m v + (g + wd p); p -= lr v."""
    out_p, out_v = [], []
    for p, g, v in zip(params, grads, bufs):
        v = momentum * v + g + wd * p
        out_p.append(p - lr * v)
        out_v.append(v)
    return out_p, out_v


class Linear(nn.Cell):
    """A Dense layer with the model interface fit needs (train_mode)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Dense(5, 3)
        self.fc.weight.set_data(Tensor(W0))
        self.fc.bias.set_data(Tensor(B0))

    def construct(self, x):
        return self.fc(x)

    def train_mode(self, finetune="complete"):
        self.set_train(True)


def linear_step(lr=0.1, momentum=0.0, wd=0.0, steps=16, **kw):
    net = Linear()
    opt = nn.SGD(net.trainable_params(), learning_rate=Tensor(np.full(steps, lr, np.float32)), momentum=momentum,
                 weight_decay=wd)
    step = TrainStep(net, nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean"), opt, **kw)
    step.set_train(True)
    return net, opt, step


def weights(net):
    return [net.fc.weight.asnumpy().copy(), net.fc.bias.asnumpy().copy()]


# ----------------------------------------------------------------------------------- defaults and clipping
def test_default_step_is_plain_sgd_on_the_hand_gradient():
    net, opt, step = linear_step(lr=0.1, momentum=0.9, wd=1e-3)
    p, v = [W0.astype(np.float64), B0.astype(np.float64)], [0.0, 0.0]
    for _ in range(3):
        step(Tensor(X), Tensor(Y))
        p, v = sgd_momentum(p, np_grads(p[0], p[1], X, Y), v, 0.1, 0.9, 1e-3)
    for got, want in zip(weights(net), p):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert int(opt.global_step.asnumpy()[0]) == 3
    assert not [q.name for q in step.get_parameters() if q.name.startswith("train_step.")]  # no extra state


@pytest.mark.parametrize("mode,limit", [("norm", 0.05), ("value", 0.02)])
def test_clipping_matches_the_hand_computation(mode, limit):
    net, _, step = linear_step(lr=0.5, clip_grad=mode, clip_value=limit)
    gw, gb = np_grads(W0, B0, X, Y)
    if mode == "norm":
        norm = math.sqrt((gw ** 2).sum() + (gb ** 2).sum())
        assert norm > limit  # the case where it clips
        gw, gb = gw * limit / norm, gb * limit / norm
    else:
        assert np.abs(gw).max() > limit
        gw, gb = np.clip(gw, -limit, limit), np.clip(gb, -limit, limit)
    step(Tensor(X), Tensor(Y))
    np.testing.assert_allclose(weights(net)[0], W0 - 0.5 * gw, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(weights(net)[1], B0 - 0.5 * gb, rtol=1e-5, atol=1e-7)


def test_norm_clipping_leaves_small_gradients_alone():
    net, _, step = linear_step(lr=0.5, clip_grad="norm", clip_value=1e3)
    gw, gb = np_grads(W0, B0, X, Y)
    step(Tensor(X), Tensor(Y))
    np.testing.assert_allclose(weights(net)[0], W0 - 0.5 * gw, rtol=1e-5, atol=1e-7)


# ----------------------------------------------------------------------------------- accumulation
def test_accumulating_k_batches_equals_one_batch_k_times_larger():
    """k = 4 micro-batches of 2 against one batch of 8, SGD with momentum and weight decay, 3
    updates; plus the numpy reference of the big batch."""
    big, big_opt, big_step = linear_step(lr=0.2, momentum=0.9, wd=1e-2)
    acc, acc_opt, acc_step = linear_step(lr=0.2, momentum=0.9, wd=1e-2, accumulate_steps=4)
    p, v = [W0.astype(np.float64), B0.astype(np.float64)], [0.0, 0.0]
    for update in range(3):
        big_step(Tensor(X), Tensor(Y))
        for i in range(4):
            before = weights(acc)
            acc_step(Tensor(X[2 * i:2 * i + 2]), Tensor(Y[2 * i:2 * i + 2]))
            if i < 3:  # no update until the k-th micro-batch
                assert all(np.array_equal(a, b) for a, b in zip(before, weights(acc)))
        p, v = sgd_momentum(p, np_grads(p[0], p[1], X, Y), v, 0.2, 0.9, 1e-2)
        assert int(acc_opt.global_step.asnumpy()[0]) == update + 1
    for a, b, ref in zip(weights(acc), weights(big), p):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)  # float32 sums in another order
        np.testing.assert_allclose(a, ref, rtol=1e-5, atol=1e-6)
    assert all(not q.asnumpy().any() for q in acc_step.grad_accum)  # buffers empty after an update


# ----------------------------------------------------------------------------------- loss scaling
def test_fixed_scale_that_overflows_skips_every_update():
    net, opt, step = linear_step(lr=0.1, momentum=0.9, loss_scale_type="fixed", loss_scale=FMAX)
    x = Tensor(X * 10)  # |grad| * FMAX > FMAX: inf
    for _ in range(3):
        loss = float(step(x, Tensor(Y)).asnumpy())
        assert math.isfinite(loss)  # the loss itself is not scaled
    assert all(np.array_equal(a, b) for a, b in zip(weights(net), [W0, B0]))
    assert not opt.accum[0].asnumpy().any()  # the momentum buffer did not move either
    assert step.skipped_updates() == 3 and step.current_loss_scale() == pytest.approx(FMAX)
    assert int(opt.global_step.asnumpy()[0]) == 3  # the LR index moved on


def test_dynamic_scale_skips_on_overflow_lowers_then_grows_back():
    """Scale chosen so that S overflows the gradients and S / 8 does not: overflow -> skipped,
    scale / 8; two finite updates (window 2, equal to numpy SGD on the unscaled gradient) ->
    scale * 8 -> overflow again."""
    XS = X * 64  # gradients > 2, so that the scale below is a finite float32
    gmax = max(np.abs(g).max() for g in np_grads(W0, B0, XS, Y))
    scale = 2.0 ** math.ceil(math.log2(2 * FMAX / gmax))  # S * gmax in [2, 4) FMAX, S/8 * gmax < FMAX/2
    assert scale < FMAX
    net, opt, step = linear_step(lr=1e-3, loss_scale_type="dynamic", loss_scale=scale, loss_scale_factor=8,
                                 loss_scale_window=2)
    p = [W0.astype(np.float64), B0.astype(np.float64)]
    seen = []
    for i in range(5):
        before = weights(net)
        step(Tensor(XS), Tensor(Y))
        seen.append((step.current_loss_scale(), step.skipped_updates()))
        if i in (0, 3):  # overflow: nothing changes
            assert all(np.array_equal(a, b) for a, b in zip(before, weights(net))), i
        else:
            g = np_grads(p[0], p[1], XS, Y)
            p = [q - 1e-3 * gq for q, gq in zip(p, g)]
            for got, want in zip(weights(net), p):
                np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    assert seen == [(scale / 8, 1), (scale / 8, 1), (scale, 1), (scale / 8, 2), (scale / 8, 2)]
    assert int(opt.global_step.asnumpy()[0]) == 5


def test_step_state_survives_a_checkpoint(tmp_path):
    """Loss scale, its counter, the overflow count and half-filled accumulation buffers are
    Parameters of the cell: saved, restored by restore_training_state, and the resumed run goes on
    exactly as the uninterrupted one."""
    from src.engine.checkpoint import restore_training_state, save_checkpoint

    kw = dict(lr=0.05, momentum=0.9, loss_scale_type="dynamic", loss_scale=1024.0, loss_scale_window=2,
              accumulate_steps=2)
    ref, _, ref_step = linear_step(**kw)
    a, _, a_step = linear_step(**kw)
    batches = [(Tensor(X[i:i + 4]), Tensor(Y[i:i + 4])) for i in (0, 4, 0, 4, 0, 4, 0)]
    for xb, yb in batches:
        ref_step(xb, yb)
    for xb, yb in batches[:5]:  # stop in the middle of an accumulation, after a scale change
        a_step(xb, yb)
    path = save_checkpoint(a_step, str(tmp_path / "mid.ckpt"), epoch=0, global_step=2)
    b, _, b_step = linear_step(**kw)
    restore_training_state(b_step, path)
    assert b_step.current_loss_scale() == 2048.0 and int(b_step.micro_step.asnumpy()) == 1
    for xb, yb in batches[5:]:
        b_step(xb, yb)
    for x, y in zip(weights(b), weights(ref)):
        np.testing.assert_array_equal(x, y)
    assert b_step.current_loss_scale() == ref_step.current_loss_scale()


def test_bad_settings_are_one_line_errors():
    from src.errors import UserError
    for kw, key in ((dict(loss_scale_type="static"), "train.loss_scale_type"), (dict(clip_grad="l2"), "train.clip_grad"),
                    (dict(accumulate_steps=0), "train.accumulate_steps"), (dict(amp_level="O4"), "train.amp_level")):
        with pytest.raises(UserError, match=key):
            linear_step(**kw)


# ----------------------------------------------------------------------------------- the loop
class FakeLoader:
    """The loader interface fit uses; ``epochs[e]`` are epoch e's batches."""

    def __init__(self, epochs):
        self.epochs, self.epoch = epochs, 0
        self.dataset = SimpleNamespace(create_tuple_iterator=lambda num_epochs: iter(self.epochs[self.epoch]))

    def set_epoch(self, epoch):
        self.epoch = epoch

    def summary(self):
        return "fake"


def test_fit_counts_optimizer_steps_and_logs_skipped_updates(tmp_path):
    """2 epochs of 6 batches at k = 3: 2 optimizer steps per epoch; the first update overflows (a
    dynamic scale S with S * gmax in [2, 4) FMAX, then S / 16, under which 3 accumulated
    micro-batches stay finite), so optimizer_steps = global_step - 1, and the log line and
    metrics.jsonl say so."""
    XS = X * 64
    gmax = max(np.abs(g).max() for g in np_grads(W0, B0, XS, Y))
    scale = 2.0 ** math.ceil(math.log2(2 * FMAX / gmax))
    net, opt, step = linear_step(lr=1e-4, loss_scale_type="dynamic", loss_scale=scale, loss_scale_factor=16,
                                 loss_scale_window=1000, accumulate_steps=3)
    epochs = [[(Tensor(XS), Tensor(Y))] * 6] * 2
    state = TrainState(epochs=2, steps_per_epoch=2, global_batch=8 * 3)
    log = str(tmp_path / "train.log")
    progress = ProgressLogger(log_interval=1, progress_bar=False, loader=FakeLoader(epochs), log_file=log)
    seen = []

    class Record:
        on_train_begin = on_epoch_begin = on_epoch_end = on_train_end = lambda self, s: None

        def on_step_end(self, s, loss, lr, dt):
            seen.append((s.global_step, s.optimizer_steps, s.skipped_steps))

    fit(step, FakeLoader(epochs), state, np.full(4, 0.01, np.float32),
        callbacks=[Record(), MetricsWriter(str(tmp_path), log_interval=1), progress])
    assert seen == [(1, 0, 1), (2, 1, 1), (3, 2, 1), (4, 3, 1)]
    assert int(opt.global_step.asnumpy()[0]) == 4
    text = open(log).read()
    assert "gradient overflow, update skipped; loss scale now" in text
    assert f"loss scale {scale / 16:g} (1 skipped on overflow)" in text
    recs = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    steps = [r for r in recs if r["kind"] == "step"]
    assert [r["skipped_steps"] for r in steps] == [1, 1, 1, 1] and steps[-1]["optimizer_steps"] == 3
    assert steps[0]["loss_scale"] == scale / 16


# ----------------------------------------------------------------------------------- mixed precision
def tiny_x3d(**extra):
    from src.models import build_model
    ms.set_seed(0)
    return build_model({"type": "x3d_xs", "num_classes": 3, "num_frames": 4, "crop_size": 32, "width_factor": 0.5,
                        "depth_factor": 0.5, "head_dim": 32, "dropout_rate": 0.0, **extra})


@pytest.mark.parametrize("level", ["O2", "O3"])
def test_amp_computes_each_cell_class_in_its_intended_type(level):
    """Forward hooks (PyNative) see each cell's output: convolutions MindSpore computes and the
    classifier float16; BatchNorm float32 at O2 (float16 at O3, as MindSpore's O3); the C++-kernel
    cells (depthwise 'cpp', stem 'direct') float32 at both; the network's output float32; every
    parameter stays a float32 master weight."""
    from src.engine.train_step import apply_amp
    from src.models.layers import BatchNorm3d, ChannelwiseConv3d, PointwiseConv3d, SpatialConv3d

    ms.set_context(mode=ms.PYNATIVE_MODE)
    net = tiny_x3d()
    out_types = {}

    def hook(cell, inputs, output):
        key = f"{type(cell).__name__}:{getattr(cell, 'impl', '')}"
        out_types.setdefault(key, set()).add(str(output.dtype))

    for _, c in net.cells_and_names():
        if isinstance(c, (BatchNorm3d, ChannelwiseConv3d, PointwiseConv3d, SpatialConv3d, nn.Dense)):
            c.register_forward_hook(hook)
    wrapped = apply_amp(net, level)
    wrapped.set_train(True)
    y = wrapped(Tensor(np.random.default_rng(1).standard_normal((2, 3, 4, 32, 32)).astype(np.float32)))
    assert str(y.dtype) == "Float32"
    bn = "Float32" if level == "O2" else "Float16"
    assert out_types == {"BatchNorm3d:": {bn}, "ChannelwiseConv3d:cpp": {"Float32"}, "Dense:": {"Float16"},
                         "PointwiseConv3d:native": {"Float16"}, "SpatialConv3d:direct": {"Float32"}}
    assert {str(p.dtype) for p in net.get_parameters()} == {"Float32"}


def clips(n, rng):
    """Demo-like clips (4 x 32 x 32): a bright square moving in direction label (3 classes)."""
    dirs = [(0, 2), (0, -2), (2, 0)]
    x = np.full((n, 3, 4, 32, 32), -0.5, np.float32)
    y = rng.integers(0, 3, n).astype(np.int32)
    for i in range(n):
        r, c = rng.integers(6, 20, 2)
        for t in range(4):
            rr, cc = r + dirs[y[i]][0] * t, c + dirs[y[i]][1] * t
            x[i, :, t, rr:rr + 6, cc:cc + 6] = 1.5
    return x, y


def train_x3d(level, data, lr=0.02, **kw):
    net = tiny_x3d()
    opt = nn.Momentum(net.trainable_params(), learning_rate=lr, momentum=0.9)
    step = TrainStep(net, nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean"), opt, amp_level=level, **kw)
    step.set_train(True)
    losses = [float(step(Tensor(x), Tensor(y)).asnumpy()) for x, y in data]
    return net, step, losses


def test_x3d_at_o2_tracks_the_float32_loss_curve():
    """A reduced X3D, 10 steps on one batch of 8 demo-like clips, O2 with a dynamic loss scale
    against float32 from the same weights. Measured: steps 1-2 within 1e-4, then the float16
    rounding perturbs a trajectory that train-mode BatchNorm over 8 clips amplifies (largest step
    difference 0.081, at losses near 0.4-1.1); both fall from 1.08 to below 0.5. Bounds: 1e-3 for
    the first two steps, 0.15 for any step, both curves below 60 % of their start."""
    rng = np.random.default_rng(0)
    batch = clips(8, rng)
    data = [batch] * 10
    _, _, ref_losses = train_x3d("O0", data, lr=0.05)
    net, step, losses = train_x3d("O2", data, lr=0.05, loss_scale_type="dynamic", loss_scale=1024.0)
    assert {str(p.dtype) for p in net.get_parameters()} == {"Float32"}
    np.testing.assert_allclose(losses[:2], ref_losses[:2], atol=1e-3)
    np.testing.assert_allclose(losses, ref_losses, atol=0.15)
    assert step.skipped_updates() == 0
    assert losses[-1] < 0.6 * losses[0] and ref_losses[-1] < 0.6 * ref_losses[0]


def test_an_efficient_3dcnn_trains_a_step_at_o2():
    """e3d_shufflenetv2 (width 0.25): its channelwise convolutions run the C++ kernel in float32,
    the rest float16; one O2 step gives a finite loss and changes the float32 weights."""
    from src.models import build_model
    ms.set_seed(0)
    net = build_model({"type": "e3d_shufflenetv2", "num_classes": 3, "width_mult": 0.25, "num_frames": 8,
                       "crop_size": 32, "dropout_rate": 0.0})
    from src.engine.train_step import runs_float32_only
    assert any(runs_float32_only(c) for _, c in net.cells_and_names())  # C++ kernels under O2, in float32
    before = {p.name: p.asnumpy().copy() for p in net.trainable_params()}
    opt = nn.Momentum(net.trainable_params(), learning_rate=0.01, momentum=0.9)
    step = TrainStep(net, nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean"), opt, amp_level="O2")
    step.set_train(True)
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 32, 32)).astype(np.float32)
    loss = float(step(Tensor(x), Tensor(np.array([0, 2], np.int32))).asnumpy())
    assert math.isfinite(loss)
    after = {p.name: p for p in net.trainable_params()}
    assert all(str(p.dtype) == "Float32" for p in after.values())
    assert sum(not np.array_equal(before[n], after[n].asnumpy()) for n in before) > 0.9 * len(before)
