"""Dataset sink mode (``train.sink_mode``, ``train.sink_size``; mindcv: ``dataset_sink_mode``,
``sink_size``): the train loader's batches go to a device-side queue and each call of the sunk step
runs ``sink_size`` steps reading from it, with no host round trip per step.

MindSpore 2.10 sinks on GPU and Ascend only: ``mindspore.data_sink`` raises "Data sinking supports
ascend or gpu device target" on CPU, and ``Model.train(dataset_sink_mode=True)`` falls back to the
plain loop there (and in PyNative mode) with an info-level log line. The zoo does the same, visibly:
on CPU ``train.sink_mode: true`` prints one notice (:func:`plan_sink`) and trains with the plain
loop, so a GPU/Ascend config runs unchanged on CPU with the plain loop's exact results.

How ``train.py`` uses it: ``plan_sink`` decides; when it sinks, a :class:`SunkStep` over the
train step cell and the train loader's data set goes to ``fit(..., sunk=...)``, which calls it
``steps_per_epoch / steps`` times an epoch and books ``steps`` optimizer steps per call
(``tests/engine/test_sink.py`` runs ``fit`` with a CPU stand-in of the same interface and checks
weights, step counts, LR and logging against the plain loop).

What differs from the plain loop (documented in docs/training.md): the loss is seen once per call
(logging, the NaN guard and ``metrics.jsonl`` step records at call granularity); MindSpore streams
the data set to the device without end, so ``fit``'s per-epoch reseeding (``seed + epoch``) cannot
apply after the first epoch and a resumed run does not repeat the batches of an uninterrupted one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Tuple

import mindspore as ms

from ..errors import UserError

SINK_DEVICES = ("GPU", "Ascend")


def sink_supported(device: str, mode: int = 0) -> Tuple[bool, str]:
    """Whether MindSpore 2.10 can sink the data set on ``device`` in context ``mode`` (0 graph,
    1 PyNative), and why not (empty when it can)."""
    if device not in SINK_DEVICES:
        return False, (f"MindSpore's data sink runs on {' and '.join(SINK_DEVICES)} only "
                       f"(mindspore.data_sink refuses {device})")
    if int(mode) != 0:
        return False, "data sink needs graph mode (context.mode=0); Model.train does not sink in PyNative mode either"
    return True, ""


@dataclass(frozen=True)
class SinkPlan:
    enabled: bool                  # sink (GPU/Ascend, graph mode, train.sink_mode true)
    size: int                      # steps per sunk call (steps_per_epoch divides by it); 0 when not sinking
    notice: Optional[str] = None   # one line to print when train.sink_mode is true but cannot sink


def resolve_sink_size(sink_size: int, steps_per_epoch: int) -> int:
    """``train.sink_size`` in steps: -1 or 0 = the whole epoch (MindSpore's -1), otherwise a divisor
    of ``steps_per_epoch`` (a call must not run across the end of an epoch, where validation and
    checkpoints happen); anything else is a one-line error listing the divisors."""
    steps = int(steps_per_epoch)
    if steps < 1:
        raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
    size = int(sink_size)
    if size in (-1, 0):
        return steps
    if size < -1 or steps % size:
        divisors = [d for d in range(1, steps + 1) if steps % d == 0]
        shown = ", ".join(map(str, divisors[:12])) + (", ..." if len(divisors) > 12 else "")
        raise UserError(f"train.sink_size: expected -1 (a whole epoch) or a divisor of the {steps} steps per epoch "
                        f"({shown}), got {sink_size}")
    return size


def plan_sink(sink_mode: bool, sink_size: int, device: str, steps_per_epoch: int, *, mode: int = 0) -> SinkPlan:
    """What ``fit`` does with ``train.sink_mode``/``train.sink_size`` on ``device``: sink
    ``size`` steps per call, or the plain loop (with a one-line notice when sinking was asked
    for but the device or mode cannot)."""
    if not sink_mode:
        return SinkPlan(False, 0)
    ok, why = sink_supported(device, mode)
    if not ok:
        return SinkPlan(False, 0, f"train.sink_mode=true: not sinking on {device}: {why}; "
                                  f"training with the plain per-step loop (same results)")
    return SinkPlan(True, resolve_sink_size(sink_size, steps_per_epoch))


class SunkStep:
    """``step_cell`` over ``dataset`` through ``mindspore.data_sink``: each call runs ``steps``
    optimizer steps (``steps x accumulate_steps`` micro-batches: the accumulation counter lives in
    the step's graph) on batches from the device queue and returns the last micro-batch's loss.

    ``jit_level``: the graph level of the sunk function (``context.jit_level`` as applied; None =
    MindSpore's choice). The data set is bound to this object for good (MindSpore refuses to sink
    one data set twice)."""

    def __init__(self, step_cell: Any, dataset: Any, steps: int, *, accumulate_steps: int = 1,
                 jit_level: Optional[str] = None, mode: int = 0) -> None:
        device = ms.get_context("device_target")
        ok, why = sink_supported(device, mode)
        if not ok:
            raise UserError(f"train.sink_mode: {why}")
        if int(steps) < 1 or int(accumulate_steps) < 1:
            raise ValueError(f"steps and accumulate_steps must be >= 1, got {steps}, {accumulate_steps}")
        self.steps = int(steps)
        self.size = self.steps * int(accumulate_steps)  # micro-batches per call
        jit_config = ms.JitConfig(jit_level=jit_level) if jit_level else ms.JitConfig()
        self._fn = ms.data_sink(step_cell, dataset, sink_size=self.size, jit_config=jit_config)

    def __call__(self) -> float:
        return float(self._fn().asnumpy())


__all__ = ["SINK_DEVICES", "SinkPlan", "SunkStep", "plan_sink", "resolve_sink_size", "sink_supported"]
