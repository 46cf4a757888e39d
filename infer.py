"""Classify videos with a trained model: top-k classes per video, optional timeline, JSON and a preview.

    python infer.py VIDEO [VIDEO|DIR ...] --config CFG (--ckpt PATH | --mindir PATH)
                    [--topk 5] [--window SEC] [--json OUT] [--label-map FILE]
                    [--save-vis OUT.gif|OUT.mp4] [--device CPU] [KEY=VALUE ...]

Each video is scored over ``infer.num_clips`` clips (the model's frames x sampling rate, spread
over the whole video) x ``infer.num_crops`` crops, averaged. Unreadable files are reported on
one stderr line each and the others are still processed; the exit code is then 2. Bad
arguments, config or weights: one ``error:`` line, exit 2 (as every entry point).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

import mindspore  # noqa: F401  (before any decord import: the reverse order aborts the process)

from src.cli import ArgumentParser, add_config_args, parse_with_overrides, run_cli
from src.config import config_from_args
from src.context import init_context
from src.data import VIDEO_EXTENSIONS, VideoDecodeError
from src.engine.predict import VideoPredictor


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = ArgumentParser(prog="infer.py", description=__doc__.split("\n")[0])
    p.add_argument("videos", nargs="+", metavar="VIDEO|DIR", help="video files or folders (searched recursively)")
    add_config_args(p)
    weights = p.add_mutually_exclusive_group(required=True)
    weights.add_argument("--ckpt", help="MindSpore checkpoint (e.g. output/demo/last.ckpt)")
    weights.add_argument("--mindir", help="exported MINDIR graph (python -m src.tools.export)")
    p.add_argument("--topk", type=int, default=None, help="classes to show (default infer.topk)")
    p.add_argument("--window", type=float, default=None,
                   help="timeline window in seconds; 0 = off (default infer.window_seconds)")
    p.add_argument("--json", dest="json_out", help="write the results to this JSON file")
    p.add_argument("--label-map", help="class names: label-map JSON or a text file with one name per line")
    p.add_argument("--save-vis", help="first video's sampled frames with the top-1 label, as .gif or .mp4")
    p.add_argument("--device", default=None, help="CPU, GPU, Ascend or auto (default: context.device_target)")
    args = parse_with_overrides(p, argv)
    if args.save_vis and os.path.splitext(args.save_vis)[1].lower() not in (".gif", ".mp4"):
        p.error(f"--save-vis {args.save_vis}: expected a .gif or .mp4 file name")
    if args.topk is not None and args.topk < 1:
        p.error(f"--topk {args.topk}: expected >= 1")
    return args


def expand_inputs(items: Sequence[str]) -> List[Tuple[str, Optional[str]]]:
    """``(path, error)`` per video: folders become their video files (sorted, recursive);
    a folder without videos is an error entry."""
    out: List[Tuple[str, Optional[str]]] = []
    for item in items:
        if not os.path.isdir(item):
            out.append((item, None))
            continue
        found = sorted(os.path.join(d, f) for d, _, files in os.walk(item) for f in files
                       if os.path.splitext(f)[1].lower() in VIDEO_EXTENSIONS)
        if found:
            out.extend((f, None) for f in found)
        else:
            out.append((item, f"folder contains no video files ({', '.join(sorted(VIDEO_EXTENSIONS))})"))
    return out


def format_result(r: Dict[str, Any]) -> str:
    """Human-readable lines for one result."""
    lines = [f"{r['path']}: {r['num_frames']} frames @ {r['fps']:g} fps, {r['num_clips']} clips x "
             f"{r['num_crops']} crops of {r['clip_frames']} frames (sampling rate {r['sampling_rate']:g})"]
    width = max(len(t["name"]) for t in r["topk"])
    for rank, t in enumerate(r["topk"], 1):
        lines.append(f"  {rank}. {t['name']:<{width}}  {t['prob']:.4f}")
    if r.get("timeline"):
        lines.append(f"  timeline ({r['window_seconds']:g} s windows):")
        for w in r["timeline"]:
            lines.append(f"    {w['start']:7.2f}-{w['end']:7.2f} s  {w['name']}  {w['prob']:.4f}")
    return "\n".join(lines)


def save_visualisation(frames: np.ndarray, text: str, path: str, fps: float = 8.0) -> str:
    """Draw ``text`` on each frame (upscaled so the label is legible) and write a GIF (PIL)
    or an MP4 (PyAV, H.264)."""
    from PIL import Image, ImageDraw

    h, w = frames.shape[1:3]
    scale = max(1, int(np.ceil(256 / max(1, min(h, w)))))
    images = []
    for f in frames:
        img = Image.fromarray(f).resize((w * scale, h * scale), Image.NEAREST)
        draw = ImageDraw.Draw(img)
        box = draw.textbbox((4, 4), text)
        draw.rectangle((box[0] - 2, box[1] - 2, box[2] + 2, box[3] + 2), fill=(0, 0, 0))
        draw.text((4, 4), text, fill=(255, 255, 0))
        images.append(img)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if path.lower().endswith(".gif"):
        images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
        return path
    import av

    W, H = images[0].size
    W, H = W - W % 2, H - H % 2  # H.264 with yuv420p needs even sizes
    with av.open(path, "w") as out:
        stream = out.add_stream("libx264", rate=int(round(fps)))
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for img in images:
            arr = np.ascontiguousarray(np.asarray(img)[:H, :W])
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


@contextlib.contextmanager
def native_stderr_silenced():
    """Send file descriptor 2 to /dev/null while decoding: FFmpeg and decord print their own
    multi-line complaints about broken files, and the one-line error below says it all."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def error(message: str) -> None:
    """One line for a video that could not be processed (the run goes on with the others)."""
    print(f"error: {message}", file=sys.stderr, flush=True)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    cfg = config_from_args(args)
    init_context(cfg.context, args.device)
    predictor = VideoPredictor(cfg, ckpt=args.ckpt, mindir=args.mindir, label_map=args.label_map)
    topk = args.topk if args.topk is not None else int(cfg.infer.get("topk", 5))
    window = args.window if args.window is not None else float(cfg.infer.get("window_seconds", 0.0) or 0.0)

    results: List[Dict[str, Any]] = []
    failed = 0
    for path, problem in expand_inputs(args.videos):
        if problem is None:
            try:
                want_frames = bool(args.save_vis) and not any("topk" in r for r in results)
                with native_stderr_silenced():
                    r = predictor.predict(path, topk=topk, window_seconds=window, return_frames=want_frames)
            except VideoDecodeError as e:
                problem = e.reason
        if problem is not None:
            failed += 1
            error(f"{path}: {problem}")
            results.append({"path": path, "error": problem})
            continue
        frames = r.pop("frames", None)
        r.pop("probs", None)
        print(format_result(r), flush=True)
        if frames is not None:
            best = r["topk"][0]
            try:
                save_visualisation(frames, f"{best['name']} {best['prob']:.2f}", args.save_vis)
                print(f"saved {args.save_vis}", flush=True)
            except Exception as e:  # a preview must not lose the predictions
                error(f"{args.save_vis}: cannot write preview ({type(e).__name__}: {e})")
                failed += 1
        results.append(r)

    if args.json_out:
        doc = {"config": args.config, "weights": predictor.weights, "class_names": predictor.names_source,
               "topk": topk, "window_seconds": window, "videos": results}
        os.makedirs(os.path.dirname(os.path.abspath(args.json_out)), exist_ok=True)
        with open(args.json_out, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1, ensure_ascii=False)
            f.write("\n")
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
