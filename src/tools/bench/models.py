"""Model benchmark: this project's networks (MindSpore, graph mode) against the same networks in torch, on CPU.

    python -m src.tools.bench model [--models x3d_xs e3d_resnet18 ...] [--threads 2] [--json OUT]

Models (``MODELS``): X3D-XS/S against pytorchvideo's ``create_x3d``; the Efficient-3DCNNs
(MobileNetV2 1.0x, ShuffleNetV2 1.0x, ResNet-18 shortcut A by default; MobileNet, ShuffleNet g3,
SqueezeNet 1.1 and ResNeXt-101 on request, 600 classes) against the torch references in
``src/tools/bench/torch_ref``. Every network is built through ``src.models.build_model`` and fed
the clip of its ``pretrained_cfg``. Without torch (``pip install torch==2.13.0``, CPU build; not a
runtime dependency) or pytorchvideo, only our side is measured, with a note.

Every configuration (side x model x {forward batch 1, forward batch 8, train step: batch 4 for
X3D, 8 for the others}) runs in its own worker process (``harness.run_worker``), so its peak RSS is
its own; both sides use the same thread count. Forward is eval mode; on our side with BatchNorm
folded into the convolutions, as ``eval.py``, ``infer.py`` and the export run it (``forward_bn``:
the same network unfolded, measured and reported, not in the ratios). A train step is forward +
cross-entropy + backward + SGD momentum update (our side: ``TrainStep``, the cell train.py runs).
Times are medians per clip after warm-up; "compile" is the first call minus a steady call. Ratios
are torch's time per clip divided by ours (> 1: we are faster).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from typing import Any, Dict, Optional, Sequence, Tuple

from ...cli import ArgumentParser
from .harness import check_threads, graph_mode_cpu, machine, run_worker, time_calls
from .torch_ref import TORCH_HINT, require_torch, torch_available

PYTORCHVIDEO = "pytorchvideo"
E3D_LIGHT = "src.tools.bench.torch_ref.e3d_light"
E3D_HEAVY = "src.tools.bench.torch_ref.e3d_heavy"

# name -> how to build it on each side. ``build``: the config's ``model`` section for
# ``src.models.build_model`` (clip geometry then comes from ``net.pretrained_cfg``); ``torch``:
# (module, builder, kwargs) of the torch network (pytorchvideo's create_x3d, or a torch_ref
# builder); ``train_batch``: the train-step batch size.
MODELS: Dict[str, Dict[str, Any]] = {
    "x3d_xs": {"build": {"type": "x3d_xs", "num_classes": 400}, "train_batch": 4,
               "torch": (PYTORCHVIDEO, "create_x3d", {"depth_factor": 2.2, "model_num_class": 400})},
    "x3d_s": {"build": {"type": "x3d_s", "num_classes": 400}, "train_batch": 4,
              "torch": (PYTORCHVIDEO, "create_x3d", {"depth_factor": 2.2, "model_num_class": 400})},
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


def configs(model: str, batches: Sequence[int] = (1, 8)) -> Tuple[Tuple[str, int], ...]:
    """(kind, batch) pairs measured on both sides for ``model``."""
    return (*(("forward", b) for b in batches), ("train", MODELS[model]["train_batch"]))


def geometry(model: str) -> Tuple[int, int, int]:
    """(num_classes, num_frames, crop_size) from the variant's default record, without building it."""
    from ...models import resolve_pretrained_cfg
    spec = dict(MODELS[model]["build"])
    cfg = resolve_pretrained_cfg(spec.pop("type"), spec)
    return cfg.num_classes, cfg.num_frames, cfg.crop_size


def torch_side_missing(model: str) -> Optional[str]:
    """Why the torch side of ``model`` cannot run (None: it can)."""
    if not torch_available():
        return TORCH_HINT
    if MODELS[model]["torch"][0] == PYTORCHVIDEO and importlib.util.find_spec(PYTORCHVIDEO) is None:
        return "pytorchvideo not installed (pip install --no-deps pytorchvideo==0.1.5 fvcore iopath)"
    return None


# ----------------------------------------------------------------------------------- workers
def run_ours(model: str, kind: str, batch: int, threads: int, reps: int, budget: float) -> Dict[str, Any]:
    """Time one configuration of our network in this process (a worker)."""
    import numpy as np
    from mindspore import Tensor, nn

    graph_mode_cpu(threads)
    import mindspore as ms
    from ...engine.inference import build_eval_net  # the one inference loader's network
    from ...engine.trainer import TrainStep  # the cell train.py runs
    from ...models import build_model
    from ...models.layers import ChannelwiseConv3d, Conv3d

    classes, frames, crop = geometry(model)
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((batch, 3, frames, crop, crop), dtype=np.float32))
    if kind in ("forward", "forward_bn"):
        net = build_eval_net(dict(MODELS[model]["build"]), fold_bn=kind == "forward")
        fwd = ms.jit(net.construct)
        res = time_calls(lambda: fwd(x).asnumpy(), reps=reps, budget_s=budget)
    else:
        net = build_model(dict(MODELS[model]["build"]))
        net.set_train(True)
        y = Tensor(rng.integers(0, classes, batch).astype(np.int32))
        opt = nn.Momentum(net.trainable_params(), learning_rate=0.01, momentum=0.9)
        step = TrainStep(net, nn.CrossEntropyLoss(), opt)
        res = time_calls(lambda: step(x, y).asnumpy(), reps=reps, budget_s=budget)
    cells = [c for _, c in net.cells_and_names()]
    res["channelwise_impl"] = ",".join(sorted({c.impl for c in cells if isinstance(c, ChannelwiseConv3d)}))
    res["conv3d_impl"] = ",".join(sorted({c.impl for c in cells if isinstance(c, Conv3d)}))
    res["batchnorms"] = sum(isinstance(c, (nn.BatchNorm2d, nn.BatchNorm3d)) for c in cells)
    return _per_clip(res, batch, frames, crop)


def _torch_net(model: str, frames: int, crop: int) -> Any:
    module, builder, kwargs = MODELS[model]["torch"]
    if module == PYTORCHVIDEO:
        from ...models.x3d_weights import import_pytorchvideo_create_x3d  # stubs torchvision.ops if absent
        return import_pytorchvideo_create_x3d()(**kwargs, input_clip_length=frames, input_crop_size=crop)
    return getattr(importlib.import_module(module), builder)(**kwargs)


def run_torch(model: str, kind: str, batch: int, threads: int, reps: int, budget: float) -> Dict[str, Any]:
    """Time one configuration of the torch network in this process (a worker)."""
    torch = require_torch()
    torch.set_num_threads(threads)
    classes, frames, crop = geometry(model)
    torch.manual_seed(0)
    net = _torch_net(model, frames, crop)
    x = torch.randn(batch, 3, frames, crop, crop)
    if kind == "forward":
        net.eval()

        def call() -> Any:
            with torch.no_grad():
                return net(x)
    else:
        net.train()
        y = torch.randint(0, classes, (batch,))
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
        loss_fn = torch.nn.CrossEntropyLoss()

        def call() -> Any:
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(x), y)
            loss.backward()
            opt.step()
            return loss.item()
    return _per_clip(time_calls(call, reps=reps, budget_s=budget), batch, frames, crop)


def _per_clip(res: Dict[str, Any], batch: int, frames: int, crop: int) -> Dict[str, Any]:
    res["per_clip_ms"] = 1e3 * res["median_s"] / batch
    res["clip"] = [frames, crop]
    return res


# ----------------------------------------------------------------------------------- driver
def summarise(model: str, res: Dict[str, Any]) -> None:
    """Add the ratios torch per-clip time / ours (> 1: we are faster) to ``res`` and print them."""
    nan = float("nan")
    ms_side, th_side = res.get("mindspore", {}), res.get("torch", {})
    for key, ours in ms_side.items():
        theirs = th_side.get(key)
        if ours and theirs:
            res[f"ratio_{key}"] = theirs["per_clip_ms"] / ours["per_clip_ms"]
    fw = [k for k in ms_side if k.startswith("forward_b") and res.get(f"ratio_{k}")]
    if fw:  # clips/s over the batch sizes: harmonic combination of per-clip times
        theirs = sum(th_side[k]["per_clip_ms"] for k in fw)
        res["forward_ratio"] = theirs / sum(ms_side[k]["per_clip_ms"] for k in fw)
        unfolded = [ms_side.get("forward_bn_" + k[len("forward_"):]) for k in fw]
        if all(unfolded):
            res["forward_ratio_bn_unfolded"] = theirs / sum(u["per_clip_ms"] for u in unfolded)
    train_key = f"ratio_train_b{MODELS[model]['train_batch']}"
    if res.get(train_key):
        res["train_ratio"] = res[train_key]
    per_batch = ", ".join(f"{k[len('forward_'):]} {res[f'ratio_{k}']:.2f}" for k in fw)
    print(f"{model}: torch/ours forward {per_batch or 'n/a'} (together {res.get('forward_ratio', nan):.2f}), "
          f"train b{MODELS[model]['train_batch']} {res.get('train_ratio', nan):.2f}; forward without BN folding "
          f"{res.get('forward_ratio_bn_unfolded', nan):.2f}", flush=True)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The model benchmark's options (usage errors: one line, exit 2)."""
    p = ArgumentParser(prog="python -m src.tools.bench model", description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), choices=list(MODELS), metavar="MODEL",
                   help=f"models to measure: {', '.join(MODELS)} (default: {' '.join(DEFAULT_MODELS)})")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads on both sides")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8], help="forward batch sizes (default 1 8)")
    p.add_argument("--no-train", action="store_true", help="skip the train step")
    p.add_argument("--reps", type=int, default=5, help="timed repetitions per configuration (at least)")
    p.add_argument("--budget", type=float, default=20.0, help="seconds of timing per configuration")
    p.add_argument("--no-torch", action="store_true", help="skip the torch side")
    p.add_argument("--no-unfolded", action="store_true",
                   help="skip the extra forward without BatchNorm folding (ours only, not in the ratios)")
    p.add_argument("--json", dest="json_out", help="write the results here")
    args = p.parse_args(list(sys.argv[1:] if argv is None else argv))
    check_threads(args.threads)
    if args.reps < 1 or any(b < 1 for b in args.batches):
        p.error("--reps and --batches must be >= 1")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Measure every configuration of every model, each in a worker; print and optionally write JSON."""
    args = parse_args(argv)
    if not args.no_torch and not torch_available():
        print(f"torch side skipped: {TORCH_HINT}", file=sys.stderr)
    out: Dict[str, Any] = {"machine": machine(), "threads": args.threads, "models": {}}
    print(f"machine: {out['machine']}  threads: {args.threads}")
    print(f"{'model':16} {'config':14} {'side':10} {'ms/clip':>9} {'compile s':>9} {'peak RSS MB':>11}")
    for model in args.models:
        geom = geometry(model)
        res: Dict[str, Any] = {"num_classes": geom[0], "frames": geom[1], "crop": geom[2],
                               "build": MODELS[model]["build"]}
        sides = ["mindspore"]
        missing = None if args.no_torch else torch_side_missing(model)
        if not args.no_torch and missing is None:
            sides.append("torch")
        elif missing and torch_available():
            print(f"{model}: torch side skipped ({missing})", flush=True)
        pairs = configs(model, args.batches)[:len(args.batches) if args.no_train else None]
        runs = [(kind, batch, side) for kind, batch in pairs for side in sides]
        if not args.no_unfolded:
            runs += [("forward_bn", b, "mindspore") for b in args.batches]
        for kind, batch, side in runs:
            key = f"{kind}_b{batch}"
            r = run_worker(f"{__name__}:{'run_ours' if side == 'mindspore' else 'run_torch'}",
                           {"model": model, "kind": kind, "batch": batch, "threads": args.threads,
                            "reps": args.reps, "budget": args.budget},
                           threads=args.threads, label=f"{side} {model} {key}")
            res.setdefault(side, {})[key] = r
            if r:
                print(f"{model:16} {key:14} {side:10} {r['per_clip_ms']:9.1f} {r['compile_s']:9.1f} "
                      f"{r['peak_rss_mb']:11.0f}", flush=True)
        if "torch" in sides:
            summarise(model, res)
        out["models"][model] = res
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(out, f, indent=2)
        print(f"wrote {args.json_out}")
    return 0


__all__ = ["MODELS", "DEFAULT_MODELS", "configs", "geometry", "torch_side_missing", "run_ours", "run_torch",
           "summarise", "parse_args", "main"]
