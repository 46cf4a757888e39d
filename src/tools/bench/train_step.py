"""Overhead of the train-step options on CPU: a reduced X3D-XS train step, plain against gradient
clipping + accumulation (and, when given, a per-step extra such as the EMA update).

    python -m src.tools.bench train_step [--threads 2] [--batch 4] [--reps 20] [--configs ...] [--interleave]
                                         [--json OUT]

Each configuration runs in its own worker (``harness.run_worker``). ``plain``: ``TrainStep``
with the defaults. ``clip_accum``: clipping by global norm and ``accumulate_steps=2``; one call
is one micro-batch, so the ratio is per micro-batch (every second call also clips and updates).
``clip_accum_ema``: the same plus ``src.engine.ema.ModelEMA``'s update after each optimizer
step (``ema_update_callable``), when that module exists. ``drop_path`` (only when named in
``--configs``): ``plain`` with ``model.drop_path_rate`` 0.2 (stochastic depth on every block). Ratios are mean time per call over ``plain``'s (with
accumulation calls alternate between a cheap and a dear one, so the mean, not the median); the timing
function :func:`time_step` takes an optional ``extra(step_index)`` callable run after each call.
``--interleave`` (:func:`run_interleaved`) builds every configuration in one worker and alternates
them round by round, comparing median process CPU time per call: on a machine shared with other
jobs, separate workers see different loads and their ratio can be off by more than the effect measured.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ...cli import ArgumentParser
from .harness import check_threads, graph_mode_cpu, machine, run_worker, time_calls

MODEL = {"type": "x3d_xs", "num_classes": 10, "num_frames": 4, "crop_size": 64, "width_factor": 1.0,
         "depth_factor": 1.0, "head_dim": 128, "dropout_rate": 0.0}
# --full: X3D-XS as x3d_xs.yaml trains it (4 x 160 x 160 clips, the 2048-wide head, 400 classes)
MODEL_FULL = {"type": "x3d_xs", "num_classes": 400, "num_frames": 4, "crop_size": 160, "dropout_rate": 0.0}
CONFIGS = {"plain": {}, "clip": {"clip_grad": "norm", "clip_value": 1.0}, "accum": {"accumulate_steps": 2},
           "clip_accum": {"clip_grad": "norm", "clip_value": 1.0, "accumulate_steps": 2}, "drop_path": {}}
MODEL_EXTRA = {"drop_path": {"drop_path_rate": 0.2}}  # model keys a configuration changes
OPTIONAL = ("drop_path",)  # run only when named in --configs


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


def run(config: str, threads: int, batch: int, reps: int, full: bool = False) -> Dict[str, Any]:
    """One configuration in this process (a worker)."""
    graph_mode_cpu(threads)
    step, x, y, extra = build(config, batch, full)
    res = time_step(step, x, y, extra=extra, reps=reps)
    res["config"] = config
    return res


def build(config: str, batch: int, full: bool = False) -> Tuple[Any, Any, Any, Optional[Callable[[int], None]]]:
    """``(step, x, y, extra)`` of one configuration (graph mode already set); ``full``: ``MODEL_FULL``."""
    import numpy as np
    from mindspore import Tensor, nn

    from ...engine.trainer import TrainStep
    from ...models import build_model

    model = MODEL_FULL if full else MODEL
    net = build_model(dict(model, **MODEL_EXTRA.get(config, {})))
    net.set_train(True)
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((batch, 3, model["num_frames"], model["crop_size"], model["crop_size"]),
                                   dtype=np.float32))
    y = Tensor(rng.integers(0, model["num_classes"], batch).astype(np.int32))
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
    return step, x, y, extra


def run_interleaved(configs: List[str], threads: int, batch: int, reps: int, full: bool = False) -> Dict[str, Any]:
    """Every configuration in this one process (a worker), timed in alternating rounds: each round
    runs one 2-call cycle (one accumulation cycle) of every configuration, in reverse order every
    other round, so load from other jobs on a shared machine falls on all of them alike. Per
    configuration: medians over the rounds of the per-call wall and process CPU time of a cycle."""
    import statistics
    import time

    graph_mode_cpu(threads)
    calls: Dict[str, Callable[[], None]] = {}
    out: Dict[str, Any] = {}
    for config in configs:
        step, x, y, extra = build(config, batch, full)

        def call(step=step, x=x, y=y, extra=extra, count=[0]) -> None:
            step(x, y).asnumpy()
            if extra is not None:
                extra(count[0])
            count[0] += 1
        t0 = time.perf_counter()
        for _ in range(4):  # compile, warm up; an even count keeps each accumulation cycle aligned
            call()
        calls[config] = call
        out[config] = {"config": config, "first_s": time.perf_counter() - t0, "wall": [], "cpu": []}
    for r in range(reps):
        for config in configs if r % 2 == 0 else configs[::-1]:
            c, t = time.process_time(), time.perf_counter()
            calls[config]()
            calls[config]()
            out[config]["wall"].append((time.perf_counter() - t) / 2)
            out[config]["cpu"].append((time.process_time() - c) / 2)
    for res in out.values():
        res.update(median_s=statistics.median(res["wall"]), cpu_median_s=statistics.median(res["cpu"]),
                   mean_s=statistics.mean(res["wall"]), reps=len(res["wall"]))
    return out


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = ArgumentParser(prog="python -m src.tools.bench train_step", description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="kernel threads")
    p.add_argument("--batch", type=int, default=4, help="clips per micro-batch")
    p.add_argument("--reps", type=int, default=20, help="timed calls per configuration")
    p.add_argument("--configs", nargs="+", default=None, choices=list(CONFIGS) + ["clip_accum_ema"],
                   help="configurations to time (default: all but drop_path; the first is the ratios' base)")
    p.add_argument("--interleave", action="store_true",
                   help="all configurations in one worker, timed in alternating rounds of 2-call cycles; ratios of "
                        "median process CPU time (robust to other jobs on a shared machine)")
    p.add_argument("--full", action="store_true",
                   help="X3D-XS at its training size (4x160x160, 2048-wide head, 400 classes) instead of the reduced one")
    p.add_argument("--json", default=None, help="write the results here")
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    threads = check_threads(args.threads)
    configs = [c for c in CONFIGS if c not in OPTIONAL]
    if importlib.util.find_spec(f"{__package__.rsplit('.', 2)[0]}.engine.ema") is not None:
        configs.append("clip_accum_ema")
    configs = args.configs or configs
    results: Dict[str, Any] = {"machine": machine(), "model": MODEL_FULL if args.full else MODEL, "batch": args.batch}
    if args.interleave:
        return _main_interleaved(args, configs, threads, results)
    for config in configs:
        res = run_worker(f"{__name__}:run", {"config": config, "threads": threads, "batch": args.batch,
                                             "reps": args.reps, "full": args.full}, threads=threads, label=config)
        if res:
            results[config] = res
            res["mean_s"] = res["total_s"] / max(1, res["reps"])
            print(f"{config}: mean {1e3 * res['mean_s']:.1f} ms per call, median {1e3 * res['median_s']:.1f} "
                  f"(min {1e3 * res['min_s']:.1f}, {res['reps']} calls)", flush=True)
    base = results.get(configs[0], {}).get("mean_s")
    for config in configs[1:]:
        if base and config in results:  # means: with accumulation, calls alternate between two costs
            results[f"ratio_{config}"] = results[config]["mean_s"] / base
            print(f"{config} / {configs[0]} (mean per call): {results[f'ratio_{config}']:.3f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


def _main_interleaved(args: argparse.Namespace, configs: List[str], threads: int, results: Dict[str, Any]) -> int:
    res = run_worker(f"{__name__}:run_interleaved", {"configs": configs, "threads": threads, "batch": args.batch,
                                                     "reps": args.reps, "full": args.full}, threads=threads,
                     label="interleaved")
    if not res:
        return 1
    results.update(res)
    base = res[configs[0]]
    for config in configs:
        r = res[config]
        r["ratio_cpu"], r["ratio_wall"] = r["cpu_median_s"] / base["cpu_median_s"], r["median_s"] / base["median_s"]
        print(f"{config}: per call CPU {1e3 * r['cpu_median_s']:.1f} ms (x{r['ratio_cpu']:.3f}), wall "
              f"{1e3 * r['median_s']:.1f} ms (x{r['ratio_wall']:.3f}); medians of {r['reps']} 2-call cycles", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


__all__ = ["MODEL", "MODEL_FULL", "MODEL_EXTRA", "CONFIGS", "time_step", "run", "run_interleaved", "build", "parse_args", "main"]
