"""CPU speed benchmark: this project's networks (MindSpore, graph mode) against the same networks in torch.

    python -m src.tools.benchmark [--json OUT] [--models x3d_xs e3d_resnet18 ...] [--threads 2]
    python -m src.tools.benchmark --layers [--baseline]   # per-layer profile of X3D-XS instead
    python -m src.tools.benchmark --ops [--batch 1]       # op-type profile, BN unfolded vs folded

Models (``MODELS``): X3D-XS/S against pytorchvideo's; the Efficient-3DCNNs (MobileNetV2 1.0x,
ShuffleNetV2 1.0x, ResNet-18 shortcut A by default; MobileNet, ShuffleNet g3, SqueezeNet 1.1 and
ResNeXt-101 on request, 600 classes) against our torch references in ``tests/helpers`` (a model
whose reference file is missing runs on our side only, with a note). Every network is built
through ``src.models.build_model`` and fed the clip of its ``pretrained_cfg``.

Every configuration (side x model x {forward batch 1, forward batch 8, train step: batch 4 for
X3D, 8 for the others}) runs in its own subprocess so its peak RSS is its own; both sides use the
same thread count (torch intra-op threads; MindSpore CPU kernel threads; threads of our C++
kernels). Forward is eval mode; on our side with BatchNorm folded into the convolutions, as
``eval.py``, ``infer.py`` and the export run it (``forward_bn``: the same network unfolded, also
measured and reported, not used in the ratios). A train step is forward + cross-entropy +
backward + SGD momentum update (our side: ``TrainStep``, the cell train.py runs). Times are
medians per clip after warm-up; "compile" is the first call minus a steady call (graph compile
on our side). Ratios are torch's time per clip divided by ours (> 1: we are faster).
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
from typing import Any, Dict, List, Optional, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
E3D_LIGHT = "tests.helpers.e3d_torch_ref_light"  # torch references (benchmark only, never a runtime dependency)
E3D_HEAVY = "tests.helpers.e3d_torch_ref_heavy"

# name -> how to build it on each side. ``build``: the config's ``model`` section for
# ``src.models.build_model`` (clip geometry then comes from ``net.pretrained_cfg``); ``torch``:
# (module, builder, kwargs) of the torch network (pytorchvideo, or our references under tests/);
# ``train_batch``: the train-step batch size.
MODELS: Dict[str, Dict[str, Any]] = {
    "x3d_xs": {"build": {"type": "x3d_xs", "num_classes": 400}, "train_batch": 4,
               "torch": ("pytorchvideo.models.x3d", "create_x3d", {"depth_factor": 2.2, "model_num_class": 400})},
    "x3d_s": {"build": {"type": "x3d_s", "num_classes": 400}, "train_batch": 4,
              "torch": ("pytorchvideo.models.x3d", "create_x3d", {"depth_factor": 2.2, "model_num_class": 400})},
    "e3d_mobilenetv2": {"build": {"type": "e3d_mobilenetv2", "width_mult": 1.0, "num_classes": 600},
                        "train_batch": 8,
                        "torch": (E3D_LIGHT, "MobileNetV2", {"width_mult": 1.0, "num_classes": 600})},
    "e3d_shufflenetv2": {"build": {"type": "e3d_shufflenetv2", "width_mult": 1.0, "num_classes": 600},
                         "train_batch": 8,
                         "torch": (E3D_LIGHT, "ShuffleNetV2", {"width_mult": 1.0, "num_classes": 600})},
    "e3d_resnet18": {"build": {"type": "e3d_resnet", "depth": 18, "shortcut": "A", "num_classes": 600},
                     "train_batch": 8,
                     "torch": (E3D_HEAVY, "resnet", {"depth": 18, "shortcut": "A", "num_classes": 600})},
    # not in the default run (measure with --models)
    "e3d_mobilenet": {"build": {"type": "e3d_mobilenet", "width_mult": 1.0, "num_classes": 600},
                      "train_batch": 8, "torch": (E3D_LIGHT, "MobileNet", {"width_mult": 1.0, "num_classes": 600})},
    "e3d_shufflenet": {"build": {"type": "e3d_shufflenet", "groups": 3, "width_mult": 1.0, "num_classes": 600},
                       "train_batch": 8,
                       "torch": (E3D_LIGHT, "ShuffleNet", {"groups": 3, "width_mult": 1.0, "num_classes": 600})},
    "e3d_squeezenet": {"build": {"type": "e3d_squeezenet", "version": "1.1", "num_classes": 600},
                       "train_batch": 8, "torch": (E3D_HEAVY, "squeezenet", {"version": "1.1", "num_classes": 600})},
    "e3d_resnext101": {"build": {"type": "e3d_resnext", "depth": 101, "cardinality": 32, "num_classes": 600},
                       "train_batch": 8,
                       "torch": (E3D_HEAVY, "resnext", {"depth": 101, "cardinality": 32, "num_classes": 600})},
}
DEFAULT_MODELS = ("x3d_xs", "x3d_s", "e3d_mobilenetv2", "e3d_shufflenetv2", "e3d_resnet18")
OURS_ONLY = (("forward_bn", 1), ("forward_bn", 8))  # eval mode without BatchNorm folding


def configs(model: str) -> Tuple[Tuple[str, int], ...]:
    """(kind, batch) pairs measured on both sides for ``model``."""
    return (("forward", 1), ("forward", 8), ("train", MODELS[model]["train_batch"]))


def geometry(model: str) -> Tuple[int, int, int]:
    """(num_classes, num_frames, crop_size) from the variant's default record, without building it."""
    from src.models.base import resolve_pretrained_cfg
    spec = dict(MODELS[model]["build"])
    cfg = resolve_pretrained_cfg(spec.pop("type"), spec)
    return cfg.num_classes, cfg.num_frames, cfg.crop_size


def torch_reference_missing(model: str) -> Optional[str]:
    """Why the torch side of ``model`` cannot run (None: it can)."""
    import importlib.util
    module = MODELS[model]["torch"][0]
    if module.startswith("tests."):
        path = os.path.join(ROOT, *module.split(".")) + ".py"
        return None if os.path.exists(path) else f"torch reference {os.path.relpath(path, ROOT)} not found"
    try:
        return None if importlib.util.find_spec(module.split(".")[0]) else f"{module.split('.')[0]} not installed"
    except (ImportError, ValueError):
        return f"{module} not importable"


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
    from src.models import build_model
    from src.models.layers import ChannelwiseConv3d, Conv3d

    net = build_model(dict(MODELS[model]["build"]))
    cfg = getattr(net, "pretrained_cfg", None)
    classes = cfg.num_classes if cfg else net.num_classes
    frames, crop = (cfg.num_frames, cfg.crop_size) if cfg else (net.num_frames, net.crop_size)
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((batch, 3, frames, crop, crop), dtype=np.float32))
    if kind in ("forward", "forward_bn"):
        from src.engine.inference import build_eval_net  # the one inference loader's network
        net = build_eval_net(dict(MODELS[model]["build"]), fold_bn=kind == "forward")
        fwd = ms.jit(net.construct)
        res = _timed(lambda: fwd(x), lambda r: r.asnumpy(), reps, budget)
    else:
        net.set_train(True)
        y = Tensor(rng.integers(0, classes, batch).astype(np.int32))
        opt = nn.Momentum(net.trainable_params(), learning_rate=0.01, momentum=0.9)
        step = TrainStep(net, nn.CrossEntropyLoss(), opt)
        res = _timed(lambda: step(x, y), lambda r: r.asnumpy(), reps, budget)
    cells = [c for _, c in net.cells_and_names()]
    res["channelwise_impl"] = ",".join(sorted({c.impl for c in cells if isinstance(c, ChannelwiseConv3d)}))
    res["conv3d_impl"] = ",".join(sorted({c.impl for c in cells if isinstance(c, Conv3d)}))
    res["batchnorms"] = sum(isinstance(c, (nn.BatchNorm2d, nn.BatchNorm3d)) for c in cells)
    res["clip"] = [frames, crop]
    return res


def _torch_net(model: str, frames: int, crop: int):
    import importlib
    import types
    import torch

    module, builder, kwargs = MODELS[model]["torch"]
    if module.startswith("pytorchvideo") and "torchvision" not in sys.modules:
        # pytorchvideo imports torchvision.ops; X3D does not use it
        class _Stub(types.ModuleType):
            def __getattr__(self, name: str) -> Any:
                if name.startswith("__"):
                    raise AttributeError(name)
                return type(name, (torch.nn.Module,), {})
        for name in ("torchvision", "torchvision.ops", "torchvision.transforms"):
            sys.modules[name] = _Stub(name)
        kwargs = dict(kwargs, input_clip_length=frames, input_crop_size=crop)
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    return getattr(importlib.import_module(module), builder)(**kwargs)


def _run_torch(model: str, kind: str, batch: int, threads: int, reps: int, budget: float,
               geom: Tuple[int, int, int]) -> Dict[str, Any]:
    import torch

    torch.set_num_threads(threads)
    classes, frames, crop = geom
    torch.manual_seed(0)
    net = _torch_net(model, frames, crop)
    x = torch.randn(batch, 3, frames, crop, crop)
    if kind == "forward":
        net.eval()

        def fwd():
            with torch.no_grad():
                return net(x)
        res = _timed(fwd, lambda r: None, reps, budget)
    else:
        net.train()
        y = torch.randint(0, classes, (batch,))
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
        loss_fn = torch.nn.CrossEntropyLoss()

        def step():
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(x), y)
            loss.backward()
            opt.step()
            return loss
        res = _timed(step, lambda r: r.item(), reps, budget)
    res["clip"] = [frames, crop]
    return res


def _worker(args: argparse.Namespace) -> None:
    if args.side == "mindspore":
        res = _run_ms(args.model, args.kind, args.batch, args.threads, args.reps, args.budget)
    else:
        geom = tuple(int(v) for v in args.geometry.split(","))
        res = _run_torch(args.model, args.kind, args.batch, args.threads, args.reps, args.budget, geom)
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    res["per_clip_ms"] = 1e3 * res["step_s"] / args.batch
    print("BENCH_RESULT " + json.dumps(res), flush=True)


def torch_available() -> bool:
    """torch importable?"""
    try:
        import importlib.util
        return bool(importlib.util.find_spec("torch"))
    except (ImportError, ValueError):
        return False


def run_config(side: str, model: str, kind: str, batch: int, threads: int, reps: int,
               budget: float, geom: Tuple[int, int, int]) -> Optional[Dict[str, Any]]:
    """One configuration in a fresh subprocess; its result dict, or None if it failed."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), GLOG_v="3")
    cmd = [sys.executable, "-m", "src.tools.benchmark", "--worker", "--side", side, "--model", model,
           "--kind", kind, "--batch", str(batch), "--threads", str(threads), "--reps", str(reps),
           "--budget", str(budget), "--geometry", ",".join(str(v) for v in geom)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
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


def _summarise(model: str, res: Dict[str, Any]) -> None:
    """Ratios torch per-clip time / ours per configuration (> 1: we are faster), printed."""
    nan = float("nan")
    for kind, batch in configs(model):
        key = f"{kind}_b{batch}"
        ours, theirs = res.get("mindspore", {}).get(key), res.get("torch", {}).get(key)
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
    train_key = f"ratio_train_b{MODELS[model]['train_batch']}"
    if res.get(train_key):
        res["train_ratio"] = res[train_key]
    print(f"{model}: torch/ours forward b1 {fw[0] or nan:.2f}, b8 {fw[1] or nan:.2f} (both "
          f"{res.get('forward_ratio', nan):.2f}), train b{MODELS[model]['train_batch']} "
          f"{res.get('train_ratio', nan):.2f}; forward without BN folding "
          f"{res.get('forward_ratio_bn_unfolded', nan):.2f}", flush=True)


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--infer" in argv:  # the deployed-inference latency case lives in its own module
        from . import bench_infer
        return bench_infer.main([a for a in argv if a != "--infer"])
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                epilog="--infer [bench_infer options]: batch-1/8 latency of X3D-XS through the "
                                       "exported MINDIR against onnxruntime and torch (src/tools/bench_infer.py)")
    p.add_argument("--json", help="write results here")
    p.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), choices=list(MODELS),
                   help=f"models to measure (default: {' '.join(DEFAULT_MODELS)})")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--reps", type=int, default=5, help="timed repetitions per configuration (at least)")
    p.add_argument("--budget", type=float, default=20.0, help="seconds of timing per configuration")
    p.add_argument("--no-torch", action="store_true", help="skip the torch side")
    p.add_argument("--no-unfolded", action="store_true",
                   help="skip the extra forward without BatchNorm folding (ours only, not in the ratios)")
    p.add_argument("--layers", action="store_true", help="per-layer profile of X3D-XS instead")
    p.add_argument("--ops", action="store_true",
                   help="op-type profile (MindSpore profiler) of the X3D-XS eval forward, unfolded vs folded BN")
    p.add_argument("--baseline", action="store_true",
                   help="with --layers: profile the earlier formulation (channelwise fold, stem im2col)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--side", choices=("mindspore", "torch"), help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--kind", help=argparse.SUPPRESS)
    p.add_argument("--geometry", help=argparse.SUPPRESS)
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
    with_torch = not args.no_torch and torch_available()
    if not with_torch and not args.no_torch:
        print("torch not installed: measuring this project only", file=sys.stderr)
    out: Dict[str, Any] = {"machine": machine(), "threads": args.threads, "models": {}}
    print(f"machine: {out['machine']}  threads: {args.threads}")
    print(f"{'model':16} {'config':14} {'side':10} {'ms/clip':>9} {'compile s':>9} {'peak RSS MB':>11}")
    for model in args.models:
        geom = geometry(model)
        res: Dict[str, Any] = {"num_classes": geom[0], "frames": geom[1], "crop": geom[2],
                               "build": MODELS[model]["build"]}
        sides = ["mindspore"]
        if with_torch:
            missing = torch_reference_missing(model)
            if missing:
                print(f"{model}: torch side skipped ({missing})", flush=True)
            else:
                sides.append("torch")
        runs = [(kind, batch, side) for kind, batch in configs(model) for side in sides]
        if not args.no_unfolded:
            runs += [(kind, batch, "mindspore") for kind, batch in OURS_ONLY]
        for kind, batch, side in runs:
            key = f"{kind}_b{batch}"
            r = run_config(side, model, kind, batch, args.threads, args.reps, args.budget, geom)
            res.setdefault(side, {})[key] = r
            if r:
                print(f"{model:16} {key:14} {side:10} {r['per_clip_ms']:9.1f} {r['compile_s']:9.1f} "
                      f"{r['peak_rss_mb']:11.0f}", flush=True)
        if "torch" in sides:
            _summarise(model, res)
        out["models"][model] = res
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
