"""Loader benchmark: clips/s of the train and eval pipelines for the X3D-XS and X3D-M settings
with 1 and 2 workers, on synthetic Kinetics-sized videos (or your own VideoList).

    python -m src.tools.bench_loader [--data DIR --list FILE] [--videos 8] [--frames 96]
        [--size 320x240] [--batches 6] [--variants xs m] [--workers 1 2] [--mindrecord] [--rawframes]

Without ``--data`` it encodes ``--videos`` H.264 clips of ``--size`` into a temporary folder.
Each measurement builds the loader from ``src/config/x3d_<variant>.yaml`` (its sampling,
scales and crops), skips one warm-up batch and times ``--batches`` batches of 4 clips.
``--mindrecord`` also times the train pipeline reading a pre-packed MindRecord file.
``--rawframes`` instead compares frame folders with videos on Jester-like clips: ``--videos``
synthetic clips of 176x100 and ``--frames`` (use 36, Jester's mean) frames, written both as JPEG
folders (RawFrameList) and as H.264 (VideoList), read with ``src/config/jester.yaml``'s clip
(16 frames, sampling_rate = downsample 2, loop padding) and transforms.
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


def _make_jester_like(root: str, n: int, frames: int) -> None:
    """``n`` clips of 176x100 as JPEG folders (frames.txt) and H.264 files (videos.txt)."""
    from .make_demo_data import encode_mp4, render_video, write_jpegs

    frame_lines, video_lines = [], []
    for i in range(n):
        clip = render_video(i % 4, np.random.default_rng([11, i]), 100, 176, frames)
        write_jpegs(os.path.join(root, f"c{i}"), clip)
        encode_mp4(os.path.join(root, f"c{i}.mp4"), clip, fps=12)
        frame_lines.append(f"c{i} {frames} {i % 4}")
        video_lines.append(f"c{i}.mp4 {i % 4}")
    for name, lines in (("frames.txt", frame_lines), ("videos.txt", video_lines)):
        with open(os.path.join(root, name), "w") as f:
            f.write("\n".join(lines) + "\n")


def _rawframes_case(args, tmp: str) -> None:
    from ..config import CONFIG_DIR, load_config
    from ..data import create_loader

    _make_jester_like(tmp, args.videos, args.frames)
    jpeg_mb = sum(os.path.getsize(os.path.join(tmp, f"c{i}", f)) for i in range(args.videos)
                  for f in os.listdir(os.path.join(tmp, f"c{i}"))) / 2**20
    mp4_mb = sum(os.path.getsize(os.path.join(tmp, f"c{i}.mp4")) for i in range(args.videos)) / 2**20
    print(f"data: {args.videos} Jester-like clips, 176x100, {args.frames} frames; JPEG folders {jpeg_mb:.1f} MiB, "
          f"H.264 {mp4_mb:.1f} MiB; clip 16 frames x sampling_rate 2, src/config/jester.yaml transforms")
    print(f"{'source':8s} {'split':6s} {'workers':>7s} {'clips/s':>8s}")
    cfg_path = os.path.join(CONFIG_DIR, "jester.yaml")
    sources = {"frames": f"{{type: RawFrameList, root: '{tmp}', ann_file: frames.txt, num_frames: 16, "
                         f"sampling_rate: 2, pad_mode: loop",
               "h264": f"{{type: VideoList, root: '{tmp}', ann_file: videos.txt, num_frames: 16, sampling_rate: 2"}
    for split in ("train", "eval"):
        for source, ds in sources.items():
            for workers in args.workers:
                cfg = load_config(cfg_path, [f"data_loader.{split}.dataset={ds}" + (", num_clips: 1}" if split == "eval" else "}"),
                                             f"data_loader.{split}.num_parallel_workers={workers}",
                                             f"data_loader.{split}.python_multiprocessing=true"])
                loader = create_loader(cfg, split, batch_size=4, output_dir=os.path.join(tmp, "out"))
                print(f"{source:8s} {split:6s} {workers:7d} {_rate(loader, args.batches):8.1f}", flush=True)


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
    p.add_argument("--rawframes", action="store_true",
                   help="only compare JPEG frame folders with H.264 on Jester-like clips (see above)")
    args = p.parse_args(argv)
    from ..config import CONFIG_DIR, load_config
    from ..data import create_loader

    tmp = tempfile.mkdtemp(prefix="x3d_bench_")
    if args.rawframes:
        _rawframes_case(args, tmp)
        return 0
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
