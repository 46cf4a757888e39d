"""Overhead of the train-step options on CPU: a reduced X3D-XS train step, plain against gradient
clipping + accumulation (and, when given, a per-step extra such as the EMA update).

    python -m src.tools.bench train_step [--threads 2] [--batch 4] [--reps 20] [--json OUT]

Each configuration runs in its own worker (``harness.run_worker``). ``plain``: ``TrainStep``
with the defaults. ``clip_accum``: clipping by global norm and ``accumulate_steps=2``; one call
is one micro-batch, so the ratio is per micro-batch (every second call also clips and updates).
``clip_accum_ema``: the same plus ``src.engine.ema.ModelEMA``'s update after each optimizer
step (``ema_update_callable``), when that module exists. Ratios are mean time per call over ``plain``'s (with
accumulation calls alternate between a cheap and a dear one, so the mean, not the median); the timing
function :func:`time_step` takes an optional ``extra(step_index)`` callable run after each call.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
from typing import Any, Callable, Dict, Optional, Sequence

from ...cli import ArgumentParser
from .harness import check_threads, graph_mode_cpu, machine, run_worker, time_calls

MODEL = {"type": "x3d_xs", "num_classes": 10, "num_frames": 4, "crop_size": 64, "width_factor": 1.0,
         "depth_factor": 1.0, "head_dim": 128, "dropout_rate": 0.0}
CONFIGS = {"plain": {}, "clip": {"clip_grad": "norm", "clip_value": 1.0}, "accum": {"accumulate_steps": 2},
           "clip_accum": {"clip_grad": "norm", "clip_value": 1.0, "accumulate_steps": 2}}


def time_step(step: Any, x: Any, y: Any, *, extra: Optional[Callable[[int], None]] = None, reps: int = 20,
              budget: float = 0.0) -> Dict[str, float]:
    """:func:`harness.time_calls` of ``step(x, y)`` (blocking on the loss), followed by
    ``extra(i)`` for the i-th call when given (e.g. an EMA update)."""
    count = [0]

    def call() -> None:
        step(x, y).asnumpy()
        if extra is not None:
            extra(count[0])
        count[0] += 1
    return time_calls(call, reps=reps, budget_s=budget, warmup=3)


def run(config: str, threads: int, batch: int, reps: int) -> Dict[str, Any]:
    """One configuration in this process (a worker)."""
    import numpy as np
    from mindspore import Tensor, nn

    graph_mode_cpu(threads)
    from ...engine.trainer import TrainStep
    from ...models import build_model

    net = build_model(dict(MODEL))
    net.set_train(True)
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((batch, 3, MODEL["num_frames"], MODEL["crop_size"], MODEL["crop_size"]),
                                   dtype=np.float32))
    y = Tensor(rng.integers(0, MODEL["num_classes"], batch).astype(np.int32))
    opt = nn.Momentum(net.trainable_params(), learning_rate=0.01, momentum=0.9)
    kwargs = dict(CONFIGS["clip_accum" if config.startswith("clip_accum") else config])
    step = TrainStep(net, nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean"), opt, **kwargs)
    extra = None
    if config == "clip_accum_ema":
        from ...engine.ema import ema_update_callable
        update = ema_update_callable(net)
        k = kwargs.get("accumulate_steps", 1)

        def ema_extra(i: int) -> None:
            if (i + 1) % k == 0:  # after an optimizer step, as the EMA callback does
                update()
        extra = ema_extra
    res = time_step(step, x, y, extra=extra, reps=reps)
    res["config"] = config
    return res


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = ArgumentParser(prog="python -m src.tools.bench train_step", description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="kernel threads")
    p.add_argument("--batch", type=int, default=4, help="clips per micro-batch")
    p.add_argument("--reps", type=int, default=20, help="timed calls per configuration")
    p.add_argument("--json", default=None, help="write the results here")
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    threads = check_threads(args.threads)
    configs = list(CONFIGS)
    if importlib.util.find_spec(f"{__package__.rsplit('.', 2)[0]}.engine.ema") is not None:
        configs.append("clip_accum_ema")
    results: Dict[str, Any] = {"machine": machine(), "model": MODEL, "batch": args.batch}
    for config in configs:
        res = run_worker(f"{__name__}:run", {"config": config, "threads": threads, "batch": args.batch,
                                             "reps": args.reps}, threads=threads, label=config)
        if res:
            results[config] = res
            res["mean_s"] = res["total_s"] / max(1, res["reps"])
            print(f"{config}: mean {1e3 * res['mean_s']:.1f} ms per call, median {1e3 * res['median_s']:.1f} "
                  f"(min {1e3 * res['min_s']:.1f}, {res['reps']} calls)", flush=True)
    base = results.get("plain", {}).get("mean_s")
    for config in configs[1:]:
        if base and config in results:  # means: with accumulation, calls alternate between two costs
            results[f"ratio_{config}"] = results[config]["mean_s"] / base
            print(f"{config} / plain (mean per call): {results[f'ratio_{config}']:.3f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


__all__ = ["MODEL", "CONFIGS", "time_step", "run", "parse_args", "main"]
