"""Loader benchmark: clips/s of the train and eval pipelines for the X3D-XS and X3D-M settings
with 1 and 2 workers, on synthetic Kinetics-sized videos (or your own VideoList).

    python -m src.tools.bench_loader [--data DIR --list FILE] [--videos 8] [--frames 96]
        [--size 320x240] [--batches 6] [--variants xs m] [--workers 1 2] [--mindrecord]

Without ``--data`` it encodes ``--videos`` H.264 clips of ``--size`` into a temporary folder.
Each measurement builds the loader from ``src/config/x3d_<variant>.yaml`` (its sampling,
scales and crops), skips one warm-up batch and times ``--batches`` batches of 4 clips.
``--mindrecord`` also times the train pipeline reading a pre-packed MindRecord file.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import List, Optional

import numpy as np


def _make_videos(root: str, n: int, frames: int, width: int, height: int) -> str:
    from .make_demo_data import encode_mp4, render_video

    lines = []
    for i in range(n):
        rng = np.random.default_rng([7, i])
        encode_mp4(os.path.join(root, f"v{i}.mp4"), render_video(i % 6, rng, height, width, frames))
        lines.append(f"v{i}.mp4 {i % 6}")
    path = os.path.join(root, "list.txt")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def _rate(loader, batches: int) -> float:
    it = loader.dataset.create_tuple_iterator(num_epochs=1, output_numpy=True)
    next(it)  # warm-up: worker start-up
    t0, clips = time.perf_counter(), 0
    for k, batch in enumerate(it):
        clips += batch[0].shape[0]
        if k + 1 >= batches:
            break
    return clips / (time.perf_counter() - t0)


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m src.tools.bench_loader", description=__doc__.split("\n")[0])
    p.add_argument("--data", default=None, help="VideoList root (default: synthetic videos)")
    p.add_argument("--list", default="list.txt", help="list file under --data")
    p.add_argument("--videos", type=int, default=8)
    p.add_argument("--frames", type=int, default=96)
    p.add_argument("--size", default="320x240", help="WxH of the synthetic videos")
    p.add_argument("--batches", type=int, default=6)
    p.add_argument("--variants", nargs="+", default=["xs", "m"], choices=["xs", "s", "m", "l"])
    p.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    p.add_argument("--mindrecord", action="store_true", help="also time a MindRecord-packed train set")
    args = p.parse_args(argv)
    from ..config import CONFIG_DIR, load_config
    from ..data import create_loader

    tmp = tempfile.mkdtemp(prefix="x3d_bench_")
    if args.data is None:
        w, h = (int(v) for v in args.size.lower().split("x"))
        _make_videos(tmp, args.videos, args.frames, w, h)
        root, ann = tmp, "list.txt"
        print(f"data: {args.videos} synthetic H.264 videos, {w}x{h}, {args.frames} frames")
    else:
        root, ann = args.data, args.list
    print(f"{'variant':8s} {'split':6s} {'workers':>7s} {'clips/s':>8s}")
    for variant in args.variants:
        base = load_config(os.path.join(CONFIG_DIR, f"x3d_{variant}.yaml"))
        for split in ("train", "eval"):
            d = base.data_loader[split].dataset
            ds = (f"data_loader.{split}.dataset={{type: VideoList, root: '{root}', ann_file: {ann}, "
                  f"num_frames: {d.num_frames}, sampling_rate: {d.sampling_rate}"
                  + (", num_clips: 1}" if split == "eval" else "}"))
            for workers in args.workers:
                cfg = load_config(os.path.join(CONFIG_DIR, f"x3d_{variant}.yaml"),
                                  [ds, f"data_loader.{split}.num_parallel_workers={workers}",
                                   f"data_loader.{split}.python_multiprocessing=true"])
                loader = create_loader(cfg, split, batch_size=4, output_dir=os.path.join(tmp, "out"))
                print(f"{variant:8s} {split:6s} {workers:7d} {_rate(loader, args.batches):8.1f}", flush=True)
        if args.mindrecord:
            from ..data import build_dataset, pack_mindrecord

            cfg = load_config(os.path.join(CONFIG_DIR, f"x3d_{variant}.yaml"), [
                f"data_loader.train.dataset={{type: VideoList, root: '{root}', ann_file: {ann}, num_frames: 4, sampling_rate: 1}}"])
            file = os.path.join(tmp, "bench.mindrecord")
            t0 = time.perf_counter()
            info = pack_mindrecord(build_dataset(cfg, "train"), file)
            print(f"packed {info['videos']} videos in {time.perf_counter() - t0:.1f} s, {info['bytes'] / 2**20:.1f} MiB "
                  f"(videos: {sum(os.path.getsize(os.path.join(root, f)) for f in os.listdir(root) if f.endswith('.mp4')) / 2**20:.1f} MiB)")
            d = base.data_loader.train.dataset
            for workers in args.workers:
                cfg = load_config(os.path.join(CONFIG_DIR, f"x3d_{variant}.yaml"), [
                    f"data_loader.train.dataset={{type: MindRecordVideo, file: '{file}', num_frames: {d.num_frames}, "
                    f"sampling_rate: {d.sampling_rate}}}", f"data_loader.train.num_parallel_workers={workers}",
                    "data_loader.train.python_multiprocessing=true"])
                loader = create_loader(cfg, "train", batch_size=4, output_dir=os.path.join(tmp, "out"))
                print(f"{variant:8s} {'train*':6s} {workers:7d} {_rate(loader, args.batches):8.1f}   (* MindRecord)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
