"""Sink mode (``train.sink_mode``/``train.sink_size``): MindSpore 2.10 cannot sink on CPU (checked
against MindSpore itself), so on CPU the plan is the plain loop with one notice; the sink size is
a whole epoch or a divisor of it; GPU/Ascend in graph mode sink."""
import itertools
import os

import numpy as np
import pytest
import mindspore as ms
from mindspore import dataset as msds, nn

from src.config import ConfigError, load_config
from src.engine.sink import SunkStep, plan_sink, resolve_sink_size, sink_supported
from src.errors import UserError
from tests.helpers.training import REPO

ms.set_device("CPU")


def test_mindspore_itself_refuses_to_sink_on_cpu():
    """The reason the zoo does not sink on CPU. If a MindSpore release lifts it, this fails:
    then sink_supported('CPU') should become true and an equality test against the plain loop
    replace this one."""
    data = msds.NumpySlicesDataset({"x": np.ones((4, 3), np.float32)}, shuffle=False).batch(2)
    with pytest.raises(ValueError, match="Data sinking supports ascend or gpu device target"):
        ms.data_sink(lambda x: x, data, sink_size=1, jit_config=ms.JitConfig())


def test_cpu_plan_is_the_plain_loop_with_one_notice():
    plan = plan_sink(True, -1, "CPU", 6)
    assert (plan.enabled, plan.size) == (False, 0)
    assert plan.notice == ("train.sink_mode=true: not sinking on CPU: MindSpore's data sink runs on GPU and Ascend "
                           "only (mindspore.data_sink refuses CPU); training with the plain per-step loop (same "
                           "results)")
    assert "\n" not in plan.notice
    assert plan_sink(False, 4, "CPU", 6) == plan_sink(False, 4, "GPU", 6)  # off: nothing to say anywhere
    assert plan_sink(False, 4, "GPU", 6).notice is None and not plan_sink(False, 4, "GPU", 6).enabled
    # PyNative cannot sink either (as MindSpore's Model.train)
    assert not plan_sink(True, -1, "GPU", 6, mode=1).enabled and "graph mode" in plan_sink(True, -1, "GPU", 6,
                                                                                             mode=1).notice
    ok, why = sink_supported("Ascend")
    assert ok and why == ""


def test_sink_sizes_on_a_sinking_device():
    # 12 steps per epoch: -1/0 = the epoch; divisors as given; anything else is one line
    assert [plan_sink(True, s, "GPU", 12).size for s in (-1, 0, 1, 3, 4, 12)] == [12, 12, 1, 3, 4, 12]
    assert plan_sink(True, 4, "Ascend", 12).enabled
    with pytest.raises(UserError) as e:
        resolve_sink_size(5, 12)
    assert str(e.value) == ("train.sink_size: expected -1 (a whole epoch) or a divisor of the 12 steps per epoch "
                            "(1, 2, 3, 4, 6, 12), got 5")
    with pytest.raises(UserError):
        resolve_sink_size(24, 12)  # more than an epoch would run across validation and checkpoints


def test_the_sunk_step_refuses_cpu_in_one_line():
    net = nn.Dense(3, 2)
    step = nn.TrainOneStepCell(nn.WithLossCell(net, nn.MSELoss()), nn.SGD(net.trainable_params(), 0.1))
    data = msds.NumpySlicesDataset({"x": np.ones((4, 3), np.float32), "y": np.zeros((4, 2), np.float32)},
                                   shuffle=False).batch(2)
    with pytest.raises(UserError) as e:
        SunkStep(step, data, 2)
    assert str(e.value) == ("train.sink_mode: MindSpore's data sink runs on GPU and Ascend only "
                            "(mindspore.data_sink refuses CPU)")


def test_sink_keys_are_checked_config_keys():
    demo = f"{REPO}/src/config/demo.yaml"
    cfg = load_config(demo, ["train.sink_mode=true", "train.sink_size=4"], resolve=False)
    assert cfg.train.sink_mode is True and cfg.train.sink_size == 4
    defaults = load_config(demo, resolve=False)
    assert defaults.train.sink_mode is False and defaults.train.sink_size == -1
    with pytest.raises(ConfigError) as e:
        load_config(demo, ["train.sink_size=-2"], resolve=False)
    assert str(e.value) == "train.sink_size: expected int >= -1, got -2 (from override 'train.sink_size=-2')"


def test_train_py_with_sink_mode_on_cpu_prints_the_notice_once_and_trains(tmp_path):
    """The notice reaches the user from train.py itself (not only from plan_sink), once, and the
    run then trains with the plain loop to the end."""
    from tests.helpers.training import make_tiny_dataset, run_py, tiny_config

    data = make_tiny_dataset(str(tmp_path / "data"), num_classes=2, per_class=2)
    cfg = tiny_config(str(tmp_path / "cfg.yaml"), data, num_classes=2, epochs=1)
    r = run_py(["train.py", "--config", cfg, "--output", str(tmp_path / "out"), "train.sink_mode=true",
                "train.eval_interval=0"])
    assert r.returncode == 0, r.stdout[-1500:] + r.stderr[-1500:]
    assert r.stdout.count("train.sink_mode=true: not sinking on CPU") == 1
    assert os.path.exists(tmp_path / "out" / "last.ckpt")


# ------------------------------------------------------------------ fit's sunk loop, on CPU
class _Net(nn.Cell):
    """A BN-free model with the contract fit needs (train_mode)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Dense(3, 2, weight_init="ones", bias_init="zeros")

    def construct(self, x):
        return self.fc(x)

    def train_mode(self, finetune):
        self.set_train(True)


class _Loader:
    def __init__(self, n_batches):
        rng = np.random.default_rng(0)
        self.data = {"x": rng.standard_normal((2 * n_batches, 3)).astype(np.float32),
                     "y": rng.integers(0, 2, 2 * n_batches).astype(np.int32)}
        self.dataset = msds.NumpySlicesDataset(self.data, shuffle=False).batch(2)

    def set_epoch(self, epoch):
        pass

    def summary(self):
        return "0 bad"


class _CpuSunk:
    """What SunkStep does on a device, on the host: ``steps x k`` micro-batches per call from one
    endless queue over the data set, the last micro-batch's loss back."""

    def __init__(self, step_cell, dataset, steps, k):
        self.steps, self.k, self.step_cell = steps, k, step_cell
        self.it = itertools.cycle(list(dataset.create_tuple_iterator(num_epochs=1)))
        self.calls = 0

    def __call__(self):
        self.calls += 1
        for _ in range(self.steps * self.k):
            x, y = next(self.it)
            loss = self.step_cell(x, y)
        return float(loss.asnumpy())


def _fit(tmp_path, sunk_steps, k, log_interval):
    from src.engine.losses import cross_entropy
    from src.engine.train_step import TrainStep
    from src.engine.trainer import MetricsWriter, ProgressLogger, TrainState, fit, read_metrics

    ms.set_context(mode=ms.PYNATIVE_MODE)
    steps_per_epoch, epochs = 4, 2
    loader = _Loader(steps_per_epoch * k)
    net = _Net()
    lr = np.linspace(0.1, 0.02, steps_per_epoch * epochs).astype(np.float32)
    step_cell = TrainStep(net, cross_entropy(), nn.Momentum(net.trainable_params(), ms.Tensor(lr), 0.9),
                          accumulate_steps=k)
    seen = []

    class Spy(ProgressLogger):
        def on_step_end(self, state, loss, lr_, step_time):
            seen.append((state.global_step, state.step_in_epoch, state.steps_in_call, lr_))
            super().on_step_end(state, loss, lr_, step_time)

    out = tmp_path / f"run{sunk_steps}"
    out.mkdir()
    spy = Spy(log_interval=log_interval, progress_bar=False, loader=loader, log_file=str(out / "train.log"))
    sunk = _CpuSunk(step_cell, loader.dataset, sunk_steps, k) if sunk_steps else None
    state = fit(step_cell, loader, TrainState(epochs=epochs, steps_per_epoch=steps_per_epoch), lr,
                callbacks=[spy, MetricsWriter(str(out), log_interval=log_interval)], sunk=sunk)
    steps = [r["global_step"] for r in read_metrics(str(out / "metrics.jsonl")) if r["kind"] == "step"]
    log = (out / "train.log").read_text().splitlines()
    return net.fc.weight.asnumpy(), state, seen, steps, log, lr


@pytest.mark.parametrize("k", [1, 2])
def test_fit_with_a_sunk_step_trains_and_counts_like_the_plain_loop(tmp_path, k):
    w_plain, s_plain, seen_plain, rec_plain, _, lr = _fit(tmp_path, 0, k, log_interval=3)
    w_sunk, s_sunk, seen_sunk, rec_sunk, log, _ = _fit(tmp_path, 2, k, log_interval=3)
    np.testing.assert_array_equal(w_sunk, w_plain)  # the same batches, in order, through the same step
    assert s_sunk.global_step == s_plain.global_step == 8 and s_sunk.epoch == 2
    # one callback per call (2 steps each), the LR of the call's last step
    assert seen_plain == [(g, (g - 1) % 4 + 1, 1, pytest.approx(float(lr[g - 1]))) for g in range(1, 9)]
    assert seen_sunk == [(g, (g - 1) % 4 + 1, 2, pytest.approx(float(lr[g - 1]))) for g in (2, 4, 6, 8)]
    # metrics: a record when the steps reach a multiple of log_interval (3) in the epoch
    assert rec_plain == [3, 7] and rec_sunk == [4, 8]
    # the log: at the crossing and at the epoch's end (step 4 is both here)
    lines = [l for l in log if " step " in l and "loss" in l]
    assert [l.split(" (global")[0] for l in lines] == ["epoch 1/2 step 4/4", "epoch 2/2 step 4/4"]
