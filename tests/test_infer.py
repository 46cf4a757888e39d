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
    set_default_impl(channelwise="banded", spatial="native", pointwise="native")
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


def _export_portable(net, cfg, path, batch):
    """``net``'s weights in a MINDIR of portable layers, for clips (batch, 3, 4, 32, 32)."""
    from mindspore import Tensor
    from src.models import build_model, set_default_impl

    set_default_impl(channelwise="banded", spatial="native", pointwise="native")
    try:
        portable = build_model(cfg.model)
    finally:
        set_default_impl(channelwise="auto", spatial="auto", pointwise="auto")
    ms.load_param_into_net(portable, {p.name: p for p in net.get_parameters()}, strict_load=True)
    portable.set_train(False)
    ms.export(portable, Tensor(shape=[batch, 3, 4, 32, 32], dtype=ms.float32), file_name=path[: -len(".mindir")],
              file_format="MINDIR")
    return path


def test_mindir_of_another_clip_geometry_is_one_line_before_running(setup, tmp_path, capsys):
    import infer
    from src.cli import run_cli

    mindir = _export_portable(setup["net"], setup["cfg"], str(tmp_path / "m.mindir"), None)
    video = setup["videos"]["mp4"]
    # the config's test crop is 48, the file was exported for 32: refused before anything runs
    assert run_cli(infer.main, [video, "--config", setup["cfg_path"], "--mindir", mindir,
                                "infer.short_side=48", "infer.crop_size=48"]) == 2
    out, err = capsys.readouterr()
    assert err == (f"error: {mindir}: exported for input (3, 4, 32, 32) (C, T, H, W) but the config gives "
                   f"(3, 4, 48, 48); export again or pass the config it was exported with\n")
    assert out == ""
    # the config it was exported with: the dynamic batch takes the 4-view batches of infer.batch_size
    assert run_cli(infer.main, [video, "--config", setup["cfg_path"], "--mindir", mindir]) == 0
    out, err = capsys.readouterr()
    assert "2 clips x 3 crops of 4 frames" in out and "error" not in err


def test_mindir_with_a_fixed_batch_runs_at_that_batch(setup, tmp_path):
    cfg = setup["cfg"]
    one = VideoPredictor(cfg, mindir=_export_portable(setup["net"], cfg, str(tmp_path / "b1.mindir"), 1))
    assert one.model.batch_size == one.batch_size == 1  # infer.batch_size is 4
    ref = VideoPredictor(cfg, ckpt=setup["ckpt"])
    a = ref.predict(setup["videos"]["mp4"], topk=3)
    b = one.predict(setup["videos"]["mp4"], topk=3)
    np.testing.assert_allclose(a["probs"], b["probs"], atol=1e-5)


# ----------------------------------------------------------------------------- one inference path
def test_geometry_comes_from_the_model_record_when_the_config_lacks_it(setup, tmp_path):
    """A config whose eval data set says nothing about the clip (no num_frames, no sampling_rate,
    not resolved against the model) and whose Normalize leaves mean/std null: the predictor takes
    them from the model's record (x3d_xs: 4 frames at sampling rate 12, mean 0.45, std 0.225),
    the config's own values (its test views) over them."""
    import yaml
    from src.config import load_config

    doc = yaml.safe_load(open(setup["cfg_path"]))
    ds = doc["data_loader"]["eval"]["dataset"]
    del ds["num_frames"], ds["sampling_rate"]
    for op in doc["data_loader"]["eval"]["map"]["operations"]:
        if op["type"] == "Normalize":
            op["mean"] = op["std"] = None
    path = tmp_path / "no_geometry.yaml"
    path.write_text(yaml.safe_dump(doc))
    cfg = load_config(str(path), resolve=False)  # nothing filled from the record at load time
    assert "num_frames" not in cfg.data_loader.eval.dataset
    p = VideoPredictor(cfg, ckpt=setup["ckpt"])
    assert (p.num_frames, p.sampling_rate, p.target_fps, p.crop_size) == (4, 12.0, None, 32)
    assert p.data.mean == (0.45, 0.45, 0.45) and p.data.std == (0.225, 0.225, 0.225)
    assert p.data.eval_output == "probabilities" and p.data.short_side == 32
    r = p.predict(setup["videos"]["mp4"], topk=3)
    # 60 frames, clips of 12 x 4 = 48 source frames, delta 12: starts 0 and 6 (delta * i / 2)
    assert r["clips"] == [slowfast_clip(0, 48, 4, 60), slowfast_clip(6, 48, 4, 60)] == [[0, 15, 31, 47],
                                                                                        [6, 21, 37, 53]]


def test_window_mode_opens_the_video_once_with_one_decoder(setup, monkeypatch):
    """--window: the file is opened once (PyAV: frame count, rate, then the one decoding pass);
    no clip reader, no decord. A container without a frame count (mkv) is counted by demuxing
    within that one open."""
    import av
    import src.engine.predict as predict_mod

    opened = []
    real_open = av.open

    def counting_open(target, *args, **kwargs):
        opened.append(target)
        return real_open(target, *args, **kwargs)

    def no_reader(*args, **kwargs):
        raise AssertionError("window mode must not open a clip reader")

    monkeypatch.setattr(av, "open", counting_open)
    monkeypatch.setattr(predict_mod, "VideoFileReader", no_reader)
    import src.data.decode as decode
    monkeypatch.setattr(decode, "import_decord", no_reader)
    p = VideoPredictor(setup["cfg"], ckpt=setup["ckpt"])
    for name, frames in (("mp4", 60), ("mkv", 20)):
        opened.clear()
        r = p.predict(setup["videos"][name], topk=3, window_seconds=1.0)
        assert opened == [setup["videos"][name]]
        assert r["num_frames"] == frames and r["stats"]["frames"] == frames
    # mp4 (60 frames at 25 fps, 2 clips of 2 x 4 = 8 frames, delta 52): the evaluation's clips
    assert p.predict(setup["videos"]["mp4"], window_seconds=1.0)["clips"] == [slowfast_clip(0, 8, 4, 60),
                                                                               slowfast_clip(26, 8, 4, 60)]


def test_exported_mindir_carries_class_names_and_geometry(setup, tmp_path, capsys):
    """The exporter stores class names and the clip in the MINDIR; infer.py --mindir FILE then
    needs neither --config nor --label-map and scores as the checkpoint does. A config given
    with it still overrides, and one giving other clips is refused in one line."""
    import infer
    from src.cli import run_cli
    from src.engine.inference import read_mindir_info
    from src.tools import export as tool

    mindir = str(tmp_path / "m.mindir")
    assert run_cli(tool.main, ["--config", setup["cfg_path"], "--ckpt", setup["ckpt"], "--out", mindir]) == 0
    assert "metadata: 3 class names, clip 4 x 2 frames, short side 32, crop 32" in capsys.readouterr().out
    shape, meta = read_mindir_info(mindir)
    assert shape == (-1, 3, 4, 32, 32)
    assert meta == {"version": 1, "model": "x3d_xs", "num_classes": 3, "class_names": NAMES,
                    "input_shape": [-1, 3, 4, 32, 32], "eval_output": "probabilities",
                    "data_config": {"num_frames": 4, "sampling_rate": 2, "target_fps": None, "short_side": 32,
                                    "crop_size": 32, "mean": [0.45] * 3, "std": [0.225] * 3, "value_range": 1.0,
                                    "channel_order": "RGB", "eval_output": "probabilities",
                                    "offset_sampling": False, "in_channels": 3}}

    video = setup["videos"]["mp4"]
    out_json = str(tmp_path / "out.json")
    assert run_cli(infer.main, [video, "--mindir", mindir, "--json", out_json, "--topk", "3",
                                "infer.num_clips=2", "infer.num_crops=3"]) == 0
    out, err = capsys.readouterr()
    assert "2 clips x 3 crops of 4 frames (sampling rate 2)" in out and err == ""
    doc = json.load(open(out_json))
    assert doc["config"] is None and doc["class_names"] == "mindir"
    got = doc["videos"][0]
    ref = VideoPredictor(setup["cfg"], ckpt=setup["ckpt"]).predict(video, topk=3)
    assert got["clips"] == ref["clips"]
    assert [t["name"] for t in got["topk"]] == [NAMES[t["label"]] for t in got["topk"]]
    for t in got["topk"]:
        assert t["prob"] == pytest.approx(ref["probs"][t["label"]], abs=1e-5)

    # a config still overrides; one giving other clips than the file takes is refused before running
    assert run_cli(infer.main, [video, "--config", setup["cfg_path"], "--mindir", mindir,
                                "infer.short_side=48", "infer.crop_size=48"]) == 2
    out, err = capsys.readouterr()
    assert err == (f"error: {mindir}: exported for input (3, 4, 32, 32) (C, T, H, W) but the config gives "
                   f"(3, 4, 48, 48); export again or pass the config it was exported with\n")
    # --ckpt still needs a config
    assert run_cli(infer.main, [video, "--ckpt", setup["ckpt"]]) == 2
    assert capsys.readouterr().err == "error: infer.py: --config is required with --ckpt (see --help)\n"
