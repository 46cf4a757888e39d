"""Loader benchmark: clips/s of the train and eval pipelines for the X3D-XS and X3D-M settings with 1 and 2 workers.

    python -m src.tools.bench loader [--data DIR --list FILE] [--videos 8] [--frames 96]
        [--size 320x240] [--batches 6] [--variants xs m] [--workers 1 2] [--mindrecord] [--rawframes]
        [KEY=VALUE ...]

Without ``--data`` it encodes ``--videos`` H.264 clips of ``--size`` into a temporary folder
(removed at the end). Each measurement builds the loader from ``src/config/x3d_<variant>.yaml``
(its sampling, scales and crops), skips one warm-up batch and times ``--batches`` batches of 4
clips (``harness.time_calls``). ``KEY=VALUE`` overrides apply to every config it loads, before
the benchmark's own data set and worker settings. ``--mindrecord`` also times the train pipeline
reading a pre-packed MindRecord file. ``--rawframes`` instead compares frame folders with videos
on Jester-like clips: ``--videos`` synthetic clips of 176x100 and ``--frames`` (use 36, Jester's
mean) frames, written both as JPEG folders (RawFrameList) and as H.264 (VideoList), read with
``src/config/jester.yaml``'s clip (16 frames, sampling_rate = downsample 2, loop padding) and
transforms.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from typing import Any, List, Optional, Sequence

import numpy as np

from ...cli import ArgumentParser, parse_with_overrides
from .harness import time_calls

BATCH = 4


def _make_videos(root: str, n: int, frames: int, width: int, height: int) -> str:
    from ..make_demo_data import encode_mp4, render_video

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
    from ..make_demo_data import encode_mp4, render_video, write_jpegs

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


def clips_per_second(cfg: Any, split: str, batches: int, out_dir: str) -> float:
    """Clips/s of ``cfg``'s ``split`` loader over ``batches`` batches after one warm-up batch (one
    epoch at most: nan when the data set has no batch after the warm-up one)."""
    from ...data import create_loader

    loader = create_loader(cfg, split, batch_size=BATCH, output_dir=out_dir)
    it = loader.dataset.create_tuple_iterator(num_epochs=1, output_numpy=True)
    sizes: List[int] = []
    res = time_calls(lambda: sizes.append(next(it)[0].shape[0]), reps=batches, warmup=1)  # warm-up: worker start-up
    return sum(sizes[1:]) / res["total_s"] if res["reps"] and res["total_s"] > 0 else float("nan")


def _rawframes_case(args: argparse.Namespace, tmp: str) -> None:
    from ...config import CONFIG_DIR, load_config

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
                cfg = load_config(cfg_path, [*args.overrides,
                                             f"data_loader.{split}.dataset={ds}" + (", num_clips: 1}" if split == "eval" else "}"),
                                             f"data_loader.{split}.num_parallel_workers={workers}",
                                             f"data_loader.{split}.python_multiprocessing=true"])
                rate = clips_per_second(cfg, split, args.batches, os.path.join(tmp, "out"))
                print(f"{source:8s} {split:6s} {workers:7d} {rate:8.1f}", flush=True)


def _mindrecord_case(args: argparse.Namespace, variant: str, root: str, ann: str, tmp: str) -> None:
    from ...config import CONFIG_DIR, load_config
    from ...data import build_dataset, pack_mindrecord

    path = os.path.join(CONFIG_DIR, f"x3d_{variant}.yaml")
    cfg = load_config(path, [*args.overrides, f"data_loader.train.dataset={{type: VideoList, root: '{root}', "
                                              f"ann_file: {ann}, num_frames: 4, sampling_rate: 1}}"])
    file = os.path.join(tmp, "bench.mindrecord")
    t0 = time.perf_counter()
    info = pack_mindrecord(build_dataset(cfg, "train"), file)
    videos_mb = sum(os.path.getsize(os.path.join(root, f)) for f in os.listdir(root) if f.endswith(".mp4")) / 2**20
    print(f"packed {info['videos']} videos in {time.perf_counter() - t0:.1f} s, {info['bytes'] / 2**20:.1f} MiB "
          f"(videos: {videos_mb:.1f} MiB)")
    d = load_config(path, list(args.overrides)).data_loader.train.dataset
    for workers in args.workers:
        cfg = load_config(path, [*args.overrides,
                                 f"data_loader.train.dataset={{type: MindRecordVideo, file: '{file}', "
                                 f"num_frames: {d.num_frames}, sampling_rate: {d.sampling_rate}}}",
                                 f"data_loader.train.num_parallel_workers={workers}",
                                 "data_loader.train.python_multiprocessing=true"])
        rate = clips_per_second(cfg, "train", args.batches, os.path.join(tmp, "out"))
        print(f"{variant:8s} {'train*':6s} {workers:7d} {rate:8.1f}   (* MindRecord)", flush=True)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The loader benchmark's options; ``KEY=VALUE`` words land in ``args.overrides``."""
    p = ArgumentParser(prog="python -m src.tools.bench loader", description=__doc__.split("\n")[0],
                       epilog="Config overrides: dotted KEY=VALUE words, applied to every config the benchmark loads")
    p.add_argument("--data", default=None, help="VideoList root (default: synthetic videos)")
    p.add_argument("--list", default="list.txt", help="list file under --data")
    p.add_argument("--videos", type=int, default=8, help="synthetic videos (default 8)")
    p.add_argument("--frames", type=int, default=96, help="frames per synthetic video (default 96)")
    p.add_argument("--size", default="320x240", help="WxH of the synthetic videos")
    p.add_argument("--batches", type=int, default=6, help=f"timed batches of {BATCH} clips (default 6)")
    p.add_argument("--variants", nargs="+", default=["xs", "m"], choices=["xs", "s", "m", "l"])
    p.add_argument("--workers", nargs="+", type=int, default=[1, 2], help="loader worker counts (default 1 2)")
    p.add_argument("--mindrecord", action="store_true", help="also time a MindRecord-packed train set")
    p.add_argument("--rawframes", action="store_true",
                   help="only compare JPEG frame folders with H.264 on Jester-like clips (see above)")
    args = parse_with_overrides(p, argv)
    try:
        args.width, args.height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        p.error(f"--size {args.size!r}: expected WxH, e.g. 320x240")
    if min(args.videos, args.frames, args.batches, args.width, args.height, *args.workers) < 1:
        p.error("--videos, --frames, --batches, --workers and --size must be >= 1")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Time the loaders of every variant, split and worker count (or the --rawframes comparison)."""
    args = parse_args(argv)
    from ...config import CONFIG_DIR, load_config

    first = "jester.yaml" if args.rawframes else f"x3d_{args.variants[0]}.yaml"
    load_config(os.path.join(CONFIG_DIR, first), list(args.overrides))  # a bad override: one error line, before any work
    with tempfile.TemporaryDirectory(prefix="x3d_bench_", ignore_cleanup_errors=True) as tmp:
        if args.rawframes:
            _rawframes_case(args, tmp)
            return 0
        if args.data is None:
            _make_videos(tmp, args.videos, args.frames, args.width, args.height)
            root, ann = tmp, "list.txt"
            print(f"data: {args.videos} synthetic H.264 videos, {args.width}x{args.height}, {args.frames} frames")
        else:
            root, ann = args.data, args.list
        print(f"{'variant':8s} {'split':6s} {'workers':>7s} {'clips/s':>8s}")
        for variant in args.variants:
            path = os.path.join(CONFIG_DIR, f"x3d_{variant}.yaml")
            base = load_config(path, list(args.overrides))
            for split in ("train", "eval"):
                d = base.data_loader[split].dataset
                ds = (f"data_loader.{split}.dataset={{type: VideoList, root: '{root}', ann_file: {ann}, "
                      f"num_frames: {d.num_frames}, sampling_rate: {d.sampling_rate}"
                      + (", num_clips: 1}" if split == "eval" else "}"))
                for workers in args.workers:
                    cfg = load_config(path, [*args.overrides, ds, f"data_loader.{split}.num_parallel_workers={workers}",
                                             f"data_loader.{split}.python_multiprocessing=true"])
                    rate = clips_per_second(cfg, split, args.batches, os.path.join(tmp, "out"))
                    print(f"{variant:8s} {split:6s} {workers:7d} {rate:8.1f}", flush=True)
            if args.mindrecord:
                _mindrecord_case(args, variant, root, ann, tmp)
    return 0


__all__ = ["clips_per_second", "parse_args", "main"]
