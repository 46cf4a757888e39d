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


# -- one class list per run (issue #21, item 2) ---------------------------------------------------

def kinetics_csv(path, rows):
    """A Kinetics CSV: header on line 1, row ``i`` on line ``i + 2``."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("label,youtube_id,time_start,time_end,split\n")
        f.writelines(f"{label},{yid},0,10,x\n" for label, yid in rows)
    return path


def test_kinetics_train_and_val_csvs_that_disagree(tmp_path, seed_video, capsys):
    root = tmp_path / "k"
    train_rows = [("abseiling", "a1"), ("archery", "a2"), ("bowling", "a3")]
    val_rows = [("archery", "v1"), ("zumba", "v2"), ("bowling", "v3")]  # as many labels as train, one other
    kinetics_csv(str(root / "annotations" / "train.csv"), train_rows)
    val_csv = kinetics_csv(str(root / "annotations" / "val.csv"), val_rows)
    for split, rows in (("train", train_rows), ("val", val_rows)):
        for label, yid in rows:
            put(seed_video, str(root / split / label / f"{yid}_000000_000010.mp4"))
    train = build({"type": "Kinetics400", "root": str(root), "split": "train", **CLIP})
    assert train.class_names == ["abseiling", "archery", "bowling"] and train.labels == [0, 1, 2]
    val_cfg = {"type": "Kinetics400", "root": str(root), "split": "val", **CLIP}
    runtime = {"class_names": train.class_names, "config_key": "data_loader.eval.dataset"}
    with pytest.raises(DataError) as e:
        build(val_cfg, **runtime)
    assert str(e.value) == (f"{val_csv}:3: label 'zumba' is not one of the 3 classes of the train split "
                            "(set data_loader.eval.dataset.unknown_labels=skip to skip such rows)")
    capsys.readouterr()
    val = build(dict(val_cfg, unknown_labels="skip"), **runtime)
    # no shift: archery and bowling keep the train indices 1 and 2 (alone, val would number them 0, 1)
    assert val.class_names == train.class_names and val.labels == [1, 2] and val.unknown_skipped == 1
    assert [os.path.basename(p) for p in val.video_paths] == ["v1_000000_000010.mp4", "v3_000000_000010.mp4"]
    assert capsys.readouterr().err.splitlines() == [
        "warning: 1 row(s) with a label outside the 3 classes of the train split skipped "
        f"(data_loader.eval.dataset.unknown_labels=skip; first: {val_csv}:3: label 'zumba')"]
    # a val split with fewer classes than train: the labels are still the train indices
    kinetics_csv(str(root / "annotations" / "val.csv"), [("bowling", "v3"), ("archery", "v1")])
    val = build(val_cfg, **runtime)
    assert val.num_classes == 3 and val.labels == [2, 1] and val.unknown_skipped == 0


def test_label_map_fixes_the_classes_and_an_unknown_label_names_the_row(tmp_path, seed_video):
    root = tmp_path / "k"
    csv_path = kinetics_csv(str(root / "annotations" / "train.csv"), [("b", "x"), ("c", "y")])
    for label, yid in (("b", "x"), ("c", "y")):
        put(seed_video, str(root / "train" / label / f"{yid}_000000_000010.mp4"))
    lm = save_label_map(["c", "a", "b"], str(tmp_path / "lm.json"))
    ds = build({"type": "Kinetics400", "root": str(root), "split": "train", "label_map": lm, **CLIP})
    assert ds.class_names == ["c", "a", "b"] and ds.labels == [2, 0]
    save_label_map(["a", "b"], lm)
    with pytest.raises(DataError) as e:
        build({"type": "Kinetics400", "root": str(root), "split": "train", "label_map": lm, **CLIP})
    assert str(e.value) == (f"{csv_path}:3: label 'c' is not one of the 2 classes of {lm} "
                            "(set Kinetics400.unknown_labels=skip to skip such rows)")


def test_videolist_integer_labels_are_checked_against_the_class_list(tmp_path, seed_video, capsys):
    root = tmp_path / "data"
    for name in ("a.mp4", "b.mp4"):
        put(seed_video, str(root / name))
    lm = save_label_map(["walk", "run", "jump"], str(root / "label_map.json"))
    (root / "l.txt").write_text("a.mp4 0\nb.mp4 3\n")
    cfg = {"type": "VideoList", "root": str(root), "ann_file": "l.txt", **CLIP}
    with pytest.raises(DataError) as e:
        build(cfg)
    assert str(e.value) == (f"{root}/l.txt:2: label 3 is not one of the 3 classes of {lm} "
                            "(set VideoList.unknown_labels=skip to skip such rows)")
    os.remove(lm)
    # no label map: train "0", "1"; an eval label 2 is outside the train split's list
    (root / "train.txt").write_text("a.mp4 0\nb.mp4 1\n")
    (root / "val.txt").write_text("a.mp4 1\n# comment\nb.mp4 2\n")
    train = build(dict(cfg, ann_file="train.txt"))
    assert train.class_names == ["0", "1"]
    with pytest.raises(DataError) as e:
        build(dict(cfg, ann_file="val.txt"), class_names=train.class_names)
    assert str(e.value).startswith(f"{root}/val.txt:3: label 2 is not one of the 2 classes of the train split")
    val = build(dict(cfg, ann_file="val.txt", unknown_labels="skip"), class_names=train.class_names)
    assert val.labels == [1] and val.unknown_skipped == 1 and "1 row(s)" in capsys.readouterr().err
    with pytest.raises(DataError, match="VideoList.unknown_labels: expected one of error, skip, got 'maybe'"):
        build(dict(cfg, ann_file="val.txt", unknown_labels="maybe"))


def test_an_eval_label_map_in_another_order_is_read_by_name(tmp_path, seed_video):
    """Integer labels of a split with its own label map mean that map's names: 0 = 'run' here is
    index 1 of the train split's ['walk', 'run']."""
    put(seed_video, str(tmp_path / "val" / "x.mp4"))
    save_label_map(["run", "walk"], str(tmp_path / "val" / "label_map.json"))
    (tmp_path / "val" / "val.txt").write_text("x.mp4 0\n")
    val = build({"type": "VideoList", "root": str(tmp_path / "val"), "ann_file": "val.txt", **CLIP},
                class_names=["walk", "run"])
    assert val.class_names == ["walk", "run"] and val.labels == [1]


def test_empty_class_folder_is_reported_and_keeps_its_index(tmp_path, seed_video, capsys):
    folder = tmp_path / "train"
    (folder / "ant").mkdir(parents=True)
    (folder / "ant" / "notes.txt").write_text("no videos here")
    put(seed_video, str(folder / "bee" / "1.mp4"))
    put(seed_video, str(folder / "cat" / "2.mp4"))
    ds = build({"type": "VideoFolder", "root": str(tmp_path), "split": "train", **CLIP})
    assert ds.class_names == ["ant", "bee", "cat"] and ds.labels == [1, 2] and ds.empty_classes == ["ant"]
    assert capsys.readouterr().err.splitlines() == [
        f"warning: {folder}: 1 class folder(s) without video files: 'ant' (class 0); a class keeps its index "
        "(the place of its name in the class list), so the other indices do not shift"]
    kin = build({"type": "Kinetics400", "root": str(tmp_path), "split": "train", **CLIP})  # class-folder layout
    assert kin.empty_classes == ["ant"] and kin.labels == [1, 2]
    assert "'ant' (class 0)" in capsys.readouterr().err
    # an eval class folder the train split lacks is an unknown label
    put(seed_video, str(tmp_path / "val" / "dog" / "3.mp4"))
    put(seed_video, str(tmp_path / "val" / "cat" / "4.mp4"))
    with pytest.raises(DataError) as e:
        build({"type": "VideoFolder", "root": str(tmp_path), "split": "val", **CLIP}, class_names=ds.class_names)
    assert str(e.value).startswith(f"{tmp_path}/val/dog: class folder 'dog' is not one of the 3 classes of the "
                                   "train split (set VideoFolder.unknown_labels=skip")


# -- paths stay inside the data root (issue #21, item 4) ------------------------------------------

def test_list_paths_stay_inside_the_data_root(tmp_path, seed_video):
    root = tmp_path / "data"
    put(seed_video, str(root / "v.mp4"))
    outside = put(seed_video, str(tmp_path / "outside.mp4"))
    put(seed_video, str(tmp_path / "data_extra" / "x.mp4"))  # shares the root's name as a prefix
    cfg = {"type": "VideoList", "root": str(root), "ann_file": "l.txt", **CLIP}
    hint = "(set data_loader.train.dataset.allow_outside_root=true to allow)"
    cases = {"v.mp4 0\n../outside.mp4 0\n": f"l.txt:2: path '../outside.mp4' escapes the data root {root} {hint}",
             "../../../../../../etc/passwd 0\n":
                 f"l.txt:1: path '../../../../../../etc/passwd' escapes the data root {root} {hint}",
             "../data_extra/x.mp4 0\n": f"l.txt:1: path '../data_extra/x.mp4' escapes the data root {root} {hint}",
             f"{outside} 0\n": f"l.txt:1: path '{outside}' is absolute, not inside the data root {root} {hint}"}
    for text, message in cases.items():
        (root / "l.txt").write_text(text)
        with pytest.raises(DataError) as e:
            build(cfg, config_key="data_loader.train.dataset")
        assert str(e.value) == f"{root}/{message}"
    # allowed with the option: both rows are read
    (root / "l.txt").write_text(f"../outside.mp4 0\n{outside} 1\n")
    ds = build(dict(cfg, allow_outside_root=True))
    assert [os.path.samefile(p, outside) for p in ds.video_paths] == [True, True] and ds.labels == [0, 1]
    # inside after normalisation, and a symlink inside the root pointing outside it, are fine
    os.symlink(outside, root / "link.mp4")
    os.symlink(tmp_path / "data_extra", root / "extra")
    (root / "sub").mkdir()
    (root / "l.txt").write_text("sub/../v.mp4 0\nlink.mp4 0\nextra/x.mp4 1\n")
    ds = build(cfg)
    assert ds.video_paths == [f"{root}/sub/../v.mp4", f"{root}/link.mp4", f"{root}/extra/x.mp4"]
    assert ds.load_clip(1, clip_idx=0).shape == (4, 32, 48, 3)


def test_annotation_rows_of_ucf101_and_kinetics_are_confined_too(tmp_path, seed_video):
    ann = tmp_path / "ucfTrainTestlist"
    ann.mkdir()
    (ann / "classInd.txt").write_text("1 Archery\n")
    (ann / "trainlist01.txt").write_text("Archery/v_1.avi 1\n\nArchery/../../../secret.avi 1\n")
    put(seed_video, str(tmp_path / "UCF-101" / "Archery" / "v_1.avi"))
    with pytest.raises(DataError) as e:
        build({"type": "UCF101", "root": str(tmp_path), **CLIP})
    assert str(e.value) == (f"{ann}/trainlist01.txt:3: path 'Archery/../../../secret.avi' escapes the data root "
                            f"{tmp_path}/UCF-101 (set UCF101.allow_outside_root=true to allow)")
    root = tmp_path / "k"
    csv_path = kinetics_csv(str(root / "annotations" / "train.csv"), [("a", "ok"), ("../..", "x")])
    with pytest.raises(DataError) as e:
        build({"type": "Kinetics400", "root": str(root), "split": "train", **CLIP})
    assert str(e.value).startswith(f"{csv_path}:3: path '../../x_000000_000010.mp4' escapes the data root {root}/train")
