"""``context.deterministic: true``: two runs of one config, seed and thread count give identical
weights, however long the code between steps takes.

The cause this guards against (docs/training.md, "Reproducible runs"): MindSpore's CPU Dropout
kernel draws its mask from one generator shared by parallel tasks, and how many tasks it uses is
chosen by timing its first launches, so from the 6th launch on the mask depended on wall-clock time
(a progress bar, ``log_interval``, other processes). The tests below change the timing between
steps on purpose and need the same numbers."""
import hashlib
import json
import os
import textwrap

import numpy as np
import pytest

from tests.helpers.training import REPO, make_tiny_dataset, run_py, tiny_config

_DROPOUT_SCRIPT = textwrap.dedent("""
    import hashlib, json, sys, time
    import numpy as np
    import mindspore as ms
    from mindspore import nn, Tensor
    from src.context import init_context

    init_context({"mode": 0, "device_target": "CPU", "seed": 0, "cpu_threads": 2,
                  "deterministic": sys.argv[1] == "1"})

    class Net(nn.Cell):
        def __init__(self):
            super().__init__()
            self.drop = nn.Dropout(p=0.5)

        def construct(self, x):
            return self.drop(x)

    net = Net()
    net.set_train(True)
    x = Tensor(np.ones((4, 4096), np.float32))
    pause = float(sys.argv[2])
    masks = []
    for i in range(14):  # the kernel's split search: 5 launches at 1 task, then 2 tasks, ...
        masks.append(hashlib.md5(net(x).asnumpy().tobytes()).hexdigest())
        if i % 2:
            time.sleep(pause)
    print(json.dumps(masks))
""")


def _masks(tmp_path, deterministic: bool, pause: float):
    script = tmp_path / "dropout_masks.py"  # graph mode compiles from source: a file, not -c
    script.write_text("import sys; sys.path.insert(0, %r)\n" % REPO + _DROPOUT_SCRIPT)
    r = run_py([str(script), "1" if deterministic else "0", str(pause)], timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_dropout_masks_do_not_depend_on_the_time_between_steps(tmp_path):
    quick, slow = _masks(tmp_path, True, 0.0), _masks(tmp_path, True, 0.25)
    assert len(set(quick)) == len(quick)  # a new mask every step
    assert quick == slow


def _weights(path):
    import mindspore as ms
    return {k: v.asnumpy() for k, v in ms.load_checkpoint(path).items()
            if not k.startswith(("learning_rate", "global_step")) and hasattr(v, "asnumpy")}


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return make_tiny_dataset(str(tmp_path_factory.mktemp("det_data")), num_classes=3, per_class=4, num_val=1)


_TRAIN_SCRIPT = textwrap.dedent("""
    import sys, time
    from src.engine import trainer

    pause = float(sys.argv[1])
    log_step = trainer.ProgressLogger.on_step_end

    def slow_logging(self, state, *args, **kwargs):  # a slow terminal / progress bar / busy machine
        log_step(self, state, *args, **kwargs)
        if state.global_step % 2:
            time.sleep(pause)

    trainer.ProgressLogger.on_step_end = slow_logging
    import train
    sys.exit(train.main(sys.argv[2:]))
""")


def test_two_training_runs_give_identical_weights(tiny_data, tmp_path):
    """Same config, seed and threads, dropout on; 12 steps (into the Dropout kernel's timing
    search); one run's logging takes 0.25 s every other step, as a slow terminal or a busy machine
    would. Without the switch the two runs' dropout masks, and so their weights, differed."""
    cfg = tiny_config(str(tmp_path / "c.yaml"), tiny_data, epochs=2, extra={
        "context.deterministic": True, "context.cpu_threads": 2, "model.dropout_rate": 0.5,
        "model.head_dim": 2048, "train.eval_interval": 0, "train.ckpt_interval": 2})
    script = tmp_path / "train_with_pauses.py"
    script.write_text("import sys; sys.path.insert(0, %r)\n" % REPO + _TRAIN_SCRIPT)
    runs = []
    for name, pause in (("a", 0.0), ("b", 0.25)):
        out = tmp_path / name
        r = run_py([str(script), str(pause), "--config", cfg, "--output", str(out)], timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
        runs.append(_weights(str(out / "last.ckpt")))
    a, b = runs
    assert a.keys() == b.keys() and len(a) > 10
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
