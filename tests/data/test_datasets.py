"""Every data set type built through the registry from tiny encoded videos."""
import json
import logging
import os
import shutil

import pytest

import src.data  # noqa: F401  (registers the data sets)
from src.data import DataError, load_label_map, save_label_map
from src.registry import DATASETS, build_from_cfg
from tests.helpers.video import tiny_video

CLIP = {"num_frames": 4, "sampling_rate": 2}


@pytest.fixture(scope="module")
def seed_video(tmp_path_factory):
    return tiny_video(str(tmp_path_factory.mktemp("seed") / "seed.mp4"), num_frames=12)


def put(seed_video, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    shutil.copy(seed_video, path)
    return path


def build(cfg, **kw):
    return build_from_cfg(cfg, DATASETS, where="data_loader.train.dataset", **kw)


def test_label_map_roundtrip_and_formats(tmp_path):
    path = save_label_map(["b", "a", "c"], str(tmp_path / "lm.json"))
    assert json.load(open(path)) == {"num_classes": 3, "classes": ["b", "a", "c"]}
    assert load_label_map(path) == ["b", "a", "c"]
    (tmp_path / "d.json").write_text('{"x": 1, "y": 0}')
    assert load_label_map(str(tmp_path / "d.json")) == ["y", "x"]
    (tmp_path / "bad.json").write_text('{"x": 3}')
    with pytest.raises(DataError, match="bad.json: label indices must be 0..0"):
        load_label_map(str(tmp_path / "bad.json"))


def test_videolist_labels_missing_files_and_label_map(tmp_path, seed_video, capsys):
    root = tmp_path / "data"
    for rel in ["a/x 1.mp4", "b/y.avi", "b/z.mkv"]:
        put(seed_video, str(root / rel))
    (root / "train.txt").write_text("a/x 1.mp4 0\n# comment\nb/y.avi 1\n\nb/z.mkv 1\na/gone.mp4 0\n")
    save_label_map(["walk", "run"], str(root / "label_map.json"))
    out = tmp_path / "out"
    ds = build({"type": "VideoList", "root": str(root), "ann_file": "train.txt", **CLIP}, output_dir=str(out))
    assert ds.class_names == ["walk", "run"]
    assert [(os.path.relpath(p, root), l) for p, l in ds.samples] == [("a/x 1.mp4", 0), ("b/y.avi", 1), ("b/z.mkv", 1)]
    warnings = [line for line in capsys.readouterr().err.splitlines() if "missing" in line]
    assert len(warnings) == 1 and warnings[0].startswith("warning: ")
    assert "4 videos listed, 3 found, 1 missing" in warnings[0] and str(out / "missing_files.txt") in warnings[0]
    assert (out / "missing_files.txt").read_text().strip().endswith("a/gone.mp4")
    # without a label map the names are the indices
    os.remove(root / "label_map.json")
    ds = build({"type": "VideoList", "root": str(root), "ann_file": "train.txt", **CLIP})
    assert ds.class_names == ["0", "1"]


def test_no_files_found_and_bad_lines_are_clear_errors(tmp_path):
    (tmp_path / "l.txt").write_text("nothing/here.mp4 0\n")
    with pytest.raises(DataError, match="none of the 1 listed videos exist"):
        build({"type": "VideoList", "root": str(tmp_path), "ann_file": "l.txt", **CLIP})
    (tmp_path / "m.txt").write_text("a.mp4 zero\n")
    with pytest.raises(DataError, match="m.txt:1: expected 'relative/path label'"):
        build({"type": "VideoList", "root": str(tmp_path), "ann_file": "m.txt", **CLIP})
    with pytest.raises(DataError, match="annotation file .* not found"):
        build({"type": "VideoList", "root": str(tmp_path), "ann_file": "nope.txt", **CLIP})


def test_videofolder_classes_sorted(tmp_path, seed_video):
    for rel in ["zebra/1.mp4", "ant/2.webm", "ant/3.mp4", "mole/4.avi", "mole/notes.txt"]:
        put(seed_video, str(tmp_path / "train" / rel))
    ds = build({"type": "VideoFolder", "root": str(tmp_path), "split": "train", **CLIP})
    assert ds.class_names == ["ant", "mole", "zebra"]
    assert [(os.path.basename(p), l) for p, l in ds.samples] == [("2.webm", 0), ("3.mp4", 0), ("4.avi", 1), ("1.mp4", 2)]


@pytest.mark.parametrize("kind", ["Kinetics400", "Kinetics600"])
def test_kinetics_csv_flat_and_nested(tmp_path, seed_video, kind):
    root = tmp_path / "k"
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "validate.csv").write_text(
        "label,youtube_id,time_start,time_end,split\n"
        '"air drumming",abc,12,22,val\n'
        "abseiling,-x_y,0,10,val\n"
        "abseiling,gone,5,15,val\n")
    put(seed_video, str(root / "val" / "abc_000012_000022.mkv"))            # flat
    put(seed_video, str(root / "val" / "abseiling" / "-x_y_000000_000010.mp4"))  # in a class folder
    ds = build({"type": kind, "root": str(root), "split": "val", **CLIP})
    assert ds.class_names == ["abseiling", "air drumming"]
    assert sorted((os.path.basename(p), l) for p, l in ds.samples) == [
        ("-x_y_000000_000010.mp4", 0), ("abc_000012_000022.mkv", 1)]
    assert len(ds.missing) == 1


def test_kinetics_class_folder_variant(tmp_path, seed_video):
    for rel in ["train/b c/1.mp4", "train/a/2.mp4"]:
        put(seed_video, str(tmp_path / rel))
    ds = build({"type": "Kinetics400", "root": str(tmp_path), "split": "train", **CLIP})
    assert ds.class_names == ["a", "b c"] and sorted(ds.labels) == [0, 1]


def test_ucf101_split_selection(tmp_path, seed_video):
    ann = tmp_path / "ucfTrainTestlist"
    ann.mkdir()
    (ann / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 Archery\n")
    (ann / "trainlist01.txt").write_text("ApplyEyeMakeup/v_A_g08_c01.avi 1\nArchery/v_B_g08_c01.avi 2\n")
    (ann / "testlist01.txt").write_text("Archery/v_B_g01_c01.avi\n")
    (ann / "trainlist02.txt").write_text("Archery/v_B_g01_c01.avi 2\n")
    for rel in ["ApplyEyeMakeup/v_A_g08_c01.avi", "Archery/v_B_g08_c01.avi", "Archery/v_B_g01_c01.avi"]:
        put(seed_video, str(tmp_path / "UCF-101" / rel))
    tr = build({"type": "UCF101", "root": str(tmp_path), "split": "train", "fold": 1, **CLIP})
    te = build({"type": "UCF101", "root": str(tmp_path), "split": "test", "fold": 1, **CLIP})
    tr2 = build({"type": "UCF101", "root": str(tmp_path), "split": "train", "fold": 2, **CLIP})
    assert tr.class_names == ["ApplyEyeMakeup", "Archery"] and tr.labels == [0, 1]
    assert [os.path.basename(p) for p in te.video_paths] == ["v_B_g01_c01.avi"] and te.labels == [1]
    assert tr2.labels == [1]


def test_hmdb51_split_files(tmp_path, seed_video):
    splits = tmp_path / "testTrainMulti_7030_splits"
    splits.mkdir()
    (splits / "wave_test_split1.txt").write_text("w1.avi 1\nw2.avi 2\nw3.avi 0\n")
    (splits / "clap_test_split1.txt").write_text("c1.avi 1\nc2.avi 2\n")
    (splits / "clap_test_split2.txt").write_text("c1.avi 2\n")
    for rel in ["wave/w1.avi", "wave/w2.avi", "wave/w3.avi", "clap/c1.avi", "clap/c2.avi"]:
        put(seed_video, str(tmp_path / rel))
    tr = build({"type": "HMDB51", "root": str(tmp_path), "split": "train", **CLIP})
    te = build({"type": "HMDB51", "root": str(tmp_path), "split": "test", **CLIP})
    assert tr.class_names == ["clap", "wave"]
    assert [(os.path.basename(p), l) for p, l in tr.samples] == [("c1.avi", 0), ("w1.avi", 1)]
    assert [(os.path.basename(p), l) for p, l in te.samples] == [("c2.avi", 0), ("w2.avi", 1)]


def test_load_clip_uses_the_sampling(tmp_path):
    path = tiny_video(str(tmp_path / "v.mp4"), num_frames=20, height=32, width=48)
    (tmp_path / "l.txt").write_text("v.mp4 0\n")
    ds = build({"type": "VideoList", "root": str(tmp_path), "ann_file": "l.txt", "num_frames": 4,
                "sampling_rate": 3, "num_clips": 2})
    clip = ds.load_clip(0, clip_idx=1)
    # 20 frames, clip_size 3 * 4 = 12 -> delta 8, clip 1 of 2 starts at 8 * 1 / 2 = 4:
    # floor(linspace(4, 15, 4)) = frames 4, 7, 11, 15 (the marker sits at column 2 * frame)
    assert clip[:, 10].max(axis=-1).argmax(axis=1).tolist() == [8, 14, 22, 30]
    assert os.path.samefile(ds.video_paths[0], path)


def test_single_test_clip_starts_at_zero_or_centred_with_offset_sampling(tmp_path):
    tiny_video(str(tmp_path / "v.mp4"), num_frames=20, height=32, width=48)
    (tmp_path / "l.txt").write_text("v.mp4 0\n")
    cfg = {"type": "VideoList", "root": str(tmp_path), "ann_file": "l.txt", "num_frames": 4, "sampling_rate": 3}
    # 20 frames, clip_size 12, delta 8. SlowFast's default: start 8 * 0 / 1 = 0 -> floor(linspace(0, 11, 4))
    # = frames 0, 3, 7, 11; offset sampling: floor(8 / 2) = 4 -> frames 4, 7, 11, 15 (marker column 2 * frame)
    assert build(cfg).load_clip(0, clip_idx=0)[:, 10].max(axis=-1).argmax(axis=1).tolist() == [0, 6, 14, 22]
    centred = build(dict(cfg, offset_sampling=True)).load_clip(0, clip_idx=0)
    assert centred[:, 10].max(axis=-1).argmax(axis=1).tolist() == [8, 14, 22, 30]
    with pytest.raises(DataError, match="offset_sampling: expected true or false"):
        build(dict(cfg, offset_sampling="yes"))
    with pytest.raises(DataError, match="protocol: expected one of views, video"):
        build(dict(cfg, protocol="windows"))


def test_video_level_protocol_on_video_files(tmp_path):
    """protocol: video on video files: every consecutive 4-frame window (downsample 2, looped),
    frame counts read at start-up; the frames decoded are the hand-computed ones."""
    from src.data import VideoDecodeError

    tiny_video(str(tmp_path / "a.mp4"), num_frames=10, height=32, width=48)
    tiny_video(str(tmp_path / "b.mp4"), num_frames=5, height=32, width=48)
    (tmp_path / "broken.mp4").write_bytes(b"not a video" * 20)
    (tmp_path / "l.txt").write_text("a.mp4 0\nb.mp4 1\nbroken.mp4 1\n")
    ds = build({"type": "VideoList", "root": str(tmp_path), "ann_file": "l.txt", "num_frames": 4,
                "sampling_rate": 2, "num_clips": 10, "protocol": "video"})
    plan = ds.video_level
    assert [os.path.basename(p) for p in plan.video_paths] == ["a.mp4", "b.mp4", "broken.mp4"]
    # a: 10 frames, window starts range(0, 9, 4) = 0, 4, 8; b: 5 frames, start 0; broken: unknown, one window
    assert plan.window_video.tolist() == [0, 1, 2, 0, 0] and plan.window_index.tolist() == [0, 0, 0, 1, 2]
    assert [os.path.basename(p) for p in ds.video_paths] == ["a.mp4", "b.mp4", "broken.mp4", "a.mp4", "a.mp4"]
    assert ds.labels == [0, 1, 1, 0, 0] and ds.num_clips == 1 and len(ds) == 5
    # frames (0, 2, 4, 6) of each window, modulo the frames the window has (4, 4, 2 at the end of a):
    # a: [0, 2, 0, 2], [4, 6, 4, 6], [8, 8, 8, 8]; b (5 frames, one window): [0, 2, 0, 2]
    expected = {0: [0, 2, 0, 2], 1: [0, 2, 0, 2], 3: [4, 6, 4, 6], 4: [8, 8, 8, 8]}
    for sample, frames in expected.items():
        clip = ds.load_clip(sample, clip_idx=0, min_frames=16)  # windows loop: no length check
        assert clip[:, 10].max(axis=-1).argmax(axis=1).tolist() == [2 * f for f in frames], sample
    with pytest.raises(VideoDecodeError):
        ds.load_clip(2, clip_idx=0)


def test_video_level_protocol_on_kinetics_csv(tmp_path, seed_video):
    root = tmp_path / "k"
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "val.csv").write_text(
        "label,youtube_id,time_start,time_end,split\nabseiling,abc,0,10,val\n\"air drumming\",xyz,5,15,val\n")
    put(seed_video, str(root / "val" / "abseiling" / "abc_000000_000010.mp4"))
    put(seed_video, str(root / "val" / "air drumming" / "xyz_000005_000015.mp4"))
    ds = build({"type": "Kinetics400", "root": str(root), "split": "val", "num_frames": 4, "sampling_rate": 1,
                "protocol": "video"})
    # 12 frames each: window starts range(0, 11, 4) = 0, 4, 8 -> 3 windows per video, window-major
    assert ds.video_level.window_video.tolist() == [0, 1, 0, 1, 0, 1]
    assert ds.video_level.window_index.tolist() == [0, 0, 1, 1, 2, 2]
    assert ds.labels == [0, 1] * 3
    assert ds.load_clip(4, clip_idx=0)[:, 10].max(axis=-1).argmax(axis=1).tolist() == [16, 18, 20, 22]
