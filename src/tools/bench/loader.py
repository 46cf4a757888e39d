"""Loader benchmark: clips/s of the train and eval pipelines for the X3D-XS and X3D-M settings with 1 and 2 workers.

    python -m src.tools.bench loader [--data DIR --list FILE] [--videos 8] [--frames 96]
        [--size 320x240] [--batches 6] [--variants xs m] [--workers 1 2] [--mindrecord] [--rawframes]
        [KEY=VALUE ...]
    python -m src.tools.bench loader --peers [--videos 6] [--frames 300] [--size 340x256] [--crf 23]
        [--keyint 250] [--rounds 3] [--clips 40] [--clips-per-video 1 2] [--no-train-step] [KEY=VALUE ...]

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

``--peers`` compares, in one run on the same videos, our X3D-XS training chain (decode +
transforms, PyAV and decord readers, ``clips_per_video`` K) and the real loader with the peers'
decoding alone (pytorchvideo's EncodedVideo with PyAV and decord, a SlowFast-style PyAV decode),
each case in its own process pinned to one core, the cases interleaved over ``--rounds`` rounds
(so other load hits all alike), plus the X3D-XS train step on one thread
(``bench.models.run_ours``); see ``decode_peers.py``. Its videos are Kinetics-like: ``--size``
340x256, 300 frames at 30 fps, libx264 at its defaults (preset medium, B-frames) with ``--crf``
and a key frame every ``--keyint`` frames.
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


def _make_kinetics_like(root: str, n: int, frames: int, width: int, height: int, crf: int, keyint: int) -> List[str]:
    """``n`` videos as ffmpeg writes Kinetics (libx264 defaults, 30 fps) with a key frame every
    ``keyint`` frames (no scene-cut key frames) and a VideoList ``list.txt``; their paths."""
    import av

    from ..make_demo_data import render_video

    paths, lines = [], []
    for i in range(n):
        clip = render_video(i % 4, np.random.default_rng([23, i]), height, width, frames)
        path = os.path.join(root, f"k{i}.mp4")
        with av.open(path, "w") as out:
            stream = out.add_stream("libx264", rate=30)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.options = {"crf": str(crf), "x264-params": f"keyint={keyint}:scenecut=0"}
            for t, f in enumerate(clip):
                frame = av.VideoFrame.from_ndarray(f, format="rgb24")
                frame.pts = t
                for packet in stream.encode(frame):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
        paths.append(path)
        lines.append(f"k{i}.mp4 {i % 4}")
    with open(os.path.join(root, "list.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return paths


def _spread(values: List[float]) -> str:
    vals = [v for v in values if v == v]
    if not vals:
        return "-"
    med = float(np.median(vals))
    return f"{med:6.1f} [{min(vals):.1f}-{max(vals):.1f}]" if len(vals) > 1 else f"{med:6.1f}"


def _peers_case(args: argparse.Namespace, tmp: str) -> None:
    from .decode_peers import PEERS
    from .harness import run_worker

    videos = _make_kinetics_like(tmp, args.videos, args.frames, args.width, args.height, args.crf, args.keyint)
    mbit = sum(os.path.getsize(p) for p in videos) * 8 / 1e6 / len(videos) / (args.frames / 30)
    print(f"data: {args.videos} H.264 videos {args.width}x{args.height}, {args.frames} frames at 30 fps, libx264 "
          f"crf {args.crf} (preset medium, B-frames), key frame every {args.keyint} frames, {mbit:.2f} Mbit/s; "
          f"X3D-XS train clips: 4 frames x 12 at 30 fps (48-frame span), jitter 182-228, crop 160", flush=True)
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]
    cases = [(f"ours pyav K={k}", {"method": "ours", "decoder": "pyav", "clips_per_video": k, "breakdown": True})
             for k in args.clips_per_video]
    cases += [("ours decord K=1", {"method": "ours", "decoder": "decord", "clips_per_video": 1}),
              ("loader pyav K=1 (1 worker)", {"method": "loader", "decoder": "pyav", "clips_per_video": 1})]
    names = {"pv_pyav": "pytorchvideo pyav (decode)", "pv_decord": "pytorchvideo decord (decode)",
             "slowfast": "SlowFast-style pyav (decode)"}
    cases += [(names[p], {"method": p}) for p in PEERS]
    results: dict = {name: [] for name, _ in cases}
    train: List[float] = []
    print(f"{args.rounds} rounds; every case a fresh process pinned to one core "
          f"(round r: core {cores[0]} / {cores[-1]} alternately); {args.clips} clips per case after 2 warm-up",
          flush=True)
    for r in range(args.rounds):
        core = cores[r % len(cores)]
        order = cases[r % len(cases):] + cases[:r % len(cases)]  # rotate: no case always first
        for name, kw in order:
            res = run_worker("src.tools.bench.decode_peers:run_case",
                             {"root": tmp, "ann": "list.txt", "videos": videos, "clips": args.clips, "warmup": 2,
                              "core": core, "seed": r, "overrides": list(args.overrides), **kw},
                             threads=1, label=name)
            results[name].append(res)
            if res:
                print(f"  round {r + 1} {name:34s} {res['clips_s']:6.1f} clips/s  {res['cpu_clips_s']:6.1f} "
                      f"clips/CPU-s  {res.get('decoded_per_clip', float('nan')):5.0f} decoded frames/clip", flush=True)
        if args.train_step:
            res = run_worker("src.tools.bench.models:run_ours",
                             {"model": "x3d_xs", "kind": "train", "batch": 4, "threads": 1, "reps": 3, "budget": 0.0},
                             threads=1, label="train step")
            if res:
                train.append(4.0 / res["cpu_median_s"])  # 1 thread: CPU time is the per-core time
                print(f"  round {r + 1} X3D-XS train step, batch 4, 1 thread: {train[-1]:.2f} clips/CPU-s "
                      f"({1e3 / res['per_clip_ms']:.2f} clips/s)", flush=True)

    def col(name: str, key: str) -> List[float]:
        return [res.get(key, float("nan")) if res else float("nan") for res in results[name]]

    print(f"\n{'case (median [min-max] over rounds)':36s} {'clips/s/core':>18s} {'clips/CPU-s':>18s} "
          f"{'decoded frames/clip':>20s}")
    for name, _ in cases:
        print(f"{name:36s} {_spread(col(name, 'clips_s')):>18s} {_spread(col(name, 'cpu_clips_s')):>18s} "
              f"{_spread(col(name, 'decoded_per_clip')):>20s}")
    peers = [names[p] for p in PEERS]
    for key, what in (("cpu_clips_s", "clips/CPU-s"), ("clips_s", "clips/s on the pinned core")):
        best = [max((results[p][r][key] for p in peers if results[p][r]), default=float("nan"))
                for r in range(args.rounds)]
        for name, _ in cases[:len(args.clips_per_video)]:
            ratio = [a / b for a, b in zip(col(name, key), best)]
            line = f"{name}, {what}: {_spread(ratio).strip()} x the best peer's decode alone (same round; target >= 1.5)"
            if train:
                line += f", {_spread([a / b for a, b in zip(col(name, key), train)]).strip()} x the train step (target >= 2)"
            print(line)
    if train:
        print(f"X3D-XS train step, batch 4, 1 thread: {_spread(train).strip()} clips/CPU-s")
    first = cases[0][0]
    parts = [res["breakdown"] for res in results[first] if res and "breakdown" in res]
    if parts:
        keys = [k for k in parts[0] if not k.endswith("_per_clip")]
        total = [sum(p[k] for k in keys) for p in parts]
        print(f"\nwhere the time goes, {first} (CPU ms per clip, median over rounds; a separate pass with "
              f"the stages timed apart):")
        for k in keys:
            print(f"  {k:22s} {float(np.median([p[k] for p in parts])):7.2f}")
        print(f"  {'total':22s} {float(np.median(total)):7.2f}   (decoder output "
              f"{float(np.median([p['decoded_per_clip'] for p in parts])):.0f} frames/clip, packets fed "
              f"{float(np.median([p['packets_per_clip'] for p in parts])):.0f})")


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The loader benchmark's options; ``KEY=VALUE`` words land in ``args.overrides``."""
    p = ArgumentParser(prog="python -m src.tools.bench loader", description=__doc__.split("\n")[0],
                       epilog="Config overrides: dotted KEY=VALUE words, applied to every config the benchmark loads")
    p.add_argument("--data", default=None, help="VideoList root (default: synthetic videos)")
    p.add_argument("--list", default="list.txt", help="list file under --data")
    p.add_argument("--videos", type=int, default=None, help="synthetic videos (default 8; --peers 6)")
    p.add_argument("--frames", type=int, default=None, help="frames per synthetic video (default 96; --peers 300)")
    p.add_argument("--size", default=None, help="WxH of the synthetic videos (default 320x240; --peers 340x256)")
    p.add_argument("--batches", type=int, default=6, help=f"timed batches of {BATCH} clips (default 6)")
    p.add_argument("--variants", nargs="+", default=["xs", "m"], choices=["xs", "s", "m", "l"])
    p.add_argument("--workers", nargs="+", type=int, default=[1, 2], help="loader worker counts (default 1 2)")
    p.add_argument("--mindrecord", action="store_true", help="also time a MindRecord-packed train set")
    p.add_argument("--rawframes", action="store_true",
                   help="only compare JPEG frame folders with H.264 on Jester-like clips (see above)")
    p.add_argument("--peers", action="store_true",
                   help="only compare our training chain with the peers' decoding (see above)")
    p.add_argument("--crf", type=int, default=23, help="--peers: libx264 crf (default 23, FFmpeg's)")
    p.add_argument("--keyint", type=int, default=250, help="--peers: frames between key frames (default 250)")
    p.add_argument("--rounds", type=int, default=3, help="--peers: interleaved rounds (default 3)")
    p.add_argument("--clips", type=int, default=40, help="--peers: timed clips per case and round (default 40)")
    p.add_argument("--clips-per-video", type=int, nargs="+", default=[1, 2],
                   help="--peers: our clips_per_video values (default 1 2)")
    p.add_argument("--no-train-step", dest="train_step", action="store_false",
                   help="--peers: skip the X3D-XS train step")
    args = parse_with_overrides(p, argv)
    peers = args.peers
    args.videos = args.videos or (6 if peers else 8)
    args.frames = args.frames or (300 if peers else 96)
    args.size = args.size or ("340x256" if peers else "320x240")
    try:
        args.width, args.height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        p.error(f"--size {args.size!r}: expected WxH, e.g. 320x240")
    if min(args.videos, args.frames, args.batches, args.width, args.height, *args.workers) < 1:
        p.error("--videos, --frames, --batches, --workers and --size must be >= 1")
    if min(args.rounds, args.clips, args.keyint, *args.clips_per_video) < 1 or args.crf < 0:
        p.error("--rounds, --clips, --keyint and --clips-per-video must be >= 1, --crf >= 0")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Time the loaders of every variant, split and worker count (or the --rawframes comparison)."""
    args = parse_args(argv)
    from ...config import CONFIG_DIR, load_config

    first = "jester.yaml" if args.rawframes else f"x3d_{args.variants[0]}.yaml"
    load_config(os.path.join(CONFIG_DIR, first), list(args.overrides))  # a bad override: one error line, before any work
    with tempfile.TemporaryDirectory(prefix="x3d_bench_", ignore_cleanup_errors=True) as tmp:
        if args.peers:
            _peers_case(args, tmp)
            return 0
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
