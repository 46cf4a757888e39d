"""CPU speed benchmark: this project's X3D (MindSpore, graph mode) against pytorchvideo's in torch.

    python -m src.tools.benchmark [--json OUT] [--models x3d_xs x3d_s] [--threads 2]
    python -m src.tools.benchmark --layers [--baseline]   # per-layer profile of X3D-XS instead
    python -m src.tools.benchmark --ops [--batch 1]       # op-type profile, BN unfolded vs folded

Every configuration (side x model x {forward batch 1, forward batch 8, train step batch 4}) runs
in its own subprocess so its peak RSS is its own; both sides use the same thread count (torch
intra-op threads; MindSpore CPU kernel threads; OpenMP threads of our C++ kernels). Forward is
eval mode; on our side with BatchNorm folded into the convolutions, as ``eval.py``, ``infer.py``
and the export run it (``forward_bn``: the same network unfolded, also measured and reported, not
used in the ratios). A train step is forward + cross-entropy + backward + SGD momentum update (our
side: ``TrainStep``, the cell train.py runs). Times are
medians per clip after warm-up; "compile" is the first call minus a steady call (graph compile
on our side). Ratios are our clips/s divided by torch's clips/s (> 1: we are faster).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional

FRAMES = {"x3d_xs": 4, "x3d_s": 13}
CROP = 160
CONFIGS = (("forward", 1), ("forward", 8), ("train", 4))
OURS_ONLY = (("forward_bn", 1), ("forward_bn", 8))  # eval mode without BatchNorm folding


def _median(xs: List[float]) -> float:
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


def _timed(fn, sync, reps: int, budget_s: float) -> Dict[str, float]:
    t0 = time.perf_counter()
    sync(fn())
    first = time.perf_counter() - t0
    sync(fn())  # second warm-up
    times: List[float] = []
    start = time.perf_counter()
    while len(times) < reps or (len(times) < 3 * reps and time.perf_counter() - start < budget_s):
        t = time.perf_counter()
        sync(fn())
        times.append(time.perf_counter() - t)
        if time.perf_counter() - start > budget_s and len(times) >= 3:
            break
    med = _median(times)
    return {"first_s": first, "step_s": med, "compile_s": max(0.0, first - med), "reps": len(times)}


def _run_ms(model: str, kind: str, batch: int, threads: int, reps: int, budget: float) -> Dict[str, Any]:
    import numpy as np
    import mindspore as ms
    from mindspore import Tensor, nn

    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_device("CPU")
    ms.device_context.cpu.op_tuning.threads_num(threads)
    from src.engine.trainer import TrainStep  # the cell train.py runs
    from src.models import create_x3d, fold_batchnorm
    from src.models.x3d import X3D_VARIANTS

    net = create_x3d(**X3D_VARIANTS[model], num_classes=400)
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((batch, 3, FRAMES[model], CROP, CROP), dtype=np.float32))
    if kind in ("forward", "forward_bn"):
        net.set_train(False)
        if kind == "forward":
            fold_batchnorm(net)
        fwd = ms.jit(net.construct)
        res = _timed(lambda: fwd(x), lambda r: r.asnumpy(), reps, budget)
    else:
        net.set_train(True)
        y = Tensor(rng.integers(0, 400, batch).astype(np.int32))
        opt = nn.Momentum(net.trainable_params(), learning_rate=0.01, momentum=0.9)
        step = TrainStep(net, nn.CrossEntropyLoss(), opt)
        res = _timed(lambda: step(x, y), lambda r: r.asnumpy(), reps, budget)
    from src.models.layers import ChannelwiseConv3d
    impls = sorted({c.impl for _, c in net.cells_and_names() if isinstance(c, ChannelwiseConv3d)})
    res["channelwise_impl"] = ",".join(impls)
    return res


def _run_torch(model: str, kind: str, batch: int, threads: int, reps: int, budget: float) -> Dict[str, Any]:
    import types
    import torch

    torch.set_num_threads(threads)
    if "torchvision" not in sys.modules:  # pytorchvideo imports torchvision.ops; X3D does not use it
        class _Stub(types.ModuleType):
            def __getattr__(self, name: str) -> Any:
                if name.startswith("__"):
                    raise AttributeError(name)
                return type(name, (torch.nn.Module,), {})
        for name in ("torchvision", "torchvision.ops", "torchvision.transforms"):
            sys.modules[name] = _Stub(name)
    from pytorchvideo.models.x3d import create_x3d

    torch.manual_seed(0)
    net = create_x3d(input_clip_length=FRAMES[model], input_crop_size=CROP, depth_factor=2.2,
                     model_num_class=400)
    x = torch.randn(batch, 3, FRAMES[model], CROP, CROP)
    if kind == "forward":
        net.eval()

        def fwd():
            with torch.no_grad():
                return net(x)
        res = _timed(fwd, lambda r: None, reps, budget)
    else:
        net.train()
        y = torch.randint(0, 400, (batch,))
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
        loss_fn = torch.nn.CrossEntropyLoss()

        def step():
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(x), y)
            loss.backward()
            opt.step()
            return loss
        res = _timed(step, lambda r: r.item(), reps, budget)
    return res


def _worker(args: argparse.Namespace) -> None:
    run = _run_ms if args.side == "mindspore" else _run_torch
    res = run(args.model, args.kind, args.batch, args.threads, args.reps, args.budget)
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    res["per_clip_ms"] = 1e3 * res["step_s"] / args.batch
    print("BENCH_RESULT " + json.dumps(res), flush=True)


def torch_available() -> bool:
    """pytorchvideo (and torch) importable?"""
    try:
        import importlib.util
        return bool(importlib.util.find_spec("torch") and importlib.util.find_spec("pytorchvideo"))
    except (ImportError, ValueError):
        return False


def run_config(side: str, model: str, kind: str, batch: int, threads: int, reps: int,
               budget: float) -> Optional[Dict[str, Any]]:
    """One configuration in a fresh subprocess; its result dict, or None if it failed."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), GLOG_v="3")
    cmd = [sys.executable, "-m", "src.tools.benchmark", "--worker", "--side", side, "--model", model,
           "--kind", kind, "--batch", str(batch), "--threads", str(threads), "--reps", str(reps),
           "--budget", str(budget)]
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            return json.loads(line[len("BENCH_RESULT "):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
    print(f"  {side} {model} {kind} b{batch} failed:\n    " + "\n    ".join(tail), file=sys.stderr)
    return None


def machine() -> Dict[str, Any]:
    """A short description of the machine and library versions."""
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version()}
    try:
        import mindspore
        info["mindspore"] = mindspore.__version__
    except ImportError:
        pass
    try:
        import torch
        info["torch"] = torch.__version__
    except ImportError:
        pass
    return info


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--json", help="write results here")
    p.add_argument("--models", nargs="+", default=list(FRAMES), choices=list(FRAMES))
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--reps", type=int, default=5, help="timed repetitions per configuration (at least)")
    p.add_argument("--budget", type=float, default=20.0, help="seconds of timing per configuration")
    p.add_argument("--no-torch", action="store_true", help="skip the torch side")
    p.add_argument("--layers", action="store_true", help="per-layer profile of X3D-XS instead")
    p.add_argument("--ops", action="store_true",
                   help="op-type profile (MindSpore profiler) of the X3D-XS eval forward, unfolded vs folded BN")
    p.add_argument("--baseline", action="store_true",
                   help="with --layers: profile the earlier formulation (channelwise fold, stem im2col)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--side", choices=("mindspore", "torch"), help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--kind", help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, help="with --ops: the batch size (default 1)")
    args = p.parse_args(argv)
    if args.threads < 1:
        p.error(f"--threads must be >= 1, got {args.threads}")
    if args.worker:
        _worker(args)
        return 0
    if args.ops:
        from .layer_profile import op_main
        return op_main(threads=args.threads, batch=args.batch or 1, json_out=args.json)
    if args.layers:
        from .layer_profile import main as layer_main
        return layer_main(threads=args.threads, json_out=args.json, baseline=args.baseline)
    sides = ["mindspore"] + (["torch"] if not args.no_torch and torch_available() else [])
    if len(sides) == 1 and not args.no_torch:
        print("pytorchvideo not installed: measuring this project only", file=sys.stderr)
    out: Dict[str, Any] = {"machine": machine(), "threads": args.threads, "crop": CROP, "models": {}}
    print(f"machine: {out['machine']}  threads: {args.threads}")
    header = f"{'model':8} {'config':14} {'side':10} {'ms/clip':>9} {'compile s':>9} {'peak RSS MB':>11}"
    print(header)
    for model in args.models:
        res: Dict[str, Any] = {"frames": FRAMES[model]}
        runs = [(kind, batch, side) for kind, batch in CONFIGS for side in sides]
        runs += [(kind, batch, "mindspore") for kind, batch in OURS_ONLY]
        for kind, batch, side in runs:
            key = f"{kind}_b{batch}"
            r = run_config(side, model, kind, batch, args.threads, args.reps, args.budget)
            res.setdefault(side, {})[key] = r
            if r:
                print(f"{model:8} {key:14} {side:10} {r['per_clip_ms']:9.1f} {r['compile_s']:9.1f} "
                      f"{r['peak_rss_mb']:11.0f}", flush=True)
        if "torch" in sides:
            for kind, batch in CONFIGS:
                key = f"{kind}_b{batch}"
                ours, theirs = res["mindspore"].get(key), res["torch"].get(key)
                if ours and theirs:
                    res[f"ratio_{key}"] = theirs["per_clip_ms"] / ours["per_clip_ms"]
            fw = [res.get(f"ratio_forward_b{b}") for b in (1, 8)]
            if all(fw):
                # clips/s over both batch sizes: harmonic combination of per-clip times
                ours = sum(res["mindspore"][f"forward_b{b}"]["per_clip_ms"] for b in (1, 8))
                theirs = sum(res["torch"][f"forward_b{b}"]["per_clip_ms"] for b in (1, 8))
                res["forward_ratio"] = theirs / ours
                if all(res["mindspore"].get(f"forward_bn_b{b}") for b in (1, 8)):
                    unfolded = sum(res["mindspore"][f"forward_bn_b{b}"]["per_clip_ms"] for b in (1, 8))
                    res["forward_ratio_bn_unfolded"] = theirs / unfolded
            if res.get("ratio_train_b4"):
                res["train_ratio"] = res["ratio_train_b4"]
            print(f"{model}: forward_ratio {res.get('forward_ratio', float('nan')):.2f} "
                  f"(b1 {fw[0] or float('nan'):.2f}, b8 {fw[1] or float('nan'):.2f}), "
                  f"train_ratio {res.get('train_ratio', float('nan')):.2f}; forward without BN folding "
                  f"{res.get('forward_ratio_bn_unfolded', float('nan')):.2f}", flush=True)
        out["models"][model] = res
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
