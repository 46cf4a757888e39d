"""eval.py end to end: multi-view evaluation of a checkpoint on a tiny encoded data set."""
import json
import os

import numpy as np
import pytest
import mindspore as ms

from src.config import load_config
from src.models import build_model
from tests.helpers.training import make_tiny_dataset, run_py, tiny_config


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaldata")
    data = make_tiny_dataset(str(root / "data"), num_classes=3, per_class=1, num_val=2)
    cfg = tiny_config(str(root / "cfg.yaml"), data, extra={
        "infer": {"num_clips": 2, "num_crops": 3, "short_side": 32, "crop_size": 32, "batch_size": 4}})
    ms.set_device("CPU")
    net = build_model(load_config(cfg).model)
    ckpt = str(root / "model.ckpt")
    ms.save_checkpoint(net, ckpt)
    return root, cfg, ckpt


def test_eval_writes_metrics_json_and_confusion_png(setup):
    root, cfg, ckpt = setup
    out = root / "eval"
    r = run_py(["eval.py", "--config", cfg, "--ckpt", ckpt, "--output", str(out), "--no-progress"])
    assert r.returncode == 0, r.stderr[-3000:]
    assert "6 videos x 6 views (2 clips x 3 crops" in r.stdout and "top-1:" in r.stdout
    res = json.load(open(out / "eval_results.json"))
    assert res["num_videos"] == res["num_videos_scored"] == 6
    assert res["views"] == {"num_clips": 2, "num_crops": 3, "short_side": 32, "crop_size": 32}
    assert np.array(res["confusion_matrix"]).sum() == 6 and len(res["per_class_accuracy"]) == 3
    top1 = np.mean([v["top5"][0]["label"] == v["label"] for v in res["videos"]])
    assert res["top1"] == pytest.approx(top1)
    for v in res["videos"]:
        probs = [t["prob"] for t in v["top5"]]
        assert len(probs) == 3 and probs == sorted(probs, reverse=True)
        assert sum(probs) == pytest.approx(1.0, abs=1e-4)   # averaged softmax, not re-softmaxed
    assert (out / "confusion_matrix.png").stat().st_size > 1000


def test_eval_errors_are_one_line(setup):
    root, cfg, _ = setup
    r = run_py(["eval.py", "--config", cfg, "--ckpt", str(root / "missing.ckpt")])
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [f"error: {root / 'missing.ckpt'}: checkpoint not found"]
