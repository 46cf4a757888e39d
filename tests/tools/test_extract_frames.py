"""extract_frames: frame folders + raw-frame list from a video tree, resume, unreadable videos, --fps."""
import os
import shutil

import numpy as np
import pytest
from PIL import Image

import mindspore  # noqa: F401  (before decord)
from src.data import load_label_map, read_frames
from src.registry import DATASETS, build_from_cfg
from src.tools import extract_frames
from tests.helpers.video import tiny_video

N = 24


@pytest.fixture()
def tree(tmp_path):
    src = tmp_path / "src"
    tiny_video(str(src / "a" / "v0.mp4"), num_frames=N, height=32, width=48, seed=0)
    tiny_video(str(src / "a" / "v1.avi"), num_frames=N, height=32, width=48, seed=1)
    tiny_video(str(src / "b" / "v2.mp4"), num_frames=N, height=48, width=32, seed=2)
    (src / "b" / "bad.mp4").write_text("not a video\n")
    return src


def jpegs(folder):
    return sorted(f for f in os.listdir(folder) if f.endswith(".jpg"))


def test_extracts_lists_and_resumes(tree, tmp_path, capsys):
    dst = tmp_path / "frames"
    rc = extract_frames.main([str(tree), str(dst), "--workers", "2", "--no-progress"])
    assert rc == 1  # one unreadable video
    out = capsys.readouterr().out
    assert "extracted 3 videos, 0 already done, 1 unreadable" in out and "bad.mp4" in out
    assert (dst / "rawframes.txt").read_text().splitlines() == [f"a/v0 {N} 0", f"a/v1 {N} 0", f"b/v2 {N} 1"]
    errors = (dst / "extract_errors.txt").read_text().splitlines()
    assert len(errors) == 1 and errors[0].startswith(str(tree / "b" / "bad.mp4") + "\t")
    assert load_label_map(str(dst / "label_map.json")) == ["a", "b"]
    assert jpegs(dst / "a" / "v0") == [f"img_{k:05d}.jpg" for k in range(1, N + 1)]
    assert not os.path.exists(dst / "b" / "bad") and not os.path.exists(dst / "b" / "bad.part")
    # the frames are the video's, in order (JPEG-coded)
    video = read_frames(str(tree / "b" / "v2.mp4"), range(N))
    for k in (0, 7, N - 1):
        img = np.asarray(Image.open(dst / "b" / "v2" / f"img_{k + 1:05d}.jpg"))
        assert img.shape == (48, 32, 3) and np.abs(img.astype(int) - video[k]).mean() < 3
    # the list feeds RawFrameList
    ds = build_from_cfg({"type": "RawFrameList", "root": str(dst), "ann_file": "rawframes.txt", "num_frames": 4,
                         "sampling_rate": 2}, DATASETS)
    assert ds.class_names == ["a", "b"] and ds.load_clip(2, clip_idx=0).shape == (4, 48, 32, 3)

    # resume: finished folders are kept, an interrupted one (.part) and a deleted one are redone
    stamp = os.stat(dst / "a" / "v0" / "img_00001.jpg").st_mtime_ns
    shutil.rmtree(dst / "b" / "v2")
    os.makedirs(dst / "b" / "v2.part")
    (dst / "b" / "v2.part" / "img_00001.jpg").write_bytes(b"half")
    shutil.rmtree(dst / "a" / "v1")
    os.makedirs(dst / "a" / "v1.part")
    rc = extract_frames.main([str(tree), str(dst), "--workers", "1", "--no-progress"])
    assert rc == 1
    assert "extracted 2 videos, 1 already done, 1 unreadable" in capsys.readouterr().out
    assert os.stat(dst / "a" / "v0" / "img_00001.jpg").st_mtime_ns == stamp
    assert not os.path.exists(dst / "b" / "v2.part") and len(jpegs(dst / "b" / "v2")) == N
    assert (dst / "rawframes.txt").read_text().splitlines() == [f"a/v0 {N} 0", f"a/v1 {N} 0", f"b/v2 {N} 1"]


def test_short_side_fps_list_and_pyav(tree, tmp_path):
    (tree / "pick.txt").write_text("a/v0.mp4 3\nb/v2.mp4 1\n")
    dst = tmp_path / "f"
    r = extract_frames.extract_frames(str(tree), str(dst), short_side=16, fps=12.5, list_file=str(tree / "pick.txt"),
                                      out_list="pick.txt", decoder="pyav", progress=False,
                                      filename_tmpl="{:05d}.jpg")
    assert r["errors"] == [] and r["extracted"] == 2
    # 25 fps -> 12.5: every 2nd frame of 24; short side 16 keeps the aspect ratio
    assert (dst / "pick.txt").read_text().splitlines() == ["a/v0 12 3", "b/v2 12 1"]
    assert Image.open(dst / "a" / "v0" / "00001.jpg").size == (24, 16)
    assert Image.open(dst / "b" / "v2" / "00012.jpg").size == (16, 24)
    video = read_frames(str(tree / "a" / "v0.mp4"), range(N))
    small = np.asarray(Image.fromarray(video[10]).resize((24, 16), Image.BILINEAR)).astype(int)
    assert np.abs(np.asarray(Image.open(dst / "a" / "v0" / "00006.jpg")).astype(int) - small).mean() < 4


def test_keep_rule_and_usage_errors(tmp_path, capsys):
    assert np.nonzero(extract_frames._keep(np.arange(25), 25.0, 10.0))[0].tolist() == [0, 3, 5, 8, 10, 13, 15, 18, 20, 23]
    assert extract_frames._keep(np.arange(5), 25.0, 30.0).all() and extract_frames._keep(np.arange(5), 0.0, 5.0).all()
    assert extract_frames.main([str(tmp_path / "none"), str(tmp_path / "o"), "--no-progress"]) == 2
    os.makedirs(tmp_path / "a" / "b")
    (tmp_path / "a" / "b" / "x.mp4").write_text("x")
    (tmp_path / "a" / "b" / "x.avi").write_text("x")
    assert extract_frames.main([str(tmp_path / "a"), str(tmp_path / "o"), "--no-progress"]) == 2
    assert "would share the frame folder" in capsys.readouterr().err


def test_an_empty_class_folder_is_named_and_keeps_its_index(tmp_path, capsys):
    src = tmp_path / "s"
    os.makedirs(src / "a")
    os.makedirs(src / "b")
    (src / "b" / "x.mp4").write_text("x")  # only listed here, never decoded
    rows, classes = extract_frames._videos(str(src), None)
    assert classes == ["a", "b"] and rows == [("b/x.mp4", 1)]
    assert capsys.readouterr().err.splitlines() == [
        f"warning: {src}: 1 class folder(s) without video files: 'a' (class 0); a class keeps its index "
        "(the place of its name in the class list), so the other indices do not shift"]
