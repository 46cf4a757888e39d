"""create_loader: batches, eval views, sharding and bad-file handling, from tiny encoded videos."""
import os

import numpy as np
import pytest
import yaml

from src.config import load_config
from src.data import create_loader, load_label_map
from tests.helpers.video import encode_video, frame_pattern, tiny_video

NUM_GOOD = 8


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """8 good videos (label = index, mixed sizes incl. portrait) + 4 bad ones, and list files."""
    root = tmp_path_factory.mktemp("pipe")
    good = []
    for i in range(NUM_GOOD):
        h, w = [(32, 48), (48, 32), (32, 32), (24, 40)][i % 4]
        good.append(f"v{i}.mp4 {i}")
        tiny_video(str(root / f"v{i}.mp4"), num_frames=20 + i, height=h, width=w, seed=i)
    (root / "zero.mp4").write_bytes(b"")
    (root / "text.mp4").write_text("this is not a video\n")
    data = open(root / "v0.mp4", "rb").read()
    (root / "cut.mp4").write_bytes(data[: len(data) // 3])
    encode_video(str(root / "three.mp4"), frame_pattern(3, 32, 32))
    bad = [f"{n}.mp4 0" for n in ("zero", "text", "cut", "three")]
    (root / "good.txt").write_text("\n".join(good) + "\n")
    (root / "mixed.txt").write_text("\n".join(good[:4] + bad + good[4:]) + "\n")
    return root


def make_cfg(tmp_path, root, ann="good.txt", bad_fraction=0.05, workers=1, multiproc=False, num_clips=2):
    ops_tail = [{"type": "Rescale"}, {"type": "Normalize", "mean": [0.45] * 3, "std": [0.225] * 3},
                {"type": "ToCTHW"}]
    ds = {"type": "VideoList", "root": str(root), "ann_file": ann, "num_frames": 4, "sampling_rate": 2}
    cfg = {"model": {"type": "x3d_xs", "num_frames": 4, "crop_size": 24},  # the clip geometry's source
           "data_loader": {
        "max_bad_fraction": bad_fraction,
        "train": {"dataset": ds, "batch_size": 2, "num_parallel_workers": workers,
                  "python_multiprocessing": multiproc,
                  "map": {"operations": [{"type": "RandomShortSideScale", "min_size": 28, "max_size": 36},
                                         {"type": "RandomCrop", "size": 24},
                                         {"type": "RandomHorizontalFlip", "prob": 0.5}] + ops_tail}},
        "eval": {"dataset": dict(ds, num_clips=num_clips), "batch_size": 4, "num_parallel_workers": workers,
                 "python_multiprocessing": multiproc,
                 "map": {"operations": [{"type": "ShortSideScale", "size": 28},
                                        {"type": "SpatialCrops", "size": 24, "num_crops": 1}] + ops_tail}}}}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return load_config(str(path))


def run_epoch(loader):
    return list(loader.iter_numpy())


def test_train_batches_shapes_and_label_map(tmp_path, data):
    cfg = make_cfg(tmp_path, data, workers=2)
    out = tmp_path / "out"
    loader = create_loader(cfg, "train", output_dir=str(out), batch_size=3)
    assert loader.num_samples == NUM_GOOD and loader.steps_per_epoch == 2  # 8 // 3, remainder dropped
    assert loader.class_names == [str(i) for i in range(NUM_GOOD)]
    assert load_label_map(str(out / "label_map.json")) == loader.class_names
    batches = run_epoch(loader)
    assert len(batches) == 2
    for b in batches:
        assert sorted(b) == ["label", "video"]
        assert b["video"].shape == (3, 3, 4, 24, 24) and b["video"].dtype == np.float32
        assert b["label"].dtype == np.int32
    assert loader.bad_count() == 0


def test_eval_views_are_ordered_deterministic_and_complete(tmp_path, data):
    cfg = make_cfg(tmp_path, data, workers=2)
    loader = create_loader(cfg, "eval", output_dir=str(tmp_path), num_clips=2, num_crops=3)
    assert loader.views_per_video == 6 and loader.num_videos == NUM_GOOD
    assert loader.num_samples == 48 and loader.steps_per_epoch == 12
    a, b = run_epoch(loader), run_epoch(loader)
    vid = np.concatenate([x["video_idx"] for x in a])
    view = np.concatenate([x["view_idx"] for x in a])
    assert vid.tolist() == [v for v in range(NUM_GOOD) for _ in range(6)]
    assert view.tolist() == list(range(6)) * NUM_GOOD
    assert np.concatenate([x["label"] for x in a]).tolist() == vid.tolist()
    assert all(x["video_idx"].dtype == np.int32 and x["view_idx"].dtype == np.int32 for x in a)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x["video"], y["video"])
    assert a[0]["video"].shape == (4, 3, 4, 24, 24)
    # the three crops of one clip differ, the clips too
    v = np.concatenate([x["video"] for x in a])
    assert not np.allclose(v[0], v[1]) and not np.allclose(v[0], v[3])


def test_eval_keeps_the_remainder(tmp_path, data):
    cfg = make_cfg(tmp_path, data, num_clips=1)
    loader = create_loader(cfg, "eval", output_dir=str(tmp_path), batch_size=3)
    batches = run_epoch(loader)
    assert loader.steps_per_epoch == 3 and [len(x["label"]) for x in batches] == [3, 3, 2]


def test_eval_shards_are_disjoint_and_cover(tmp_path, data):
    cfg = make_cfg(tmp_path, data, num_clips=2)
    seen = []
    for shard in range(3):
        loader = create_loader(cfg, "eval", num_shards=3, shard_id=shard, output_dir=str(tmp_path))
        pairs = {(int(v), int(w)) for x in run_epoch(loader) for v, w in zip(x["video_idx"], x["view_idx"])}
        assert len(pairs) == loader.num_samples
        seen.append(pairs)
    assert not (seen[0] & seen[1]) and not (seen[0] & seen[2]) and not (seen[1] & seen[2])
    assert set().union(*seen) == {(v, w) for v in range(NUM_GOOD) for w in range(2)}


def test_train_shards_are_disjoint_and_cover(tmp_path, data):
    cfg = make_cfg(tmp_path, data)
    labels = []
    for shard in range(2):
        loader = create_loader(cfg, "train", num_shards=2, shard_id=shard, output_dir=str(tmp_path))
        assert loader.num_samples == 4 and loader.steps_per_epoch == 2
        labels.append({int(l) for x in run_epoch(loader) for l in x["label"]})
    assert not (labels[0] & labels[1]) and labels[0] | labels[1] == set(range(NUM_GOOD))


def test_bad_files_are_skipped_and_reported(tmp_path, data):
    cfg = make_cfg(tmp_path, data, ann="mixed.txt", bad_fraction=0.5, workers=2, multiproc=True)
    out = tmp_path / "out"
    loader = create_loader(cfg, "train", output_dir=str(out))
    batches = run_epoch(loader)  # the epoch completes
    assert len(batches) == loader.steps_per_epoch == 6
    assert all(x["video"].shape == (2, 3, 4, 24, 24) for x in batches)
    bad = {os.path.basename(p) for p in loader.bad_files()}
    assert bad == {"zero.mp4", "text.mp4", "cut.mp4", "three.mp4"}
    assert loader.bad_count() >= 4  # summed over worker processes
    listed = (out / "bad_files.txt").read_text()
    assert "three.mp4\ttoo short: 3 frames, need 4" in listed and "zero.mp4\tempty file" in listed
    assert f"{loader.bad_count()} bad (4 files" in loader.summary()
    # replaced samples are good videos: labels come from the good ones only
    assert all(0 <= l < NUM_GOOD for x in batches for l in x["label"])


def test_eval_with_bad_files_completes(tmp_path, data):
    cfg = make_cfg(tmp_path, data, ann="mixed.txt", bad_fraction=0.5, num_clips=1)
    loader = create_loader(cfg, "eval", output_dir=str(tmp_path))
    vids = np.concatenate([x["video_idx"] for x in run_epoch(loader)])
    assert len(vids) == 12
    bad_idx = {4, 5, 6, 7}  # zero, text, cut, three in mixed.txt
    assert not bad_idx & set(vids.tolist())  # a bad video gets no views of its own
    # ... and no substitute: each good video appears exactly once, the bad ones as -1 placeholders
    assert sorted(vids.tolist()) == [-1] * 4 + [0, 1, 2, 3, 8, 9, 10, 11]
    assert loader.bad_count() >= 4


def test_a_failed_file_is_not_opened_again_in_the_same_process(tmp_path, data, monkeypatch):
    import src.data.readers as readers_module
    opened = []
    real = readers_module.VideoFileReader

    def counting(path, *args, **kwargs):
        opened.append(os.path.basename(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(readers_module, "VideoFileReader", counting)
    cfg = make_cfg(tmp_path, data, ann="mixed.txt", bad_fraction=0.5)
    loader = create_loader(cfg, "train", output_dir=str(tmp_path / "o"))
    source = loader.source
    text_idx = 5  # text.mp4 in mixed.txt
    for epoch in range(3):
        source.epoch = epoch
        video, label = source[text_idx]  # replaced by a random good sample every time
        assert video.shape == (3, 4, 24, 24) and 0 <= int(label) < NUM_GOOD
    assert opened.count("text.mp4") == 1           # decoded (and complained about) once
    # ... but counted every time it was drawn (a replacement may draw another bad file too)
    assert len([p for p in source.bad_log._events() if p == str(data / "text.mp4")]) >= 3
    lines = (tmp_path / "o" / "bad_files.txt").read_text().splitlines()
    assert [l.split("\t")[0] for l in lines].count(str(data / "text.mp4")) == 1


def test_too_many_bad_files_stop_with_a_clear_error(tmp_path, data):
    cfg = make_cfg(tmp_path, data, ann="mixed.txt", bad_fraction=0.1, num_clips=1)
    loader = create_loader(cfg, "eval", output_dir=str(tmp_path))
    with pytest.raises(RuntimeError, match=r"videos failed to decode .*max_bad_fraction=0.1"):
        run_epoch(loader)
