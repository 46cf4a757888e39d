"""Fine-tuning an Efficient-3DCNNs model through train.py: a "600-class" checkpoint (here: 5
classes, tiny width) onto a data set with another class count. ``last_layer`` trains only the
classifier: the backbone's weights and BatchNorm statistics do not move (the reference's LR
reset would train everything); ``complete`` trains the backbone too."""
import os

import numpy as np
import pytest

import mindspore as ms

from src.engine.checkpoint import read_checkpoint, save_checkpoint
from tests.helpers.training import make_tiny_dataset, run_py, tiny_config

MODEL = {"type": "e3d_mobilenetv2", "width_mult": 0.2, "num_frames": 4, "crop_size": 32, "dropout_rate": 0.0}


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    from src.models import build_model
    ms.set_device("CPU")
    d = tmp_path_factory.mktemp("e3dft")
    net = build_model(dict(MODEL, num_classes=5))
    rng = np.random.default_rng(0)  # non-trivial BN statistics: a moved statistic would show
    for name, p in net.parameters_and_names():
        if name.endswith("moving_mean"):
            p.set_data(ms.Tensor(rng.normal(0, 0.2, p.shape).astype(np.float32)))
        elif name.endswith("moving_variance"):
            p.set_data(ms.Tensor(rng.uniform(0.5, 1.5, p.shape).astype(np.float32)))
    return save_checkpoint(net, str(d / "pre.ckpt"), epoch=0, global_step=0), d


@pytest.mark.parametrize("finetune", ["last_layer", "complete"])
def test_finetune_modes(pretrained, tmp_path, finetune):
    ckpt, d = pretrained
    data = make_tiny_dataset(str(tmp_path / "data"), num_classes=3, per_class=2, seed=3)
    cfg = tiny_config(str(tmp_path / "cfg.yaml"), data, num_classes=3, epochs=1,
                      extra={"model": dict(MODEL, num_classes=3), "train.finetune": finetune, "train.eval_interval": 0})
    out = tmp_path / "out"
    r = run_py(["train.py", "--config", cfg, "--output", str(out), "--pretrained", ckpt])
    assert r.returncode == 0, r.stderr[-3000:]
    assert "re-initialised for 3 classes: classifier.1.weight, classifier.1.bias" in r.stdout
    before, _ = read_checkpoint(ckpt)
    after, _ = read_checkpoint(str(out / "last.ckpt"))
    assert after["classifier.1.weight"].shape == (3, 1280)
    backbone = [k for k in after if k.startswith("features.") and not k.startswith(("accum", "moments"))]
    stats = [k for k in backbone if k.endswith(("moving_mean", "moving_variance"))]
    assert len(stats) > 10
    moved = [k for k in backbone if not np.array_equal(before[k].asnumpy(), after[k].asnumpy())]
    if finetune == "last_layer":
        assert moved == []  # weights and BatchNorm statistics unchanged
    else:
        assert set(stats) & set(moved) and any(k.endswith("weight") for k in moved)
