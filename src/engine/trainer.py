"""The training loop and its callbacks.

``fit`` runs the graph-mode ``TrainStep`` (``train_step.py``: forward, backward, gradient mean
across devices in data-parallel runs, optional loss scaling, clipping and accumulation, optimizer
update) over the train loader, and hands every step and epoch to a
list of callbacks: logging/progress, NaN guard, validation (with optional precise BN),
checkpointing and the metrics file/plot. Only rank 0 gets the callbacks that write.
"""
from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import mindspore.dataset as msds
from mindspore import Tensor, nn

from ..data.pipeline import stop_guard
from ..errors import UserError
from ..outputs import append_text, atomic_write, trim_partial_line
from .checkpoint import prune_checkpoints, save_checkpoint
from .evaluate import evaluate
from .train_step import TrainStep  # noqa: F401  (re-exported: the cell train.py and the benchmarks run)

logger = logging.getLogger("src.engine")


class NonFiniteLossError(UserError):
    """The loss became NaN or infinite; training stops without saving the corrupted state (exit 3)."""

    exit_code = 3


@dataclass
class TrainState:
    """What the loop and its callbacks share."""
    epoch: int = 0                    # completed epochs
    global_step: int = 0
    epochs: int = 1
    steps_per_epoch: int = 1
    global_batch: int = 1
    best_top1: float = -1.0
    last_val: Dict[str, float] = field(default_factory=dict)
    epoch_losses: List[float] = field(default_factory=list)
    last_checkpoint: Optional[str] = None
    # updates actually applied (global_step counts optimizer steps, including those a gradient
    # overflow skipped; equal without loss scaling); a callback sees it advance in on_step_end
    optimizer_steps: int = 0
    skipped_steps: int = 0                # updates skipped on a gradient overflow (loss scaling)
    loss_scale: Optional[float] = None    # the current loss scale (None: no loss scaling)
    total_steps: int = 0                  # >0: steps of the whole run when epochs differ in length (multigrid)
    step_in_epoch: int = 0                # optimizer steps done in the current epoch
    steps_in_call: int = 1                # optimizer steps the last on_step_end covers (the sink size when sinking)


class Callback:
    def on_train_begin(self, state: TrainState) -> None: ...
    def on_epoch_begin(self, state: TrainState) -> None: ...
    def on_step_end(self, state: TrainState, loss: float, lr: float, step_time: float) -> None: ...
    def on_epoch_end(self, state: TrainState) -> None: ...
    def on_train_end(self, state: TrainState) -> None: ...


# ----------------------------------------------------------------------------------- loop
def fit(step_cell: TrainStep, loader: Any, state: TrainState, lr_values: np.ndarray, *,
        callbacks: Sequence[Callback], finetune: str = "complete", seed: int = 0,
        sunk: Optional[Any] = None) -> TrainState:
    """Train from ``state.epoch`` to ``state.epochs``. Each epoch's shuffle is seeded by
    ``seed + epoch``, so a resumed run sees the same batches an uninterrupted one would.

    ``state.steps_per_epoch`` counts optimizer steps; each is ``step_cell.accumulate_steps``
    (k) micro-batches, so an epoch reads ``k * steps_per_epoch`` batches and ends with the
    accumulation buffers empty. Callbacks see one ``on_step_end`` per optimizer step, with the
    mean loss of its k micro-batches and the time per step.

    ``sunk`` (data sink, :class:`~src.engine.sink.SunkStep` built over ``step_cell``): each call
    runs ``sunk.steps`` optimizer steps on the device's queue and returns the last micro-batch's
    loss; callbacks then see one ``on_step_end`` per call (``state.steps_in_call`` steps, the LR of
    the call's last step, the call's time per step), and the NaN guard checks once per call."""
    k = int(getattr(step_cell, "accumulate_steps", 1))
    scaled = getattr(step_cell, "scaling", False)
    for cb in callbacks:
        cb.on_train_begin(state)
    while state.epoch < state.epochs:
        msds.config.set_seed(seed + state.epoch)
        loader.set_epoch(state.epoch)
        step_cell.set_train(True)
        step_cell.net.train_mode(finetune)  # the model owns its freezing
        if hasattr(loader, "steps_in_epoch"):  # multigrid: each epoch its own count (src/data/multigrid.py)
            state.steps_per_epoch = loader.steps_in_epoch(state.epoch)
        state.epoch_losses = []
        state.step_in_epoch = 0
        for cb in callbacks:
            cb.on_epoch_begin(state)
        if sunk is not None:
            n = int(sunk.steps)
            for _ in range(state.steps_per_epoch // n):
                t0 = time.perf_counter()
                lr = float(lr_values[min(state.global_step + n - 1, len(lr_values) - 1)])
                loss = float(sunk())
                _steps_done(state, step_cell, callbacks, loss, lr, (time.perf_counter() - t0) / n, n, scaled)
        else:
            batches = stop_guard(loader.dataset.create_tuple_iterator(num_epochs=1), loader)  # a data stop: one line
            micro_losses: List[float] = []
            dt = 0.0
            for i, (video, label) in enumerate(batches):
                if i >= state.steps_per_epoch * k:
                    break
                t0 = time.perf_counter()
                lr = float(lr_values[min(state.global_step, len(lr_values) - 1)])
                micro_losses.append(float(step_cell(video, label).asnumpy()))
                dt += time.perf_counter() - t0
                if len(micro_losses) < k:
                    continue
                loss = float(np.mean(micro_losses)) if k > 1 else micro_losses[0]
                micro_losses = []
                _steps_done(state, step_cell, callbacks, loss, lr, dt, 1, scaled)
                dt = 0.0
        state.epoch += 1
        for cb in callbacks:
            cb.on_epoch_end(state)
    for cb in callbacks:
        cb.on_train_end(state)
    return state


def _steps_done(state: TrainState, step_cell: Any, callbacks: Sequence[Callback], loss: float, lr: float,
                step_time: float, n: int, scaled: bool) -> None:
    """Book ``n`` finished optimizer steps (1, or a sunk call's) and tell the callbacks."""
    state.global_step += n
    state.step_in_epoch += n
    state.steps_in_call = n
    if not math.isfinite(loss):
        raise NonFiniteLossError(
            f"loss is {loss} at epoch {state.epoch + 1}, step {state.global_step}; stopping. "
            f"Last good checkpoint: {state.last_checkpoint or 'none saved yet'}")
    if scaled:
        state.skipped_steps = step_cell.skipped_updates()
        state.loss_scale = step_cell.current_loss_scale()
    state.optimizer_steps = state.global_step - state.skipped_steps
    state.epoch_losses.append(loss)
    for cb in callbacks:
        cb.on_step_end(state, loss, lr, step_time)


def _crossed(state: TrainState, interval: int) -> bool:
    """Whether the steps of the last call reached a multiple of ``interval`` steps in the epoch
    (with one step per call: ``step_in_epoch % interval == 0``)."""
    s, n = state.step_in_epoch, state.steps_in_call
    return s // interval != (s - n) // interval


# ----------------------------------------------------------------------------------- precise BN
def precise_bn(net: nn.Cell, loader: Any, num_batches: int) -> int:
    """Recompute BN moving statistics as the plain average of ``num_batches`` training-batch
    statistics (SlowFast's precise BN). Each batch's statistics are recovered exactly from the
    moving-average update: batch = (new - (1 - m) * old) / m. Returns the batches used."""
    bns = [c for _, c in net.cells_and_names() if isinstance(c, nn.BatchNorm2d)]
    if not bns or num_batches <= 0:
        return 0
    net.set_train(True)
    sums = [[np.zeros(c.moving_mean.shape, np.float64), np.zeros(c.moving_mean.shape, np.float64)] for c in bns]
    used = 0
    mix = getattr(loader, "batch_mix", None)  # MixUp/CutMix off: statistics of plain clips, as SlowFast's
    if mix is not None:
        mix.enabled = False
    for video, _label in stop_guard(loader.dataset.create_tuple_iterator(num_epochs=1), loader):
        if used >= num_batches:
            break
        # copies: asnumpy() may share memory with the parameter, which the forward updates in place
        before = [(c.moving_mean.asnumpy().copy(), c.moving_variance.asnumpy().copy()) for c in bns]
        net(video)
        for (old_m, old_v), c, acc in zip(before, bns, sums):
            m = float(c.momentum)  # torch convention: new = (1 - m) * old + m * batch
            acc[0] += (c.moving_mean.asnumpy() - (1 - m) * old_m) / m
            acc[1] += (c.moving_variance.asnumpy() - (1 - m) * old_v) / m
        used += 1
    if mix is not None:
        mix.enabled = True
    if used:
        for c, (mean, var) in zip(bns, sums):
            c.moving_mean.set_data(Tensor((mean / used).astype(np.float32)))
            c.moving_variance.set_data(Tensor((var / used).astype(np.float32)))
    return used


# ----------------------------------------------------------------------------------- callbacks
class ProgressLogger(Callback):
    """Per-step loss / LR / clips/s / ETA every ``log_interval`` steps, a progress bar, an epoch summary."""

    def __init__(self, *, log_interval: int, progress_bar: bool, loader: Any, log_file: Optional[str],
                 quiet: bool = False) -> None:
        self.quiet = quiet  # non-zero ranks of a data-parallel run: count, but print nothing
        self.log_interval = max(1, int(log_interval))
        self.progress_bar = progress_bar
        self.loader = loader
        self.log_file = log_file
        self.bar = None
        self.times: List[float] = []
        self.skipped = 0

    def on_train_begin(self, state: TrainState) -> None:
        self.skipped = state.skipped_steps  # a resumed run: the skips before it were logged then

    def log(self, text: str) -> None:
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.write(text)
        else:
            print(text, flush=True)
        if self.log_file:
            append_text(self.log_file, text + "\n")  # a full disk: one line, no half line left

    def on_epoch_begin(self, state: TrainState) -> None:
        self.epoch_start = time.perf_counter()
        if self.progress_bar and sys.stderr.isatty():  # redirected output: the periodic lines only
            from tqdm import tqdm
            self.bar = tqdm(total=state.steps_per_epoch, desc=f"epoch {state.epoch + 1}/{state.epochs}",
                            unit="step", leave=False, dynamic_ncols=True, file=sys.stderr)

    def on_step_end(self, state: TrainState, loss: float, lr: float, step_time: float) -> None:
        self.times.append(step_time)
        recent = self.times[-50:]
        # the first step of a run includes graph compilation; leave it out of the rate when possible
        per_step = float(np.median(recent[1:] if len(recent) > 1 else recent))
        remaining = (state.total_steps or state.epochs * state.steps_per_epoch) - state.global_step
        clips = state.global_batch / per_step if per_step > 0 else 0.0
        if self.bar is not None:
            self.bar.update(state.steps_in_call)
            self.bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", clips_s=f"{clips:.1f}")
        step_in_epoch = state.step_in_epoch
        if state.skipped_steps > self.skipped:
            self.log(f"epoch {state.epoch + 1}/{state.epochs} step {step_in_epoch} (global {state.global_step}): "
                     f"gradient overflow, update skipped; loss scale now {state.loss_scale:g}")
            self.skipped = state.skipped_steps
        if _crossed(state, self.log_interval) or step_in_epoch == state.steps_per_epoch:
            scale = (f" loss scale {state.loss_scale:g} ({state.skipped_steps} skipped on overflow)"
                     if state.loss_scale is not None else "")
            self.log(f"epoch {state.epoch + 1}/{state.epochs} step {step_in_epoch}/{state.steps_per_epoch} "
                     f"(global {state.global_step}) loss {loss:.4f} lr {lr:.6f}{scale} {clips:.1f} clips/s "
                     f"eta {_hms(remaining * per_step)}")

    def on_epoch_end(self, state: TrainState) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        mean_loss = float(np.mean(state.epoch_losses)) if state.epoch_losses else float("nan")
        val = state.last_val
        val_text = (f", val top-1 {100 * val['top1']:.2f}% top-5 {100 * val['top5']:.2f}%"
                    if val.get("epoch") == state.epoch else "")
        if val_text and "ema_top1" in val:
            val_text += f" (EMA top-1 {100 * val['ema_top1']:.2f}% top-5 {100 * val['ema_top5']:.2f}%)"
        self.log(f"epoch {state.epoch}/{state.epochs} done in {_hms(time.perf_counter() - self.epoch_start)}: "
                 f"train loss {mean_loss:.4f}{val_text}; {self.loader.summary()}")


def validation_due(epoch: int, epochs: int, interval: int) -> bool:
    return interval > 0 and (epoch % interval == 0 or epoch == epochs)


def checkpoint_due(epoch: int, epochs: int, interval: int) -> bool:
    """A periodic (``epochNNNN.ckpt``) or the final checkpoint is written after ``epoch``."""
    return epoch % max(1, interval) == 0 or epoch == epochs


def precise_bn_due(epoch: int, epochs: int, period: int, eval_interval: int) -> bool:
    """SlowFast's precise-BN epochs (tools/train_net.py: ``is_checkp_epoch or is_eval_epoch``,
    both true at the last epoch): every ``period``-th epoch (its ``TRAIN.CHECKPOINT_PERIOD``;
    0 = none), each validation epoch (``eval_interval``, its ``EVAL_PERIOD``) and the last."""
    return (epoch == epochs or (period > 0 and epoch % period == 0)
            or validation_due(epoch, epochs, eval_interval))


class PreciseBN(Callback):
    """SlowFast's precise BN: after every ``period``-th epoch, before each validation and after
    the last epoch (with or without a validation set; :func:`precise_bn_due`), BatchNorm
    statistics become the plain average over ``num_batches`` training batches. Checkpoints of
    other epochs (``last.ckpt``, ``epochNNNN.ckpt`` with a ``ckpt_interval`` that is not a
    multiple of ``period``) keep the running averages. Skipped for ``last_layer`` fine-tuning
    (the backbone's statistics are frozen)."""

    def __init__(self, net: nn.Cell, train_loader: Any, *, num_batches: int, finetune: str, eval_interval: int,
                 period: int, has_validation: bool, log) -> None:
        self.net, self.train_loader = net, train_loader
        self.num_batches, self.finetune = int(num_batches), finetune
        self.eval_interval = int(eval_interval) if has_validation else 0
        self.period = int(period)
        if self.period < 0:
            raise ValueError(f"train.precise_bn_period must be >= 0, got {period}")
        self.log = log

    def on_epoch_end(self, state: TrainState) -> None:
        if self.num_batches <= 0 or self.finetune != "complete":
            return
        if not precise_bn_due(state.epoch, state.epochs, self.period, self.eval_interval):
            return
        used = precise_bn(self.net, self.train_loader, self.num_batches)
        self.net.train_mode(self.finetune)
        self.log(f"precise BN: statistics recomputed over {used} batches")


class Validation(Callback):
    """Single-view validation every ``interval`` epochs (and after the last); runs after PreciseBN.
    With ``ema`` (a :class:`~src.engine.ema.ModelEMA` of ``net``) the EMA weights are evaluated
    too, swapped into ``net`` and back (raw weights restored bit for bit): ``ema_top1``, ``ema_top5``,
    ``ema_mean_class_accuracy`` in ``state.last_val``."""

    def __init__(self, net: nn.Cell, loader: Any, *, interval: int, finetune: str, log, ema: Any = None) -> None:
        self.net, self.loader, self.ema = net, loader, ema
        self.interval = int(interval)
        self.finetune = finetune
        self.log = log

    def on_epoch_end(self, state: TrainState) -> None:
        if self.loader is None or not validation_due(state.epoch, state.epochs, self.interval):
            return
        t0 = time.perf_counter()
        m = evaluate(self.net, self.loader)
        state.last_val = {"epoch": state.epoch, "top1": m["top1"], "top5": m["top5"],
                          "mean_class_accuracy": m["mean_class_accuracy"], "num_videos": m["num_videos"],
                          "seconds": time.perf_counter() - t0}
        if self.ema is not None:
            with self.ema.swapped_in():
                e = evaluate(self.net, self.loader)
            state.last_val.update({f"ema_{k}": e[k] for k in ("top1", "top5", "mean_class_accuracy")})
        self.net.train_mode(self.finetune)


class CheckpointSaver(Callback):
    """``epochNNNN.ckpt`` every ``interval`` epochs (newest ``keep`` kept), ``last.ckpt`` every
    epoch, ``best.ckpt`` on a new best validation top-1; all written atomically. With ``ema`` (a
    :class:`~src.engine.ema.ModelEMA`) every checkpoint also holds its shadows (``ema.*``) and the
    EMA top-1 (``ema_top1`` of the validation) decides the best, as mindcv validates EMA weights."""

    def __init__(self, step_cell: TrainStep, directory: str, *, interval: int, keep: int, config_yaml: str,
                 class_names: Sequence[str], log, ema: Any = None) -> None:
        self.cell, self.dir, self.ema = step_cell, directory, ema
        self.interval, self.keep = max(1, int(interval)), int(keep)
        self.config_yaml, self.class_names, self.log = config_yaml, list(class_names), log

    def _save(self, name: str, state: TrainState) -> str:
        return save_checkpoint(self.cell, os.path.join(self.dir, name), epoch=state.epoch,
                               global_step=state.global_step, best_top1=max(state.best_top1, 0.0),
                               config_yaml=self.config_yaml, class_names=self.class_names,
                               extra=self.ema.state() if self.ema is not None else None)

    def on_epoch_end(self, state: TrainState) -> None:
        val = state.last_val
        key = "ema_top1" if self.ema is not None and "ema_top1" in val else "top1"
        if val.get("epoch") == state.epoch and val[key] > state.best_top1:
            state.best_top1 = val[key]
            self._save("best.ckpt", state)
            which = "EMA " if key == "ema_top1" else ""
            self.log(f"new best {which}val top-1 {100 * val[key]:.2f}% -> {os.path.join(self.dir, 'best.ckpt')}")
        if checkpoint_due(state.epoch, state.epochs, self.interval):
            self._save(f"epoch{state.epoch:04d}.ckpt", state)
            prune_checkpoints(self.dir, self.keep)
        state.last_checkpoint = self._save("last.ckpt", state)


class MetricsWriter(Callback):
    """``metrics.jsonl`` (one JSON object per logged step and per epoch) and ``curves.png``."""

    def __init__(self, directory: str, *, log_interval: int) -> None:
        self.path = os.path.join(directory, "metrics.jsonl")
        self.png = os.path.join(directory, "curves.png")
        self.log_interval = max(1, int(log_interval))
        self.t0 = time.time()
        trim_partial_line(self.path)  # a run killed while appending left half a record

    def _write(self, record: Dict[str, Any]) -> None:
        append_text(self.path, json.dumps(record) + "\n")

    def on_step_end(self, state: TrainState, loss: float, lr: float, step_time: float) -> None:
        if _crossed(state, self.log_interval):
            rec = {"kind": "step", "epoch": state.epoch + 1, "global_step": state.global_step,
                   "loss": loss, "lr": lr, "clips_per_s": state.global_batch / max(step_time, 1e-9)}
            if state.loss_scale is not None:  # loss scaling: the scale and the updates skipped so far
                rec.update(loss_scale=state.loss_scale, skipped_steps=state.skipped_steps,
                           optimizer_steps=state.optimizer_steps)
            self._write(rec)

    def on_epoch_end(self, state: TrainState) -> None:
        rec: Dict[str, Any] = {"kind": "epoch", "epoch": state.epoch, "global_step": state.global_step,
                               "train_loss": float(np.mean(state.epoch_losses)) if state.epoch_losses else None,
                               "elapsed_s": round(time.time() - self.t0, 2)}
        if state.loss_scale is not None:
            rec.update(loss_scale=state.loss_scale, skipped_steps=state.skipped_steps,
                       optimizer_steps=state.optimizer_steps)
        if state.last_val.get("epoch") == state.epoch:
            rec.update({f"val_{k}": v for k, v in state.last_val.items() if k != "epoch"})
        self._write(rec)
        plot_curves(self.path, self.png)


def read_metrics(path: str) -> List[Dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def plot_curves(metrics_path: str, png_path: str) -> None:
    """Loss, LR and validation accuracy against the global step (PNG)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = read_metrics(metrics_path)
    steps = [r for r in recs if r["kind"] == "step"]
    epochs = [r for r in recs if r["kind"] == "epoch"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].plot([r["global_step"] for r in steps], [r["loss"] for r in steps], lw=1, label="step")
    axes[0].plot([r["global_step"] for r in epochs], [r["train_loss"] for r in epochs], "o-", label="epoch mean")
    axes[0].set(title="training loss", xlabel="step")
    axes[0].legend()
    axes[1].plot([r["global_step"] for r in steps], [r["lr"] for r in steps])
    axes[1].set(title="learning rate", xlabel="step")
    val = [r for r in epochs if "val_top1" in r]
    axes[2].plot([r["epoch"] for r in val], [100 * r["val_top1"] for r in val], "o-", label="top-1")
    axes[2].plot([r["epoch"] for r in val], [100 * r["val_top5"] for r in val], "s--", label="top-5")
    ema = [r for r in val if "val_ema_top1" in r]
    if ema:
        axes[2].plot([r["epoch"] for r in ema], [100 * r["val_ema_top1"] for r in ema], "^-", label="EMA top-1")
    axes[2].set(title="validation accuracy (%)", xlabel="epoch", ylim=(0, 100))
    axes[2].legend()
    fig.tight_layout()
    try:
        atomic_write(png_path, lambda tmp: fig.savefig(tmp, dpi=90))
    finally:
        plt.close(fig)


def _hms(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
