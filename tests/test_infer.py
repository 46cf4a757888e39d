"""infer.py and src.engine.predict: clip and window planning, class names, CLI output/JSON/errors,
MINDIR parity (streams and long videos: tests/test_stream.py)."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

import mindspore as ms  # noqa: F401  (before decord, via src.data)

from src.engine.predict import (KINETICS400_FILE, VideoPredictor, kinetics400_classes, plan_clips,
                                plan_windows, resolve_class_names)
from tests.helpers.training import run_py, tiny_config
from tests.helpers.video import encode_video, frame_pattern, tiny_video

INFER = {"num_clips": 2, "num_crops": 3, "short_side": 32, "crop_size": 32, "batch_size": 4, "topk": 3,
         "window_seconds": 0.0}
NAMES = ["left", "right", "up"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny 3-class config, a checkpoint with its own label map, and test videos."""
    from src.config import load_config
    from src.context import init_context
    from src.engine.checkpoint import save_checkpoint
    from src.models import build_model

    d = str(tmp_path_factory.mktemp("infer"))
    cfg_path = tiny_config(os.path.join(d, "cfg.yaml"), d, num_classes=3, extra={"infer": INFER})
    cfg = load_config(cfg_path)
    init_context(cfg.context, "CPU")
    net = build_model(cfg.model)
    ckpt = save_checkpoint(net, os.path.join(d, "m.ckpt"), epoch=1, global_step=1, class_names=NAMES)
    videos = {
        "mp4": tiny_video(os.path.join(d, "a.mp4"), num_frames=60, height=32, width=48),
        # portrait, smaller than the 32-pixel crop, shorter than one clip span (7 frames), webm
        "webm": encode_video(os.path.join(d, "p.webm"), frame_pattern(5, 30, 20, seed=1)),
        "mkv": tiny_video(os.path.join(d, "c.mkv"), num_frames=20, height=24, width=32, seed=2),
    }
    bad = os.path.join(d, "bad.mp4")
    with open(bad, "wb") as f:
        f.write(b"\x00\x00\x00\x18ftypmp42 truncated garbage" * 20)
    return {"dir": d, "cfg_path": cfg_path, "cfg": cfg, "ckpt": ckpt, "net": net, "videos": videos, "bad": bad}


# ----------------------------------------------------------------------------- planning
def slowfast_clip(start: float, size: float, t: int, video_frames: int) -> list:
    """SlowFast's test clip, written out here: floor(linspace(start, start + size - 1, T)), clamped."""
    idx = np.floor(np.linspace(start, start + size - 1, t) + 1e-9)
    return np.clip(idx, 0, video_frames - 1).astype(int).tolist()


def test_clips_follow_frames_times_rate_over_whole_video():
    clips = plan_clips(300, num_frames=4, sampling_rate=5, num_clips=3)
    assert clips.shape == (3, 4)
    # clip_size = rate * T = 20 source frames; starts delta * i / N with delta = 300 - 20
    assert clips.tolist() == [slowfast_clip(280 * i / 3, 20, 4, 300) for i in range(3)]
    assert clips[0, -1] - clips[0, 0] == 19  # spacing from the sampling rate, not consecutive frames
    starts = clips[:, 0]
    assert (np.diff(starts) > 0).all()
    assert starts[0] < 100 and clips[-1, -1] > 200  # spread over the whole video, not its head
    assert clips.min() >= 0 and clips.max() <= 299
    # one clip: SlowFast's default starts at delta * 0 / 1 = 0; its offset variant centres it at
    # floor(delta / 2) = 140 (get_start_end_idx with use_offset)
    assert plan_clips(300, 4, 5, 1).tolist() == [slowfast_clip(0, 20, 4, 300)]
    assert plan_clips(300, 4, 5, 1, offset_sampling=True).tolist() == [slowfast_clip(140, 20, 4, 300)]


def test_clips_of_short_video_are_clamped():
    clips = plan_clips(5, num_frames=4, sampling_rate=2, num_clips=3)
    assert clips.tolist() == [[0, 2, 4, 4]] * 3
    assert plan_clips(1, 4, 2, 2).tolist() == [[0, 0, 0, 0]] * 2
    with pytest.raises(ValueError):
        plan_clips(0, 4, 2, 1)


def test_timeline_windows_cover_video_with_centred_clips():
    windows = plan_windows(60, fps=25.0, window_seconds=1.0, num_frames=4, sampling_rate=2)
    assert [(a, b) for a, b, _ in windows] == [(0.0, 1.0), (1.0, 2.0), (2.0, 2.4)]
    # frames [0, 25), [25, 50), [50, 60); an 8-frame clip centred in each (start + (len - 8) / 2)
    assert [idx.tolist() for _, _, idx in windows] == [slowfast_clip(8.5, 8, 4, 60), slowfast_clip(33.5, 8, 4, 60),
                                                       slowfast_clip(51.0, 8, 4, 60)]
    for a, b, idx in windows:
        assert a * 25 <= (idx[0] + idx[-1]) / 2 <= b * 25
    assert plan_windows(60, 25.0, 0.0, 4, 2) == []
    assert plan_windows(60, 0.0, 1.0, 4, 2) == []  # unknown frame rate: no timeline


def test_sliding_windows_overlap_by_window_minus_stride():
    windows = plan_windows(100, fps=25.0, window_seconds=2.0, num_frames=4, sampling_rate=2,
                           stride_seconds=0.5, num_clips=3)
    assert [(a, b) for a, b, _ in windows] == [(0.0, 2.0), (0.5, 2.5), (1.0, 3.0), (1.5, 3.5), (2.0, 4.0)]
    for k, (a, b, idx) in enumerate(windows):
        first = int(np.floor(k * 0.5 * 25 + 0.5))  # frame at k * 0.5 s, rounded half up
        assert idx.tolist() == [slowfast_clip(first + 42 * i / 3, 8, 4, 100) for i in range(3)]  # 50 - 8 = 42


# ----------------------------------------------------------------------------- class names
def test_kinetics400_names_file():
    names = kinetics400_classes()
    assert len(names) == 400 and len(set(names)) == 400
    assert names == sorted(names, key=str.lower)
    assert names[:3] == ["abseiling", "air drumming", "answering questions"] and names[-1] == "zumba"
    assert os.path.isfile(KINETICS400_FILE)


def test_label_name_priority(tmp_path):
    label_file = tmp_path / "names.json"
    label_file.write_text(json.dumps({"classes": ["a", "b", "c"]}))
    assert resolve_class_names(3, str(label_file), NAMES) == (["a", "b", "c"], str(label_file))
    assert resolve_class_names(3, None, NAMES) == (NAMES, "checkpoint")
    assert resolve_class_names(3, None, ["x", "y"])[0] == ["class 0", "class 1", "class 2"]  # wrong length: ignored
    k400, source = resolve_class_names(400, None, None)
    assert source == "kinetics400" and k400[0] == "abseiling"
    assert resolve_class_names(400, None, [f"n{i}" for i in range(400)])[0][0] == "n0"
    txt = tmp_path / "names.txt"
    txt.write_text("p\nq\n")
    with pytest.raises(ValueError, match="has 2 names, the model has 3"):
        resolve_class_names(3, str(txt), NAMES)


# ----------------------------------------------------------------------------- CLI
def test_cli_prints_topk_writes_json_and_reports_bad_files(setup):
    v = setup["videos"]
    out_json = os.path.join(setup["dir"], "out.json")
    gif = os.path.join(setup["dir"], "vis.gif")
    missing = os.path.join(setup["dir"], "missing.avi")
    proc = run_py(["infer.py", v["mp4"], setup["bad"], v["webm"], v["mkv"], missing, "--config", setup["cfg_path"],
                   "--ckpt", setup["ckpt"], "--topk", "2", "--window", "1", "--json", out_json,
                   "--save-vis", gif, "infer.num_clips=3"])
    assert proc.returncode == 2, proc.stderr
    err_lines = [line for line in proc.stderr.splitlines() if line.startswith("error: ") or "Traceback" in line
                 or "bad.mp4" in line or "missing.avi" in line]
    assert "Traceback" not in proc.stderr
    assert len(err_lines) == 2, proc.stderr
    assert setup["bad"] in err_lines[0] and missing in err_lines[1] and "file not found" in err_lines[1]
    out = proc.stdout
    assert out.count("  1. ") == 3 and out.count("  2. ") == 3 and "  3. " not in out  # k=2 for 3 good videos
    assert "3 clips x 3 crops of 4 frames (sampling rate 2)" in out and "timeline (1 s windows)" in out
    assert "segments:" in out

    doc = json.load(open(out_json))
    entries = {os.path.basename(e["path"]): e for e in doc["videos"]}
    assert set(entries) == {"a.mp4", "bad.mp4", "p.webm", "c.mkv", "missing.avi"}
    assert "error" in entries["bad.mp4"] and "error" in entries["missing.avi"]
    a = entries["a.mp4"]
    assert a["num_frames"] == 60 and a["fps"] == pytest.approx(25.0)
    assert a["clips"] == [slowfast_clip(52 * i / 3, 8, 4, 60) for i in range(3)]  # clip_size 8, delta 52
    assert [t["name"] for t in a["topk"]] == [NAMES[t["label"]] for t in a["topk"]] and len(a["topk"]) == 2
    assert a["topk"][0]["prob"] >= a["topk"][1]["prob"] > 0
    assert [(w["start"], w["end"]) for w in a["timeline"]] == [(0.0, 1.0), (1.0, 2.0), (2.0, 2.4)]
    for w in a["timeline"]:  # each window: 3 clips (infer.num_clips) averaged, top-k and top-1
        assert [t["label"] for t in w["topk"]][:1] == [w["label"]] and len(w["topk"]) == 2
    assert sum(g["windows"] for g in a["segments"]) == 3 and a["segments"][0]["start"] == 0.0
    assert a["segments"][-1]["end"] == 2.4
    assert entries["p.webm"]["clips"][0] == [0, 2, 4, 4]  # shorter than a clip: clamped
    assert doc["class_names"] == "checkpoint"

    from PIL import Image
    folder = os.path.join(setup["dir"], "vis")  # several videos: one preview each in vis/
    assert sorted(os.listdir(folder)) == ["a.gif", "c.gif", "p.gif"]
    for name in ("a", "c", "p"):
        with Image.open(os.path.join(folder, name + ".gif")) as im:
            # the video's sampled frames (3 clips of 4); GIF merges repeats (p.webm's clamped clips)
            assert im.n_frames == 3 * 4 if name != "p" else 1 <= im.n_frames < 12
        assert entries[{"a": "a.mp4", "c": "c.mkv", "p": "p.webm"}[name]]["vis"] == os.path.join(folder, name + ".gif")


def test_cli_bad_checkpoint_is_one_line(setup, tmp_path):
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(b"garbage")
    proc = run_py(["infer.py", setup["videos"]["mp4"], "--config", setup["cfg_path"], "--ckpt", str(broken)])
    assert proc.returncode == 2  # a user error: the same exit code as every entry point
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and str(broken) in lines[0]


# ----------------------------------------------------------------------------- MINDIR parity
def test_mindir_matches_checkpoint(setup, tmp_path):
    from mindspore import Tensor
    from src.models import build_model, set_default_impl

    cfg = setup["cfg"]
    from_ckpt = VideoPredictor(cfg, ckpt=setup["ckpt"])
    assert from_ckpt.class_names == NAMES
    # a MINDIR with a dynamic batch cannot hold the C++ kernels: export a portable copy of the weights
    set_default_impl(channelwise="fold", spatial="native", pointwise="native")
    try:
        portable = build_model(cfg.model)
    finally:
        set_default_impl(channelwise="auto", spatial="auto", pointwise="auto")
    ms.load_param_into_net(portable, {p.name: p for p in from_ckpt.net.get_parameters()}, strict_load=True)
    portable.set_train(False)
    shape = [None, 3, 4, INFER["crop_size"], INFER["crop_size"]]
    ms.export(portable, Tensor(shape=shape, dtype=ms.float32), file_name=str(tmp_path / "m"), file_format="MINDIR")
    from_mindir = VideoPredictor(cfg, mindir=str(tmp_path / "m.mindir"))
    assert from_mindir.class_names == ["class 0", "class 1", "class 2"]  # no label map in a MINDIR

    a = from_ckpt.predict(setup["videos"]["mp4"], topk=3)
    b = from_mindir.predict(setup["videos"]["mp4"], topk=3)
    assert a["clips"] == b["clips"]
    np.testing.assert_allclose(a["probs"], b["probs"], atol=1e-5)
    assert sum(a["probs"]) == pytest.approx(1.0, abs=1e-4)  # probabilities, no second softmax
