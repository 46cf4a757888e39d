"""Classify videos with a trained model: top-k per video, sliding-window timelines, live streams.

    python infer.py VIDEO [VIDEO|DIR ...] (--config CFG --ckpt PATH [--ema] | [--config CFG] --mindir PATH)
                    [--topk 5] [--window SEC [--stride SEC] [--smooth K] [--threshold P]]
                    [--json OUT] [--label-map FILE] [--save-vis OUT.mp4|OUT.gif]
                    [--vis-short-side N] [--device CPU] [KEY=VALUE ...]
    python infer.py --stream SOURCE --config CFG (--ckpt PATH | --mindir PATH) [--window SEC] ...

Each video is scored over ``infer.num_clips`` clips (the model's frames x sampling rate, spread
over the whole video) x ``infer.num_crops`` crops, averaged. ``--window`` adds a timeline: windows
of SEC seconds every ``--stride`` seconds (default: the window), each scored with
``infer.num_clips`` clips x crops, in one decoding pass with memory bounded by a window
(``src/engine/stream.py``); a per-label segment summary merges consecutive windows. ``--save-vis
OUT.mp4`` writes the whole video with the current window's top-k on every frame (``OUT.gif``:
the sampled frames with the top-1); with several videos, OUT without its extension is a folder
with one file per video.

A streamable (causal) model (MoViNet ``model.causal: true``) runs ``--window`` and ``--stream``
one frame per step instead: every model frame (the record's rate, 5 fps for MoViNet) goes once
through the network's stream step with its carried state, and each line/timeline entry is the
probabilities of every frame since the last reset, reset every ``infer.stream_horizon`` model
frames (null: the model's clip length; 0: never); the window and stride are then unused
(``src/engine/stepping.py``, ``docs/streaming.md``).

``--stream SOURCE``: a camera (``/dev/video0`` or ``0``), an RTSP/HTTP URL, a file (played in
real time unless ``--no-realtime``) or ``-`` (MPEG-TS/Matroska bytes on stdin). One line per
window: its end time, top-k and the latency from its last frame to the printed line; frames are
dropped (and counted) when a live source outpaces inference. EOF or Ctrl-C ends with a summary
and exit 0; a stream that breaks mid-way ends with the summary and exit 2.

An exported MINDIR carries its class names and clip geometry (``src.tools.export``), so
``--mindir FILE`` needs no ``--config`` and no ``--label-map``; a config, when given, overrides
them (and a file exported for other clips than it gives is refused in one line).

Unreadable files are reported on one stderr line each and the others are still processed; the
exit code is then 2. Bad arguments, config, weights or an unopenable stream: one ``error:`` line,
exit 2 (as every entry point).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
from typing import Any, Dict, List, Optional, Sequence, Tuple


def route_ctrl_c() -> None:
    """Ctrl-C as a KeyboardInterrupt in the main thread, also while MindSpore runs a graph.

    MindSpore installs its own SIGINT handler around graph runs, which ends the process without
    a word; a stream must instead stop and print its summary. So SIGINT is blocked in this
    thread before MindSpore starts its threads (they inherit the mask), and one thread waits
    for it and interrupts the main thread, which stops at its next Python step."""
    import _thread

    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})

    def wait() -> None:
        while True:
            signal.sigwait({signal.SIGINT})
            _thread.interrupt_main()

    threading.Thread(target=wait, name="ctrl-c", daemon=True).start()


if __name__ == "__main__":
    route_ctrl_c()

import mindspore  # noqa: E402,F401  (before any decord import: the reverse order aborts the process)

from src.cli import ArgumentParser, add_config_args, parse_with_overrides, run_cli
from src.config import DEFAULTS, config_from_args, load_config
from src.context import init_context
from src.data import VIDEO_EXTENSIONS, VideoDecodeError
from src.engine.predict import VideoPredictor
from src.engine.visualise import save_preview_gif, vis_paths, write_annotated_video
from src.errors import UserError


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = ArgumentParser(prog="infer.py", description=__doc__.split("\n")[0])
    p.add_argument("videos", nargs="*", metavar="VIDEO|DIR", help="video files or folders (searched recursively)")
    add_config_args(p, required=False, help="YAML config (e.g. src/config/x3d_xs.yaml); optional with --mindir: "
                                            "the file's own metadata gives the clips and class names")
    weights = p.add_mutually_exclusive_group(required=True)
    weights.add_argument("--ckpt", help="MindSpore checkpoint (e.g. output/demo/last.ckpt)")
    weights.add_argument("--mindir", help="exported MINDIR graph (python -m src.tools.export)")
    p.add_argument("--ema", action="store_true", help="--ckpt: use its EMA weights (trained with train.ema=true)")
    p.add_argument("--topk", type=int, default=None, help="classes to show (default infer.topk)")
    p.add_argument("--window", type=float, default=None,
                   help="timeline window in seconds; 0 = off (default infer.window_seconds; "
                        "--stream: the model's clip duration)")
    p.add_argument("--stride", type=float, default=None,
                   help="seconds between window starts (<= window; default: the window)")
    p.add_argument("--smooth", type=int, default=1,
                   help="average the probabilities of the last K windows (default 1: off)")
    p.add_argument("--threshold", type=float, default=0.0,
                   help='label a window "uncertain" when its top-1 probability is below this (default 0: never)')
    p.add_argument("--json", dest="json_out", help="write the results to this JSON file")
    p.add_argument("--label-map", help="class names: label-map JSON or a text file with one name per line")
    p.add_argument("--save-vis", help="OUT.mp4: each whole video annotated with its windows' top-k; "
                                      "OUT.gif: the sampled frames with the top-1 (several videos: folder OUT/)")
    p.add_argument("--vis-short-side", type=int, default=None,
                   help="--save-vis .mp4: scale the frames to this short side (default: the video's size)")
    p.add_argument("--stream", metavar="SOURCE",
                   help="live input: /dev/videoN or N (camera), rtsp:// or http(s):// URL, "
                        "a file (played in real time) or - (stdin)")
    p.add_argument("--stream-format", default=None,
                   help="--stream: container/device format hint (mpegts, matroska, v4l2)")
    p.add_argument("--fps", type=float, default=None,
                   help="--stream: frame rate to assume (default: the source's, else 30)")
    p.add_argument("--no-realtime", action="store_true",
                   help="--stream FILE: read as fast as possible instead of at the file's own speed")
    p.add_argument("--drop", choices=("auto", "yes", "no"), default="auto",
                   help="--stream: drop frames when inference falls behind "
                        "(auto: yes for cameras, URLs and real-time files, no for stdin)")
    p.add_argument("--timeout", type=float, default=10.0, help="--stream URL: seconds to wait for data (default 10)")
    p.add_argument("--device", default=None, help="CPU, GPU, Ascend or auto (default: context.device_target)")
    args = parse_with_overrides(p, argv)
    if args.config is None and args.mindir is None:
        p.error("--config is required with --ckpt")
    if args.ema and args.ckpt is None:
        p.error("--ema: only with --ckpt (a training checkpoint holds the EMA weights beside the raw ones)")
    if args.stream is None and not args.videos:
        p.error("give VIDEO files/folders or --stream SOURCE")
    if args.stream is not None and args.videos:
        p.error(f"--stream {args.stream}: give either VIDEO files or --stream, not both")
    if args.save_vis and os.path.splitext(args.save_vis)[1].lower() not in (".gif", ".mp4"):
        p.error(f"--save-vis {args.save_vis}: expected a .gif or .mp4 file name")
    if args.save_vis and args.stream is not None:
        p.error("--save-vis: not available with --stream (record the stream to a file and run on that)")
    if args.topk is not None and args.topk < 1:
        p.error(f"--topk {args.topk}: expected >= 1")
    if args.window is not None and args.window < 0:
        p.error(f"--window {args.window:g}: expected >= 0 seconds")
    if args.stride is not None:
        if args.stride <= 0:
            p.error(f"--stride {args.stride:g}: expected > 0 seconds")
        if args.window is not None and args.window > 0 and args.stride > args.window + 1e-9:
            p.error(f"--stride {args.stride:g}: expected <= --window {args.window:g}")
    if args.smooth < 1:
        p.error(f"--smooth {args.smooth}: expected >= 1 windows")
    if not 0.0 <= args.threshold <= 1.0:
        p.error(f"--threshold {args.threshold:g}: expected a probability in [0, 1]")
    if args.vis_short_side is not None and args.vis_short_side < 2:
        p.error(f"--vis-short-side {args.vis_short_side}: expected >= 2 pixels")
    if args.fps is not None and args.fps <= 0:
        p.error(f"--fps {args.fps:g}: expected > 0")
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


def format_topk(topk: Sequence[Dict[str, Any]]) -> str:
    return " | ".join(f"{t['name']} {t['prob']:.3f}" for t in topk)


def format_result(r: Dict[str, Any]) -> str:
    """Human-readable lines for one result."""
    lines = [f"{r['path']}: {r['num_frames']} frames @ {r['fps']:g} fps, {r['num_clips']} clips x "
             f"{r['num_crops']} crops of {r['clip_frames']} frames (sampling rate {r['sampling_rate']:g})"]
    width = max(len(t["name"]) for t in r["topk"])
    for rank, t in enumerate(r["topk"], 1):
        lines.append(f"  {rank}. {t['name']:<{width}}  {t['prob']:.4f}")
    if r.get("timeline"):
        if r.get("per_frame"):
            unit, units = "frames", "model frames"
            lines.append(f"  timeline ({per_frame_header(format(r['model_fps'], 'g'), r['stream_horizon'])}; "
                         f"each line: every frame since the last reset):")
        else:
            unit = units = "windows"
            every = "" if r["stride_seconds"] == r["window_seconds"] else f" every {r['stride_seconds']:g} s"
            lines.append(f"  timeline ({r['window_seconds']:g} s windows{every}):")
        for w in r["timeline"]:
            lines.append(f"    {w['start']:7.2f}-{w['end']:7.2f} s  {w['name']}  {w['prob']:.4f}")
        lines.append("  segments:")
        for g in r["segments"]:
            lines.append(f"    {g['start']:7.2f}-{g['end']:7.2f} s  {g['name']}  "
                         f"({g['windows']} {unit}, mean {g['mean_prob']:.3f})")
        st = r["stats"]
        lines.append(f"  {st['windows']} {units}, {st['frames']} frames decoded, "
                     f"{st['realtime_factor']:.2f}x real time")
    return "\n".join(lines)


def per_frame_header(model_fps: str, horizon: int) -> str:
    """How a streamable model runs: its frame rate and the state's reset horizon."""
    reset = f"state reset every {horizon} frames" if horizon else "state never reset"
    return f"one frame per step at {model_fps} fps, {reset}"


def format_window(e: Dict[str, Any]) -> str:
    """One stream line: the window's end time, its label (or "uncertain"), top-k and latency."""
    return (f"{e['end']:9.2f} s  {e['name']:<12}  {format_topk(e['topk'])}  "
            f"(latency {e['latency_ms']:.0f} ms)")


def format_summary(stats: Any) -> str:
    """The stream's last line: what was processed and how fast (video seconds per wall second)."""
    how = "interrupted" if stats.interrupted else ("stream broke" if stats.error else "end of stream")
    return (f"{how}: {stats.windows} windows, {stats.frames} frames ({stats.dropped} dropped), "
            f"{stats.video_s:.2f} s of video in {stats.wall_s:.2f} s: real-time factor {stats.speed:.2f}x")


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


def write_json(path: str, doc: Dict[str, Any]) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")


def stream_window(predictor: VideoPredictor, window: float) -> float:
    """``--stream`` window when none is given: one clip of the model (at ``target_fps``, else 30 fps)."""
    if window > 0:
        return window
    span = predictor.num_frames * predictor.sampling_rate / float(predictor.target_fps or 30.0)
    return max(0.5, round(span, 1))


def run_stream(args: argparse.Namespace, predictor: VideoPredictor, topk: int, window: float) -> int:
    """``--stream``: one line per window, a summary at the end; exit 0, or 2 if the stream broke."""
    window = stream_window(predictor, window)
    stride = args.stride or window
    if stride > window + 1e-9:
        raise UserError(f"--stride {stride:g}: expected <= the window ({window:g} s)")
    drop = {"auto": None, "yes": True, "no": False}[args.drop]
    if predictor.streamable:  # a causal model: one frame per step with its state, no windows
        rate = (f"{predictor.target_fps / predictor.sampling_rate:g}" if predictor.target_fps
                else f"1/{predictor.sampling_rate:g} of the source's")
        print(f"stream {args.stream}: {per_frame_header(rate, predictor.stream_horizon)} "
              f"(each line: every frame since the last reset)", flush=True)
    else:
        print(f"stream {args.stream}: {window:g} s windows every {stride:g} s, "
              f"{predictor.num_clips} clips x {predictor.num_crops} crops each", flush=True)
    timeline, stats, fps = predictor.stream(
        args.stream, window_seconds=window, stride_seconds=stride, topk=topk, smooth=args.smooth,
        threshold=args.threshold, on_window=lambda e: print(format_window(e), flush=True),
        fmt=args.stream_format, fps=args.fps, realtime=not args.no_realtime, drop=drop, timeout=args.timeout)
    if stats.error:
        error(stats.error)
    print(format_summary(stats), flush=True)
    if args.json_out:
        write_json(args.json_out, {"config": args.config, "weights": predictor.weights, "stream": args.stream,
                                   "fps": fps, "class_names": predictor.names_source, "topk": topk,
                                   "window_seconds": window, "stride_seconds": stride, "smooth": args.smooth,
                                   "threshold": args.threshold, "timeline": timeline.entries,
                                   "segments": timeline.segments(), "stats": stats.to_dict(),
                                   **({"per_frame": True, "model_fps": round(predictor.model_fps_of(fps), 3),
                                       "stream_horizon": predictor.stream_horizon} if predictor.streamable else {})})
    return 2 if stats.error else 0


def save_vis(path: str, out: str, r: Dict[str, Any], frames: Any, short_side: Optional[int]) -> None:
    """The preview of one video: annotated MP4 (whole video) or GIF (its sampled frames)."""
    if out.lower().endswith(".gif"):
        best = r["topk"][0]
        save_preview_gif(frames, f"{best['name']} {best['prob']:.2f}", out)
    else:
        with native_stderr_silenced():
            write_annotated_video(path, out, timeline=r.get("timeline"), topk=r["topk"], short_side=short_side)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.config is None:  # --mindir alone: defaults + overrides; the file's metadata gives the clips
        cfg = load_config(DEFAULTS, list(args.overrides), resolve=False)
    else:
        cfg = config_from_args(args)
    init_context(cfg.context, args.device)
    predictor = VideoPredictor(cfg, ckpt=args.ckpt, mindir=args.mindir, label_map=args.label_map,
                               config_data=args.config is not None, ema=args.ema)
    topk = args.topk if args.topk is not None else int(cfg.infer.get("topk", 5))
    window = args.window if args.window is not None else float(cfg.infer.get("window_seconds", 0.0) or 0.0)
    if args.stream is not None:
        return run_stream(args, predictor, topk, window)
    if args.stride is not None and window > 0 and args.stride > window + 1e-9:
        raise UserError(f"--stride {args.stride:g}: expected <= the window ({window:g} s, infer.window_seconds)")

    inputs = expand_inputs(args.videos)
    outs = vis_paths(args.save_vis, [p for p, bad in inputs if bad is None]) if args.save_vis else {}
    results: List[Dict[str, Any]] = []
    failed = 0
    for path, problem in inputs:
        if problem is None:
            try:
                with native_stderr_silenced():
                    r = predictor.predict(path, topk=topk, window_seconds=window, stride_seconds=args.stride,
                                          smooth=args.smooth, threshold=args.threshold,
                                          return_frames=outs.get(path, "").lower().endswith(".gif"))
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
        if path in outs:
            try:
                save_vis(path, outs[path], r, frames, args.vis_short_side)
                r["vis"] = outs[path]
                print(f"saved {outs[path]}", flush=True)
            except (OSError, ValueError, VideoDecodeError) as e:  # a preview must not lose the predictions
                error(f"{outs[path]}: cannot write preview ({type(e).__name__}: {e})")
                failed += 1
        results.append(r)

    if args.json_out:
        write_json(args.json_out, {"config": args.config, "weights": predictor.weights,
                                   "class_names": predictor.names_source, "topk": topk, "window_seconds": window,
                                   "stride_seconds": (args.stride or window) if window > 0 else None,
                                   "videos": results})
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
