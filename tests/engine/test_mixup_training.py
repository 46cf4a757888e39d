"""train.py end to end with MixUp/CutMix (soft float32 labels through the graph-mode step), repeated
augmentation and random erasing on: a tiny reduced X3D, 2 epochs."""
import json
import os

import pytest

from tests.helpers.training import make_tiny_dataset, run_py, tiny_config


@pytest.mark.slow  # a whole train.py run: about 2 minutes on 2 shared cores
def test_training_with_mixup_cutmix_repeats_and_erasing_runs_and_validates(tmp_path):
    data = make_tiny_dataset(str(tmp_path / "data"), per_class=2)
    ops = [{"type": "ShortSideScale", "size": 32}, {"type": "SpatialCrops", "size": 32, "num_crops": 1},
           {"type": "Rescale"}, {"type": "Normalize", "mean": [0.45] * 3, "std": [0.225] * 3},
           {"type": "RandomErasing", "prob": 0.5}, {"type": "ToCTHW"}]
    cfg = tiny_config(str(tmp_path / "cfg.yaml"), data, epochs=2, batch_size=4, extra={
        "data_loader.train.map": {"operations": ops},
        "data_loader.train.aug_repeats": 2,
        "data_loader.train.mixup": {"enable": True, "switch_prob": 0.5},
        "loss.label_smoothing": 0.1,
        "train.precise_bn_batches": 1, "train.precise_bn_period": 1,
    })
    out = str(tmp_path / "run")
    r = run_py(["train.py", "--config", cfg, "--output", out], timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    recs = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    epochs = [x for x in recs if x["kind"] == "epoch"]
    steps = [x for x in recs if x["kind"] == "step"]
    assert len(epochs) == 2 and len(steps) == 2 * 3  # 6 videos x 2 repeats / batch 4 = 3 steps per epoch
    # soft-target cross-entropy over 3 classes: finite, around log(3) at the start
    assert all(0.3 < x["loss"] < 3.0 for x in steps)
    assert all(0.0 <= x["val_top1"] <= 1.0 and x["val_num_videos"] == 3 for x in epochs)  # hard-label validation
    assert "precise BN: statistics recomputed over 1 batches" in r.stdout
    assert "MixUp/CutMix on (mixup_alpha 0.8, cutmix_alpha 1, prob 1, switch_prob 0.5), label smoothing 0.1" in r.stdout
    assert "aug_repeats 2: every video 2 times per epoch" in r.stdout
