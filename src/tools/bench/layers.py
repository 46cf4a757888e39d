"""Layer benchmark: where the time of X3D-XS goes, and the Conv3d formulations, in MindSpore graph mode on CPU.

    python -m src.tools.bench layers [--baseline] [--batch 4]     # per layer
    python -m src.tools.bench layers --ops [--batch 1]            # per op type, BN unfolded vs folded
    python -m src.tools.bench layers --conv [--families ...] [--impls ...] [--batch 8]

* Per layer (default): each distinct layer of X3D-XS (4 x 160 x 160) is jitted alone at the shape
  it sees in the full model and timed forward and forward + backward (gradients w.r.t. input and
  parameters), times how often it occurs. ``--baseline``: the earlier pure-MindSpore formulation
  (channelwise ``banded``, stem ``im2col``).
* ``--ops``: the MindSpore profiler over ``--reps`` eval-mode forwards of the whole X3D-XS, op time
  per op type, BatchNorm unfolded against folded (one worker process each).
* ``--conv``: every ``Conv3d`` formulation on the Efficient-3DCNNs layer shapes (the measurements
  behind its CPU rule), one worker process per (shape, impl); ``--timeout`` marks formulations
  too slow to measure.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ...cli import ArgumentParser
from .harness import check_threads, graph_mode_cpu, run_worker, time_calls

FRAMES, CROP = 4, 160
DEFAULT_BATCH = {"layers": 4, "ops": 1, "conv": 8}
DEFAULT_REPS = {"layers": 7, "ops": 10, "conv": 5}
IMPLS = ("native", "split", "blockdiag", "gemm")


def _median_ms(fn: Any, reps: int) -> float:
    return 1e3 * time_calls(fn, reps=reps)["median_s"]


# ----------------------------------------------------------------------------------- per layer
def _layers(batch: int) -> List[Tuple[str, Any, Tuple[int, ...], int]]:
    """(group, cell, input shape, occurrences) for every distinct layer of X3D-XS."""
    from mindspore import nn
    from ...models.layers import BatchNorm3d, ChannelwiseConv3d, PointwiseConv3d, SpatialConv3d, Swish
    from ...models.x3d import SqueezeExcitation

    class Act(nn.Cell):
        def __init__(self, bn: nn.Cell) -> None:
            super().__init__()
            self.bn, self.relu = bn, nn.ReLU()

        def construct(self, x):
            return self.relu(self.bn(x))

    out: List[Tuple[str, Any, Tuple[int, ...], int]] = []
    n, t = batch, FRAMES
    out.append(("stem conv_xy 1x3x3", SpatialConv3d(3, 24, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
                (n, 3, t, CROP, CROP), 1))
    out.append(("stem conv_t 5x1x1 channelwise", ChannelwiseConv3d(24, (5, 1, 1), padding=(2, 0, 0)),
                (n, 24, t, 80, 80), 1))
    out.append(("BN+ReLU", Act(BatchNorm3d(24)), (n, 24, t, 80, 80), 1))
    dim_in, hw = 24, 80
    for dim_out, depth in ((24, 3), (48, 5), (96, 11), (192, 7)):
        inner = int(2.25 * dim_out)
        ho = hw // 2
        out.append(("pointwise 1x1x1 (a, c, shortcut)", PointwiseConv3d(dim_in, inner), (n, dim_in, t, hw, hw), 1))
        out.append(("pointwise 1x1x1 (a, c, shortcut)", PointwiseConv3d(dim_out, inner), (n, dim_out, t, ho, ho), depth - 1))
        out.append(("pointwise 1x1x1 (a, c, shortcut)", PointwiseConv3d(inner, dim_out), (n, inner, t, ho, ho), depth))
        out.append(("pointwise 1x1x1 (a, c, shortcut)", PointwiseConv3d(dim_in, dim_out, stride=(1, 2, 2)),
                    (n, dim_in, t, hw, hw), 1))
        out.append(("channelwise 3x3x3", ChannelwiseConv3d(inner, 3, stride=(1, 2, 2), padding=1),
                    (n, inner, t, hw, hw), 1))
        out.append(("channelwise 3x3x3", ChannelwiseConv3d(inner, 3, padding=1), (n, inner, t, ho, ho), depth - 1))
        out.append(("BN+ReLU", Act(BatchNorm3d(inner)), (n, inner, t, hw, hw), 1))
        out.append(("BN+ReLU", Act(BatchNorm3d(inner)), (n, inner, t, ho, ho), depth - 1))
        out.append(("BN (b, c, shortcut)", BatchNorm3d(inner), (n, inner, t, ho, ho), depth))
        out.append(("BN (b, c, shortcut)", BatchNorm3d(dim_out), (n, dim_out, t, ho, ho), depth + 1))
        out.append(("SE", SqueezeExcitation(dim=inner, dim_fc=max(8, inner // 16 // 8 * 8)),
                    (n, inner, t, ho, ho), (depth + 1) // 2))
        out.append(("Swish", Swish(), (n, inner, t, ho, ho), depth))
        dim_in, hw = dim_out, ho
    return out


def profile(threads: int = 2, baseline: bool = False, batch: int = 4, reps: int = 7) -> Dict[str, Any]:
    """Per-layer times of X3D-XS (a worker): ``{"layers": {group: {"forward_ms", "train_ms", "count"}}
    summed over occurrences, "impls": the channelwise and stem formulations used}``."""
    import mindspore as ms
    from mindspore import Tensor, nn
    from ...models.layers import resolve_impl, set_default_impl

    if baseline:
        set_default_impl(channelwise="banded", spatial="im2col")
    graph_mode_cpu(threads)

    class SumOf(nn.Cell):
        def __init__(self, cell: nn.Cell) -> None:
            super().__init__()
            self.cell = cell

        def construct(self, x):
            return self.cell(x).sum()

    groups: Dict[str, Dict[str, float]] = OrderedDict()
    rng = np.random.default_rng(0)
    for name, cell, shape, count in _layers(batch):
        x = Tensor(rng.standard_normal(shape, dtype=np.float32))
        cell.set_train(True)
        fwd = ms.jit(cell.construct)
        params = cell.trainable_params()
        grad = ms.value_and_grad(SumOf(cell), 0, params if params else None)

        @ms.jit
        def step(inp):
            return grad(inp)

        f = _median_ms(lambda: fwd(x).asnumpy(), reps)
        b = _median_ms(lambda: step(x)[0].asnumpy(), reps)
        g = groups.setdefault(name, {"forward_ms": 0.0, "train_ms": 0.0, "count": 0})
        g["forward_ms"] += f * count
        g["train_ms"] += b * count
        g["count"] += count
    return {"layers": groups, "impls": [resolve_impl("auto", "channelwise"), resolve_impl("auto", "spatial")]}


def layers_main(args: argparse.Namespace) -> int:
    """Print the per-layer table (measured in one worker)."""
    res = run_worker(f"{__name__}:profile", {"threads": args.threads, "baseline": args.baseline,
                                              "batch": args.batch, "reps": args.reps},
                     threads=args.threads, label="per-layer profile")
    if res is None:
        return 1
    groups = res["layers"]
    print(f"X3D-XS per-layer time, batch {args.batch}, {FRAMES}x{CROP}x{CROP}, {args.threads} threads, "
          f"channelwise impl '{res['impls'][0]}', stem impl '{res['impls'][1]}'")
    print(f"{'layer':36} {'count':>5} {'forward ms':>11} {'fwd+bwd ms':>11}")
    for name, g in groups.items():
        print(f"{name:36} {g['count']:5d} {g['forward_ms']:11.1f} {g['train_ms']:11.1f}")
    print(f"{'total':36} {'':5} {sum(g['forward_ms'] for g in groups.values()):11.1f} "
          f"{sum(g['train_ms'] for g in groups.values()):11.1f}")
    _write(args.json_out, {"threads": args.threads, "batch": args.batch, "baseline": args.baseline, "layers": groups})
    return 0


# ----------------------------------------------------------------------------------- per op type
def op_profile(threads: int = 2, batch: int = 1, fold: bool = False, steps: int = 10) -> Dict[str, Any]:
    """MindSpore profiler over ``steps`` eval-mode forwards of the whole X3D-XS (a worker):
    {"ops": {op type: [count per forward, ms per forward]}, "wall_ms": median wall time per forward}.

    ``fold``: BatchNorm folded into the convolutions (what eval.py / infer.py run).
    """
    import csv
    import glob
    import tempfile
    import mindspore as ms
    from mindspore import Profiler, Tensor
    from ...models import build_model, fold_batchnorm

    graph_mode_cpu(threads)
    net = build_model({"type": "x3d_xs", "num_classes": 400})
    net.set_train(False)
    if fold:
        fold_batchnorm(net)
    fwd = ms.jit(net.construct)
    frames, crop = net.pretrained_cfg.num_frames, net.pretrained_cfg.crop_size
    x = Tensor(np.random.default_rng(0).standard_normal((batch, 3, frames, crop, crop), dtype=np.float32))
    wall = _median_ms(lambda: fwd(x).asnumpy(), steps)
    with tempfile.TemporaryDirectory() as out:
        prof = Profiler(output_path=out)
        for _ in range(steps):
            fwd(x).asnumpy()
        prof.analyse()
        files = glob.glob(f"{out}/**/cpu_op_type_info_0.csv", recursive=True)
        if not files:
            raise RuntimeError("the MindSpore profiler wrote no cpu_op_type_info_0.csv")
        with open(files[0]) as f:
            rows = list(csv.DictReader(f))
    ops = {r["op_type"]: [int(r["execution_frequency(per-step)"]), float(r["total_compute_time"]) / steps]
           for r in rows}
    return {"ops": dict(sorted(ops.items(), key=lambda kv: -kv[1][1])), "wall_ms": wall}


def ops_main(args: argparse.Namespace) -> int:
    """Op-type profile of the eval forward without and with BatchNorm folding (one worker each)."""
    res: Dict[str, Any] = {}
    for fold in (False, True):
        got = run_worker(f"{__name__}:op_profile", {"threads": args.threads, "batch": args.batch, "fold": fold,
                                                     "steps": args.reps},
                         threads=args.threads, label=f"op profile ({'folded' if fold else 'unfolded'})")
        if got is None:
            return 1
        res["folded" if fold else "unfolded"] = got
    print(f"X3D-XS eval forward, batch {args.batch}, {args.threads} threads: op time per forward (ms), "
          f"MindSpore profiler")
    print(f"{'op type':22} {'unfolded: n':>11} {'ms':>7} {'folded: n':>10} {'ms':>7}")
    for k in dict.fromkeys(list(res["unfolded"]["ops"]) + list(res["folded"]["ops"])):
        u = res["unfolded"]["ops"].get(k, [0, 0.0])
        f = res["folded"]["ops"].get(k, [0, 0.0])
        print(f"{k:22} {u[0]:11d} {u[1]:7.2f} {f[0]:10d} {f[1]:7.2f}")
    for name in ("unfolded", "folded"):
        ops = res[name]["ops"].values()
        print(f"{name}: {sum(n for n, _ in ops)} ops, {sum(t for _, t in ops):.1f} ms in ops, "
              f"{res[name]['wall_ms']:.1f} ms wall per forward")
    _write(args.json_out, {"threads": args.threads, "batch": args.batch, **res})
    return 0


# ----------------------------------------------------------------------------------- Conv3d impls
# (dim_in, dim_out, groups, kernel, stride, frames, side) of the Efficient-3DCNNs at 16x112x112
CONV_SHAPES: Dict[str, List[Tuple[int, int, int, int, Tuple[int, int, int], int, int]]] = {
    "shufflenet_g3_1x1x1": [(60, 216, 3, 1, (1, 1, 1), 4, 14), (240, 60, 3, 1, (1, 1, 1), 4, 14),
                            (60, 240, 3, 1, (1, 1, 1), 4, 14), (480, 120, 3, 1, (1, 1, 1), 2, 7),
                            (120, 480, 3, 1, (1, 1, 1), 2, 7), (960, 240, 3, 1, (1, 1, 1), 1, 4),
                            (240, 960, 3, 1, (1, 1, 1), 1, 4)],
    "resnext101_g32_3x3x3": [(128, 128, 32, 3, (1, 1, 1), 8, 28), (256, 256, 32, 3, (2, 2, 2), 8, 28),
                             (256, 256, 32, 3, (1, 1, 1), 4, 14), (512, 512, 32, 3, (1, 1, 1), 2, 7),
                             (1024, 1024, 32, 3, (1, 1, 1), 1, 4)],
    "resnet18_3x3x3": [(64, 64, 1, 3, (1, 1, 1), 8, 28), (64, 128, 1, 3, (2, 2, 2), 8, 28),
                       (128, 128, 1, 3, (1, 1, 1), 4, 14), (256, 256, 1, 3, (1, 1, 1), 2, 7),
                       (512, 512, 1, 3, (1, 1, 1), 1, 4)],
    "stems": [(3, 24, 1, 3, (1, 2, 2), 16, 112), (3, 64, 1, 7, (1, 2, 2), 16, 112)],
}


def conv_time(impl: str, family: str, index: int, batch: int, threads: int, reps: int = 5) -> Dict[str, float]:
    """Forward and forward + backward (input and weight gradients) ms of one ``Conv3d`` impl on
    ``CONV_SHAPES[family][index]`` (a worker)."""
    import mindspore as ms
    from mindspore import Tensor
    from ...models.layers import Conv3d

    graph_mode_cpu(threads)
    dim_in, dim_out, groups, k, stride, t, hw = CONV_SHAPES[family][index]
    net = Conv3d(dim_in, dim_out, k, stride=stride, padding=k // 2, groups=groups, impl=impl)
    x = Tensor(np.random.default_rng(0).standard_normal((batch, dim_in, t, hw, hw), dtype=np.float32))
    fwd = ms.jit(net.construct)

    def loss(inp):
        return net(inp).sum()
    grad = ms.jit(ms.grad(loss, grad_position=0, weights=net.trainable_params()))
    return {"forward_ms": _median_ms(lambda: fwd(x).asnumpy(), reps),
            "train_ms": _median_ms(lambda: grad(x)[0].asnumpy(), reps)}


def conv_main(args: argparse.Namespace) -> int:
    """Time every ``Conv3d`` impl on the families' layer shapes, one worker per (shape, impl)."""
    rows = []
    print(f"Conv3d impls, batch {args.batch}, {args.threads} threads: forward / forward+backward ms")
    for family in args.families or list(CONV_SHAPES):
        shapes = CONV_SHAPES[family][:args.shapes] if args.shapes else CONV_SHAPES[family]
        for i, shape in enumerate(shapes):
            for impl in args.impls:
                res = run_worker(f"{__name__}:conv_time", {"impl": impl, "family": family, "index": i,
                                                            "batch": args.batch, "threads": args.threads,
                                                            "reps": args.reps},
                                 threads=args.threads, timeout=args.timeout, label=f"{family} {shape} {impl}")
                res = res or {"failed": True}
                rows.append({"family": family, "shape": shape, "impl": impl, **res})
                what = (f"{res['forward_ms']:9.1f} {res['train_ms']:9.1f}" if "forward_ms" in res else
                        f"> {args.timeout:.0f} s" if "timeout_s" in res else "failed")
                print(f"{family:22} {str(shape):40} {impl:10} {what}", flush=True)
    _write(args.json_out, {"threads": args.threads, "batch": args.batch, "rows": rows})
    return 0


# ----------------------------------------------------------------------------------- driver
def _write(path: Optional[str], data: Dict[str, Any]) -> None:
    if path:
        with open(path, "w") as f:
            json.dump(data, f, indent=2)
        print(f"wrote {path}")


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The layer benchmark's options (usage errors: one line, exit 2); mode-dependent defaults filled in."""
    p = ArgumentParser(prog="python -m src.tools.bench layers", description=__doc__.split("\n")[0])
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--ops", action="store_true", help="op-type profile of the whole eval forward, BN unfolded vs folded")
    mode.add_argument("--conv", action="store_true", help="time the Conv3d impls on the Efficient-3DCNNs layer shapes")
    p.add_argument("--baseline", action="store_true",
                   help="per layer: profile the earlier formulation (channelwise fold, stem im2col)")
    p.add_argument("--threads", type=int, default=2, help="MindSpore and C++ kernel threads (default 2)")
    p.add_argument("--batch", type=int, default=None,
                   help="batch size (default: 4 per layer, 1 with --ops, 8 with --conv)")
    p.add_argument("--reps", type=int, default=None,
                   help="timed calls (default: 7 per layer, 10 profiled forwards with --ops, 5 with --conv)")
    p.add_argument("--families", nargs="+", choices=list(CONV_SHAPES), help="with --conv: layer families (default all)")
    p.add_argument("--shapes", type=int, default=None, help="with --conv: only the first N shapes of each family")
    p.add_argument("--impls", nargs="+", default=list(IMPLS), choices=IMPLS, help="with --conv: formulations")
    p.add_argument("--timeout", type=float, default=300.0, help="with --conv: seconds per (shape, impl)")
    p.add_argument("--json", dest="json_out", help="write the results here")
    args = p.parse_args(list(sys.argv[1:] if argv is None else argv))
    check_threads(args.threads)
    args.mode = "ops" if args.ops else "conv" if args.conv else "layers"
    args.batch = DEFAULT_BATCH[args.mode] if args.batch is None else args.batch
    args.reps = DEFAULT_REPS[args.mode] if args.reps is None else args.reps
    if args.batch < 1 or args.reps < 1:
        p.error("--batch and --reps must be >= 1")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the chosen profile (per layer, per op type or Conv3d impls)."""
    args = parse_args(argv)
    return {"layers": layers_main, "ops": ops_main, "conv": conv_main}[args.mode](args)


__all__ = ["CONV_SHAPES", "profile", "op_profile", "conv_time", "parse_args", "main"]
