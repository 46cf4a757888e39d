"""Multigrid training (Wu et al., "A Multigrid Method for Efficiently Training Video Models", CVPR 2020).

The network trains on a sequence of (batch, frames, crop) shapes whose product batch x T x H x W
stays about the default one's, so an iteration costs about the same while the cheap shapes see
many more clips:

* the **long cycle** walks through ``long_cycle_factors`` ((T factor, crop factor) pairs) inside
  every LR step of the plain schedule, each shape getting the same number of iterations; the
  batch grows by ``round(T0 S0^2 / (T S^2))`` and the learning rate with it (linear scaling); the
  clip covers the same time span (sampling rate x T0 // T) and the same share of the frame
  (the scale jitter's minimum shrinks with the crop). The epochs of each shape are re-computed
  so that the iterations saved before the last LR step are saved in the fine-tuning phase too
  (the default shape, after the last step), then all are stretched to ``epoch_factor`` times the
  plain epoch count;
* the **short cycle** repeats, inside every long-cycle shape, groups of 3 iterations at crops
  ``short_cycle_factors[0] x S0``, ``short_cycle_factors[1] x S0`` and the stage's own crop, the
  batch of each scaled by ``round((S / s)^2)``.

:func:`build_plan` turns the config into a :class:`MultigridPlan` (stages, the shapes of every
iteration, steps per epoch, the per-step LR; plain Python); :class:`MultigridLoader`
(``src/data/multigrid.py``) feeds those shapes; :class:`MultigridMonitor` logs the stages and
the graphs compiled; ``train.py`` wires them.
Everything is a function of the config, so a resumed run rebuilds the same plan and continues at
its epoch's stage and shape.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, List, Sequence, Tuple

import numpy as np

from ..errors import UserError
from .trainer import Callback, TrainState

LR_GRID = 1000  # the plain schedule is sampled at 1/LR_GRID epoch to read rates at fractional epochs


@dataclass(frozen=True)
class Stage:
    """One long-cycle shape over a run of epochs.

    ``batch_factor``/``frames``/``crop``: the long-cycle base shape (batch relative to the default);
    ``cycle``: (batch factor, crop) of each iteration of its short cycle (one entry without it),
    batch factors relative to the default batch; ``end_epoch``: the (multigrid) epoch it ends at
    (exclusive, cumulative); ``plain_start``/``plain_end``: the span of the plain schedule's epochs
    whose learning rates it uses; ``lr_step``: the LR step it belongs to (the fine-tuning phase:
    the number of steps)."""
    lr_step: int
    batch_factor: int
    frames: int
    crop: int
    end_epoch: int
    plain_start: float
    plain_end: float
    cycle: Tuple[Tuple[int, int], ...]
    fine_tune: bool = False


@dataclass
class MultigridPlan:
    """The whole multigrid run: its stages, epochs and the shapes of every iteration."""
    stages: List[Stage]
    epochs: int                    # multigrid epochs (train.epochs x epoch_factor, rounded)
    default_batch: int             # per-process clips of the default shape
    default_frames: int
    default_crop: int
    samples_per_shard: int         # clips one process sees per epoch
    max_steps_per_epoch: int = 0
    _steps: List[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._steps = [self._count_steps(e) for e in range(self.epochs)]

    # -- where an epoch stands
    def stage_index(self, epoch: int) -> int:
        """The stage that trains epoch ``epoch`` (0-based): the first whose end is after it."""
        for i, s in enumerate(self.stages):
            if epoch < s.end_epoch:
                return i
        return len(self.stages) - 1

    def stage(self, epoch: int) -> Stage:
        return self.stages[self.stage_index(epoch)]

    def batches(self, epoch: int) -> List[Tuple[int, int, int]]:
        """(clips, frames, crop) of each batch of epoch ``epoch``, in order: the stage's short cycle
        repeated while whole batches fit in the shard's clips (at most ``max_steps_per_epoch``)."""
        st = self.stage(epoch)
        out, used, k = [], 0, 0
        while True:
            factor, crop = st.cycle[k % len(st.cycle)]
            size = factor * self.default_batch
            if used + size > self.samples_per_shard:
                break
            if self.max_steps_per_epoch and len(out) >= self.max_steps_per_epoch:
                break
            out.append((size, st.frames, crop))
            used += size
            k += 1
        return out

    def _count_steps(self, epoch: int) -> int:
        return len(self.batches(epoch))

    def steps_in_epoch(self, epoch: int) -> int:
        return self._steps[epoch]

    def steps_before(self, epoch: int) -> int:
        """Optimizer steps of all epochs before ``epoch`` (a resumed run's global step)."""
        return int(sum(self._steps[:epoch]))

    @property
    def total_steps(self) -> int:
        return int(sum(self._steps))

    def shapes(self) -> List[Tuple[int, int, int]]:
        """The distinct (clips, frames, crop) batches of the run, in order of first use: one graph each."""
        seen: List[Tuple[int, int, int]] = []
        for e in range(self.epochs):
            for b in self.batches(e)[:len(self.stage(e).cycle)]:
                if b not in seen:
                    seen.append(b)
        return seen

    # -- learning rate
    def learning_rates(self, plain_lr: Callable[[int, int], np.ndarray], plain_epochs: int) -> np.ndarray:
        """One rate per optimizer step: the plain schedule's rate at the point of its own epochs
        that the step stands for (each stage maps its iterations linearly onto its plain span),
        times the stage's batch factor. ``plain_lr(epochs, steps_per_epoch)`` builds the plain
        per-step schedule (sampled at ``LR_GRID`` steps per epoch here)."""
        grid = np.asarray(plain_lr(plain_epochs, LR_GRID), np.float64)
        out = np.empty(self.total_steps, np.float64)
        pos = 0
        for i, st in enumerate(self.stages):
            first = self.stages[i - 1].end_epoch if i else 0
            n = sum(self._steps[first:st.end_epoch])
            if n == 0:
                continue
            t = st.plain_start + (st.plain_end - st.plain_start) * np.arange(n) / n
            idx = np.clip(np.floor(t * LR_GRID + 1e-6).astype(np.int64), 0, len(grid) - 1)
            out[pos:pos + n] = grid[idx] * st.batch_factor
            pos += n
        return out.astype(np.float32)

    def describe(self) -> List[str]:
        """Log lines: one per stage with epochs (epochs, shape of each batch of its cycle, LR factor)."""
        lines, first = [], 0
        for i, st in enumerate(self.stages):
            if st.end_epoch > first:
                cycle = ", ".join(f"{f * self.default_batch}x{st.frames}x{c}x{c}" for f, c in st.cycle)
                what = "fine-tuning" if st.fine_tune else f"LR step {st.lr_step}"
                lines.append(f"  stage {i + 1}: epochs {first + 1}-{st.end_epoch} ({what}): batches {cycle} "
                             f"(clips x frames x crop), lr x{st.batch_factor}, {self._steps[first]} steps/epoch")
            first = max(first, st.end_epoch)
        return lines


# ----------------------------------------------------------------------------------- the schedule
def _short_cycle(crop: int, default_crop: int, factors: Sequence[float]) -> List[Tuple[float, float]]:
    """(crop, batch factor relative to the stage's own batch) of one short cycle: the two small
    crops (of the default crop), then the stage's crop."""
    out = []
    for f in factors:
        s = f * default_crop
        out.append((s, max(1, int(round((crop / s) ** 2)))))
    return out + [(crop, 1)]


def long_cycle_schedule(*, steps: Sequence[float], epochs: int, frames: int, crop: int,
                        long_factors: Sequence[Sequence[float]], short_factors: Sequence[float],
                        short_cycle: bool, epoch_factor: float) -> List[Stage]:
    """The long-cycle stages of a plain run of ``epochs`` whose LR steps begin at ``steps``
    (``[0, s1, ...]``; the epochs after the last are the fine-tuning phase at the default shape).

    Per long-cycle factor (T factor a, crop factor b): T = round(a T0), S = round(b S0); its
    shapes are (T, S) (and with the short cycle first (T, f S0) for each short factor f), each with
    batch factor round(T0 S0^2 / (T s^2)); avg = the mean of those factors. Inside an LR step of E
    plain epochs, every factor gets the same number of iterations, i.e. E avg / sum(avg) clip
    epochs. The iterations saved (sum(avg) / count = mean avg) are saved in the fine-tuning phase
    too: (epochs - steps[-1]) / mean(avg) x avg_last clip epochs. Finally every stage is stretched
    so that they sum to epochs x epoch_factor and the cumulative ends are rounded."""
    size0 = float(frames * crop * crop)
    shapes, avg = [], []
    for a, b in long_factors:
        t, s = int(round(frames * a)), int(round(crop * b))
        tss = [(t, f * crop) for f in short_factors] if short_cycle else []
        tss.append((t, s))
        bfs = [int(round(size0 / (tt * ss * ss))) for tt, ss in tss]
        shapes.append((t, s, bfs[-1]))
        avg.append(float(np.mean(bfs)))
    raw = []  # (lr_step, shape index, clip epochs, plain start, plain end)
    n = len(long_factors)
    for j in range(len(steps) - 1):
        span = steps[j + 1] - steps[j]
        for k in range(n):
            raw.append((j, k, span * avg[k] / sum(avg), steps[j] + span * k / n, steps[j] + span * (k + 1) / n))
    saving = sum(avg) / n
    raw.append((len(steps) - 1, n - 1, (epochs - steps[-1]) / saving * avg[-1], float(steps[-1]), float(epochs)))
    last = len(raw) - 1
    stretch = epochs * epoch_factor / sum(r[2] for r in raw)
    stages, total = [], 0.0
    for i, (j, k, e, p0, p1) in enumerate(raw):
        total += e * stretch
        t, s, bf = shapes[k]
        cyc = _short_cycle(s, crop, short_factors) if short_cycle else [(s, 1)]
        stages.append(Stage(lr_step=j, batch_factor=bf, frames=t, crop=s, end_epoch=int(round(total)),
                            plain_start=p0, plain_end=p1, fine_tune=i == last,
                            cycle=tuple((bf * m, int(round(c))) for c, m in cyc)))
    return stages


def lr_steps(cfg: Any, epochs: int) -> List[float]:
    """SlowFast's ``SOLVER.STEPS`` for the long cycle: ``[0]`` + ``train.multigrid.steps``, or the
    milestones of a ``multistep`` schedule, or else ``[0, E/4, E/2, 3E/4]`` (three long cycles, the
    last quarter the fine-tuning phase)."""
    mg = cfg.train.multigrid
    given = mg.get("steps")
    if given is None and cfg.learning_rate.get("type") == "multistep":
        first = int(cfg.learning_rate.get("first_epoch", 0) or 0)
        given = [m - first for m in (cfg.learning_rate.get("milestones") or ()) if 0 < m - first < epochs]
    if given is None:
        given = [epochs / 4, epochs / 2, 3 * epochs / 4]
    given = sorted(float(s) for s in given)
    if not given or given[0] <= 0 or given[-1] >= epochs:
        raise UserError(f"train.multigrid.steps: expected epochs strictly between 0 and train.epochs ({epochs}), "
                        f"got {list(given)}")
    return [0.0] + given


def build_plan(cfg: Any, *, default_batch: int, samples_per_shard: int, max_steps_per_epoch: int = 0) -> MultigridPlan:
    """The multigrid plan of config ``cfg`` (``train.multigrid``, ``train.epochs``, the model's
    ``num_frames``/``crop_size``) for ``default_batch`` clips per process and batch, and
    ``samples_per_shard`` clips per process and epoch."""
    mg = cfg.train.multigrid
    epochs = int(cfg.train.epochs)
    frames, crop = int(cfg.model.num_frames), int(cfg.model.crop_size)
    short = [float(f) for f in mg.short_cycle_factors]
    if mg.long_cycle:
        stages = long_cycle_schedule(steps=lr_steps(cfg, epochs), epochs=epochs, frames=frames, crop=crop,
                                     long_factors=[tuple(map(float, p)) for p in mg.long_cycle_factors],
                                     short_factors=short, short_cycle=bool(mg.short_cycle),
                                     epoch_factor=float(mg.epoch_factor))
    else:  # short cycle alone: the plain schedule stretched by epoch_factor
        cyc = _short_cycle(crop, crop, short)
        stages = [Stage(lr_step=0, batch_factor=1, frames=frames, crop=crop,
                        end_epoch=int(epochs * float(mg.epoch_factor)), plain_start=0.0, plain_end=float(epochs),
                        cycle=tuple((m, int(round(c))) for c, m in cyc))]
    total = stages[-1].end_epoch
    if total < 1:
        raise UserError(f"train.multigrid: the schedule of train.epochs={epochs} x epoch_factor "
                        f"{mg.epoch_factor} has no epochs")
    plan = MultigridPlan(stages=stages, epochs=total, default_batch=int(default_batch), default_frames=frames,
                         default_crop=crop, samples_per_shard=int(samples_per_shard),
                         max_steps_per_epoch=int(max_steps_per_epoch))
    empty = [e + 1 for e in range(plan.epochs) if plan.steps_in_epoch(e) == 0]
    if empty:
        st = plan.stage(empty[0] - 1)
        raise UserError(f"train.multigrid: epoch {empty[0]} batches {st.cycle[0][0] * default_batch} clips "
                        f"({st.frames} frames, crop {st.cycle[0][1]}) but a process sees only {samples_per_shard} "
                        f"clips per epoch; lower data_loader.train.batch_size or use more data")
    return plan


def enabled(cfg: Any) -> bool:
    """``train.multigrid`` asks for a long or a short cycle."""
    mg = cfg.train.get("multigrid") if hasattr(cfg.train, "get") else None
    return bool(mg) and bool(mg.get("long_cycle") or mg.get("short_cycle"))


__all__ = ["Stage", "MultigridPlan", "long_cycle_schedule", "lr_steps", "build_plan", "enabled", "LR_GRID"]


# ----------------------------------------------------------------------------------- the callback
class MultigridMonitor(Callback):
    """Logs each stage as it begins and every graph compiled: MindSpore compiles the train step
    once per input shape (``step_cell.compile_cache``, its compiled phases, grows by one) and
    reuses it when the shape comes back. ``compiles``: (batch shape, seconds of the step that
    compiled it, compilation included) in order; a summary line at the end."""

    def __init__(self, step_cell: Any, plan: MultigridPlan, *, log: Callable[[str], None], group: int = 1) -> None:
        self.cell, self.plan, self.log, self.group = step_cell, plan, log, int(group)
        self.compiles: List[Tuple[Tuple[int, int, int], float]] = []
        self._stage = -1
        self._count = 0

    def _cached(self) -> int:
        return len(getattr(self.cell, "compile_cache", ()) or ())

    def on_train_begin(self, state: TrainState) -> None:
        state.total_steps = self.plan.total_steps
        self._count = self._cached()

    def on_epoch_begin(self, state: TrainState) -> None:
        i = self.plan.stage_index(state.epoch)
        batches = self.plan.batches(state.epoch)
        cyc = batches[:len(self.plan.stages[i].cycle)] or [(self.plan.default_batch, 0, 0)]
        state.global_batch = int(round(np.mean([b[0] for b in cyc]))) * self.group  # clips/s of the log lines
        if i != self._stage:
            st = self.plan.stages[i]
            shapes = ", ".join(f"{b}x{t}x{c}x{c}" for b, t, c in cyc)
            self.log(f"multigrid: epoch {state.epoch + 1} starts stage {i + 1}/{len(self.plan.stages)}: batches "
                     f"{shapes} (clips x frames x crop), lr x{st.batch_factor}, {len(batches)} steps/epoch")
            self._stage = i

    def on_step_end(self, state: TrainState, loss: float, lr: float, step_time: float) -> None:
        n = self._cached()
        if n > self._count:
            self._count = n
            shape = self.plan.batches(state.epoch)[len(state.epoch_losses) - 1]
            self.compiles.append((shape, step_time))
            self.log(f"multigrid: graph {len(self.compiles)} compiled for batches of {shape[0]}x{shape[1]}x"
                     f"{shape[2]}x{shape[2]}: first step {step_time:.1f} s (compilation included)")

    def on_train_end(self, state: TrainState) -> None:
        if self.compiles:
            total = sum(t for _, t in self.compiles)
            self.log(f"multigrid: {len(self.compiles)} graph(s) compiled, one per batch shape, in {total:.1f} s "
                     f"(their first steps, compilation included)")


__all__ += ["MultigridMonitor"]


class RetryFirstCompile:
    """The train step for ``fit`` under multigrid: ``step_cell`` itself, except that the first call
    at a new input shape, whose graph compiles, is tried up to ``tries`` times.

    Why: MindSpore 2.10's parser intermittently resolves a method of the cell to another method when
    the same cell compiles a third or later graph (seen as "Unsupported exception type: UserError"
    raised from ``TrainStep.__init__``, or "The parameters number of the function is 0" for
    ``skipped_updates``); its resolve cache keys Python objects partly by ``id()``, which
    short-lived bound methods reuse. The step's ``_update`` and ``_clip`` are therefore pinned as
    lasting objects, and a failed compile, which runs nothing (no update, no statistics), is
    compiled again with other ids. Calls at a shape that compiled before are never repeated."""

    def __init__(self, step_cell: Any, *, log: Callable[[str], None], tries: int = 4) -> None:
        self.__dict__.update(_cell=step_cell, _log=log, _tries=int(tries), _seen=set())
        for name in ("_update", "_clip"):  # the step's own methods: one lasting object each, one id
            if callable(getattr(type(step_cell), name, None)) and name not in vars(step_cell):
                object.__setattr__(step_cell, name, getattr(step_cell, name))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cell, name)

    def __call__(self, *args: Any) -> Any:
        key = tuple(tuple(a.shape) for a in args)
        if key in self._seen:
            return self._cell(*args)
        hold: List[Any] = []
        for attempt in range(1, self._tries + 1):
            before = len(getattr(self._cell, "compile_cache", ()) or ())
            try:
                out = self._cell(*args)
            except (RuntimeError, TypeError, ValueError) as e:
                grew = len(getattr(self._cell, "compile_cache", ()) or ()) > before
                if grew or attempt == self._tries:
                    raise
                first = next((line for line in str(e).splitlines() if line.strip()), type(e).__name__)
                self._log(f"multigrid: compiling the graph for inputs {list(key)} failed ({first[:160]}); "
                          f"compiling it again ({attempt + 1}/{self._tries})")
                # CPython hands a freed block to the next object of its size: keep some bound methods
                # alive so that the parser's new ones land elsewhere (other ids) on the next attempt
                hold.extend(self._cell.__call__ for _ in range(64 * attempt))
                continue
            self._seen.add(key)
            return out
        raise AssertionError("unreachable")


__all__ += ["RetryFirstCompile"]
