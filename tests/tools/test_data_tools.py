"""Data tools: demo data set, list builder, data set checker, MindRecord packing."""
import os
import shutil

import numpy as np
import pytest
import yaml

from src.config import load_config
from src.data import create_loader, load_label_map, read_frames
from src.registry import DATASETS, build_from_cfg
from src.tools import build_list, check_dataset, make_demo_data, pack_mindrecord
from tests.helpers.video import frame_pattern, encode_video, tiny_video


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    assert make_demo_data.main([str(root), "--num-train", "2", "--num-val", "1", "--size", "48x32",
                                "--frames", "12", "--workers", "1"]) == 0
    return root


def test_demo_data_layout_lists_and_label_map(demo):
    classes = load_label_map(str(demo / "label_map.json"))
    assert classes == make_demo_data.DEFAULT_CLASSES and len(classes) >= 4
    train = (demo / "train.txt").read_text().split("\n")[:-1]
    val = (demo / "val.txt").read_text().split("\n")[:-1]
    assert len(train) == 2 * len(classes) and len(val) == len(classes)
    rel, label = train[-1].rsplit(" ", 1)
    assert rel.startswith(f"train/{classes[int(label)]}/") and rel.endswith(".mp4")
    frames = read_frames(str(demo / rel), range(12))
    assert frames.shape == (12, 32, 48, 3)
    assert np.abs(frames[6].astype(int) - frames[0]).mean() > 2  # it moves


def test_demo_data_is_deterministic_by_seed(demo, tmp_path):
    make_demo_data.main([str(tmp_path / "a"), "--num-train", "1", "--num-val", "1", "--size", "48x32",
                         "--frames", "12", "--classes", "move_left", "--seed", "0", "--workers", "1"])
    make_demo_data.main([str(tmp_path / "b"), "--num-train", "1", "--num-val", "1", "--size", "48x32",
                         "--frames", "12", "--classes", "move_left", "--seed", "1", "--workers", "1"])
    rel = "train/move_left/move_left_0000.mp4"
    same = read_frames(str(tmp_path / "a" / rel), range(12))
    np.testing.assert_array_equal(same, read_frames(str(demo / rel), range(12)))
    assert not np.array_equal(same, read_frames(str(tmp_path / "b" / rel), range(12)))


def test_demo_classes_differ_in_motion_not_appearance():
    rng = np.random.default_rng(0)
    stats, motion = [], []
    for label in range(len(make_demo_data.CLASSES)):
        clips = [make_demo_data.render_video(label, np.random.default_rng([3, label, i]), 48, 48, 8)
                 for i in range(12)]
        stats.append(np.mean([c[0].mean() for c in clips]))
        motion.append(clips)
    # single-frame brightness is alike across classes ...
    assert np.ptp(stats) < 12
    # ... while the main bars' displacement differs: move_right vs move_left shift their columns
    def shift(clip):
        a, b = clip[0].astype(float).mean(axis=(0, 2)), clip[2].astype(float).mean(axis=(0, 2))
        return int(np.argmax([np.dot(np.roll(a, s), b) for s in range(-5, 6)])) - 5
    assert np.mean([shift(c) for c in motion[1]]) > np.mean([shift(c) for c in motion[0]])
    del rng


def test_demo_data_feeds_the_loader(demo, tmp_path):
    cfg_path = tmp_path / "c.yaml"
    ds = {"type": "VideoList", "root": str(demo), "num_frames": 4, "sampling_rate": 2}
    tail = [{"type": "Rescale"}, {"type": "ToCTHW"}]
    cfg_path.write_text(yaml.safe_dump({"data_loader": {
        "train": {"dataset": dict(ds, ann_file="train.txt"), "batch_size": 4, "num_parallel_workers": 1,
                  "map": {"operations": [{"type": "RandomCrop", "size": 32},
                                         {"type": "RandomHorizontalFlip", "prob": 0.0}] + tail}},
        "eval": {"dataset": dict(ds, ann_file="val.txt", num_clips=1), "batch_size": 4, "num_parallel_workers": 1,
                 "map": {"operations": [{"type": "SpatialCrops", "size": 32, "num_crops": 1}] + tail}}}}))
    loader = create_loader(load_config(str(cfg_path)), "train", output_dir=str(tmp_path))
    assert loader.class_names == make_demo_data.DEFAULT_CLASSES
    batch = next(loader.iter_numpy())
    assert batch["video"].shape == (4, 3, 4, 32, 32)


def test_build_list_from_class_folders(tmp_path):
    seed = tiny_video(str(tmp_path / "seed.mp4"), num_frames=6)
    for rel in ["b/2.mp4", "a/1.avi", "a/sub/3.mkv", "c/readme.txt"]:
        os.makedirs(tmp_path / "data" / os.path.dirname(rel), exist_ok=True)
        shutil.copy(seed, tmp_path / "data" / rel)
    out = tmp_path / "data" / "all.txt"
    assert build_list.main([str(tmp_path / "data"), str(out)]) == 0
    assert out.read_text().split("\n")[:-1] == ["a/1.avi 0", "a/sub/3.mkv 0", "b/2.mp4 1"]
    assert load_label_map(str(tmp_path / "data" / "label_map.json")) == ["a", "b", "c"]
    ds = build_from_cfg({"type": "VideoList", "root": str(tmp_path / "data"), "ann_file": "all.txt",
                         "num_frames": 2, "sampling_rate": 1}, DATASETS)
    assert ds.class_names == ["a", "b", "c"] and len(ds) == 3
    assert build_list.main([str(tmp_path / "nope"), str(out)]) == 2


def test_check_dataset_reports_problems(tmp_path, capsys):
    root = tmp_path / "d"
    tiny_video(str(root / "ok.mp4"), num_frames=10)
    encode_video(str(root / "short.mp4"), frame_pattern(3, 32, 32))
    (root / "text.mp4").write_text("hello")
    (root / "l.txt").write_text("ok.mp4 0\nshort.mp4 0\ntext.mp4 1\ngone.mp4 1\n")
    ds = {"type": "VideoList", "root": str(root), "ann_file": "l.txt", "num_frames": 4, "sampling_rate": 2}
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"data_loader": {"train": {"dataset": ds}, "eval": {"dataset": dict(ds, num_clips=1)}}}))
    rc = check_dataset.main(["--config", str(cfg), "--split", "train", "--out", str(tmp_path / "o"), "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 1
    assert "train: 4 listed, 1 missing, 1 unreadable, 1 too short" in out
    assert "short.mp4: too short: 3 frames, need 4" in out
    assert "text.mp4" in (tmp_path / "o" / "check_train.txt").read_text()
    (root / "l.txt").write_text("ok.mp4 0\n")
    assert check_dataset.main(["--config", str(cfg), "--split", "train", "--no-progress"]) == 0


def test_pack_mindrecord_and_read_clips(tmp_path, capsys):
    root = tmp_path / "d"
    for i in range(3):
        tiny_video(str(root / f"v{i}.mp4"), num_frames=16, height=32, width=48, seed=i)
    (root / "bad.mp4").write_text("x")
    (root / "l.txt").write_text("v0.mp4 0\nv1.mp4 1\nbad.mp4 0\nv2.mp4 1\n")
    ds = {"type": "VideoList", "root": str(root), "ann_file": "l.txt", "num_frames": 4, "sampling_rate": 3}
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"data_loader": {"train": {"dataset": ds}}}))
    out = str(tmp_path / "mr" / "train.mindrecord")
    assert pack_mindrecord.main(["--config", str(cfg), "--split", "train", "--out", out, "--no-progress"]) == 0
    assert "packed 3 videos" in capsys.readouterr().out
    mr = build_from_cfg({"type": "MindRecordVideo", "file": out, "num_frames": 4, "sampling_rate": 3,
                         "num_clips": 2}, DATASETS)
    assert mr.labels == [0, 1, 1] and os.path.basename(mr.video_paths[2]) == "v2.mp4"
    direct = build_from_cfg(dict(ds, num_clips=2), DATASETS)
    a, b = mr.load_clip(2, clip_idx=1), direct.load_clip(3, clip_idx=1)
    assert a.shape == b.shape == (4, 32, 48, 3)
    assert np.abs(a.astype(int) - b).mean() < 6  # same frames, JPEG-coded
    assert a[:, 10].max(axis=-1).argmax(axis=1).tolist() == b[:, 10].max(axis=-1).argmax(axis=1).tolist()
