"""Sink mode (``train.sink_mode``/``train.sink_size``): MindSpore 2.10 cannot sink on CPU (checked
against MindSpore itself), so on CPU the plan is the plain loop with one notice; the sink size is
a whole epoch or a divisor of it; GPU/Ascend in graph mode sink."""
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
