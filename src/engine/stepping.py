"""One frame per step for streamable (causal) models: ``infer.py --stream`` and ``infer.py VIDEO
--window`` with a MoViNet stream network (``model.causal: true``; ``docs/streaming.md``).

    source frames -> FrameSampler (the model's frame rate: every ``frame_step`` source frames,
       5 fps for MoViNet) -> FrameConverter (RGB at the test short side) -> the test transform,
       one crop, one frame: (1, 3, 1, S, S)
      -> StreamStepper: step(x, *states) -> (logits, *states'), the state carried from frame to
         frame and reset to zeros every ``horizon`` model frames (0: never)
      -> per-frame probabilities (softmax of the logits) as timeline entries (FrameSteps)

Each entry covers every frame since the last reset (the network's output is a running average,
not a window), so its ``start`` is the time of the first frame after the reset and its ``end``
the end of the newest frame. No frame is kept: the state is fixed in size, and nothing is
re-scored. :class:`FrameSteps` has the interface of both :class:`~src.engine.sliding.SlidingWindows`
and :class:`~src.engine.sliding.WindowScorer`, so :func:`src.engine.stream.drive` runs it unchanged.
"""
from __future__ import annotations

import collections
import math
import time
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .inference import as_probabilities
from .sliding import FrameRing, pinned_frames
from .windows import Window


class FrameSampler:
    """Which source frames feed the model: model frame k is the first source frame at or after
    ``k * step`` (``step``: source frames per model frame, :func:`~src.data.sampling.frame_step`).
    After a gap (dropped frames) the count continues from the frame that arrived."""

    def __init__(self, step: float) -> None:
        if not step > 0:
            raise ValueError(f"frame step must be > 0, got {step}")
        self.step = float(step)
        self.k = 0

    def take(self, index: int) -> bool:
        if index + 1e-9 < self.k * self.step:
            return False
        self.k = int(math.floor(index / self.step + 1e-9)) + 1
        return True


def sampled_indices(num_frames: int, step: float) -> List[int]:
    """The source frames of a ``num_frames``-frame video that :class:`FrameSampler` takes."""
    sampler = FrameSampler(step)
    return [i for i in range(num_frames) if sampler.take(i)]


class StreamStepper:
    """A stream step and its carried state: ``stepper(x)`` with ``x`` (N, 3, 1, S, S) float32 gives the
    (N, classes) probabilities of every frame since the last reset. ``step(x, *states)`` returns
    ``(logits, *states')`` (``MoViNet.stream_step()`` or a stream MINDIR's ``nn.GraphCell``);
    ``init_states()`` gives the zero states; ``horizon`` > 0 resets them before every
    ``horizon``-th frame since the last reset."""

    def __init__(self, step: Callable[..., Any], init_states: Callable[[], Tuple[Any, ...]],
                 eval_output: str = "logits", horizon: int = 0) -> None:
        self.step, self.init_states = step, init_states
        self.eval_output, self.horizon = eval_output, max(0, int(horizon))
        self.states: Tuple[Any, ...] = ()
        self.frames = 0  # model frames since the last reset
        self.reset()

    def reset(self) -> None:
        self.states = tuple(self.init_states())
        self.frames = 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Probabilities after the frame ``x``; resets first when the horizon is reached
        (:attr:`frames` is then 1: check it to see whether this frame started a new segment)."""
        from mindspore import Tensor
        if self.horizon and self.frames >= self.horizon:
            self.reset()
        out = self.step(Tensor(np.ascontiguousarray(x, np.float32)), *self.states)
        self.states = tuple(out[1:])
        self.frames += 1
        return as_probabilities(out[0].asnumpy(), self.eval_output)

    def clip(self, view: np.ndarray) -> np.ndarray:
        """Probabilities of a whole view (3, T, S, S), fed frame by frame from zero states (the
        whole-clip score of a causal network); the state is reset afterwards."""
        self.reset()
        probs = None
        for t in range(view.shape[1]):
            probs = self(view[None, :, t:t + 1])
        self.reset()
        return probs[0]


class FrameSteps:
    """Frames in source order -> one timeline entry per model frame (see the module doc).

    ``push(index, frame, arrived)`` runs the step at once on the frames :class:`FrameSampler`
    takes; ``run()`` hands the finished entries as ``(Window, probs)`` (the window: ``index`` the
    model frame's number, ``first`` the source frame after the last reset, ``end`` the newest
    source frame + 1). ``pin``: source frames to keep for the whole-video clips (``pinned``)."""

    def __init__(self, stepper: StreamStepper, *, fps: float, frame_step: float, transform: Any,
                 convert: Callable[[Any], np.ndarray], pin: Sequence[int] = ()) -> None:
        self.stepper, self.fps, self.transform = stepper, float(fps), transform
        self.sampler = FrameSampler(frame_step)
        self.ring = FrameRing(1, convert)
        self.ring.want = set(int(i) for i in pin)
        self.convert = convert
        self.done: Deque[Tuple[Window, np.ndarray]] = collections.deque()
        self.arrival: Dict[int, float] = {}
        self.last_index = -1
        self.steps = 0
        self.first = 0  # source index of the first frame since the last reset
        self.stepper.reset()

    # -- SlidingWindows' side
    def push(self, index: int, frame: Any, arrived: Optional[float] = None) -> None:
        self.ring.push(index, frame)
        self.last_index = index
        if not self.sampler.take(index):
            return
        rgb = self.ring.pinned.get(index)
        rgb = self.convert(frame) if rgb is None else rgb
        view = self.transform(rgb[None], crop_index=0)  # (3, 1, S, S)
        probs = self.stepper(view[None])[0]
        if self.stepper.frames == 1:
            self.first = index
        w = Window(self.steps, self.first, index + 1, round(self.first / self.fps, 3),
                   round((index + 1) / self.fps, 3), np.array([[index]], np.int64))
        self.arrival[w.index] = arrived if arrived is not None else time.monotonic()
        self.done.append((w, probs))
        self.steps += 1

    def finish(self) -> None:
        """Nothing is pending at the end: every frame was scored when it came."""

    def pinned(self, indices: Sequence[int]) -> np.ndarray:
        return pinned_frames(self.ring, indices)

    # -- WindowScorer's side
    def waiting(self) -> int:
        return len(self.done)

    def run(self, flush: bool = False) -> List[Tuple[Window, np.ndarray]]:
        out = list(self.done)
        self.done.clear()
        return out


def stream_states_of(meta: Dict[str, Any]) -> Callable[[], Tuple[Any, ...]]:
    """Zero states of a stream MINDIR from its metadata (``stream.state_shapes`` / ``state_dtypes``)."""
    from mindspore import Tensor
    shapes = [tuple(s) for s in meta["stream"]["state_shapes"]]
    dtypes = list(meta["stream"]["state_dtypes"])
    return lambda: tuple(Tensor(np.zeros(s, d)) for s, d in zip(shapes, dtypes))


__all__ = ["FrameSampler", "StreamStepper", "FrameSteps", "sampled_indices", "stream_states_of"]
