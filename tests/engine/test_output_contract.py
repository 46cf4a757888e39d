"""One output contract for every registered model: each record names its eval-mode output, and
everything that shows or combines scores works on per-view probabilities, combined as the
family's reference combines them (X3D: SlowFast's mean of the head's softmax outputs;
Efficient-3DCNNs: softmax per clip, then the mean, as their test.py)."""
from __future__ import annotations

import math
import os

import numpy as np
import pytest

import mindspore as ms  # noqa: F401  (before decord, via src.data)
from mindspore import Tensor

from src.engine.inference import as_probabilities
from src.models import build_model, list_models
from src.models.base import PRETRAINED_CFGS
from tests.helpers.training import tiny_config
from tests.helpers.video import tiny_video

pytestmark = pytest.mark.usefixtures("pynative")

NUM_CLASSES = 5
# Every registered variant at a size that runs in a second: (model section, clip frames).
X3D_TINY = {"num_frames": 4, "crop_size": 32, "width_factor": 0.5, "depth_factor": 0.5, "head_dim": 32,
            "dropout_rate": 0.0}
TINY = {
    "x3d": (X3D_TINY, 4), "x3d_xs": (X3D_TINY, 4), "x3d_s": (X3D_TINY, 4), "x3d_m": (X3D_TINY, 4),
    "x3d_l": (X3D_TINY, 4),
    "e3d_mobilenet": ({"width_mult": 0.5, "num_frames": 16, "crop_size": 32}, 16),
    "e3d_mobilenetv2": ({"width_mult": 0.2, "num_frames": 16, "crop_size": 32}, 16),
    "e3d_shufflenet": ({"width_mult": 0.5, "groups": 3, "num_frames": 16, "crop_size": 32}, 16),
    "e3d_shufflenetv2": ({"width_mult": 0.25, "num_frames": 16, "crop_size": 32}, 16),
    "e3d_squeezenet": ({"num_frames": 16, "crop_size": 32}, 16),
    "e3d_resnet": ({"depth": 10, "shortcut": "A", "num_frames": 16, "crop_size": 32}, 16),
    "e3d_resnext": ({"depth": 50, "num_frames": 16, "crop_size": 32}, 16),
    # MoViNet's widths are fixed: the published networks at 32 px (A1 as the causal stream network)
    "movinet_a0": ({"num_frames": 4, "crop_size": 32}, 4),
    "movinet_a1": ({"num_frames": 4, "crop_size": 32, "causal": True}, 4),
    "movinet_a2": ({"num_frames": 4, "crop_size": 32}, 4),
}
# SlowFast's head / okankop's models / TF MoViNet (logits; its eval applies a softmax per clip)
REFERENCE_OUTPUT = {"x3d": "probabilities", "e3d": "logits", "movinet": "logits"}


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_as_probabilities_by_hand():
    # softmax([0, ln 3]) = [1/4, 3/4]; probabilities pass through unchanged
    assert as_probabilities(np.array([[0.0, math.log(3.0)]]), "logits")[0] == pytest.approx([0.25, 0.75])
    p = np.array([[0.1, 0.9], [0.5, 0.5]])
    assert np.array_equal(as_probabilities(p, "probabilities"), p)
    big = as_probabilities(np.array([[1000.0, 1000.0]]), "logits")  # no overflow
    assert big[0] == pytest.approx([0.5, 0.5])
    with pytest.raises(ValueError):
        as_probabilities(p, "scores")


def test_every_registered_model_has_a_tiny_case_and_a_record():
    assert set(list_models()) == set(TINY), "add the new model to TINY (and check its eval output)"
    for name in TINY:
        assert PRETRAINED_CFGS[name].eval_output == REFERENCE_OUTPUT[name.split("_")[0]]


def test_x3d_head_without_softmax_reports_logits():
    from src.models import resolve_pretrained_cfg
    assert resolve_pretrained_cfg("x3d_xs", {"head_activation": "none"}).eval_output == "logits"
    assert resolve_pretrained_cfg("x3d_xs", {"head_activation": "softmax"}).eval_output == "probabilities"


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("contract"))
    return tiny_video(os.path.join(d, "v.mp4"), num_frames=40, height=36, width=48, seed=3)


@pytest.mark.parametrize("name", sorted(TINY))
def test_topk_of_every_model_is_probabilities_averaged_by_the_reference_rule(name, video, tmp_path, pynative):
    from src.config import load_config
    from src.engine.checkpoint import save_checkpoint
    from src.engine.predict import VideoPredictor

    kwargs, frames = TINY[name]
    model = {"type": name, "num_classes": NUM_CLASSES, **kwargs}
    infer = {"num_clips": 2, "num_crops": 3, "short_side": 32, "crop_size": 32, "batch_size": 4, "topk": 5,
             "window_seconds": 0.0}
    cfg_path = tiny_config(str(tmp_path / "cfg.yaml"), str(tmp_path), num_classes=NUM_CLASSES,
                           extra={"model": model, "infer": infer,
                                  "data_loader.train.dataset.num_frames": frames,
                                  "data_loader.eval.dataset.num_frames": frames,
                                  "data_loader.eval.dataset.sampling_rate": 1})
    cfg = load_config(cfg_path)
    net = build_model(cfg.model)
    ckpt = save_checkpoint(net, str(tmp_path / "m.ckpt"), epoch=1, global_step=1)

    pred = VideoPredictor(cfg, ckpt=ckpt)
    result = pred.predict(video, topk=NUM_CLASSES, return_frames=True)
    printed = [row["prob"] for row in result["topk"]]
    assert len(printed) == NUM_CLASSES
    assert sum(printed) == pytest.approx(1.0, abs=1e-6)
    assert min(printed) >= 0.0

    # The reference's rule, written out: every view through the unfolded network in eval mode;
    # X3D's head returns probabilities (averaged as SlowFast does), the Efficient-3DCNNs nets
    # return logits that get a softmax per clip before the mean (okankop test.py).
    net.set_train(False)
    clips = result["frames"].reshape(2, frames, *result["frames"].shape[1:])
    views = np.stack([pred.transform(c, crop_index=k) for c in clips for k in range(3)])
    raw = net(Tensor(views)).asnumpy().astype(np.float64)
    if name.startswith("x3d"):
        assert raw.sum(axis=1) == pytest.approx(np.ones(6), abs=1e-5)  # the head's softmax
        expected = raw.mean(axis=0)
    else:
        assert not np.allclose(raw.sum(axis=1), 1.0, atol=1e-3)  # logits, not probabilities
        expected = softmax(raw).mean(axis=0)
    assert np.asarray(result["probs"]) == pytest.approx(expected, abs=2e-5)
