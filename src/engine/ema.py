"""Exponential moving average (EMA) of a network's weights, kept beside the raw weights.

    ema = ModelEMA(net, decay=0.9999, warmup=2000)   # shadows = copies of net's current values
    callbacks = [EMA(ema), ...]                       # one update per optimizer update
    with ema.swapped_in():                            # net holds the averages inside the block
        evaluate(net, loader)

**What is averaged.** Every parameter of the network: the trainable ones and the BatchNorm
moving statistics (``moving_mean`` / ``moving_variance`` are parameters in MindSpore), as
mindcv's ``TrainStep`` (``network.get_parameters()``) and timm's ``ModelEmaV2`` (the whole
``state_dict``, buffers included) do. Evaluating the EMA weights therefore uses the EMA of the
raw network's BN statistics, not statistics recomputed for the averaged weights (precise BN runs
on the raw network only; its recomputed statistics enter the average through the updates after it).
Parameters that do not change (frozen by ``finetune: last_layer``) keep bit-identical shadows:
the update is written as ``s + (1 - d) * (w - s)``, which is ``s`` when ``w == s`` (not with
``ops.lerp``: its CPU kernel measured slower than these three element-wise ops).

**Decay with warm-up** (mindcv's ``TrainStep.ema_update``, time constant ``warmup``, hard-coded
2000 there): at the t-th update (t = 1, 2, ...) ``d_t = decay * (1 - exp(-t / warmup))``, then
``shadow <- d_t * shadow + (1 - d_t) * weight``. Early updates (d_t near 0) make the shadow
follow the weights; after a few ``warmup`` updates d_t reaches ``decay``. ``warmup = 0``: d_t = decay.

**State.** Shadows are float32 Parameters named ``ema.<parameter name>``, the update count an
int32 Parameter ``ema_updates`` (:data:`~src.engine.checkpoint.EMA_PREFIX`,
:data:`~src.engine.checkpoint.EMA_COUNTER`); training checkpoints store them beside the raw
weights, so ``--resume`` continues the average exactly. The update is one call of the Cell:
count, decay and every shadow in one graph in graph mode (``context.mode: 0``, train.py's
default); in PyNative it runs op by op. It is not wrapped in ``ms.jit``: under MindSpore 2.10
PyNative a jitted ``construct`` kept reading the network's parameters as they were at its first
call (the shadows stopped following the weights). A ``ModelEMA`` must not become an attribute of
another Cell: MindSpore would rename the shared network parameters with that attribute's prefix.
"""
from __future__ import annotations

import contextlib
import math
from typing import Any, Callable, Dict, Iterator, List

import numpy as np
import mindspore as ms
from mindspore import Parameter, ParameterTuple, Tensor, nn, ops

from .checkpoint import EMA_COUNTER, EMA_PREFIX, CheckpointError
from .trainer import Callback, TrainState

_lerp = ops.MultitypeFuncGraph("ema_lerp")


@_lerp.register("Tensor", "Tensor", "Tensor")
def _lerp_shadow(one_minus_d: Tensor, shadow: Parameter, weight: Parameter) -> Tensor:
    return ops.assign(shadow, shadow + one_minus_d * (ops.cast(weight, ms.float32) - shadow))


def ema_decay_at(updates: int, decay: float, warmup: float) -> float:
    """The decay of the ``updates``-th update (1-based): ``decay * (1 - exp(-updates / warmup))``
    (mindcv's warm-up); ``decay`` itself when ``warmup`` is 0."""
    return decay if warmup <= 0 else decay * (1.0 - math.exp(-updates / warmup))


class ModelEMA(nn.Cell):
    """Float32 shadows of every parameter of ``net`` and their update (see the module docstring)."""

    def __init__(self, net: nn.Cell, *, decay: float = 0.9999, warmup: float = 2000.0) -> None:
        super().__init__(auto_prefix=False)
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        if warmup < 0:
            raise ValueError(f"EMA warm-up must be >= 0 updates, got {warmup}")
        self.decay, self.warmup = float(decay), float(warmup)
        params = list(net.get_parameters())
        self.weights = ParameterTuple(params)
        self.shadows = ParameterTuple([Parameter(Tensor(_host(p).astype(np.float32)), name=EMA_PREFIX + p.name,
                                                 requires_grad=False) for p in params])
        self.updates = Parameter(Tensor(0, ms.int32), name=EMA_COUNTER, requires_grad=False)
        self.hyper_map = ops.HyperMap()

    def construct(self) -> Tensor:
        """One update of every shadow; returns the new update count."""
        updates = self.updates + 1
        updates = ops.depend(updates, ops.assign(self.updates, updates))
        if self.warmup > 0:
            d = self.decay * (1.0 - ops.exp(-ops.cast(updates, ms.float32) / self.warmup))
        else:
            d = ops.fill(ms.float32, (), self.decay)
        done = self.hyper_map(ops.partial(_lerp, 1.0 - d), self.shadows, self.weights)
        return ops.depend(updates, done)

    # --------------------------------------------------------------- state
    @property
    def num_updates(self) -> int:
        return int(self.updates.asnumpy())

    def state(self) -> Dict[str, Parameter]:
        """What a training checkpoint stores: ``ema.<name>`` shadows and ``ema_updates``."""
        out = {s.name: s for s in self.shadows}
        out[EMA_COUNTER] = self.updates
        bad = [k for k in out if not (k.startswith(EMA_PREFIX) or k == EMA_COUNTER)]
        if bad:  # the ModelEMA was nested into another Cell, which renamed its parameters
            raise RuntimeError(f"EMA parameters were renamed ({bad[0]}); keep ModelEMA out of other Cells")
        return out

    def reset(self) -> None:
        """Shadows := the network's current values; update count 0."""
        for s, p in zip(self.shadows, self.weights):
            s.set_data(Tensor(_host(p).astype(np.float32)))
        self.updates.set_data(Tensor(0, ms.int32))

    def load_state(self, params: Dict[str, Any], *, source: str) -> bool:
        """Shadows and count from checkpoint ``params`` (read by ``read_checkpoint``). A checkpoint
        without any (trained with EMA off) resets the shadows to the network's current (resumed)
        values and returns False; an incomplete set raises :class:`CheckpointError`."""
        if EMA_COUNTER not in params and not any(k.startswith(EMA_PREFIX) for k in params):
            self.reset()
            return False
        missing = [s.name for s in self.shadows if s.name not in params]
        missing += [EMA_COUNTER] if EMA_COUNTER not in params else []
        wrong = [s.name for s in self.shadows if s.name in params and tuple(params[s.name].shape) != tuple(s.shape)]
        if missing or wrong:
            listed = [f"{n} (missing)" for n in missing[:8]] + [f"{n} (shape)" for n in wrong[:8]]
            raise CheckpointError(f"{source}: cannot resume the EMA weights, {len(missing) + len(wrong)} do not fit: "
                                  f"{', '.join(listed)}")
        for s in self.shadows:
            s.set_data(Tensor(_host(params[s.name]).astype(np.float32)))
        self.updates.set_data(Tensor(int(_host(params[EMA_COUNTER])), ms.int32))
        return True

    # --------------------------------------------------------------- evaluation
    @contextlib.contextmanager
    def swapped_in(self) -> Iterator[None]:
        """The network holds the EMA weights inside the block (each cast to its parameter's
        dtype); its raw values are put back bit for bit afterwards, also on an exception."""
        raw: List[np.ndarray] = [_host(p).copy() for p in self.weights]
        try:
            for p, s in zip(self.weights, self.shadows):
                p.set_data(Tensor(_host(s).astype(ms.dtype_to_nptype(p.dtype))))
            yield
        finally:
            for p, r in zip(self.weights, raw):
                p.set_data(Tensor(r))


def _host(p: Any) -> np.ndarray:
    """A host copy (``asnumpy`` may share memory with a parameter that later updates in place)."""
    return np.array(p.asnumpy(), copy=True)


class EMA(Callback):
    """Updates ``ema`` once whenever an optimizer update was applied: when ``state.optimizer_steps``
    (updates actually applied; the step count where the loop does not keep one) advanced.
    Gradient-accumulation micro-steps and steps skipped for a loss-scale overflow leave it alone.
    Put it first among the callbacks, so validation and checkpoints see this step's average."""

    def __init__(self, ema: ModelEMA) -> None:
        self.ema = ema
        self.seen = 0

    @staticmethod
    def _applied(state: TrainState) -> int:
        return int(getattr(state, "optimizer_steps", state.global_step))

    def on_train_begin(self, state: TrainState) -> None:
        self.seen = self._applied(state)

    def on_step_end(self, state: TrainState, loss: float, lr: float, step_time: float) -> None:
        applied = self._applied(state)
        if applied != self.seen:
            self.ema()
            self.seen = applied


def ema_update_callable(net: nn.Cell, decay: float = 0.9999, warmup: float = 2000.0) -> Callable[[], None]:
    """One EMA update of ``net``'s weights per call, waiting until it is done (for timing: the
    benchmark times it with the train step). The shadows start as copies of ``net``'s values."""
    ema = ModelEMA(net, decay=decay, warmup=warmup)

    def update() -> None:
        ema().asnumpy()

    update.ema = ema  # type: ignore[attr-defined]  (the shadows, for whoever wants to look)
    return update


__all__ = ["ModelEMA", "EMA", "ema_decay_at", "ema_update_callable"]
