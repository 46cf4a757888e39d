"""Frame-folder data sets: sampling (clamp / loop / consecutive windows), annotation formats,
start-up without opening images, bad input through the loader, the video-level protocol."""
import os

import numpy as np
import pytest
import yaml

import mindspore  # noqa: F401  (before src.data, which may import decord)
from src.config import load_config
from src.data import create_loader
from src.data.errors import DataError
from src.data.rawframes import windows_to_videos
from src.data.sampling import consecutive_clip_indices, eval_clip_indices, train_clip_indices
from src.registry import DATASETS, build_from_cfg

BASE, STEP = 12, 6  # frame k is a flat grey of BASE + STEP * k: its index survives JPEG coding


def write_frames(folder, n, tmpl="img_{:05d}.jpg", start=1, size=(24, 32)):
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    for k in range(n):
        img = np.full(size + (3,), BASE + STEP * k, np.uint8)
        Image.fromarray(img).save(os.path.join(folder, tmpl.format(start + k)), quality=95)


def frame_ids(clip):
    """Recover each frame's index from its grey level."""
    return [int(round((float(f.mean()) - BASE) / STEP)) for f in clip]


# -- sampling -------------------------------------------------------------------------------------

def ref_loop_window(window, begin, size, downsample):
    """The reference's crop: window[begin:begin+size*ds] looped to size*ds, every ds-th (ours)."""
    clip_len = size * downsample
    out = list(window[begin:begin + clip_len])
    k = 0
    while len(out) < clip_len:
        out.append(out[k])
        k += 1
    return out[::downsample]


def test_loop_and_clamp_padding_by_hand():
    rng = np.random.default_rng(0)
    # 10 frames, 16 x downsample 2: the window is looped (reference) or clamped (video path)
    assert train_clip_indices(10, 16, 2, rng, pad_mode="loop").tolist() == \
        [0, 2, 4, 6, 8, 0, 2, 4, 6, 8, 0, 2, 4, 6, 8, 0]
    assert train_clip_indices(10, 16, 2, rng).tolist() == [0, 2, 4, 6, 8] + [9] * 11
    assert eval_clip_indices(11, 16, 2, 1, 0, pad_mode="loop").tolist() == \
        [0, 2, 4, 6, 8, 10, 1, 3, 5, 7, 9, 0, 2, 4, 6, 8]
    # long enough: no padding; loop mode keeps every 2nd frame of a window centred like the
    # reference's TemporalCenterCrop (begin 40 // 2 - 16 = 4), within one frame
    centre = eval_clip_indices(40, 16, 2, 1, 0, pad_mode="loop")
    assert np.diff(centre).tolist() == [2] * 15 and abs(int(centre[0]) - 4) <= 1
    assert eval_clip_indices(40, 16, 2, 1, 0).max() <= 39
    with pytest.raises(ValueError, match="pad_mode"):
        eval_clip_indices(40, 16, 2, 1, 0, pad_mode="wrap")


@pytest.mark.parametrize("n", [1, 2, 5, 15, 16, 17, 31, 32, 33, 47])
def test_loop_padding_matches_the_reference_crop(n):
    rng = np.random.default_rng(n)
    for ds in (1, 2):
        ours = train_clip_indices(n, 16, ds, rng, pad_mode="loop")
        begin = int(ours[0])  # our start; the reference draws its own the same way
        assert ours.tolist() == ref_loop_window(list(range(n)), begin, 16, ds)


def ref_video_windows(n, size, ds):
    """The reference's test: windows range(j, min(n + 1, j + size)) for j in range(1, n, size)
    (1-based), each through its random crop (begin 0: the window is never longer than the clip)."""
    out = []
    for j in range(1, n, size):
        window = [f - 1 for f in range(j, min(n + 1, j + size))]
        out.append(ref_loop_window(window, 0, size, ds))
    return out


def test_consecutive_windows_by_hand_and_against_the_reference():
    got = consecutive_clip_indices(18, 16, 2).tolist()
    assert got == [[0, 2, 4, 6, 8, 10, 12, 14] * 2, [16] * 16]
    # 33 frames: windows at 0 and 16; frame 32 alone would start a window and is dropped
    assert consecutive_clip_indices(33, 16, 1).tolist() == [list(range(16)), list(range(16, 32))]
    assert consecutive_clip_indices(1, 4, 2).tolist() == [[0, 0, 0, 0]]  # the reference drops it
    for n in range(2, 70):
        for ds in (1, 2):
            assert consecutive_clip_indices(n, 16, ds).tolist() == ref_video_windows(n, 16, ds), (n, ds)


def test_windows_to_videos_averages_per_video():
    window_video = [0, 1, 2, 0, 1, 1]
    scores = np.array([[1, 0], [0, 1], [.5, .5], [0, 1], [1, 0], [1, 0]], float)
    ids, mean, labels = windows_to_videos(np.arange(6), scores, np.array([3, 4, 5, 3, 4, 4]), window_video)
    assert ids.tolist() == [0, 1, 2] and labels.tolist() == [3, 4, 5]
    np.testing.assert_allclose(mean, [[.5, .5], [2 / 3, 1 / 3], [.5, .5]])
    ids, mean, _ = windows_to_videos(np.array([5, 4]), scores[[5, 4]], np.array([4, 4]), window_video)
    assert ids.tolist() == [1] and mean.tolist() == [[1.0, 0.0]]


# -- data sets ------------------------------------------------------------------------------------

def raw_list(root, rows, name="list.txt"):
    (root / name).write_text("".join(f"{d} {n} {l}\n" for d, n, l in rows))
    return name


def build(cfg):
    return build_from_cfg(cfg, DATASETS)


def test_rawframelist_reads_the_planned_frames(tmp_path):
    write_frames(str(tmp_path / "a b"), 20)                       # a space in the folder name
    write_frames(str(tmp_path / "c"), 6, tmpl="{:05d}.jpg", start=0)
    raw_list(tmp_path, [("a b", 20, 1), ("c", 6, 0)])
    ds = build({"type": "RawFrameList", "root": str(tmp_path), "ann_file": "list.txt", "num_frames": 4,
                "downsample": 3, "num_clips": 2})
    assert ds.labels == [1, 0] and ds.class_names == ["0", "1"] and ds.sampling_rate == 3
    # the frames read are the planned ones (sampling.py, tested on its own)
    assert frame_ids(ds.load_clip(0, clip_idx=1)) == eval_clip_indices(20, 4, 3, 2, 1).tolist()
    ds0 = build({"type": "RawFrameList", "root": str(tmp_path), "ann_file": "list.txt", "num_frames": 4,
                 "sampling_rate": 2, "filename_tmpl": "{:05d}.jpg", "start_index": 0, "pad_mode": "loop"})
    assert frame_ids(ds0.load_clip(1, clip_idx=0)) == [0, 2, 4, 0]   # 6 frames, span 7: looped
    clip = ds0.load_clip(1, clip_idx=None, rng=np.random.default_rng(1))
    assert clip.shape == (4, 24, 32, 3) and clip.dtype == np.uint8


def test_options_are_checked(tmp_path):
    write_frames(str(tmp_path / "a"), 3)
    raw_list(tmp_path, [("a", 3, 0)])
    base = {"type": "RawFrameList", "root": str(tmp_path), "ann_file": "list.txt", "num_frames": 4}
    with pytest.raises(DataError, match="reference.s name for .sampling_rate"):
        build(dict(base, sampling_rate=1, downsample=2))
    with pytest.raises(DataError, match="required"):
        build(base)
    with pytest.raises(DataError, match="filename_tmpl"):
        build(dict(base, sampling_rate=1, filename_tmpl="img.jpg"))
    with pytest.raises(DataError, match="pad_mode"):
        build(dict(base, sampling_rate=1, pad_mode="wrap"))
    (tmp_path / "bad.txt").write_text("a 3\n")
    with pytest.raises(DataError, match=r"bad.txt:1: expected 'frame_dir total_frames label'"):
        build(dict(base, sampling_rate=1, ann_file="bad.txt"))
    raw_list(tmp_path, [("x", 3, 0), ("y", 3, 0)], "gone.txt")
    with pytest.raises(DataError, match="none of 2 checked frame folders exist"):
        build(dict(base, sampling_rate=1, ann_file="gone.txt"))


def make_jester(root, official=True, reference=True):
    """5 clips; official labels in their own (non-alphabetical) order, reference files alphabetical."""
    names = ["Swiping Left", "Swiping Right", "Doing other things"]
    clips = {"10": "Swiping Right", "11": "Doing other things", "12": "Swiping Left", "20": "Swiping Left",
             "21": "Swiping Right"}
    for cid in clips:
        write_frames(str(root / "20bn-jester-v1" / cid), 5 + int(cid) % 4, tmpl="{:05d}.jpg")
    if official:
        (root / "jester-v1-labels.csv").write_text("\n".join(names) + "\n")
        (root / "jester-v1-train.csv").write_text("".join(f"{c};{clips[c]}\n" for c in ("10", "11", "12")))
        (root / "jester-v1-validation.csv").write_text("".join(f"{c};{clips[c]}\n" for c in ("20", "21")))
    if reference:
        ref = sorted(n.replace(" ", "_") for n in names)
        os.makedirs(root / "ref", exist_ok=True)
        (root / "ref" / "classInd.txt").write_text("".join(f"{i + 1} {n}\n" for i, n in enumerate(ref)))
        idx = {n: ref.index(n.replace(" ", "_")) + 1 for n in names}
        (root / "ref" / "trainlist.txt").write_text("".join(f"{c} {idx[clips[c]]}\n" for c in ("10", "11", "12")))
        (root / "ref" / "vallist01.txt").write_text("".join(f"{c} {idx[clips[c]]}\n" for c in ("20", "21")))
    return root


def test_jester_official_and_reference_annotations(tmp_path):
    root = make_jester(tmp_path)
    kw = {"type": "Jester", "root": str(root), "num_frames": 4, "downsample": 2}
    off = build(dict(kw, split="val"))
    assert off.annotations == "official"
    assert off.class_names == ["Swiping Left", "Swiping Right", "Doing other things"]
    assert [os.path.basename(p) for p in off.video_paths] == ["20", "21"] and off.labels == [0, 1]
    ref = build(dict(kw, ann_dir=str(root / "ref")))
    assert ref.annotations == "reference"
    assert ref.class_names == ["Doing_other_things", "Swiping_Left", "Swiping_Right"]
    assert ref.labels == [2, 0, 1]  # 10, 11, 12: same clips, the reference's class order
    assert frame_ids(ref.load_clip(1, clip_idx=0)) == eval_clip_indices(8, 4, 2, 1, 0, pad_mode="loop").tolist()
    # clip 10 has 7 frames, shorter than a 6 x 2 window: the default loop padding repeats them
    assert frame_ids(build(dict(kw, num_frames=6)).load_clip(0, clip_idx=0)) == [0, 2, 4, 6, 1, 3]
    with pytest.raises(DataError, match="test set has no labels"):
        build(dict(kw, split="test"))


def test_jester_json_annotations(tmp_path):
    import json

    root = make_jester(tmp_path, official=False, reference=False)
    (root / "jester.json").write_text(json.dumps({"labels": ["A", "B"], "database": {
        "10": {"subset": "training", "annotations": {"label": "B"}},
        "20": {"subset": "validation", "annotations": {"label": "A"}}}}))
    ds = build({"type": "Jester", "root": str(root), "num_frames": 4, "sampling_rate": 1, "split": "train"})
    assert ds.annotations == "json" and ds.class_names == ["A", "B"] and ds.labels == [1]


def test_something_something_v1(tmp_path):
    names = ["Holding something", "Putting something on a surface, then letting go"]
    for cid in ("1", "2"):
        write_frames(str(tmp_path / "20bn-something-something-v1" / cid), 6, tmpl="{:05d}.jpg")
    (tmp_path / "something-something-v1-labels.csv").write_text("\n".join(names) + "\n")
    (tmp_path / "something-something-v1-train.csv").write_text(f"1;{names[1]}\n2;{names[0]}\n")
    ds = build({"type": "SomethingSomethingV1", "root": str(tmp_path), "num_frames": 4, "sampling_rate": 1})
    assert ds.class_names == names and ds.labels == [1, 0]
    assert frame_ids(ds.load_clip(0, clip_idx=0)) == eval_clip_indices(6, 4, 1, 1, 0, pad_mode="loop").tolist()


def test_ucf101_and_hmdb51_frame_folders(tmp_path):
    ann = tmp_path / "ucfTrainTestlist"
    os.makedirs(ann)
    (ann / "classInd.txt").write_text("1 Archery\n2 Bowling\n")
    (ann / "trainlist01.txt").write_text("Archery/v_Archery_g01_c01.avi 1\nBowling/v_Bowling_g01_c01.avi 2\n")
    write_frames(str(tmp_path / "frames" / "Archery" / "v_Archery_g01_c01"), 12, tmpl="image_{:05d}.jpg")
    write_frames(str(tmp_path / "frames" / "Bowling" / "v_Bowling_g01_c01"), 9, tmpl="image_{:05d}.jpg")
    ds = build({"type": "UCF101", "root": str(tmp_path), "num_frames": 4, "sampling_rate": 3,
                "frames": {"dir": str(tmp_path / "frames"), "filename_tmpl": "image_{:05d}.jpg"}})
    assert ds.labels == [0, 1] and ds.video_paths[1].endswith(os.path.join("Bowling", "v_Bowling_g01_c01"))
    assert frame_ids(ds.load_clip(0, clip_idx=0)) == eval_clip_indices(12, 4, 3, 1, 0).tolist()
    with pytest.raises(DataError, match=r"UCF101.frames: unknown key"):
        build({"type": "UCF101", "root": str(tmp_path), "num_frames": 4, "sampling_rate": 3,
               "frames": {"dir": str(tmp_path / "frames"), "tmpl": "x"}})
    hm = tmp_path / "hmdb"
    os.makedirs(hm / "splits")
    (hm / "splits" / "jump_test_split1.txt").write_text("a.avi 1\nb.avi 2\n")
    write_frames(str(hm / "frames" / "jump" / "a"), 5)
    ds = build({"type": "HMDB51", "root": str(hm), "ann_dir": str(hm / "splits"), "num_frames": 4,
                "sampling_rate": 1, "frames": {"dir": str(hm / "frames")}})
    assert len(ds) == 1 and frame_ids(ds.load_clip(0, clip_idx=0)) == eval_clip_indices(5, 4, 1, 1, 0).tolist()


def test_startup_opens_no_image(tmp_path, monkeypatch):
    import PIL.Image

    make_jester(tmp_path)
    write_frames(str(tmp_path / "r" / "a"), 4)
    raw_list(tmp_path / "r", [("a", 4, 0)] * 3)
    opened = []
    real = PIL.Image.open
    monkeypatch.setattr(PIL.Image, "open", lambda *a, **k: opened.append(a) or real(*a, **k))
    build({"type": "Jester", "root": str(tmp_path), "num_frames": 4, "sampling_rate": 2})
    ds = build({"type": "RawFrameList", "root": str(tmp_path / "r"), "ann_file": "list.txt", "num_frames": 4,
                "sampling_rate": 1, "protocol": "video"})
    assert opened == []
    ds.load_clip(0)
    assert len(opened) == 4  # the patch does see reads


# -- bad input through the loader -----------------------------------------------------------------

GOOD = 6


@pytest.fixture(scope="module")
def bad_tree(tmp_path_factory):
    """6 good clips (label = index) and the four bad cases, all 4 frames read per clip."""
    root = tmp_path_factory.mktemp("rawbad")
    rows = []
    for i in range(GOOD):
        write_frames(str(root / f"g{i}"), 6 + i)
        rows.append((f"g{i}", 6 + i, i))
    write_frames(str(root / "gap"), 6)
    os.remove(root / "gap" / "img_00003.jpg")
    write_frames(str(root / "corrupt"), 4)
    data = (root / "corrupt" / "img_00002.jpg").read_bytes()
    (root / "corrupt" / "img_00002.jpg").write_bytes(data[: len(data) // 2])
    write_frames(str(root / "short"), 5)
    bad = [("missing", 6, 0), ("gap", 6, 0), ("corrupt", 4, 0), ("short", 8, 0)]
    raw_list(root, rows[:3] + bad + rows[3:], "mixed.txt")
    return root


def bad_cfg(tmp_path, root, fraction=0.5, num_clips=1):
    tail = [{"type": "Rescale"}, {"type": "ToCTHW"}]
    ds = {"type": "RawFrameList", "root": str(root), "ann_file": "mixed.txt", "num_frames": 4,
          "sampling_rate": 1}
    cfg = {"model": {"type": "x3d_xs", "num_classes": GOOD, "num_frames": 4, "crop_size": 16},
           "data_loader": {"max_bad_fraction": fraction,
           "train": {"dataset": ds, "batch_size": 2, "num_parallel_workers": 1,
                     "map": {"operations": [{"type": "RandomCrop", "size": 16}] + tail}},
           "eval": {"dataset": dict(ds, num_clips=num_clips), "batch_size": 3, "num_parallel_workers": 1,
                    "map": {"operations": [{"type": "SpatialCrops", "size": 16, "num_crops": 1}] + tail}}}}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return load_config(str(path))


EXPECTED_REASONS = {
    "missing": "frame folder not found",
    "gap": "missing frame img_00003.jpg (1 of 6 frames missing)",
    "corrupt": "corrupt JPEG img_00002.jpg",
    "short": "fewer frames than listed: 5 found, the list says 8",
}


def test_each_bad_case_is_reported_once_and_replaced(tmp_path, bad_tree):
    out = tmp_path / "out"
    loader = create_loader(bad_cfg(tmp_path, bad_tree), "train", output_dir=str(out))
    for epoch in range(2):  # the second epoch meets the same bad folders again
        loader.set_epoch(epoch)
        batches = list(loader.iter_numpy())
        assert len(batches) == loader.steps_per_epoch == 5
        assert all(b["video"].shape == (2, 3, 4, 16, 16) for b in batches)
        assert all(0 <= l < GOOD for b in batches for l in b["label"])  # replacements are good clips
    lines = (out / "bad_files.txt").read_text().splitlines()
    assert len(lines) == 4
    got = {os.path.basename(l.split("\t")[0]): l.split("\t")[1] for l in lines}
    assert set(got) == set(EXPECTED_REASONS)
    for name, reason in EXPECTED_REASONS.items():
        assert got[name].startswith(reason), (name, got[name])


def test_eval_skips_bad_clips_and_the_fraction_limit_applies(tmp_path, bad_tree):
    loader = create_loader(bad_cfg(tmp_path, bad_tree), "eval", output_dir=str(tmp_path / "e"))
    vids = np.concatenate([b["video_idx"] for b in loader.iter_numpy()])
    assert len(vids) == 10 and not {3, 4, 5, 6} & set(vids.tolist())
    assert len(loader.bad_files()) == 4
    strict = create_loader(bad_cfg(tmp_path, bad_tree, fraction=0.2), "eval", output_dir=str(tmp_path / "s"))
    with pytest.raises(RuntimeError, match=r"videos failed to decode .*max_bad_fraction=0.2"):
        list(strict.iter_numpy())


# -- video-level protocol -------------------------------------------------------------------------

def test_video_protocol_yields_every_window_once(tmp_path):
    counts = [18, 40, 5]
    for i, n in enumerate(counts):
        write_frames(str(tmp_path / f"v{i}"), n)
    raw_list(tmp_path, [(f"v{i}", n, i) for i, n in enumerate(counts)])
    tail = [{"type": "Rescale"}, {"type": "ToCTHW"}]
    ds = {"type": "RawFrameList", "root": str(tmp_path), "ann_file": "list.txt", "num_frames": 16,
          "sampling_rate": 2, "protocol": "video"}
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({"model": {"type": "x3d_xs", "num_classes": 3, "num_frames": 16, "crop_size": 16},
                                   "data_loader": {"eval": {"dataset": ds, "batch_size": 4, "num_parallel_workers": 1,
                                   "map": {"operations": [{"type": "SpatialCrops", "size": 16, "num_crops": 1}] + tail}}}}))
    loader = create_loader(load_config(str(cfg)), "eval", output_dir=str(tmp_path / "o"), num_clips=10)
    vds = loader.video_dataset
    ff = vds.video_level  # the plan video files use too (sampling.plan_video_windows)
    # windows: 18 -> 2, 40 -> 3 (starts 0, 16, 32), 5 -> 1; window-major order
    assert ff.window_video.tolist() == [0, 1, 2, 0, 1, 1] and ff.window_index.tolist() == [0, 0, 0, 1, 1, 2]
    assert loader.num_samples == 6 and vds.num_clips == 1
    batches = list(loader.iter_numpy())
    sample = np.concatenate([b["video_idx"] for b in batches])
    assert sample.tolist() == list(range(6))
    videos = np.concatenate([b["video"] for b in batches])  # (6, 3, 16, 16, 16), values / 255
    for s in range(6):
        v, w = int(ff.window_video[s]), int(ff.window_index[s])
        got = [int(round((float(f.mean()) * 255 - BASE) / STEP)) for f in videos[s].transpose(1, 0, 2, 3)]
        assert got == ref_video_windows(counts[v], 16, 2)[w]
    ids, _, labels = windows_to_videos(sample, np.ones((6, 3)), np.concatenate([b["label"] for b in batches]),
                                       ff.window_video)
    assert ids.tolist() == [0, 1, 2] and labels.tolist() == [0, 1, 2]
    assert [os.path.basename(p) for p in ff.video_paths] == ["v0", "v1", "v2"]


def test_with_video_protocol_switches_frame_and_video_sets():
    from src.data.rawframes import with_video_protocol

    ucf = {"type": "UCF101", "root": "r", "frames": {"dir": "f"}}
    assert with_video_protocol(ucf)["frames"] == {"dir": "f", "protocol": "video"} and "protocol" not in ucf["frames"]
    assert with_video_protocol({"type": "Jester", "root": "r"})["protocol"] == "video"
    for kind in ("VideoList", "VideoFolder", "Kinetics400", "Kinetics600", "UCF101", "HMDB51"):
        assert with_video_protocol({"type": kind, "root": "r"}) == {"type": kind, "root": "r", "protocol": "video"}
    with pytest.raises(DataError, match="not available for type 'MindRecordVideo'"):
        with_video_protocol({"type": "MindRecordVideo", "file": "f"})


def test_motion_configs_turn_flip_off():
    from src.config import CONFIG_DIR

    for name in ("jester.yaml", "sthv1.yaml", "demo_rawframes.yaml"):
        data = load_config(os.path.join(CONFIG_DIR, name)).to_dict()  # resolved: bases included
        ops = data["data_loader"]["train"]["map"]["operations"]
        assert not any(op["type"] == "RandomHorizontalFlip" and op.get("prob", 0.5) > 0 for op in ops), name
        assert data["data_loader"]["train"]["dataset"]["type"] in ("Jester", "SomethingSomethingV1", "RawFrameList")


def test_frame_sets_shard_like_videos(tmp_path, bad_tree):
    (bad_tree / "good.txt").write_text("".join(f"g{i} {6 + i} {i}\n" for i in range(GOOD)))
    cfg = bad_cfg(tmp_path, bad_tree)
    cfg.data_loader.train.dataset.ann_file = "good.txt"
    cfg.data_loader.eval.dataset.ann_file = "good.txt"
    labels, views = [], []
    for shard in range(2):
        train = create_loader(cfg, "train", num_shards=2, shard_id=shard, batch_size=1,
                              output_dir=str(tmp_path / f"t{shard}"))
        labels.append({int(l) for b in train.iter_numpy() for l in b["label"]})
        ev = create_loader(cfg, "eval", num_shards=2, shard_id=shard, output_dir=str(tmp_path / f"e{shard}"))
        views.append({int(v) for b in ev.iter_numpy() for v in b["video_idx"]})
    assert not labels[0] & labels[1] and labels[0] | labels[1] == set(range(GOOD))
    assert views == [{0, 2, 4}, {1, 3, 5}]


# -- one class list per run, paths inside the root (issue #21, items 2 and 4) ----------------------

def test_rawframelist_checks_labels_and_paths_with_file_and_line(tmp_path, capsys):
    for name, n in (("a", 3), ("b", 5), ("c", 6)):
        write_frames(str(tmp_path / name), n)
    raw_list(tmp_path, [("a", 3, 0), ("b", 5, 2), ("c", 6, 1)])
    base = {"type": "RawFrameList", "root": str(tmp_path), "ann_file": "list.txt", "num_frames": 4,
            "sampling_rate": 1}
    with pytest.raises(DataError) as e:
        build_from_cfg(base, DATASETS, class_names=["0", "1"])
    assert str(e.value) == (f"{tmp_path}/list.txt:2: label 2 is not one of the 2 classes of the train split "
                            "(set RawFrameList.unknown_labels=skip to skip such rows)")
    ds = build_from_cfg(dict(base, unknown_labels="skip"), DATASETS, class_names=["0", "1"])
    # b (line 2) dropped: a and c keep their labels and their listed frame counts
    assert ds.labels == [0, 1] and ds.frame_counts == [3, 6] and ds.unknown_skipped == 1
    assert frame_ids(ds.load_clip(1, clip_idx=0)) == eval_clip_indices(6, 4, 1, 1, 0).tolist()
    assert "1 row(s) with a label outside the 2 classes of the train split skipped" in capsys.readouterr().err
    raw_list(tmp_path, [("a", 3, 0), ("../a", 3, 0)], "up.txt")
    with pytest.raises(DataError) as e:
        build(dict(base, ann_file="up.txt"))
    assert str(e.value) == (f"{tmp_path}/up.txt:2: path '../a' escapes the data root {tmp_path} "
                            "(set RawFrameList.allow_outside_root=true to allow)")
    ok = build(dict(base, ann_file="up.txt", allow_outside_root=True))  # ../a is read when it is used
    assert ok.video_paths == [f"{tmp_path}/a", f"{tmp_path}/../a"]


def test_jester_val_uses_the_train_class_list_by_name(tmp_path):
    root = make_jester(tmp_path)
    kw = {"type": "Jester", "root": str(root), "num_frames": 4, "downsample": 2}
    train = build(kw)
    val = build_from_cfg(dict(kw, split="val"), DATASETS, class_names=train.class_names)
    assert val.labels == [0, 1]  # 20: Swiping Left, 21: Swiping Right in the official order
    # a train split read from the reference's files names its classes with underscores
    ref = build(dict(kw, ann_dir=str(root / "ref")))
    with pytest.raises(DataError) as e:
        build_from_cfg(dict(kw, split="val"), DATASETS, class_names=ref.class_names,
                       config_key="data_loader.eval.dataset")
    assert str(e.value) == (f"{root}/jester-v1-validation.csv:1: label 'Swiping Left' is not one of the 3 classes "
                            "of the train split (set data_loader.eval.dataset.unknown_labels=skip to skip such rows)")
    with pytest.raises(DataError) as e:  # skipping both rows leaves nothing
        build_from_cfg(dict(kw, split="val", unknown_labels="skip"), DATASETS, class_names=ref.class_names)
    assert str(e.value) == f"Jester val (official annotations in {root}): no clips listed (2 skipped for unknown labels)"
    (root / "jester-v1-validation.csv").write_text("20;Swiping Left\n\n../../20;Swiping Right\n")
    with pytest.raises(DataError) as e:
        build(dict(kw, split="val"))
    assert str(e.value) == (f"{root}/jester-v1-validation.csv:3: path '../../20' escapes the data root "
                            f"{root}/20bn-jester-v1 (set Jester.allow_outside_root=true to allow)")
