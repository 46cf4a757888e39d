"""eval.py end to end: multi-view evaluation of a checkpoint on a tiny encoded data set."""
import json
import os

import numpy as np
import pytest
import mindspore as ms

from src.config import load_config
from src.models import build_model
from tests.helpers.training import run_py, tiny_eval_model


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaldata")
    cfg, net = tiny_eval_model(root, num_val=2, eval_cfg={"num_clips": 2, "num_crops": 3, "short_side": 32,
                                                          "crop_size": 32, "batch_size": 4})
    rng = np.random.default_rng(0)  # non-trivial BN statistics, so folding them changes the weights
    for name, p in net.parameters_and_names():
        if name.endswith(("moving_mean", "beta")):
            p.set_data(ms.Tensor(rng.normal(0.0, 0.3, p.shape).astype(np.float32)))
        elif name.endswith(("moving_variance", "gamma")):
            p.set_data(ms.Tensor(rng.uniform(0.5, 1.5, p.shape).astype(np.float32)))
    ckpt = str(root / "model.ckpt")
    ms.save_checkpoint(net, ckpt)
    return root, cfg, ckpt


def test_eval_writes_metrics_json_and_confusion_png(setup):
    root, cfg, ckpt = setup
    out = root / "eval"
    r = run_py(["eval.py", "--config", cfg, "--ckpt", ckpt, "--output", str(out), "--no-progress"])
    assert r.returncode == 0, r.stderr[-3000:]
    assert "6 videos x 6 views (2 clips x 3 crops" in r.stdout and "top-1:" in r.stdout
    res = json.load(open(out / "eval_results.json"))
    assert res["num_videos"] == res["num_videos_scored"] == 6
    assert res["views"] == {"num_clips": 2, "num_crops": 3, "short_side": 32, "crop_size": 32}
    assert np.array(res["confusion_matrix"]).sum() == 6 and len(res["per_class_accuracy"]) == 3
    top1 = np.mean([v["top5"][0]["label"] == v["label"] for v in res["videos"]])
    assert res["top1"] == pytest.approx(top1)
    for v in res["videos"]:
        probs = [t["prob"] for t in v["top5"]]
        assert len(probs) == 3 and probs == sorted(probs, reverse=True)
        assert sum(probs) == pytest.approx(1.0, abs=1e-4)   # averaged softmax, not re-softmaxed
    assert (out / "confusion_matrix.png").stat().st_size > 1000


def test_eval_scores_are_the_same_with_and_without_batchnorm_folding(setup):
    root, cfg, ckpt = setup
    probs = {}
    for fold in ("true", "false"):
        out = root / f"eval_fold_{fold}"
        r = run_py(["eval.py", "--config", cfg, "--ckpt", ckpt, "--output", str(out), "--no-progress",
                    f"eval.fold_bn={fold}"])
        assert r.returncode == 0, r.stderr[-3000:]
        res = json.load(open(out / "eval_results.json"))
        probs[fold] = {(v["video"], t["label"]): t["prob"] for v in res["videos"] for t in v["top5"]}
    assert probs["true"].keys() == probs["false"].keys() and len(probs["true"]) == 18
    for key, p in probs["false"].items():
        assert probs["true"][key] == pytest.approx(p, abs=1e-5)


def test_eval_reads_its_own_section_and_falls_back_to_infer_with_a_note(setup, tmp_path):
    """eval.* is eval.py's; infer.* drives infer.py. A config that sets the views only under infer
    (as before eval had a section) still evaluates with them, with one deprecation note; an
    infer.* override that eval.py does not use (the config sets eval.*) is named in a note."""
    import yaml
    root, cfg, ckpt = setup
    own = yaml.safe_load(open(cfg))
    old = dict(own, infer={"num_clips": 1, "num_crops": 1, "short_side": 40, "crop_size": 32, "batch_size": 2})
    del old["eval"]
    old_cfg = tmp_path / "old.yaml"
    old_cfg.write_text(yaml.safe_dump(old))
    r = run_py(["eval.py", "--config", str(old_cfg), "--ckpt", ckpt, "--output", str(tmp_path / "old"), "--no-progress"])
    assert r.returncode == 0, r.stderr[-3000:]
    notes = [line for line in r.stderr.splitlines() if line.startswith("note: ")]
    assert notes == ["note: eval.py read infer.num_clips, infer.num_crops, infer.short_side, infer.crop_size, "
                     "infer.batch_size (deprecated: set eval.num_clips, eval.num_crops, eval.short_side, "
                     "eval.crop_size, eval.batch_size; eval.py has its own eval: section)"]
    res = json.load(open(tmp_path / "old" / "eval_results.json"))
    assert res["views"] == {"num_clips": 1, "num_crops": 1, "short_side": 40, "crop_size": 32}
    assert "6 videos x 1 views (1 clips x 1 crops, short side 40, crop 32)" in r.stdout

    # the config's own eval section (2 x 3 at 32): infer.* changes nothing for eval.py, and it says so
    r = run_py(["eval.py", "--config", cfg, "--ckpt", ckpt, "--output", str(tmp_path / "own"), "--no-progress",
                "infer.num_clips=5"])
    assert r.returncode == 0, r.stderr[-3000:]
    assert [line for line in r.stderr.splitlines() if line.startswith("note: ")] == [
        "note: not used by eval.py: override 'infer.num_clips=5' (eval.num_clips is 2); set eval.* for eval.py"]
    assert json.load(open(tmp_path / "own" / "eval_results.json"))["views"]["num_clips"] == 2


def test_eval_errors_are_one_line(setup):
    root, cfg, _ = setup
    r = run_py(["eval.py", "--config", cfg, "--ckpt", str(root / "missing.ckpt")])
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [f"error: {root / 'missing.ckpt'}: checkpoint not found"]


def test_bad_and_missing_videos_are_reported_not_substituted(setup, tmp_path):
    root, cfg, ckpt = setup
    import shutil
    import yaml
    data = tmp_path / "data"
    shutil.copytree(os.path.join(root, "data"), data)
    val = (data / "val.txt").read_text().split("\n")
    good = [line for line in val if line.strip()]
    (data / "val" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 truncated" * 10)
    (data / "val.txt").write_text("\n".join(good + ["val/broken.mp4 0", "val/absent.mp4 1"]) + "\n")
    c = yaml.safe_load(open(cfg))
    for split in ("train", "eval"):
        c["data_loader"][split]["dataset"]["root"] = str(data)
    c["data_loader"]["max_bad_fraction"] = 0.5
    cfg2 = tmp_path / "cfg.yaml"
    cfg2.write_text(yaml.safe_dump(c))
    out = tmp_path / "eval"
    r = run_py(["eval.py", "--config", str(cfg2), "--ckpt", ckpt, "--output", str(out), "--no-progress"])
    assert r.returncode == 0, r.stderr[-3000:]
    # one visible warning for the missing file, with the counts and the list's path
    warn = [line for line in r.stderr.splitlines() if line.startswith("warning:") and "missing" in line]
    assert len(warn) == 1 and "8 videos listed, 7 found, 1 missing" in warn[0]
    assert str(out / "missing_files.txt") in warn[0]
    assert (out / "missing_files.txt").read_text().split() == [str(data / "val" / "absent.mp4")]
    res = json.load(open(out / "eval_results.json"))
    assert res["num_videos"] == 7 and res["num_videos_scored"] == 6 and res["missing_videos"] == 1
    assert [f["video"] for f in res["failed_videos"]] == [str(data / "val" / "broken.mp4")]
    assert np.array(res["confusion_matrix"]).sum() == 6          # accuracy over the scored videos only
    assert sorted(v["video"] for v in res["videos"]) == sorted(str(data / line.split()[0]) for line in good)
    assert "1 of 7 videos could not be decoded" in r.stdout and "over 6 scored videos" in r.stdout
    bad = (out / "bad_files.txt").read_text().splitlines()
    assert len(bad) == 1 and bad[0].startswith(str(data / "val" / "broken.mp4") + "\t")


def test_video_level_accuracy_averages_consecutive_clips_per_video(tmp_path):
    """eval.py --video-level on frame folders: each video's score is the mean of the model's
    scores over its consecutive 4-frame clips, recomputed here clip by clip."""
    import yaml
    from PIL import Image
    from src.engine.checkpoint import save_checkpoint

    rng = np.random.default_rng(0)
    counts, lines = [9, 14, 4], []
    for i, n in enumerate(counts):
        folder = tmp_path / "frames" / f"v{i}"
        folder.mkdir(parents=True)
        for k in range(n):
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(folder / f"img_{k + 1:05d}.jpg")
        lines.append(f"v{i} {n} {i}")
    (tmp_path / "frames" / "list.txt").write_text("\n".join(lines) + "\n")
    ops = [{"type": "ShortSideScale", "size": 32}, {"type": "SpatialCrops", "size": 32, "num_crops": 1},
           {"type": "Rescale"}, {"type": "Normalize"}, {"type": "ToCTHW"}]
    ds = {"type": "RawFrameList", "root": str(tmp_path / "frames"), "ann_file": "list.txt", "sampling_rate": 1,
          "pad_mode": "loop"}
    model = {"type": "x3d_xs", "num_classes": 3, "num_frames": 4, "crop_size": 32, "width_factor": 0.5,
             "depth_factor": 0.5, "head_dim": 16, "dropout_rate": 0.0}
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({"context": {"device_target": "CPU"}, "model": model,
                                   "eval": {"short_side": 32, "crop_size": 32, "batch_size": 2},
                                   "data_loader": {"eval": {"dataset": ds, "map": {"operations": ops},
                                                            "batch_size": 2, "num_parallel_workers": 1}}}))
    ms.set_device("CPU")
    net = build_model(load_config(str(cfg)).model)
    ckpt = save_checkpoint(net, str(tmp_path / "m.ckpt"), epoch=0, global_step=0)
    out = tmp_path / "eval"
    r = run_py(["eval.py", "--config", str(cfg), "--ckpt", ckpt, "--output", str(out), "--no-progress",
                "--video-level"])
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.load(open(out / "eval_results.json"))
    assert res["protocol"].startswith("video-level") and res["num_videos"] == res["num_videos_scored"] == 3

    # independently: windows of 4 consecutive frames from 0, 4 apart, while the start is before the
    # last frame (9 -> starts 0, 4; 14 -> 0, 4, 8; 4 -> 0), each looped to 4 frames; softmax per clip
    from src.data import build_transforms
    from src.engine.inference import load_inference_model
    c = load_config(str(cfg))
    transform = build_transforms(c.data_loader.eval.map.operations)
    model_ = load_inference_model(c, ckpt=ckpt, batch_size=1)
    for i, n in enumerate(counts):
        folder = tmp_path / "frames" / f"v{i}"
        frames = np.stack([np.asarray(Image.open(folder / f"img_{k + 1:05d}.jpg").convert("RGB")) for k in range(n)])
        starts = list(range(0, max(n - 1, 1), 4))
        clips = [frames[[s + (o % min(4, n - s)) for o in range(4)]] for s in starts]
        probs = model_.predict(np.stack([transform(cl) for cl in clips])).mean(axis=0)
        video = next(v for v in res["videos"] if v["video"].endswith(f"v{i}"))
        for t in video["top5"]:
            assert t["prob"] == pytest.approx(probs[t["label"]], abs=1e-5)


def test_video_level_accuracy_on_video_files(tmp_path):
    """eval.py --video-level (eval.video_level: true) on a VideoList of real encoded videos: the
    windows and their frames are worked out by hand, each window's probabilities come from the
    model one clip at a time, and each video's score is their plain mean."""
    import yaml
    from src.data import VideoReader, build_transforms
    from src.engine.checkpoint import save_checkpoint
    from src.engine.inference import load_inference_model
    from tests.helpers.video import tiny_video

    data = tmp_path / "videos"
    tiny_video(str(data / "a.mp4"), num_frames=10, height=32, width=48, seed=1)
    tiny_video(str(data / "b.mp4"), num_frames=6, height=32, width=48, seed=2)
    (data / "val.txt").write_text("a.mp4 0\nb.mp4 1\n")
    ops = [{"type": "ShortSideScale", "size": 32}, {"type": "SpatialCrops", "size": 32, "num_crops": 1},
           {"type": "Rescale"}, {"type": "Normalize"}, {"type": "ToCTHW"}]
    ds = {"type": "VideoList", "root": str(data), "ann_file": "val.txt", "sampling_rate": 2, "num_clips": 1}
    model = {"type": "x3d_xs", "num_classes": 2, "num_frames": 4, "crop_size": 32, "width_factor": 0.5,
             "depth_factor": 0.5, "head_dim": 16, "dropout_rate": 0.0}
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({"context": {"device_target": "CPU"}, "model": model,
                                   "eval": {"short_side": 32, "crop_size": 32, "batch_size": 2, "num_clips": 3,
                                            "num_crops": 3, "video_level": True},
                                   "data_loader": {"eval": {"dataset": ds, "map": {"operations": ops},
                                                            "batch_size": 2, "num_parallel_workers": 1}}}))
    ms.set_device("CPU")
    net = build_model(load_config(str(cfg)).model)
    rng = np.random.default_rng(0)  # spread-out weights, so windows' probabilities differ clearly
    for pname, p in net.parameters_and_names():
        if pname.endswith(("moving_mean", "beta")):
            p.set_data(ms.Tensor(rng.normal(0.0, 0.3, p.shape).astype(np.float32)))
        elif pname.endswith(("moving_variance", "gamma")):
            p.set_data(ms.Tensor(rng.uniform(0.5, 1.5, p.shape).astype(np.float32)))
        elif pname.startswith("head.projection") and p.ndim == 2:
            p.set_data(ms.Tensor(rng.normal(0.0, 0.3, p.shape).astype(np.float32)))
    ckpt = save_checkpoint(net, str(tmp_path / "m.ckpt"), epoch=0, global_step=0)
    out = tmp_path / "eval"
    r = run_py(["eval.py", "--config", str(cfg), "--ckpt", ckpt, "--output", str(out), "--no-progress"])
    assert r.returncode == 0, r.stderr[-3000:]
    assert "video-level: 5 consecutive clips" in r.stdout  # 3 windows of a + 2 of b, one crop each
    res = json.load(open(out / "eval_results.json"))
    assert res["protocol"].startswith("video-level") and res["num_videos"] == res["num_videos_scored"] == 2
    assert res["views"]["num_crops"] == 1

    # by hand: 4-frame windows from frame 0, 4 apart, while the start is before the last frame, each
    # sampled every 2nd frame within the window (offsets 0, 2, 4, 6 modulo the window's frames):
    # a (10 frames): starts 0, 4, 8 -> [0, 2, 0, 2], [4, 6, 4, 6], [8, 8, 8, 8] (frames 8, 9 only)
    # b (6 frames): starts 0, 4 -> [0, 2, 0, 2], [4, 4, 4, 4] (frames 4, 5 only)
    windows = {"a.mp4": [[0, 2, 0, 2], [4, 6, 4, 6], [8, 8, 8, 8]], "b.mp4": [[0, 2, 0, 2], [4, 4, 4, 4]]}
    c = load_config(str(cfg))
    transform = build_transforms(c.data_loader.eval.map.operations)  # centre crop of short side 32
    model_ = load_inference_model(c, ckpt=ckpt, batch_size=1)
    for name, idx in windows.items():
        with VideoReader(str(data / name)) as vr:
            frames = vr.get_frames(range(vr.num_frames))
        # each window's probabilities (one clip through the model), then their plain mean
        per_window = [model_.predict(transform(frames[w])[None])[0] for w in idx]
        assert all(abs(p.sum() - 1.0) < 1e-4 for p in per_window)
        mean = sum(per_window) / len(per_window)
        video = next(v for v in res["videos"] if v["video"].endswith(name))
        assert [t["label"] for t in video["top5"]] == np.argsort(-mean, kind="stable").tolist()
        for t in video["top5"]:
            assert t["prob"] == pytest.approx(mean[t["label"]], abs=1e-5)


def test_eval_uses_the_checkpoints_class_list(setup, tmp_path):
    """A training checkpoint fixes the class list: the data's labels (names from its label map)
    are looked up in it, so a data set whose label map lists the classes in another order is
    scored against the right outputs; a class the checkpoint lacks is a one-line error."""
    from src.data.labels import save_label_map
    from src.engine.checkpoint import save_checkpoint
    root, cfg, ckpt = setup
    data = os.path.dirname(load_config(cfg).data_loader.eval.dataset.root + "/")
    net = build_model(load_config(cfg).model)
    ms.load_param_into_net(net, ms.load_checkpoint(ckpt))
    trained = str(tmp_path / "trained.ckpt")
    save_checkpoint(net, trained, epoch=1, global_step=1, class_names=["c2", "c0", "c1"])
    save_label_map(["c0", "c1", "c2"], os.path.join(data, "val_map.json"))  # val.txt label k = "ck"
    out = tmp_path / "eval"
    r = run_py(["eval.py", "--config", cfg, "--ckpt", trained, "--output", str(out), "--no-progress",
                f"data_loader.eval.dataset.label_map={os.path.join(data, 'val_map.json')}"])
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.load(open(out / "eval_results.json"))
    assert res["class_names"] == ["c2", "c0", "c1"]
    by_name = {v["video"]: v["label"] for v in res["videos"]}
    # val/cK_i.mp4 has label name "cK": index 0 for c2, 1 for c0, 2 for c1 (written out by hand)
    expected = {"c0": 1, "c1": 2, "c2": 0}
    assert by_name and all(by_name[p] == expected[os.path.basename(p)[:2]] for p in by_name), by_name
    save_checkpoint(net, trained, epoch=1, global_step=1, class_names=["c0", "c1", "cX"])
    r = run_py(["eval.py", "--config", cfg, "--ckpt", trained, "--output", str(tmp_path / "e2"), "--no-progress",
                f"data_loader.eval.dataset.label_map={os.path.join(data, 'val_map.json')}"])
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "label 'c2'" in lines[0], r.stderr[-2000:]
