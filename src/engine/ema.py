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

**State.** The shadows live in one flat float32 vector (every parameter, flattened in the order
of ``net.get_parameters()``), so an update is a handful of kernels over one vector rather than a
few per parameter; ``shadows`` and ``state()`` give them as float32 tensors named
``ema.<parameter name>``, the update count is an int32 Parameter ``ema_updates``
(:data:`~src.engine.checkpoint.EMA_PREFIX`, :data:`~src.engine.checkpoint.EMA_COUNTER`);
training checkpoints store them beside the raw weights, so ``--resume`` continues the average
exactly. The update is one call of the Cell: count, decay and the shadow vector in one graph in
graph mode (``context.mode: 0``, train.py's default); in PyNative it runs op by op. It is not wrapped in ``ms.jit``: under MindSpore 2.10
PyNative a jitted ``construct`` kept reading the network's parameters as they were at its first
call (the shadows stopped following the weights). A ``ModelEMA`` must not become an attribute of
another Cell: MindSpore would rename the shared network parameters with that attribute's prefix.
"""
from __future__ import annotations

import contextlib
import math
from typing import Any, Callable, Dict, Iterator, List, Tuple

import numpy as np
import mindspore as ms
from mindspore import Parameter, ParameterTuple, Tensor, nn, ops

from .checkpoint import EMA_COUNTER, EMA_PREFIX, CheckpointError
from .train_step import flatten
from .trainer import Callback, TrainState

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
        self.names = [EMA_PREFIX + p.name for p in params]
        self.shapes = [tuple(p.shape) for p in params]
        # every shadow in one flat float32 vector (in the order of ``weights``): the update is a few
        # ops over one vector instead of a few per parameter (each op is a kernel launch)
        self.shadow = Parameter(Tensor(self._flat_host(_host(p) for p in params)), name="ema_flat_shadow",
                                requires_grad=False)
        self.updates = Parameter(Tensor(0, ms.int32), name=EMA_COUNTER, requires_grad=False)

    def construct(self) -> Tensor:
        """One update of every shadow; returns the new update count."""
        updates = self.updates + 1
        updates = ops.depend(updates, ops.assign(self.updates, updates))
        if self.warmup > 0:
            d = self.decay * (1.0 - ops.exp(-ops.cast(updates, ms.float32) / self.warmup))
        else:
            d = ops.fill(ms.float32, (), self.decay)
        shadow = self.shadow
        done = ops.assign(shadow, shadow + (1.0 - d) * (flatten(self.weights) - shadow))
        return ops.depend(updates, done)

    # --------------------------------------------------------------- flat vector <-> per parameter
    @staticmethod
    def _flat_host(arrays: Any) -> np.ndarray:
        return np.concatenate([np.asarray(a, np.float32).reshape(-1) for a in arrays])

    def _split_host(self) -> List[np.ndarray]:
        flat, out, at = _host(self.shadow), [], 0
        for shape in self.shapes:
            n = int(np.prod(shape))
            out.append(flat[at:at + n].reshape(shape))
            at += n
        return out

    @property
    def shadows(self) -> Tuple[Parameter, ...]:
        """The shadows as float32 Parameters ``ema.<parameter name>`` (host copies of the flat vector,
        in the order of the network's parameters: for checkpoints and inspection)."""
        return tuple(Parameter(Tensor(a), name=n, requires_grad=False) for n, a in zip(self.names, self._split_host()))

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
        self.shadow.set_data(Tensor(self._flat_host(_host(p) for p in self.weights)))
        self.updates.set_data(Tensor(0, ms.int32))

    def load_state(self, params: Dict[str, Any], *, source: str) -> bool:
        """Shadows and count from checkpoint ``params`` (read by ``read_checkpoint``). A checkpoint
        without any (trained with EMA off) resets the shadows to the network's current (resumed)
        values and returns False; an incomplete set raises :class:`CheckpointError`."""
        if EMA_COUNTER not in params and not any(k.startswith(EMA_PREFIX) for k in params):
            self.reset()
            return False
        missing = [n for n in self.names if n not in params]
        missing += [EMA_COUNTER] if EMA_COUNTER not in params else []
        wrong = [n for n, shape in zip(self.names, self.shapes) if n in params and tuple(params[n].shape) != shape]
        if missing or wrong:
            listed = [f"{n} (missing)" for n in missing[:8]] + [f"{n} (shape)" for n in wrong[:8]]
            raise CheckpointError(f"{source}: cannot resume the EMA weights, {len(missing) + len(wrong)} do not fit: "
                                  f"{', '.join(listed)}")
        self.shadow.set_data(Tensor(self._flat_host(_host(params[n]) for n in self.names)))
        self.updates.set_data(Tensor(int(_host(params[EMA_COUNTER])), ms.int32))
        return True

    # --------------------------------------------------------------- evaluation
    @contextlib.contextmanager
    def swapped_in(self) -> Iterator[None]:
        """The network holds the EMA weights inside the block (each cast to its parameter's
        dtype); its raw values are put back bit for bit afterwards, also on an exception."""
        raw: List[np.ndarray] = [_host(p).copy() for p in self.weights]
        try:
            for p, s in zip(self.weights, self._split_host()):
                p.set_data(Tensor(s.astype(ms.dtype_to_nptype(p.dtype))))
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
