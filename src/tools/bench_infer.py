"""Inference latency of X3D-XS: our deployed path (MINDIR) against onnxruntime and torch eager.

    python -m src.tools.bench_infer [--batches 1 8] [--threads 2] [--crop 182] [--json OUT]

Sides, all on the same random input (N, 3, 4, crop, crop) and the same thread count, each in its
own subprocess (so one runtime's thread pools and memory do not disturb another's):

* ``mindir`` (ours, deployed on CPU): random X3D-XS weights saved as a checkpoint, exported with
  ``src.tools.export --conv-impl custom`` (MINDIR holding the C++ CPU kernels, BatchNorm folded,
  verified against the checkpoint; one file per batch size: a fixed batch is how ``infer.py``
  runs it), loaded by the one inference loader (``load_inference_model(cfg, mindir=...)``) and
  timed through ``InferenceModel.predict``.
* ``mindir_fold`` (ours, portable): the same export with the default ``fold`` formulation, the
  file for other machines and backends (no C++ kernels).
* ``ckpt`` (ours, for reference): the checkpoint through the same loader (C++ kernels).
* ``onnxruntime``: pytorchvideo's ``create_x3d`` X3D-XS (the reference implementation) exported
  by ``torch.onnx.export`` (dynamic batch), run by onnxruntime's CPU provider with
  ``intra_op_num_threads`` = threads.
* ``torch``: the same pytorchvideo network in torch eager mode, ``torch.no_grad``.

Times are medians per batch after two warm-up calls (ms per clip = batch time / batch), wall clock
and process CPU time (all threads; less sensitive to other jobs on a shared machine). Ratios are
their time over ours (> 1: ours is faster), for both MINDIRs and the checkpoint; the target is
>= 1.0 for the deployed MINDIR against onnxruntime. One run: expect a few percent of noise on a quiet machine.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ..cli import ArgumentParser, run_cli
from ..errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(ROOT, "src", "config", "x3d_xs.yaml")
FRAMES = 4
SIDES = ("mindir", "mindir_fold", "ckpt", "onnxruntime", "torch")
EXPORTS = {"mindir": "custom", "mindir_fold": "fold"}  # side -> --conv-impl
RESULT = "BENCH_INFER "


# ----------------------------------------------------------------------------------- timing
def time_calls(fn: Any, *, reps: int, budget_s: float) -> Dict[str, float]:
    """Median wall seconds of ``fn()`` after two warm-up calls (at least ``reps`` calls, more, up to
    3x, while within ``budget_s`` seconds), and the median process CPU seconds (all threads): on
    a machine shared with other jobs wall time measures the contention, CPU time much less."""
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    fn()
    times: List[float] = []
    cpu: List[float] = []
    start = time.perf_counter()
    while len(times) < reps or (len(times) < 3 * reps and time.perf_counter() - start < budget_s):
        c, t = time.process_time(), time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return {"median_s": float(np.median(times)), "cpu_median_s": float(np.median(cpu)), "first_s": first,
            "reps": len(times)}


def clip_batch(batch: int, crop: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, 3, FRAMES, crop, crop)).astype(np.float32)


# ----------------------------------------------------------------------------------- preparation
def _pytorchvideo_net(crop: int) -> Any:
    from ..models.x3d_weights import import_pytorchvideo_create_x3d
    import torch

    torch.manual_seed(0)
    create_x3d = import_pytorchvideo_create_x3d()
    net = create_x3d(input_clip_length=FRAMES, input_crop_size=crop, model_num_class=400, depth_factor=2.2)
    return net.eval()


def prepare_ours(workdir: str, batches: Sequence[int], crop: int) -> Dict[str, str]:
    """A random-weight X3D-XS checkpoint and verified MINDIR exports per batch size and side."""
    import mindspore  # noqa: F401
    from ..config import load_config
    from ..context import init_context
    from ..engine.checkpoint import save_checkpoint
    from ..models import build_model
    from .export import export

    cfg = load_config(CONFIG)
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


def prepare_onnx(workdir: str, crop: int) -> str:
    """pytorchvideo's X3D-XS exported by torch (dynamic batch)."""
    import torch

    net = _pytorchvideo_net(crop)
    out = os.path.join(workdir, "x3d_xs_pytorchvideo.onnx")
    x = torch.from_numpy(clip_batch(1, crop))
    torch.onnx.export(net, (x,), out, input_names=["video"], output_names=["logits"],
                      dynamic_axes={"video": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17,
                      dynamo=False)
    return out


# ----------------------------------------------------------------------------------- workers
def run_side(side: str, batch: int, threads: int, crop: int, files: Dict[str, str], reps: int,
             budget: float) -> Dict[str, Any]:
    """Time one side at one batch size in this process."""
    x = clip_batch(batch, crop)
    if side in ("mindir", "mindir_fold", "ckpt"):
        import mindspore  # noqa: F401
        from ..config import load_config
        from ..context import init_context
        from ..engine.inference import load_inference_model

        cfg = load_config(CONFIG, [f"context.cpu_threads={threads}"])
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
        raise UserError(f"--side {side}: expected one of {', '.join(SIDES)}")
    res["per_clip_ms"] = 1e3 * res["median_s"] / batch
    res["batch_ms"] = 1e3 * res["median_s"]
    res["cpu_per_clip_ms"] = 1e3 * res["cpu_median_s"] / batch
    return res


def _subprocess(args: List[str], threads: int) -> Optional[Dict[str, Any]]:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), GLOG_v="3")
    proc = subprocess.run([sys.executable, "-m", "src.tools.bench_infer", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT):
            return json.loads(line[len(RESULT):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-4:]
    print(f"  {' '.join(args[:4])} failed:\n    " + "\n    ".join(tail), file=sys.stderr)
    return None


# ----------------------------------------------------------------------------------- driver
def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = ArgumentParser(prog="python -m src.tools.bench_infer", description=__doc__.split("\n")[0])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8], help="batch sizes (default 1 8)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for every side")
    p.add_argument("--crop", type=int, default=182, help="clip crop size (default 182, X3D-XS's test crop)")
    p.add_argument("--sides", nargs="+", default=list(SIDES), choices=SIDES, help="what to measure")
    p.add_argument("--reps", type=int, default=10, help="timed calls per configuration (at least)")
    p.add_argument("--budget", type=float, default=15.0, help="seconds of timing per configuration")
    p.add_argument("--workdir", default=None,
                   help="keep the exported files here and reuse them on the next run (same --crop; default: a temp folder)")
    p.add_argument("--json", dest="json_out", help="write the results here")
    p.add_argument("--worker", choices=("prepare-ours", "prepare-onnx", "time"), help=argparse.SUPPRESS)
    p.add_argument("--side", help=argparse.SUPPRESS)
    p.add_argument("--files", help=argparse.SUPPRESS)
    args = p.parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.threads < 1:
        p.error(f"--threads {args.threads}: expected >= 1")
    if any(b < 1 for b in args.batches):
        p.error(f"--batches {args.batches}: expected sizes >= 1")
    if args.crop < 32:
        p.error(f"--crop {args.crop}: expected >= 32")
    return args


def _worker(args: argparse.Namespace) -> int:
    files = json.loads(args.files) if args.files else {}
    if args.worker == "prepare-ours":
        out: Any = prepare_ours(args.workdir, args.batches, args.crop)
    elif args.worker == "prepare-onnx":
        out = {"onnx": prepare_onnx(args.workdir, args.crop)}
    else:
        out = run_side(args.side, args.batches[0], args.threads, args.crop, files, args.reps, args.budget)
    print(RESULT + json.dumps(out), flush=True)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return _worker(args)
    with tempfile.TemporaryDirectory(prefix="bench_infer_") as tmp:
        workdir = args.workdir or tmp
        os.makedirs(workdir, exist_ok=True)
        common = ["--workdir", workdir, "--crop", str(args.crop), "--threads", str(args.threads)]
        files: Dict[str, str] = {}
        ours = {"ckpt": os.path.join(workdir, "x3d_xs_random.ckpt"),
                **{f"{side}_b{b}": os.path.join(workdir, f"x3d_xs_{side}_b{b}.mindir")
                   for b in args.batches for side in EXPORTS}}
        onnx = {"onnx": os.path.join(workdir, "x3d_xs_pytorchvideo.onnx")}
        for done in (ours, onnx):  # a --workdir of an earlier run (same --crop): reuse its exports
            if args.workdir and all(os.path.isfile(f) for f in done.values()):
                files.update(done)
        if {"ckpt", *EXPORTS} & set(args.sides) and "ckpt" not in files:
            got = _subprocess(["--worker", "prepare-ours", "--batches", *map(str, args.batches), *common],
                              args.threads)
            if got is None:
                raise UserError("exporting X3D-XS to MINDIR failed (see above)")
            files.update(got)
        if "onnxruntime" in args.sides and "onnx" not in files:
            got = _subprocess(["--worker", "prepare-onnx", *common], args.threads)
            if got is not None:
                files.update(got)
        results: Dict[str, Dict[str, Any]] = {}
        print(f"X3D-XS inference, clip {FRAMES}x{args.crop}x{args.crop}, {args.threads} threads")
        print(f"{'side':12} {'batch':>5} {'ms/clip':>9} {'ms/batch':>9} {'cpu ms/clip':>11} {'reps':>5}")
        for b in args.batches:
            for side in args.sides:
                if side == "onnxruntime" and "onnx" not in files:
                    continue
                r = _subprocess(["--worker", "time", "--side", side, "--batches", str(b), "--reps", str(args.reps),
                                 "--budget", str(args.budget), "--files", json.dumps(files), *common], args.threads)
                if r is None:
                    continue
                results.setdefault(side, {})[f"b{b}"] = r
                print(f"{side:12} {b:5d} {r['per_clip_ms']:9.1f} {r['batch_ms']:9.1f} {r['cpu_per_clip_ms']:11.1f} "
                      f"{r['reps']:5d}", flush=True)
    ratios: Dict[str, float] = {}
    for mine in ("mindir", "mindir_fold", "ckpt"):
        ours = results.get(mine, {})
        for b in args.batches:
            for peer in ("onnxruntime", "torch"):
                theirs = results.get(peer, {}).get(f"b{b}")
                if f"b{b}" in ours and theirs:
                    wall = theirs["per_clip_ms"] / ours[f"b{b}"]["per_clip_ms"]
                    cpu = theirs["cpu_per_clip_ms"] / ours[f"b{b}"]["cpu_per_clip_ms"]
                    ratios[f"{peer}/{mine}_b{b}"] = wall
                    ratios[f"{peer}/{mine}_b{b}_cpu"] = cpu
                    print(f"ratio {peer} / ours ({mine}), batch {b}: {wall:.2f}x wall, {cpu:.2f}x CPU time")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"threads": args.threads, "clip": [FRAMES, args.crop], "results": results, "ratios": ratios},
                      f, indent=2)
        print(f"wrote {args.json_out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
