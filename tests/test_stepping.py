"""One frame per step for streamable models (src/engine/stepping.py; infer.py VIDEO --window and
--stream with a MoViNet stream network): which source frames feed the model, per-frame
probabilities equal to the softmax of the causal network's whole-clip logits on frames 0..k
(computed here from the decoded frames, by hand), the state reset at the horizon equal to a fresh
run on the frames after it; slow: the CLI on a file stream and an exported stream MINDIR."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

import mindspore as ms

from src.engine.stepping import FrameSampler, sampled_indices
from tests.helpers.training import REPO, run_py
from tests.helpers.video import tiny_video

NAMES = ["left", "right", "up"]
TINY = ["model.num_classes=3", "model.crop_size=32", "infer.short_side=32", "infer.crop_size=32",
        "infer.topk=3"]
CONFIG = os.path.join(REPO, "src", "config", "movinet_a0_stream.yaml")


def test_sampler_takes_the_first_frame_at_or_after_each_model_frame_time():
    # MoViNet: 5 fps; source frames per model frame = sampling_rate 5 x fps / target_fps 25
    assert sampled_indices(23, 5.0) == [0, 5, 10, 15, 20]
    assert sampled_indices(19, 6.0) == [0, 6, 12, 18]            # 30 fps source
    assert sampled_indices(26, 4.8) == [0, 5, 10, 15, 20, 24]    # 24 fps: ceil(k * 4.8)
    sampler = FrameSampler(5.0)
    # frames 1..6 dropped by a live source: 7 is taken, the next model frame is at 10
    assert [i for i in (0, 7, 8, 9, 10, 14, 15) if sampler.take(i)] == [0, 7, 10, 15]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny MoViNet-A0 stream (3 classes, 32 px) with a scaled classifier, its checkpoint, a video."""
    from src.config import load_config
    from src.engine.checkpoint import save_checkpoint
    from src.models import build_model

    d = str(tmp_path_factory.mktemp("stepping"))
    cfg = load_config(CONFIG, TINY)
    ms.set_device("CPU")
    net = build_model(cfg.model)
    head = next(p for p in net.classifier[3].get_parameters() if p.name.endswith("weight"))  # larger logits
    head.set_data(ms.Tensor(head.asnumpy() * 300.0))
    ckpt = save_checkpoint(net, os.path.join(d, "m.ckpt"), epoch=1, global_step=1, class_names=NAMES)
    video = tiny_video(os.path.join(d, "v.mp4"), num_frames=20, height=32, width=32)  # 25 fps
    return {"dir": d, "cfg": cfg, "ckpt": ckpt, "video": video}


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def by_label(entry) -> np.ndarray:
    return np.array([p for _, p in sorted((t["label"], t["prob"]) for t in entry["topk"])])


@pytest.mark.usefixtures("pynative")
def test_per_frame_probabilities_equal_whole_clip_and_reset_at_horizon(setup):
    import av
    from src.engine.predict import VideoPredictor

    predictor = VideoPredictor(setup["cfg"], ckpt=setup["ckpt"])
    assert predictor.streamable and predictor.stream_horizon == 50  # null: the record's 50 frames
    r = predictor.predict_windows(setup["video"], window_seconds=1.0, topk=3, horizon=3)
    tl = r["timeline"]
    # 20 frames at 25 fps, the model at 5 fps: frames 0, 5, 10, 15, one step each
    assert r["per_frame"] and r["model_fps"] == 5.0 and r["stream_horizon"] == 3
    assert [e["frames"] for e in tl] == [[0, 0], [0, 5], [0, 10], [15, 15]]  # reset before the 4th
    assert [(e["start"], e["end"]) for e in tl] == [(0.0, 0.04), (0.0, 0.24), (0.0, 0.44), (0.6, 0.64)]
    assert r["stats"]["windows"] == 4 and r["stats"]["frames"] == 20

    # the reference: every decoded frame as the record wants it (RGB / 255, 32 x 32 needs no
    # resize or crop), the whole-clip forward of the causal network, softmax by hand
    with av.open(setup["video"]) as c:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    clip = (frames.astype(np.float32) / 255.0).transpose(3, 0, 1, 2)[None]  # (1, 3, 20, 32, 32)
    net = predictor.net

    def whole(indices) -> np.ndarray:
        return softmax(net(ms.Tensor(np.ascontiguousarray(clip[:, :, indices]))).asnumpy().astype(np.float64))[0]

    for k, indices in ((0, [0]), (2, [0, 5, 10])):
        np.testing.assert_allclose(by_label(tl[k]), whole(indices), atol=2e-5, err_msg=f"frame {k}")
    np.testing.assert_allclose(by_label(tl[3]), whole([15]), atol=2e-5)  # a fresh run after the reset
    assert np.abs(by_label(tl[2]) - by_label(tl[0])).max() > 1e-4  # a running average, not frame 0 again
    assert np.abs(by_label(tl[3]) - by_label(tl[2])).max() > 1e-4


@pytest.mark.slow
def test_cli_stream_and_exported_stream_mindir(setup, tmp_path):
    """infer.py --stream FILE (GRAPH mode) prints one line per model frame; the stream step
    exported to MINDIR (state as inputs/outputs, verified by the exporter) gives the same
    per-frame probabilities through infer.py --mindir VIDEO --window."""
    common = ["--config", CONFIG, *TINY, "infer.stream_horizon=0", "--topk", "3"]
    stream_json = str(tmp_path / "stream.json")
    s = run_py(["infer.py", "--stream", setup["video"], "--no-realtime", "--ckpt", setup["ckpt"], *common,
                "--json", stream_json])
    assert s.returncode == 0, s.stderr
    assert "one frame per step at 5 fps, state never reset" in s.stdout
    doc = json.load(open(stream_json))
    assert doc["per_frame"] and [e["frames"] for e in doc["timeline"]] == [[0, 0], [0, 5], [0, 10], [0, 15]]
    assert len([ln for ln in s.stdout.splitlines() if "(latency" in ln]) == 4

    out = str(tmp_path / "step.mindir")
    e = run_py(["-m", "src.tools.export", "--config", CONFIG, *TINY, "--ckpt", setup["ckpt"], "--stream",
                "--out", out])
    assert e.returncode == 0, e.stderr
    assert "stream step" in e.stdout and "max_abs_diff" in e.stdout
    file_json = str(tmp_path / "file.json")
    f = run_py(["infer.py", setup["video"], "--mindir", out, "--window", "1", "infer.stream_horizon=0",
                "infer.num_clips=1", "infer.num_crops=1", "--json", file_json])
    assert f.returncode == 0, f.stderr
    video = json.load(open(file_json))["videos"][0]
    assert video["per_frame"] and {t["name"] for t in video["topk"]} == set(NAMES)  # the file's class names
    assert len(video["timeline"]) == len(doc["timeline"])
    for a, b in zip(video["timeline"], doc["timeline"]):
        assert a["frames"] == b["frames"]
        np.testing.assert_allclose(by_label(a), by_label(b), atol=1e-5)
