"""Stream benchmark: per-frame latency of a MoViNet stream network, ours against torch eager.

    python -m src.tools.bench stream [--arch a0] [--size 172] [--frames 30] [--warmup 5] [--threads 2] [--rounds 1] [--json OUT]

Ours: the causal network (600 classes, (2+1)D, BatchNorm folded as ``infer.py`` runs it) built
through ``src.models.build_model``, its ``stream_step()`` compiled in GRAPH mode and called once
per frame with a (1, 3, 1, S, S) frame and the carried state, exactly what ``infer.py --stream``
runs. Torch: the facts-sheet re-implementation of the same network
(``src/tools/bench/torch_ref/movinet.py``, the port's modules and layout) in eager mode under
``torch.inference_mode``, fed the same one-frame chunk through its causal whole-clip forward: the
same convolutions as a stream step (its causal zero padding of kt - 1 frames stands where the
stream concatenates its buffer), without the state bookkeeping (buffer concatenation, running
sums), so torch is timed slightly in its favour. The reference has no stream state of its own.

Each side runs in its own worker process with the same thread count (``harness.run_worker``),
one after the other (``--rounds R``: R such pairs, alternating, summarised by the median of the
per-round ratios): ``--warmup`` untimed frames (ours: the first one compiles), then ``--frames``
frames, each timed alone (wall clock; and process CPU time, all threads: less sensitive to other
jobs on a shared machine). Reported: median, mean, p90 and min per frame, the median CPU time, the
compile time, peak RSS, the ratio torch / ours of the medians (> 1: ours is faster) and the
load average before and after (the machine may be shared).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Any, Dict, List, Optional, Sequence

from ...cli import ArgumentParser
from .harness import check_threads, graph_mode_cpu, machine, run_worker
from .torch_ref import torch_available

TORCH_REF = "src.tools.bench.torch_ref.movinet"


def _summary(times: List[float], cpu: List[float]) -> Dict[str, float]:
    ordered = sorted(times)
    return {"median_ms": 1e3 * statistics.median(times), "mean_ms": 1e3 * statistics.fmean(times),
            "cpu_median_ms": 1e3 * statistics.median(cpu),
            "p90_ms": 1e3 * ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))],
            "min_ms": 1e3 * ordered[0], "frames": len(times)}


def ours(arch: str, size: int, frames: int, warmup: int, threads: int) -> Dict[str, Any]:
    """Our stream step in GRAPH mode: per-frame times with the state carried (worker)."""
    import numpy as np
    import mindspore as ms
    from ...models import build_model, fold_batchnorm

    graph_mode_cpu(threads)
    net = build_model({"type": f"movinet_{arch}", "num_classes": 600, "causal": True, "conv_type": "2plus1d",
                       "crop_size": size})
    net.set_train(False)
    fold_batchnorm(net)
    step = net.stream_step()
    states = net.init_states(1, size, size)
    rng = np.random.default_rng(0)
    clips = [ms.Tensor(rng.random((1, 3, 1, size, size), dtype=np.float32)) for _ in range(4)]
    t0 = time.perf_counter()
    out = step(clips[0], *states)
    out[0].asnumpy()
    first = time.perf_counter() - t0
    for i in range(max(0, warmup - 1)):
        out = step(clips[i % 4], *out[1:])
        out[0].asnumpy()
    times, cpu = [], []
    for i in range(frames):
        c, t = time.process_time(), time.perf_counter()
        out = step(clips[i % 4], *out[1:])
        out[0].asnumpy()
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    result = _summary(times, cpu)
    result["compile_s"] = first - result["median_ms"] / 1e3
    result["states"] = len(states)
    return result


def torch_side(arch: str, size: int, frames: int, warmup: int, threads: int) -> Dict[str, Any]:
    """The torch reference's causal forward on one frame per call, eager (worker)."""
    import importlib
    import torch

    torch.set_num_threads(threads)
    ref = importlib.import_module(TORCH_REF)
    net = ref.MoViNetRef(arch, causal=True, conv_type="2plus1d", num_classes=600).eval()
    gen = torch.Generator().manual_seed(0)
    clips = [torch.rand((1, 3, 1, size, size), generator=gen) for _ in range(4)]
    times, cpu = [], []
    with torch.inference_mode():
        for i in range(warmup):
            net(clips[i % 4])
        for i in range(frames):
            c, t = time.process_time(), time.perf_counter()
            net(clips[i % 4])
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
    return _summary(times, cpu)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = ArgumentParser(prog="python -m src.tools.bench stream", description=__doc__.split("\n")[0])
    p.add_argument("--arch", default="a0", choices=("a0", "a1", "a2"), help="MoViNet variant (default a0)")
    p.add_argument("--size", type=int, default=172, help="frame size S (default 172, the A0/A1 record's)")
    p.add_argument("--frames", type=int, default=30, help="timed frames per side (default 30)")
    p.add_argument("--warmup", type=int, default=5, help="untimed frames first (default 5; ours: compiles)")
    p.add_argument("--threads", type=int, default=2, help="threads on both sides (default 2)")
    p.add_argument("--rounds", type=int, default=1,
                   help="alternate the two sides this many times, each a fresh pair of workers (default 1); "
                        "the summary is the median of the per-round ratios (a shared machine's speed drifts "
                        "between runs)")
    p.add_argument("--no-torch", action="store_true", help="measure ours only")
    p.add_argument("--json", dest="json_out", help="write the results to this JSON file")
    args = p.parse_args(argv)
    check_threads(args.threads)
    if args.frames < 1 or args.size < 32 or args.rounds < 1:
        p.error("need --frames >= 1, --size >= 32 and --rounds >= 1")
    return args


def _measure(kw: Dict[str, Any], threads: int, with_torch: bool) -> Dict[str, Any]:
    """One round: ours, then (if asked) torch, each in a fresh worker."""
    rows: Dict[str, Any] = {"ours": run_worker("src.tools.bench.stream:ours", kw, threads=threads, label="ours")}
    if with_torch:
        rows["torch"] = run_worker("src.tools.bench.stream:torch_side", kw, threads=threads, label="torch")
    return rows


def _print_rows(rows: Dict[str, Any], prefix: str = "") -> bool:
    names = {"ours": "ours (MindSpore GRAPH, stream_step)", "torch": "torch eager (reference, t=1 chunk)"}
    for side, r in rows.items():
        if not r or "median_ms" not in r:
            print(f"{prefix + names[side]:<36} failed")
            continue
        comp = f"{r['compile_s']:.1f}" if "compile_s" in r else "-"
        print(f"{prefix + names[side]:<36}{r['median_ms']:>10.1f}{r['mean_ms']:>9.1f}{r['p90_ms']:>8.1f}"
              f"{r['min_ms']:>8.1f}{r['cpu_median_ms']:>8.1f}{comp:>11}{r['peak_rss_mb']:>9.0f}")
    ok = all(r and "median_ms" in r for r in rows.values())
    if ok and "torch" in rows:
        t, o = rows["torch"], rows["ours"]
        print(f"{prefix}torch / ours, median per frame: {t['median_ms'] / o['median_ms']:.2f}x wall, "
              f"{t['cpu_median_ms'] / o['cpu_median_ms']:.2f}x CPU time")
    return ok


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    kw = {"arch": args.arch, "size": args.size, "frames": args.frames, "warmup": max(1, args.warmup),
          "threads": args.threads}
    with_torch = not args.no_torch and torch_available()
    if not args.no_torch and not with_torch:
        print("torch is not installed: ours only (pip install torch==2.13.0, CPU build)")
    load_before = os.getloadavg()
    rounds = [_measure(kw, args.threads, with_torch) for _ in range(args.rounds)]
    load_after = os.getloadavg()
    print(f"MoViNet-{args.arch.upper()} stream, {args.size}x{args.size}, one frame per step, batch 1, "
          f"{args.threads} threads, {args.frames} frames after {kw['warmup']} warm-up"
          + (f", {args.rounds} rounds (ours, torch, ours, torch, ...)" if args.rounds > 1 else ""))
    print(f"{'side':<36}{'median ms':>10}{'mean ms':>9}{'p90 ms':>8}{'min ms':>8}{'CPU ms':>8}{'compile s':>11}"
          f"{'RSS MiB':>9}")
    ok = True
    for k, rows in enumerate(rounds):
        ok = _print_rows(rows, f"{k + 1}: " if args.rounds > 1 else "") and ok
    if ok and with_torch and args.rounds > 1:
        wall = [r["torch"]["median_ms"] / r["ours"]["median_ms"] for r in rounds]
        cpu = [r["torch"]["cpu_median_ms"] / r["ours"]["cpu_median_ms"] for r in rounds]
        print(f"torch / ours over {args.rounds} rounds, median of the per-round ratios: "
              f"{statistics.median(wall):.2f}x wall (range {min(wall):.2f}-{max(wall):.2f}), "
              f"{statistics.median(cpu):.2f}x CPU time (range {min(cpu):.2f}-{max(cpu):.2f})")
    print("load average (1/5/15 min) before: {:.2f} {:.2f} {:.2f}; after: {:.2f} {:.2f} {:.2f}; cores: {}".format(
        *load_before, *load_after, os.cpu_count()))
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as f:
            json.dump({"args": vars(args), "machine": machine(), "load_before": load_before,
                       "load_after": load_after, "results": rounds[-1], "rounds": rounds}, f, indent=1)
            f.write("\n")
    return 0 if ok else 1


__all__ = ["ours", "torch_side", "main", "parse_args"]
