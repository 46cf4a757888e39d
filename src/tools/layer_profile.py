"""Per-layer timing of X3D-XS (batch 4, 4 x 160 x 160) in MindSpore graph mode.

Each distinct layer of the network is jitted alone at the shape it sees in the full model and
timed forward and forward + backward (gradients w.r.t. input and parameters); times are
multiplied by how often the layer occurs. Run through ``python -m src.tools.benchmark --layers``.

``python -m src.tools.layer_profile --conv [--families ...] [--impls ...] [--batch 8]`` times each
``Conv3d`` formulation on the Efficient-3DCNNs layer shapes (the measurements behind its CPU rule).
"""
from __future__ import annotations

import json
import time
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

BATCH, FRAMES, CROP = 4, 4, 160


def _median_ms(fn, reps: int = 7) -> float:
    fn()
    fn()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return 1e3 * sorted(ts)[len(ts) // 2]


def _layers() -> List[Tuple[str, Any, Tuple[int, ...], int]]:
    """(group, cell, input shape, occurrences) for every distinct layer of X3D-XS."""
    from mindspore import nn
    from src.models.layers import BatchNorm3d, ChannelwiseConv3d, SpatialConv3d, Swish, PointwiseConv3d
    from src.models.x3d import SqueezeExcitation

    class Act(nn.Cell):
        def __init__(self, bn: nn.Cell) -> None:
            super().__init__()
            self.bn, self.relu = bn, nn.ReLU()

        def construct(self, x):
            return self.relu(self.bn(x))

    out: List[Tuple[str, Any, Tuple[int, ...], int]] = []
    n, t = BATCH, FRAMES
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


def profile(threads: int = 2, baseline: bool = False) -> Dict[str, Dict[str, float]]:
    """{group: {"forward_ms": .., "train_ms": .., "count": ..}} summed over occurrences.

    ``baseline``: the earlier CPU formulation (channelwise ``fold``, stem ``im2col``).
    """
    import mindspore as ms
    from mindspore import Tensor, nn
    from src.models.layers import set_default_impl

    if baseline:
        set_default_impl(channelwise="fold", spatial="im2col")

    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_device("CPU")
    ms.device_context.cpu.op_tuning.threads_num(threads)

    class SumOf(nn.Cell):
        def __init__(self, cell: nn.Cell) -> None:
            super().__init__()
            self.cell = cell

        def construct(self, x):
            return self.cell(x).sum()

    groups: Dict[str, Dict[str, float]] = OrderedDict()
    rng = np.random.default_rng(0)
    for name, cell, shape, count in _layers():
        x = Tensor(rng.standard_normal(shape, dtype=np.float32))
        cell.set_train(True)
        fwd = ms.jit(cell.construct)
        params = cell.trainable_params()
        grad = ms.value_and_grad(SumOf(cell), 0, params if params else None)

        @ms.jit
        def step(inp):
            return grad(inp)

        f = _median_ms(lambda: fwd(x).asnumpy())
        b = _median_ms(lambda: step(x)[0].asnumpy())
        g = groups.setdefault(name, {"forward_ms": 0.0, "train_ms": 0.0, "count": 0})
        g["forward_ms"] += f * count
        g["train_ms"] += b * count
        g["count"] += count
    return groups


def main(threads: int = 2, json_out: Optional[str] = None, baseline: bool = False) -> int:
    from src.models.layers import resolve_impl
    groups = profile(threads, baseline)
    print(f"X3D-XS per-layer time, batch {BATCH}, {FRAMES}x{CROP}x{CROP}, {threads} threads, "
          f"channelwise impl '{resolve_impl('auto', 'channelwise')}', stem impl '{resolve_impl('auto', 'spatial')}'")
    print(f"{'layer':36} {'count':>5} {'forward ms':>11} {'fwd+bwd ms':>11}")
    tot_f = tot_b = 0.0
    for name, g in groups.items():
        print(f"{name:36} {g['count']:5d} {g['forward_ms']:11.1f} {g['train_ms']:11.1f}")
        tot_f += g["forward_ms"]
        tot_b += g["train_ms"]
    print(f"{'total':36} {'':5} {tot_f:11.1f} {tot_b:11.1f}")
    if json_out:
        with open(json_out, "w") as f:
            json.dump({"threads": threads, "baseline": baseline, "layers": groups}, f, indent=2)
    return 0


# ----------------------------------------------------------------------------------- whole network
def op_profile(threads: int = 2, batch: int = 1, fold: bool = False, steps: int = 10) -> Dict[str, Any]:
    """MindSpore profiler over ``steps`` eval-mode forwards of the whole X3D-XS at ``batch``:
    {"ops": {op type: [count per forward, ms per forward]}, "wall_ms": median wall time per forward}.

    ``fold``: BatchNorm folded into the convolutions (what eval.py / infer.py run).
    """
    import csv
    import glob
    import tempfile
    import mindspore as ms
    from mindspore import Profiler, Tensor
    from src.models import build_model, fold_batchnorm

    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_device("CPU")
    ms.device_context.cpu.op_tuning.threads_num(threads)
    net = build_model({"type": "x3d_xs", "num_classes": 400})
    net.set_train(False)
    if fold:
        fold_batchnorm(net)
    fwd = ms.jit(net.construct)
    frames, crop = net.pretrained_cfg.num_frames, net.pretrained_cfg.crop_size
    x = Tensor(np.random.default_rng(0).standard_normal((batch, 3, frames, crop, crop), dtype=np.float32))
    wall = _median_ms(lambda: fwd(x).asnumpy(), reps=steps)
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


def op_main(threads: int = 2, batch: int = 1, json_out: Optional[str] = None) -> int:
    """Op-type profile of the eval forward without and with BatchNorm folding (one subprocess each)."""
    import os
    import subprocess
    import sys
    res = {}
    for fold in (False, True):
        cmd = [sys.executable, "-m", "src.tools.layer_profile", "--threads", str(threads), "--batch", str(batch)]
        proc = subprocess.run(cmd + (["--fold"] if fold else []), capture_output=True, text=True,
                              env={**os.environ, "GLOG_v": "3", "OMP_NUM_THREADS": str(threads)})
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("OPS_RESULT ")]
        if not line:
            print((proc.stderr or proc.stdout).strip()[-2000:])
            return 1
        res["folded" if fold else "unfolded"] = json.loads(line[-1][len("OPS_RESULT "):])
    print(f"X3D-XS eval forward, batch {batch}, {threads} threads: op time per forward (ms), MindSpore profiler")
    print(f"{'op type':22} {'unfolded: n':>11} {'ms':>7} {'folded: n':>10} {'ms':>7}")
    kinds = list(dict.fromkeys(list(res["unfolded"]["ops"]) + list(res["folded"]["ops"])))
    for k in kinds:
        u = res["unfolded"]["ops"].get(k, [0, 0.0])
        f = res["folded"]["ops"].get(k, [0, 0.0])
        print(f"{k:22} {u[0]:11d} {u[1]:7.2f} {f[0]:10d} {f[1]:7.2f}")
    for name in ("unfolded", "folded"):
        ops = res[name]["ops"].values()
        print(f"{name}: {sum(n for n, _ in ops)} ops, {sum(t for _, t in ops):.1f} ms in ops, "
              f"{res[name]['wall_ms']:.1f} ms wall per forward")
    if json_out:
        with open(json_out, "w") as f:
            json.dump({"threads": threads, "batch": batch, **res}, f, indent=2)
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


def conv_time(impl: str, shape: Tuple[int, int, int, int, Tuple[int, int, int], int, int], batch: int,
              threads: int) -> Dict[str, float]:
    """Forward and forward + backward (input and weight gradients) ms of one ``Conv3d`` impl."""
    import mindspore as ms
    from mindspore import Tensor
    from src.models.layers import Conv3d

    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_device("CPU")
    ms.device_context.cpu.op_tuning.threads_num(threads)
    dim_in, dim_out, groups, k, stride, t, hw = shape
    net = Conv3d(dim_in, dim_out, k, stride=stride, padding=k // 2, groups=groups, impl=impl)
    x = Tensor(np.random.default_rng(0).standard_normal((batch, dim_in, t, hw, hw), dtype=np.float32))
    fwd = ms.jit(net.construct)

    def loss(inp):
        return net(inp).sum()
    grad = ms.jit(ms.grad(loss, grad_position=0, weights=net.trainable_params()))
    return {"forward_ms": _median_ms(lambda: fwd(x).asnumpy(), reps=5),
            "train_ms": _median_ms(lambda: grad(x)[0].asnumpy(), reps=5)}


def conv_main(threads: int = 2, batch: int = 8, impls: Sequence[str] = ("native", "split", "blockdiag", "gemm"),
              families: Optional[Sequence[str]] = None, timeout: float = 300.0,
              json_out: Optional[str] = None) -> int:
    """Time every ``Conv3d`` impl on the family's layer shapes, one subprocess per (shape, impl)
    (a timeout marks formulations too slow to measure)."""
    import os
    import subprocess
    import sys
    rows = []
    print(f"Conv3d impls, batch {batch}, {threads} threads: forward / forward+backward ms")
    for family in families or list(CONV_SHAPES):
        for i, shape in enumerate(CONV_SHAPES[family]):
            for impl in impls:
                cmd = [sys.executable, "-m", "src.tools.layer_profile", "--conv-worker", family, str(i), impl,
                       "--threads", str(threads), "--batch", str(batch)]
                try:
                    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                                          env={**os.environ, "GLOG_v": "3", "OMP_NUM_THREADS": str(threads)})
                    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("CONV_RESULT ")]
                    res = json.loads(line[-1][len("CONV_RESULT "):]) if line else {"error": proc.stderr[-300:]}
                except subprocess.TimeoutExpired:
                    res = {"timeout_s": timeout}
                rows.append({"family": family, "shape": shape, "impl": impl, **res})
                what = (f"{res['forward_ms']:9.1f} {res['train_ms']:9.1f}" if "forward_ms" in res else
                        f"> {timeout:.0f} s" if "timeout_s" in res else "failed")
                print(f"{family:22} {str(shape):40} {impl:10} {what}", flush=True)
    if json_out:
        with open(json_out, "w") as f:
            json.dump({"threads": threads, "batch": batch, "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    import argparse
    p = argparse.ArgumentParser(description="op-type profile worker (see python -m src.tools.benchmark --ops); "
                                            "--conv: time the Conv3d impls on the Efficient-3DCNNs layer shapes")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--fold", action="store_true")
    p.add_argument("--conv", action="store_true", help="time the Conv3d impls (all families unless --families)")
    p.add_argument("--families", nargs="+", choices=list(CONV_SHAPES))
    p.add_argument("--impls", nargs="+", default=["native", "split", "blockdiag", "gemm"])
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per (shape, impl) with --conv")
    p.add_argument("--json", help="with --conv: write the rows here")
    p.add_argument("--conv-worker", nargs=3, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.conv:
        raise SystemExit(conv_main(a.threads, a.batch or 8, a.impls, a.families, a.timeout, a.json))
    if a.conv_worker:
        fam, idx, which = a.conv_worker
        print("CONV_RESULT " + json.dumps(conv_time(which, CONV_SHAPES[fam][int(idx)], a.batch or 8, a.threads)),
              flush=True)
        raise SystemExit(0)
    print("OPS_RESULT " + json.dumps(op_profile(a.threads, a.batch or 1, a.fold)), flush=True)
