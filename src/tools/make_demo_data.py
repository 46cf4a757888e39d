"""Write the built-in demo data set: H.264 videos of synthetic scenes whose class is only visible
in the motion over time.

Every video shows the same kind of content: a noisy textured background, a few random bars
(random colour, length, position, orientation) and clutter bars that wander (random heading,
the main bars' speed) and spin at random, plus per-frame noise. The class decides only how the
main bars move: translate left / right / up / down (wrapping around the frame; the default four
classes) or, with ``--classes``, spin clockwise / counter-clockwise in place. A
single frame therefore says nothing about the class (horizontal flips would swap classes: keep
``RandomHorizontalFlip`` off). Output, deterministic for a given ``--seed``::

    ROOT/train/<class>/<class>_0000.mp4 ...   ROOT/val/<class>/...
    ROOT/train.txt  ROOT/val.txt              (VideoList: "train/<class>/<file>.mp4 <label>")
    ROOT/label_map.json

With ``--format frames`` (or ``both``) the same frames are also written as JPEG frame folders
``ROOT/train/<class>/<class>_0000/img_00001.jpg ...`` with RawFrameList files
``ROOT/train_frames.txt`` / ``ROOT/val_frames.txt`` (``train/<class>/<clip> <frames> <label>``),
which ``src/config/demo_rawframes.yaml`` reads.

    python -m src.tools.make_demo_data ROOT [--seed 0] [--num-train 100] [--num-val 20]
        [--size 96] [--frames 32] [--fps 25] [--workers 2] [--format video|frames|both]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from ..cli import ArgumentParser, run_cli
from ..outputs import atomic_write

CLASSES = ["move_left", "move_right", "move_up", "move_down", "rotate_clockwise",
           "rotate_counterclockwise"]
# The default demo: the four directions of movement. The two senses of rotation are harder (they
# need features pairing a bar's orientation with its local motion) and did not reach the demo's
# accuracy target within its time budget; ask for them with --classes.
DEFAULT_CLASSES = CLASSES[:4]
_DIRS = {"move_left": (0.0, -1.0), "move_right": (0.0, 1.0), "move_up": (-1.0, 0.0),
         "move_down": (1.0, 0.0)}


def _bars(img, objs: np.ndarray) -> None:
    """Draw bars (y, x, angle, half_len, half_wid, r, g, b) on a PIL image, wrapping around."""
    from PIL import ImageDraw

    w, h = img.size
    draw = ImageDraw.Draw(img)
    for y, x, ang, hl, hw, r, g, b in objs.tolist():  # Python floats: float64 geometry
        y, x = y % h, x % w
        c, s = math.cos(ang), math.sin(ang)
        u, v = np.array([c, s]) * hl, np.array([-s, c]) * hw  # (x, y) half-axes
        corners = np.array([u + v, u - v, -u - v, -u + v])
        reach = np.abs(corners).max(0)
        colour = (int(r), int(g), int(b))
        for oy in (-h, 0, h):
            for ox in (-w, 0, w):
                cx, cy = x + ox, y + oy
                if cx + reach[0] < 0 or cx - reach[0] > w or cy + reach[1] < 0 or cy - reach[1] > h:
                    continue
                draw.polygon([(float(px + cx), float(py + cy)) for px, py in corners], fill=colour)


def render_video(label: int, rng: np.random.Generator, height: int, width: int,
                 num_frames: int) -> np.ndarray:
    """(T, H, W, 3) uint8 frames of one demo video of class ``label``."""
    # background: smooth random texture (low-resolution noise, upsampled), static
    lo = rng.uniform(50, 120, size=(height // 8 + 2, width // 8 + 2, 3)).astype(np.float32)
    bg = np.kron(lo, np.ones((8, 8, 1), np.float32))[:height, :width]
    bg = (bg + np.roll(bg, 4, 0) + np.roll(bg, 4, 1) + np.roll(bg, (4, 4), (0, 1))) / 4

    def make(n: int) -> np.ndarray:
        scale = min(height, width)
        return np.stack([rng.uniform(0, height, n), rng.uniform(0, width, n),
                         rng.uniform(0, np.pi, n), rng.uniform(0.10, 0.18, n) * scale,
                         rng.uniform(0.045, 0.07, n) * scale, rng.uniform(120, 255, n),
                         rng.uniform(60, 255, n), rng.uniform(0, 255, n)], 1)

    main = make(int(rng.integers(5, 8)))
    clutter = make(int(rng.integers(1, 3)))
    name = CLASSES[label]
    speed = rng.uniform(1.8, 2.8) * min(height, width) / 96.0  # pixels per frame
    spin = np.deg2rad(rng.uniform(7.0, 11.0))                    # radians per frame
    if name in _DIRS:
        dy, dx = _DIRS[name]
        jitter = rng.uniform(-0.25, 0.25)  # not exactly axis-aligned
        vel = np.array([dy + jitter * dx, dx + jitter * dy]) * speed
        omega = 0.0
    else:
        vel = np.zeros(2)
        omega = spin if name == "rotate_clockwise" else -spin  # image y points down: +angle = clockwise
    c_vel = rng.normal(0, 1.0, size=(len(clutter), 2)) * speed
    c_spin = rng.normal(0, 1.0, size=len(clutter)) * spin
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    bg_u8 = np.clip(bg, 0, 255).astype(np.uint8)
    for t in range(num_frames):
        img = Image.fromarray(bg_u8)
        # clutter wanders: its heading turns at random, its speed stays that of the main bars
        c_vel += rng.normal(0, 0.3, size=c_vel.shape) * speed
        c_vel *= speed / np.maximum(np.linalg.norm(c_vel, axis=1, keepdims=True), 1e-6)
        clutter[:, 0] += c_vel[:, 0]
        clutter[:, 1] += c_vel[:, 1]
        clutter[:, 2] += c_spin
        _bars(img, clutter)
        m = main.copy()
        m[:, 0] += vel[0] * t
        m[:, 1] += vel[1] * t
        m[:, 2] += omega * t
        _bars(img, m)
        noise = rng.standard_normal((height, width, 1), dtype=np.float32) * 7.0
        frames[t] = np.clip(np.asarray(img, np.float32) + noise, 0, 255).astype(np.uint8)
    return frames


def rgb_to_yuv420(frames: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) uint8 RGB -> (T, H * 3 / 2, W) uint8 planar YUV 4:2:0 (PyAV's ``yuv420p``
    layout), BT.601 limited range, chroma from the mean of each 2 x 2 block. Integer arithmetic
    only, so the result is the same on every CPU (swscale's converters differ between its C and
    SIMD paths)."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[1] % 2 or frames.shape[2] % 2:
        raise ValueError(f"rgb_to_yuv420: expected (T, H, W, 3) frames with even H and W, got {frames.shape}")
    rgb = frames.astype(np.int32)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16
    t, hh, ww = r.shape
    blocks = rgb.reshape(t, hh // 2, 2, ww // 2, 2, 3).sum((2, 4))  # 4 x the 2 x 2 mean
    rs, gs, bs = blocks[..., 0], blocks[..., 1], blocks[..., 2]
    u = ((-38 * rs - 74 * gs + 112 * bs + 512) >> 10) + 128
    v = ((112 * rs - 94 * gs - 18 * bs + 512) >> 10) + 128
    flat = np.concatenate([p.reshape(t, -1) for p in (y, u, v)], axis=1)  # Y, then U, then V
    return flat.reshape(t, hh * 3 // 2, ww).astype(np.uint8)


# x264 settings that make the bytes depend only on the frames: one thread, no lookahead or slice
# threads (its output depends on its thread layout), and its portable C code (asm=0). With its
# AVX-512 code (used by default on CPUs that have it) x264's output depends on what the process
# did before - the same clip encodes differently after other allocations (issue #20;
# tests/tools/test_data_tools.py) - and its other SIMD code picks different encoding decisions
# on CPUs with different instruction sets.
X264_PARAMS = "threads=1:lookahead-threads=1:sliced-threads=0:asm=0"


def encode_mp4(path: str, frames: np.ndarray, fps: int = 25, crf: int = 20) -> None:
    """H.264 (yuv420p) via PyAV with everything that could depend on the CPU or on the process
    pinned: RGB -> YUV in integer arithmetic (``rgb_to_yuv420``), x264 on one thread with its C
    code (``X264_PARAMS``), explicit timestamps. Same frames -> same bytes, on any run, in any
    process, on any x86-64 CPU (tests/tools/test_data_tools.py)."""
    import av

    h, w = frames.shape[1:3]
    yuv = rgb_to_yuv420(frames)
    with av.open(path, "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": str(crf), "threads": "1", "x264-params": X264_PARAMS}
        stream.codec_context.thread_count = 1
        stream.codec_context.thread_type = "NONE"
        for t, plane in enumerate(yuv):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(plane), format="yuv420p")
            frame.pts = t
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


FORMATS = ("video", "frames", "both")


def write_jpegs(folder: str, frames: np.ndarray, quality: int = 90) -> None:
    """Frames as ``folder/img_00001.jpg ...`` (the RawFrameList default names)."""
    os.makedirs(folder, exist_ok=True)
    for k, f in enumerate(frames):
        Image.fromarray(f).save(os.path.join(folder, f"img_{k + 1:05d}.jpg"), quality=quality)


def _job(args: Tuple[str, int, int, int, int, int, int, int, int, str]) -> Tuple[Optional[str], Optional[str]]:
    root, split_id, label, i, seed, height, width, frames, fps, fmt = args
    split = ("train", "val")[split_id]
    name = CLASSES[label]
    rel = f"{split}/{name}/{name}_{i:04d}"
    rng = np.random.default_rng([seed, split_id, label, i])
    clip = render_video(label, rng, height, width, frames)
    video_line = frame_line = None
    if fmt in ("video", "both"):
        encode_mp4(os.path.join(root, rel + ".mp4"), clip, fps)
        video_line = f"{rel}.mp4 {label}"
    if fmt in ("frames", "both"):
        write_jpegs(os.path.join(root, rel), clip)
        frame_line = f"{rel} {len(clip)} {label}"
    return video_line, frame_line


def _parse_size(text: str) -> Tuple[int, int]:
    parts = text.lower().split("x")
    try:
        w, h = (int(parts[0]), int(parts[0])) if len(parts) == 1 else (int(parts[0]), int(parts[1]))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size: expected N or WxH, got {text!r}") from None
    if w % 2 or h % 2 or w < 16 or h < 16:
        raise argparse.ArgumentTypeError(f"--size: H.264 needs even sizes >= 16, got {text!r}")
    return h, w


def make_demo_data(root: str, *, seed: int = 0, num_train: int = 100, num_val: int = 20,
                   height: int = 96, width: int = 96, frames: int = 32, fps: int = 25,
                   workers: int = 1, classes: Optional[Sequence[str]] = None,
                   fmt: str = "video") -> List[str]:
    """Write the demo data set under ``root`` as videos, frame folders or both (``fmt``); returns
    the written list files' paths."""
    from ..data.labels import save_label_map

    if fmt not in FORMATS:
        raise ValueError(f"make_demo_data: fmt must be one of {FORMATS}, got {fmt!r}")
    names = list(classes or DEFAULT_CLASSES)
    labels = [CLASSES.index(n) for n in names]
    for split in ("train", "val"):
        for n in names:
            os.makedirs(os.path.join(root, split, n), exist_ok=True)
    out = []
    for split_id, count in ((0, num_train), (1, num_val)):
        jobs = [(root, split_id, lab, i, seed, height, width, frames, fps, fmt)
                for lab in labels for i in range(count)]
        if workers > 1:
            import multiprocessing as mp
            with mp.get_context("spawn").Pool(workers) as pool:
                pairs = pool.map(_job, jobs, chunksize=8)
        else:
            pairs = [_job(j) for j in jobs]
        for kind, suffix in ((0, ".txt"), (1, "_frames.txt")):
            lines = [p[kind] for p in pairs if p[kind] is not None]
            if not lines:
                continue
            if len(names) != len(CLASSES):  # a subset: relabel 0..k-1 in CLASSES order
                remap = {lab: k for k, lab in enumerate(labels)}
                lines = [f"{l.rsplit(' ', 1)[0]} {remap[int(l.rsplit(' ', 1)[1])]}" for l in lines]
            path = os.path.join(root, ("train", "val")[split_id] + suffix)
            with open(path, "w", encoding="utf-8") as f:
                f.write("\n".join(lines) + "\n")
            out.append(path)
    save_label_map(names, os.path.join(root, "label_map.json"))
    record = {"seed": seed, "num_train": num_train, "num_val": num_val, "size": [width, height],
              "frames": frames, "fps": fps, "format": fmt, "classes": names, "x264_params": X264_PARAMS,
              "libraries": library_versions()}
    atomic_write(os.path.join(root, "generator.json"), json.dumps(record, indent=1) + "\n")
    return out


def library_versions() -> Dict[str, str]:
    """The versions the demo videos' pixels depend on (numpy's random streams, Pillow's polygon
    drawing, the x264/FFmpeg build inside the PyAV wheel): a data set made with other versions
    may differ, so they are written beside it (``generator.json``) to compare two runs."""
    import PIL
    import av
    codec = ".".join(map(str, av.library_versions.get("libavcodec", ())))
    return {"numpy": np.__version__, "Pillow": PIL.__version__, "av": av.__version__, "libavcodec": codec}


def main(argv: Optional[List[str]] = None) -> int:
    p = ArgumentParser(prog="python -m src.tools.make_demo_data",
                       description="Write the synthetic motion demo data set.")
    p.add_argument("root", help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-train", type=int, default=100, help="train videos per class")
    p.add_argument("--num-val", type=int, default=20, help="val videos per class")
    p.add_argument("--size", type=_parse_size, default=(96, 96), help="N (square) or WxH, even")
    p.add_argument("--frames", type=int, default=32, help="frames per video")
    p.add_argument("--fps", type=int, default=25)
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="encoding processes")
    p.add_argument("--classes", nargs="+", choices=CLASSES, default=None,
                   help=f"classes to generate (default: {' '.join(DEFAULT_CLASSES)})")
    p.add_argument("--format", choices=FORMATS, default="video",
                   help="H.264 videos + VideoLists, JPEG frame folders + RawFrameLists, or both")
    args = p.parse_args(argv)
    if args.num_train < 1 or args.num_val < 1 or args.frames < 2:
        print("error: --num-train/--num-val must be >= 1 and --frames >= 2", file=sys.stderr)
        return 2
    t0 = time.time()
    h, w = args.size
    make_demo_data(args.root, seed=args.seed, num_train=args.num_train, num_val=args.num_val,
                   height=h, width=w, frames=args.frames, fps=args.fps, workers=args.workers,
                   classes=args.classes, fmt=args.format)
    n = len(args.classes or DEFAULT_CLASSES)
    kind = {"video": "videos", "frames": "frame folders", "both": "videos and frame folders"}[args.format]
    print(f"wrote {n * (args.num_train + args.num_val)} {kind} ({n} classes, {w}x{h}, "
          f"{args.frames} frames) to {args.root} in {time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
