"""Single-video prediction: clip planning, class names and the :class:`VideoPredictor`.

A video is scored as the evaluation does it: ``infer.num_clips`` clips of the model's own
``num_frames`` x ``sampling_rate`` spread uniformly over the whole video, each cut into
``infer.num_crops`` spatial crops; the class probabilities of all views are averaged. Each view's
probabilities come from :meth:`~src.engine.inference.InferenceModel.predict` (a softmax per view
for networks whose eval output is logits, as the Efficient-3DCNNs reference tests; X3D's head
already returns them), checkpoint or exported MINDIR alike. An optional timeline scores sliding windows (``infer.num_clips`` clips each) in one
pass over the video, and :meth:`VideoPredictor.stream` does the same for live sources (both in
:mod:`src.engine.stream`).
"""
from __future__ import annotations

import os
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..data import VideoDecodeError, VideoFileReader, build_transforms, load_label_map, plan_clip
from ..data.decode import frame_rate, one_line
from ..data.sampling import frame_step
from ..data.errors import DataError
from ..errors import UserError
from .inference import load_inference_model, topk as top_classes
from .sliding import FrameConverter, SlidingWindows, WindowScorer, short_side_of
from .stepping import FrameSteps, StreamStepper, stream_states_of
from .stream import RunStats, Source, StreamError, drive, open_source
from .windows import Timeline, Window, WindowPlan, plan_sliding_windows

KINETICS400_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data",
                                "kinetics400_classes.txt")


# ----------------------------------------------------------------------------- clip planning
def plan_clips(video_frames: int, num_frames: int, sampling_rate: float, num_clips: int,
               fps: Optional[float] = None, target_fps: Optional[float] = None,
               offset_sampling: bool = False) -> np.ndarray:
    """(num_clips, num_frames) frame indices: ``num_clips`` clips spread over the whole video,
    placed as the evaluation places them (:func:`~src.data.sampling.eval_clip_start`: SlowFast's
    ``delta * i / N``, one clip at the start; ``offset_sampling``: its offset variant, one clip
    centred), so inference matches evaluation.

    Each clip spans ``(num_frames - 1) * step + 1`` frames; indices of a video shorter than
    that are clamped to its last frame.
    """
    if video_frames <= 0:
        raise ValueError(f"video has no frames ({video_frames})")
    if num_clips < 1:
        raise ValueError(f"num_clips must be >= 1, got {num_clips}")
    return np.stack([plan_clip(video_frames, num_frames, sampling_rate, clip_idx=k, num_clips=num_clips, fps=fps,
                               target_fps=target_fps, offset_sampling=offset_sampling) for k in range(num_clips)])


def plan_windows(video_frames: int, fps: float, window_seconds: float, num_frames: int,
                 sampling_rate: float, target_fps: Optional[float] = None, *,
                 stride_seconds: Optional[float] = None, num_clips: int = 1
                 ) -> List[Tuple[float, float, np.ndarray]]:
    """Timeline windows ``(start_s, end_s, clip_indices)`` (``clip_indices``: (T,) for one clip,
    else (num_clips, T)): windows of ``window_seconds`` every ``stride_seconds`` (default: the
    window, i.e. consecutive), the last one cut at the end of the video (see
    :mod:`src.engine.stream`). Empty when ``window_seconds <= 0`` or the frame rate is unknown."""
    windows = plan_sliding_windows(video_frames, fps, window_seconds, stride_seconds, num_frames,
                                   sampling_rate, num_clips, target_fps)
    return [(w.start, w.stop, w.clips[0] if num_clips == 1 else w.clips) for w in windows]


def frame_count(source: Source) -> int:
    """Frames of an opened file (:func:`~src.engine.stream.open_source`): the container's count,
    else its video packets counted by demuxing (no decoding; what decord's index counts too),
    after which the file is rewound for the decoding pass."""
    n = int(source.stream.frames or 0)
    if n > 0:
        return n
    n = sum(1 for packet in source.container.demux(source.stream) if packet.size)
    source.container.seek(0, stream=source.stream)
    return n


# ----------------------------------------------------------------------------- class names
def read_class_names(path: str) -> List[str]:
    """Class names from a label map: JSON (see :mod:`src.data.labels`) or plain text, one per line."""
    if not path.lower().endswith(".txt"):
        return load_label_map(path)
    if not os.path.isfile(path):
        raise DataError(f"{path}: label map not found")
    with open(path, encoding="utf-8") as f:
        names = [line.strip() for line in f if line.strip()]
    if len(set(names)) != len(names):
        raise DataError(f"{path}: duplicate class names in label map")
    return names


def kinetics400_classes() -> List[str]:
    """The 400 Kinetics-400 class names in the standard index order (alphabetical)."""
    return read_class_names(KINETICS400_FILE)


def resolve_class_names(num_classes: int, label_map: Optional[str] = None,
                        checkpoint_names: Optional[Sequence[str]] = None,
                        names_from: str = "checkpoint") -> Tuple[List[str], str]:
    """``(names, source)`` by priority: ``label_map`` file > the weights' own label map (a
    checkpoint's, or an exported file's metadata: ``names_from`` names it) > Kinetics-400 when
    ``num_classes == 400`` > ``"class N"``. A label map file of the wrong length is an error; a
    weights' label map of the wrong length is ignored."""
    if label_map:
        names = read_class_names(label_map)
        if len(names) != num_classes:
            raise DataError(f"{label_map}: label map has {len(names)} names, the model has {num_classes} classes")
        return names, label_map
    if checkpoint_names and len(checkpoint_names) == num_classes:
        return [str(n) for n in checkpoint_names], names_from
    if num_classes == 400:
        return kinetics400_classes(), "kinetics400"
    return [f"class {i}" for i in range(num_classes)], "index"


# ----------------------------------------------------------------------------- predictor
class VideoPredictor:
    """Scores videos with a checkpoint (``ckpt``) or an exported MINDIR graph (``mindir``).

    The clips (frames, sampling rate, test short side and crop, input convention, output kind)
    are the model's :class:`~src.config.geometry.DataConfig` (``predictor.data``): its record
    (a MINDIR's own metadata, else ``cfg.model``'s) with the values ``cfg`` sets over it
    (:func:`~src.config.geometry.resolve_data_config`). ``cfg`` also gives the views per video and
    batch size (``infer``) and the decoder. ``config_data=False``: the MINDIR's metadata alone
    (``infer.py --mindir FILE`` without ``--config``). The MindSpore context must already be set
    (:func:`src.context.init_context`).
    """

    def __init__(self, cfg: Any, *, ckpt: Optional[str] = None, mindir: Optional[str] = None,
                 label_map: Optional[str] = None, config_data: bool = True, ema: bool = False) -> None:
        self.cfg = cfg
        self.num_clips = int(cfg.infer.num_clips)
        self.num_crops = int(cfg.infer.num_crops)
        # one fixed batch shape -> one graph compilation per predictor
        batch = max(1, min(int(cfg.infer.batch_size), self.num_clips * self.num_crops))
        self.model = load_inference_model(cfg, ckpt=ckpt, mindir=mindir, batch_size=batch, config_data=config_data,
                                          ema=ema)  # ema: the checkpoint's EMA weights (infer.py --ema)
        self.net, self.weights, self.batch_size = self.model.net, self.model.weights, self.model.batch_size
        self.data = data = self.model.data_config
        self.num_frames = int(data.num_frames)
        self.sampling_rate = float(data.sampling_rate)
        self.target_fps = data.target_fps
        self.offset_sampling = bool(data.offset_sampling)  # the evaluation's clip placement
        self.crop_size = int(data.crop_size)
        self.num_classes = int(self.model.num_classes)
        self.backend = str(cfg.data_loader.get("decoder", "decord"))
        base_ops = cfg.data_loader.eval.map.operations if config_data else None
        self.transform = build_transforms(data.operations(self.num_crops, base_ops))
        self.class_names, self.names_source = resolve_class_names(self.num_classes, label_map,
                                                                  self.model.class_names, self.model.kind)
        # streamable (causal) networks, and MINDIR files of their step: one frame per step in
        # timelines and streams (src/engine/stepping.py); a stream MINDIR also scores clips that way
        self.stream_only = self.model.kind == "mindir" and bool(self.model.meta.get("stream"))
        self.streamable = self.stream_only or bool(getattr(self.net, "streamable", False))
        horizon = cfg.infer.get("stream_horizon", None) if "infer" in cfg else None
        self.stream_horizon = self.num_frames if horizon is None else int(horizon)
        self._step: Any = None
        if self.streamable:
            self.step_transform = build_transforms(data.operations(1, base_ops))
        exported = self.model.meta.get("input_shape") if self.stream_only else None
        if exported and tuple(exported[-2:]) != (self.crop_size, self.crop_size):
            raise UserError(f"{self.weights}: stream step exported for {exported[-2]}x{exported[-1]} frames but the "
                            f"config gives crop {self.crop_size}; export again or pass the config it was exported with")
        if exported and int(exported[0]) != 1:
            raise UserError(f"{self.weights}: stream step exported at batch {exported[0]}; infer.py feeds one "
                            f"source, export it with --batch 1")

    # -- one frame per step (streamable models)
    def stepper(self, horizon: Optional[int] = None) -> StreamStepper:
        """A :class:`StreamStepper` of the model's step (compiled once per predictor), resetting
        every ``horizon`` model frames (default ``infer.stream_horizon``; 0: never)."""
        if self._step is None:
            if self.stream_only:
                self._step, self._init_states = self.net, stream_states_of(self.model.meta)
            else:
                crop = self.crop_size
                self._step, self._init_states = self.net.stream_step(), lambda: self.net.init_states(1, crop, crop)
        return StreamStepper(self._step, self._init_states, self.model.eval_output,
                             self.stream_horizon if horizon is None else horizon)

    def model_fps_of(self, fps: float) -> float:
        """Frames per second the model sees from a source at ``fps`` (MoViNet: 5)."""
        return fps / frame_step(self.sampling_rate, fps, self.target_fps)

    def _score(self, views: np.ndarray) -> np.ndarray:
        """(V, classes) probabilities of whole views: the network's forward, or, for a stream
        MINDIR, each view fed frame by frame from zero states (the same scores)."""
        if self.stream_only:
            stepper = self.stepper(horizon=0)
            return np.stack([stepper.clip(v) for v in views])
        return self.model.predict(views)

    def _views(self, frames: np.ndarray) -> List[np.ndarray]:
        return [self.transform(frames, crop_index=c) for c in range(self.num_crops)]

    def _topk(self, probs: np.ndarray, k: int) -> List[Dict[str, Any]]:
        return top_classes(probs, k, self.class_names)

    # -- one video
    def predict(self, path: str, *, topk: int = 5, window_seconds: float = 0.0,
                return_frames: bool = False, stride_seconds: Optional[float] = None, smooth: int = 1,
                threshold: float = 0.0) -> Dict[str, Any]:
        """Top-k classes of ``path`` averaged over clips x crops; with ``window_seconds > 0`` also
        the sliding-window timeline (see :meth:`predict_windows`). Raises
        :class:`VideoDecodeError` for unreadable files. With ``return_frames`` the sampled frames
        (clips in time order) are in ``"frames"``."""
        if window_seconds and window_seconds > 0:
            return self.predict_windows(path, window_seconds=window_seconds, stride_seconds=stride_seconds,
                                        topk=topk, smooth=smooth, threshold=threshold,
                                        return_frames=return_frames)
        with VideoFileReader(path, self.backend) as vr:
            n, fps = vr.num_frames, vr.fps
            clips = plan_clips(n, self.num_frames, self.sampling_rate, self.num_clips, fps, self.target_fps,
                           self.offset_sampling)
            wanted = np.unique(clips.reshape(-1))
            decoded = vr.read(wanted)
        lookup = {int(f): i for i, f in enumerate(wanted)}

        def frames_of(idx: np.ndarray) -> np.ndarray:
            return decoded[[lookup[int(f)] for f in idx]]

        views = [v for clip in clips for v in self._views(frames_of(clip))]
        main = self._score(np.stack(views)).mean(axis=0)
        result = self._video_result(path, n, fps, clips, main, topk)
        if return_frames:
            result["frames"] = np.concatenate([frames_of(c) for c in clips])
        return result

    def _video_result(self, path: str, n: int, fps: float, clips: np.ndarray, probs: np.ndarray,
                      topk: int) -> Dict[str, Any]:
        return {"path": path, "num_frames": int(n), "fps": round(float(fps), 3),
                "num_clips": int(len(clips)), "num_crops": self.num_crops,
                "clip_frames": self.num_frames, "sampling_rate": self.sampling_rate,
                "clips": clips.tolist(), "topk": self._topk(probs, topk), "probs": probs.tolist()}

    def _window_pipeline(self, fps: float, window_seconds: float, stride_seconds: Optional[float],
                         pin: Sequence[int] = (), horizon: Optional[int] = None) -> Tuple[Any, Any, Any]:
        """``(plan, scorer, sliding)`` for windows; for a streamable model ``(None, steps, steps)``
        with one :class:`FrameSteps` (one frame per step, the window and stride unused)."""
        if self.streamable:
            steps = FrameSteps(self.stepper(horizon), fps=fps, frame_step=frame_step(self.sampling_rate, fps,
                                                                                    self.target_fps),
                               transform=self.step_transform,
                               convert=FrameConverter(short_side_of(self.step_transform)), pin=pin)
            return None, steps, steps
        plan = WindowPlan(fps=fps, window_s=window_seconds, stride_s=stride_seconds or window_seconds,
                          num_frames=self.num_frames, sampling_rate=self.sampling_rate,
                          num_clips=self.num_clips, target_fps=self.target_fps)
        scorer = WindowScorer(self.model, self.transform, self.num_crops)
        sliding = SlidingWindows(plan, scorer, FrameConverter(short_side_of(self.transform)), pin=pin)
        return plan, scorer, sliding

    def predict_windows(self, path: str, *, window_seconds: float, stride_seconds: Optional[float] = None,
                        topk: int = 5, smooth: int = 1, threshold: float = 0.0,
                        return_frames: bool = False, horizon: Optional[int] = None) -> Dict[str, Any]:
        """One pass over ``path``: every window of ``window_seconds`` every ``stride_seconds``
        (``infer.num_clips`` clips x ``num_crops`` crops each, frames decoded and scaled once,
        windows batched) plus the whole-video clips, gathered on the way. Memory is bounded by
        one window, not by the video. ``timeline``: per window start/end/top-k (smoothed over the
        last ``smooth`` windows; ``"uncertain"`` below ``threshold``); ``segments``: consecutive
        windows with the same label merged; ``stats``: frames decoded, speed. A streamable model
        gives one entry per model frame instead (:mod:`src.engine.stepping`; ``horizon``: frames
        between state resets, default ``infer.stream_horizon``)."""
        if not os.path.isfile(path):  # as the clip readers say it
            raise VideoDecodeError(path, "file not found")
        if os.path.getsize(path) == 0:
            raise VideoDecodeError(path, "empty file (0 bytes)")
        try:  # the file is opened once, with one decoder (PyAV): its frame count and rate, then one pass
            source = open_source(path, realtime=False)
        except StreamError as e:
            raise VideoDecodeError(path, str(e).split(": ", 1)[-1]) from None
        try:
            if frame_rate(source.stream) <= 0:
                raise VideoDecodeError(path, "unknown frame rate: cannot place timeline windows")
            try:
                fps, n = source.fps, frame_count(source)
            except Exception as e:  # a broken container (PyAV raises many types)
                raise VideoDecodeError(path, f"cannot count its frames ({one_line(e)})") from None
            clips = plan_clips(max(n, 1), self.num_frames, self.sampling_rate, self.num_clips, fps, self.target_fps,
                               self.offset_sampling)
            _, scorer, sliding = self._window_pipeline(fps, window_seconds, stride_seconds, clips.reshape(-1),
                                                       horizon)
            timeline = Timeline(self.class_names, topk=topk, smooth=smooth, threshold=threshold)
            stats = drive(source, sliding, scorer, lambda w, p, arrived: timeline.add(w, p))
        finally:
            source.close()
        if stats.frames == 0:
            raise VideoDecodeError(path, stats.error or "no frames decoded")
        if stats.interrupted:
            raise KeyboardInterrupt
        if stats.frames != n:  # the container's count was wrong: the clips of the frames there were
            n = stats.frames   # (a frame not kept on the way: the nearest earlier one that was)
            clips = plan_clips(n, self.num_frames, self.sampling_rate, self.num_clips, fps, self.target_fps,
                               self.offset_sampling)
        main_frames = [sliding.pinned(c) for c in clips]
        views = [v for frames in main_frames for v in self._views(frames)]
        main = self._score(np.stack(views)).mean(axis=0)
        result = self._video_result(path, n, fps, clips, main, topk)
        result.update({"window_seconds": float(window_seconds),
                       "stride_seconds": float(stride_seconds or window_seconds),
                       "smooth": int(smooth), "threshold": float(threshold),
                       "timeline": timeline.entries, "segments": timeline.segments(),
                       "stats": stats.to_dict()})
        if self.streamable:
            result.update(self._per_frame_info(fps, horizon))
        if return_frames:
            result["frames"] = np.concatenate(main_frames)
        return result

    def _per_frame_info(self, fps: float, horizon: Optional[int]) -> Dict[str, Any]:
        return {"per_frame": True, "model_fps": round(self.model_fps_of(fps), 3),
                "stream_horizon": self.stream_horizon if horizon is None else int(horizon)}

    def warm_up(self) -> None:
        """One batch through the model (graph compilation happens here, not on the first window);
        for a streamable model one step (what a stream runs)."""
        if self.streamable:
            self.stepper()(np.zeros((1, 3, 1, self.crop_size, self.crop_size), np.float32))
            return
        view = self.transform(np.zeros((self.num_frames, self.crop_size, self.crop_size, 3), np.uint8))
        self.model.predict(view[None])

    # -- a live source
    def stream(self, spec: str, *, window_seconds: float, stride_seconds: Optional[float] = None,
               topk: int = 5, smooth: int = 1, threshold: float = 0.0,
               on_window: Optional[Callable[[Dict[str, Any]], None]] = None, fmt: Optional[str] = None,
               fps: Optional[float] = None, realtime: bool = True, drop: Optional[bool] = None,
               timeout: float = 10.0, horizon: Optional[int] = None) -> Tuple[Timeline, RunStats, float]:
        """Score a camera / URL / stdin / real-time file window by window: ``on_window(entry)``
        right after each window is scored (``entry``: the timeline entry plus ``latency_ms`` from
        the arrival of the window's last frame). Returns ``(timeline, stats, fps)``. An
        unopenable source raises :class:`StreamError`; a break mid-way is in ``stats.error``. A
        streamable model gives one entry per model frame (``horizon``: see :meth:`predict_windows`)."""
        self.warm_up()  # compile before the first frame: the first window's latency is then real
        source = open_source(spec, fmt=fmt, timeout=timeout, fps=fps, realtime=realtime)
        try:
            plan, scorer, sliding = self._window_pipeline(source.fps, window_seconds, stride_seconds,
                                                          horizon=horizon)
            capacity = max(16, plan.keep) if plan is not None else 16
            timeline = Timeline(self.class_names, topk=topk, smooth=smooth, threshold=threshold)

            def emit(w: Window, probs: np.ndarray, arrived: float) -> None:
                entry = timeline.add(w, probs)
                entry["latency_ms"] = round(1e3 * (time.monotonic() - arrived), 1)
                if on_window is not None:
                    on_window(entry)

            stats = drive(source, sliding, scorer, emit, capacity=capacity, drop=drop)
        finally:
            source.close()
        if stats.frames == 0 and not stats.interrupted:
            raise StreamError(stats.error or f"{spec}: no video frames")
        return timeline, stats, source.fps


__all__ = ["VideoPredictor", "plan_clips", "plan_windows", "plan_sliding_windows", "read_class_names",
           "kinetics400_classes", "resolve_class_names", "VideoDecodeError", "KINETICS400_FILE", "frame_count"]
