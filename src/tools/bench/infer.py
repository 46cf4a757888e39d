"""Inference benchmark: X3D-XS latency of our deployed path (MINDIR) against onnxruntime and torch eager.

    python -m src.tools.bench infer [--batches 1 8] [--threads 2] [--crop 182] [--json OUT] [KEY=VALUE ...]

Sides, all on the same random input (N, 3, 4, crop, crop) and the same thread count, each timed in
its own worker process (``harness.run_worker``: one runtime's thread pools and memory do not
disturb another's):

* ``mindir`` (ours, deployed on CPU): random X3D-XS weights saved as a checkpoint, exported with
  ``src.tools.export --conv-impl cpp`` (MINDIR holding the C++ CPU kernels, BatchNorm folded,
  verified against the checkpoint; one file per batch size: a fixed batch is how ``infer.py``
  runs it), loaded by the one inference loader (``load_inference_model(cfg, mindir=...)``) and
  timed through ``InferenceModel.predict``.
* ``mindir_banded`` (ours, portable): the same export with the default ``banded`` formulation, the
  file for other machines and backends (no C++ kernels).
* ``ckpt`` (ours, for reference): the checkpoint through the same loader (C++ kernels).
* ``onnxruntime``: pytorchvideo's ``create_x3d`` X3D-XS (the reference implementation) exported
  by ``torch.onnx.export`` (dynamic batch), run by onnxruntime's CPU provider with
  ``intra_op_num_threads`` = threads.
* ``torch``: the same pytorchvideo network in torch eager mode, ``torch.no_grad``.

Our side reads ``src/config/x3d_xs.yaml``; ``KEY=VALUE`` overrides apply to it. Times are medians
per batch after two warm-up calls (ms per clip = batch time / batch), wall clock and process CPU
time (all threads; less sensitive to other jobs on a shared machine). Ratios are their time over
ours (> 1: ours is faster), for both MINDIRs and the checkpoint; the target is >= 1.0 for the
deployed MINDIR against onnxruntime. One run: expect a few percent of noise on a quiet machine.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ...cli import ArgumentParser, parse_with_overrides
from ...errors import UserError
from .harness import ROOT, check_threads, run_worker, time_calls

CONFIG = os.path.join(ROOT, "src", "config", "x3d_xs.yaml")
FRAMES = 4
SIDES = ("mindir", "mindir_banded", "ckpt", "onnxruntime", "torch")
EXPORTS = {"mindir": "cpp", "mindir_banded": "banded"}  # side -> --conv-impl


def clip_batch(batch: int, crop: int, seed: int = 0) -> np.ndarray:
    """The random input every side gets: (batch, 3, FRAMES, crop, crop) float32."""
    return np.random.default_rng(seed).standard_normal((batch, 3, FRAMES, crop, crop)).astype(np.float32)


def _our_config(crop: int, threads: Optional[int] = None, overrides: Sequence[str] = ()) -> Any:
    """x3d_xs.yaml at the benchmark's crop (the exported MINDIR's clip) and thread count, then ``overrides``."""
    from ...config import load_config
    extra = [f"infer.crop_size={crop}"] + ([f"context.cpu_threads={threads}"] if threads else [])
    return load_config(CONFIG, [*extra, *overrides])


# ----------------------------------------------------------------------------------- workers
def _pytorchvideo_net(crop: int) -> Any:
    from ...models.x3d_weights import import_pytorchvideo_create_x3d
    from .torch_ref import require_torch

    torch = require_torch()
    torch.manual_seed(0)
    create_x3d = import_pytorchvideo_create_x3d()
    net = create_x3d(input_clip_length=FRAMES, input_crop_size=crop, model_num_class=400, depth_factor=2.2)
    return net.eval()


def prepare_ours(workdir: str, batches: List[int], crop: int, overrides: Sequence[str] = ()) -> Dict[str, str]:
    """A random-weight X3D-XS checkpoint and verified MINDIR exports per batch size and side (a worker)."""
    import mindspore  # noqa: F401
    from ...context import init_context
    from ...engine.checkpoint import save_checkpoint
    from ...models import build_model
    from ..export import export

    cfg = _our_config(crop, overrides=overrides)
    init_context(cfg.context, "CPU")
    ckpt = save_checkpoint(build_model(cfg.model), os.path.join(workdir, "x3d_xs_random.ckpt"), epoch=0,
                           global_step=0)
    files = {"ckpt": ckpt}
    for b in batches:
        for side, impl in EXPORTS.items():
            out = os.path.join(workdir, f"x3d_xs_{side}_b{b}.mindir")
            export(cfg, ckpt, "MINDIR", out, batch=b, frames=FRAMES, crop=crop, conv_impl=impl)
            files[f"{side}_b{b}"] = out
    return files


def prepare_onnx(workdir: str, crop: int) -> Dict[str, str]:
    """pytorchvideo's X3D-XS exported by torch (dynamic batch; a worker)."""
    import torch

    net = _pytorchvideo_net(crop)
    out = os.path.join(workdir, "x3d_xs_pytorchvideo.onnx")
    torch.onnx.export(net, (torch.from_numpy(clip_batch(1, crop)),), out, input_names=["video"],
                      output_names=["logits"], dynamic_axes={"video": {0: "batch"}, "logits": {0: "batch"}},
                      opset_version=17, dynamo=False)
    return {"onnx": out}


def time_side(side: str, batch: int, threads: int, crop: int, files: Dict[str, str], reps: int,
              budget: float, overrides: Sequence[str] = ()) -> Dict[str, Any]:
    """Time one side at one batch size in this process (a worker)."""
    x = clip_batch(batch, crop)
    if side in ("mindir", "mindir_banded", "ckpt"):
        import mindspore  # noqa: F401
        from ...context import init_context
        from ...engine.inference import load_inference_model

        cfg = _our_config(crop, threads, overrides)
        init_context(cfg.context, "CPU")
        kw = {"ckpt": files["ckpt"]} if side == "ckpt" else {"mindir": files[f"{side}_b{batch}"]}
        model = load_inference_model(cfg, batch_size=batch, **kw)
        res = time_calls(lambda: model.predict(x), reps=reps, budget_s=budget)
    elif side == "onnxruntime":
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(files["onnx"], opts, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        res = time_calls(lambda: sess.run(None, {name: x}), reps=reps, budget_s=budget)
    elif side == "torch":
        import torch

        torch.set_num_threads(threads)
        net = _pytorchvideo_net(crop)
        xt = torch.from_numpy(x)

        def fwd() -> None:
            with torch.no_grad():
                net(xt)
        res = time_calls(fwd, reps=reps, budget_s=budget)
    else:
        raise UserError(f"side {side!r}: expected one of {', '.join(SIDES)}")
    res["per_clip_ms"] = 1e3 * res["median_s"] / batch
    res["batch_ms"] = 1e3 * res["median_s"]
    res["cpu_per_clip_ms"] = 1e3 * res["cpu_median_s"] / batch
    return res


# ----------------------------------------------------------------------------------- driver
def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The inference benchmark's options; ``KEY=VALUE`` words land in ``args.overrides``."""
    p = ArgumentParser(prog="python -m src.tools.bench infer", description=__doc__.split("\n")[0],
                       epilog="Config overrides: dotted KEY=VALUE words, applied to src/config/x3d_xs.yaml (our side)")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8], help="batch sizes (default 1 8)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for every side")
    p.add_argument("--crop", type=int, default=182, help="clip crop size (default 182, X3D-XS's test crop)")
    p.add_argument("--sides", nargs="+", default=list(SIDES), choices=SIDES, help="what to measure")
    p.add_argument("--reps", type=int, default=10, help="timed calls per configuration (at least)")
    p.add_argument("--budget", type=float, default=15.0, help="seconds of timing per configuration")
    p.add_argument("--workdir", default=None,
                   help="keep the exported files here and reuse them on the next run (same --crop; default: a temp folder)")
    p.add_argument("--json", dest="json_out", help="write the results here")
    args = parse_with_overrides(p, argv)
    check_threads(args.threads)
    if any(b < 1 for b in args.batches):
        p.error(f"--batches {args.batches}: expected sizes >= 1")
    if args.crop < 32:
        p.error(f"--crop {args.crop}: expected >= 32")
    if args.reps < 1:
        p.error(f"--reps {args.reps}: expected >= 1")
    return args


def _ratios(results: Dict[str, Dict[str, Any]], batches: Sequence[int]) -> Dict[str, float]:
    ratios: Dict[str, float] = {}
    for mine in ("mindir", "mindir_banded", "ckpt"):
        ours = results.get(mine, {})
        for b in batches:
            for peer in ("onnxruntime", "torch"):
                theirs = results.get(peer, {}).get(f"b{b}")
                if f"b{b}" in ours and theirs:
                    wall = theirs["per_clip_ms"] / ours[f"b{b}"]["per_clip_ms"]
                    cpu = theirs["cpu_per_clip_ms"] / ours[f"b{b}"]["cpu_per_clip_ms"]
                    ratios[f"{peer}/{mine}_b{b}"] = wall
                    ratios[f"{peer}/{mine}_b{b}_cpu"] = cpu
                    print(f"ratio {peer} / ours ({mine}), batch {b}: {wall:.2f}x wall, {cpu:.2f}x CPU time")
    return ratios


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Export once (or reuse ``--workdir``), time every side and batch in a worker, print the ratios."""
    args = parse_args(argv)
    _our_config(args.crop, overrides=args.overrides)  # a bad override is one error line before any work
    threads, overrides = args.threads, list(args.overrides)
    with tempfile.TemporaryDirectory(prefix="bench_infer_") as tmp:
        workdir = os.path.abspath(args.workdir or tmp)  # the workers run in scratch folders
        os.makedirs(workdir, exist_ok=True)
        files: Dict[str, str] = {}
        ours = {"ckpt": os.path.join(workdir, "x3d_xs_random.ckpt"),
                **{f"{side}_b{b}": os.path.join(workdir, f"x3d_xs_{side}_b{b}.mindir")
                   for b in args.batches for side in EXPORTS}}
        onnx = {"onnx": os.path.join(workdir, "x3d_xs_pytorchvideo.onnx")}
        for done in (ours, onnx):  # a --workdir of an earlier run (same --crop): reuse its exports
            if args.workdir and all(os.path.isfile(f) for f in done.values()):
                files.update(done)
        if {"ckpt", *EXPORTS} & set(args.sides) and "ckpt" not in files:
            got = run_worker(f"{__name__}:prepare_ours", {"workdir": workdir, "batches": args.batches,
                                                           "crop": args.crop, "overrides": overrides},
                             threads=threads, label="export X3D-XS")
            if got is None:
                raise UserError("exporting X3D-XS to MINDIR failed (see above)")
            files.update({k: v for k, v in got.items() if k != "peak_rss_mb"})
        if "onnxruntime" in args.sides and "onnx" not in files:
            got = run_worker(f"{__name__}:prepare_onnx", {"workdir": workdir, "crop": args.crop}, threads=threads,
                             label="export pytorchvideo X3D-XS to ONNX")
            if got is not None:
                files["onnx"] = got["onnx"]
        results: Dict[str, Dict[str, Any]] = {}
        print(f"X3D-XS inference, clip {FRAMES}x{args.crop}x{args.crop}, {threads} threads")
        print(f"{'side':12} {'batch':>5} {'ms/clip':>9} {'ms/batch':>9} {'cpu ms/clip':>11} {'reps':>5}")
        for b in args.batches:
            for side in args.sides:
                if side == "onnxruntime" and "onnx" not in files:
                    continue
                r = run_worker(f"{__name__}:time_side",
                               {"side": side, "batch": b, "threads": threads, "crop": args.crop, "files": files,
                                "reps": args.reps, "budget": args.budget, "overrides": overrides},
                               threads=threads, label=f"{side} b{b}")
                if r is None:
                    continue
                results.setdefault(side, {})[f"b{b}"] = r
                print(f"{side:12} {b:5d} {r['per_clip_ms']:9.1f} {r['batch_ms']:9.1f} {r['cpu_per_clip_ms']:11.1f} "
                      f"{r['reps']:5d}", flush=True)
    ratios = _ratios(results, args.batches)
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"threads": threads, "clip": [FRAMES, args.crop], "results": results, "ratios": ratios},
                      f, indent=2)
        print(f"wrote {args.json_out}")
    return 0


__all__ = ["SIDES", "clip_batch", "prepare_ours", "prepare_onnx", "time_side", "parse_args", "main"]
